"""Clips in and out: video files through PyAV (FFmpeg's libraries, carried by the `av` wheels),
animated GIF and WebP through Pillow, and folders of frames.

A clip is read as a stream of upright RGB frames with their timestamps and written back with
the same timestamps, so frame count, frame rate (variable too) and duration are kept; the
display rotation, pixel aspect and colour description are carried over as metadata, and
every audio and subtitle stream is copied without re-encoding. Video files are decoded in a
thread of their own, so that the next frames are ready while the faces of these are restored;
memory holds a few frames, however long the clip. The written file appears only when complete
(a temporary file in the same folder, renamed); a clip that is stopped part way is kept as a
playable file named `.partial`.

`av` is imported only here, and only when a video is read or written.
"""

import logging
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

from .clips import (ANIMATION_SUFFIXES, AnimationSink, AnimationSource, ClipError, ClipFrame,
                    ClipInfo, ClipSink, ClipSource, FolderSink, FolderSource, read_ahead)
from .encoders import ENCODERS, codec_for
from .files import AtomicFile, ImageFileError, check_pixels
from .options import VIDEO_CODEC, VIDEO_QUALITY
from .results import face_tally

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv")
# Containers a clip is written to with every frame's time and order kept; the others (AVI's
# frame counting, MPEG programme streams, ASF, Ogg) read, but never written
WRITTEN_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv",
                    ".3gp")
FULL_CHROMA = {"yuv420p": "yuv444p", "yuv422p": "yuv444p", "yuv420p10le": "yuv444p10le",
               "yuv422p10le": "yuv444p10le", "yuvj420p": "yuvj444p", "yuvj422p": "yuvj444p"}
DECODED_AHEAD = 8  # frames decoded ahead of the pipeline


def is_video(path):
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():
    try:
        import av
    except ImportError:
        raise ClipError("reading and writing video needs PyAV: pip install av") from None
    av.logging.set_libav_level(av.logging.ERROR)  # no Python callback: it can deadlock threads
    return av


class VideoSource(ClipSource):
    """A video file's frames, decoded ahead in a thread, upright; its audio and subtitle
    packets handed to the sink's `copy` in file order."""

    def __init__(self, path, max_megapixels):
        av = _av()
        self.path = Path(path)
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as error:
            raise ClipError(f"cannot read {path}: {_reason(error)}") from None
        if not self.container.streams.video:
            self.container.close()
            raise ClipError(f"cannot restore {path}: it has no video stream")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.other_streams = [stream for stream in self.container.streams
                              if stream.type in ("audio", "subtitle")]
        skipped = [stream for stream in self.container.streams
                   if stream is not self.video and stream not in self.other_streams]
        if skipped:
            log.warning("%s: %d stream(s) that are neither audio nor subtitles are not carried "
                        "over (%s)", path, len(skipped), ", ".join(s.type for s in skipped))
        context = self.video.codec_context
        try:
            check_pixels(context.width, context.height, max_megapixels, path, frames=True)
        except ImageFileError as error:
            self.container.close()
            raise ClipError(str(error)) from None
        self.packets = self.container.demux(self.video, *self.other_streams)
        self.decoded = 0      # frames decoded so far
        self.end = None       # seconds from the video's start to the end of the last frame
        self.last_duration = None  # seconds the last frame decoded is shown for
        self.first = None
        self.info = self._read_info()

    def _read_info(self):
        """The clip's description; decodes its first frame for what only frames carry."""
        av = _av()
        head = []
        try:
            for packet in self.packets:
                if packet.stream is not self.video:
                    head.append(packet)
                    continue
                frames = packet.decode()
                if frames:
                    self.first = frames
                    break
        except av.FFmpegError as error:
            self.container.close()
            raise ClipError(f"cannot read {self.path}: {_reason(error)}") from None
        if self.first is None:
            self.container.close()
            raise ClipError(f"cannot restore {self.path}: no frame could be decoded")
        self.head = head
        frame, stream, context = self.first[0], self.video, self.video.codec_context
        matrix = _display_matrix(frame)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        bits = max(component.bits for component in frame.format.components)
        return ClipInfo(
            context.width, context.height, self._expected_frames(Fraction(rate)), Fraction(rate),
            Fraction(stream.time_base), int(frame.rotation or 0) % 360,
            None if matrix is None else list(np.frombuffer(bytes(matrix), "<i4")),
            stream.sample_aspect_ratio, frame.format.name, bits > 8,
            {name: getattr(frame, name) for name in
             ("colorspace", "color_range", "color_primaries", "color_trc")})

    def _expected_frames(self, rate):
        """The frames a progress bar expects: counted by the container, else the video's
        stated duration at its average rate (only an estimate where the rate varies); 0
        where the file says neither."""
        seconds = self._stated_seconds()
        return self.video.frames or (max(1, round(seconds * rate)) if seconds else 0)

    def _stated_seconds(self):
        """The video's duration as the file states it (Matroska and WebM as a tag), or None."""
        stream = self.video
        if stream.duration:
            return Fraction(stream.duration * stream.time_base)
        seconds = _seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
        if seconds is None and self.container.duration and not self.other_streams:
            seconds = Fraction(self.container.duration, 1_000_000)
        return seconds

    def _cut_short(self):
        """Why the clip read to its end seems cut short, or None: fewer frames than the
        container counts, else (Matroska, WebM and MPEG-TS count none) a last frame ending
        over half a frame before the stated duration; never from an average rate, which
        misjudges a variable frame rate."""
        declared, decoded = self.video.frames, self.decoded
        if declared:
            return f"the file ends after frame {decoded} of the {declared} it declares " \
                   "(cut short?)" if decoded < declared else None
        seconds, end = self._stated_seconds(), self.end
        if not seconds or end is None or end + self.last_duration / 2 >= seconds:
            return None
        return f"the file ends after frame {decoded}, at {float(end):.2f} s of the " \
               f"{float(seconds):.2f} s it declares (cut short?)"

    def frames(self, copy):
        """ClipFrames in order; packets of the other streams go to `copy` as they come."""
        for kind, item in read_ahead(self._decoded(), DECODED_AHEAD):
            if kind == "packet":
                copy(item)
            else:
                yield item

    def _decoded(self):
        """("packet", packet) of the other streams and ("frame", ClipFrame) in file order; a
        decoding error ends the clip early, noted in `stopped`."""
        av = _av()
        try:
            yield from (("packet", packet) for packet in self.head)
            yield from (("frame", self._frame(frame)) for frame in self.first)
            for packet in self.packets:
                if packet.stream is not self.video:
                    yield "packet", packet
                    continue
                for frame in packet.decode():
                    yield "frame", self._frame(frame)
        except (av.FFmpegError, ValueError) as error:
            self.stopped = f"decoding stopped after frame {self.decoded}: {_reason(error)}"
        else:
            self.stopped = self._cut_short()

    def _frame(self, frame):
        self.decoded += 1
        pixels = frame.to_ndarray(format="rgb48le" if self.info.deep else "rgb24")
        info = self.info
        pts = frame.pts if frame.pts is not None else \
            round((self.decoded - 1) / (info.rate * info.time_base))
        duration = Fraction(frame.duration * info.time_base) if frame.duration else 1 / info.rate
        self.end = (pts - (self.video.start_time or 0)) * info.time_base + duration
        self.last_duration = duration
        return ClipFrame(upright(pixels, info.rotation), pts, duration)

    def close(self):
        self.container.close()


def _seconds(text):
    """Seconds of a duration written as "HH:MM:SS.fraction" (Matroska's tags), or None."""
    try:
        hours, minutes, seconds = str(text).split(":")
        return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
    except (ValueError, TypeError):
        return None


def upright(pixels, rotation):
    """Stored pixels turned as a player shows them (rotation: degrees counter-clockwise)."""
    return np.ascontiguousarray(np.rot90(pixels, rotation // 90)) if rotation else pixels


def as_stored(pixels, rotation):
    """Upright pixels turned back as the clip stores them."""
    return np.ascontiguousarray(np.rot90(pixels, -(rotation // 90))) if rotation else pixels


class VideoSink(ClipSink):
    """A video file written as `info` describes, from upright RGB frames, with the source's
    other streams copied; into a temporary file, put in place when complete."""

    def __init__(self, path, info, source_streams=(), codec=VIDEO_CODEC.default,
                 quality=VIDEO_QUALITY.default, pixel_format="auto"):
        av = _av()
        self.path, self.info = Path(path), info
        chosen = codec_for(self.path, codec, info.deep)
        encoder = ENCODERS[chosen]
        self.pixel_format = _pixel_format(encoder, info, pixel_format, chosen,
                                          deep_kept=codec != "auto" or chosen != "h264")
        codec = chosen
        self.file = AtomicFile(self.path)
        try:
            self.container = av.open(str(self.file.temporary), "w")
            self.stream = self.container.add_stream(encoder.ffmpeg, rate=info.rate)
            self._describe(self.stream, encoder, quality)
            self.copies = {source: self.container.add_stream_from_template(source)
                           for source in source_streams}
            self.container.start_encoding()  # a container that cannot hold them fails here
        except (av.FFmpegError, ValueError) as error:
            self._discard()
            held = ", ".join(f"{stream.type} ({stream.codec_context.name})"
                             for stream in source_streams)
            raise ClipError(f"cannot write {self.path}: the {self.path.suffix} container does "
                            f"not take {codec} video" + (f" with the {held} copied from the "
                                                         f"input" if held else "")
                            + f" ({_reason(error)}); .mkv takes them all") from None

    def _describe(self, stream, encoder, quality):
        info = self.info
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self.pixel_format
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        if info.sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = info.sample_aspect_ratio
        for name, value in info.colour.items():
            if value is not None:
                setattr(stream.codec_context, name, value)
        if encoder.ffmpeg == "libx265" and self.path.suffix.lower() in (".mp4", ".m4v", ".mov"):
            stream.codec_tag = "hvc1"  # as Apple's players and browsers look for it
        options = dict(encoder.options)
        if encoder.max_crf:
            if quality > encoder.max_crf:
                raise ClipError(f"--video-quality for {encoder.ffmpeg} goes up to "
                                f"{encoder.max_crf}, got {quality}")
            options["crf"] = str(quality)
            if encoder.ffmpeg == "libvpx-vp9":
                options["b"] = "0"  # constant quality, no bitrate cap
        stream.codec_context.options = options
        if info.display_matrix is not None:
            stream.set_display_matrix([int(value) for value in info.display_matrix])

    def copy(self, packet):
        """A packet of one of the source's other streams, copied as it is."""
        if packet.dts is None or packet.stream not in self.copies:
            return  # the demuxer's empty flush packets
        packet.stream = self.copies[packet.stream]
        self.container.mux(packet)

    def write(self, pixels, frame):
        av = _av()
        encoded = av.VideoFrame.from_ndarray(as_stored(pixels, self.info.rotation),
                                             format="rgb48le" if pixels.dtype == np.uint16
                                             else "rgb24")
        colour = self.info.colour
        encoded = encoded.reformat(format=self.pixel_format,
                                   dst_colorspace=colour.get("colorspace"),
                                   dst_color_range=colour.get("color_range"))
        encoded.pts, encoded.time_base = frame.pts, self.info.time_base
        self.container.mux(self.stream.encode(encoded))
        self.written += 1

    def close(self):
        """Flush the encoder and put the file in place."""
        self._finish(self.path)

    def abort(self, keep_partial):
        """Stopped part way: the frames so far as `<name>.partial<suffix>` (if asked and
        possible), else nothing. Returns the partial file's path, or None."""
        if keep_partial and self.written:
            partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
            try:
                self._finish(partial)
                return partial
            except Exception:  # noqa: BLE001 (whatever went wrong, leave no half file)
                pass
        self._discard()
        return None

    def _finish(self, target):
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.file.commit(target)
        except BaseException:
            self._discard()
            raise

    def _discard(self):
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 (closing what failed to open)
            pass
        self.file.discard()


def _pixel_format(encoder, info, asked, codec, deep_kept=True):
    """The pixel format to encode in: the one asked for, else the source's where the encoder
    takes it, else the encoder's usual one (at 10 bits for a deep source where it has one);
    full chroma where sides are odd and the encoder needs them even for subsampled chroma."""
    av = _av()
    usual = encoder.pixel_format
    try:
        supported = [form.name for form in (av.codec.Codec(encoder.ffmpeg, "w").video_formats
                                            or [])]
    except av.codec.codec.UnknownCodecError:
        raise ClipError(f"this PyAV's FFmpeg cannot write {codec} (it has no {encoder.ffmpeg} "
                        f"encoder): choose another --video-codec") from None
    odd = info.width % 2 or info.height % 2
    if asked != "auto":
        if asked not in supported:
            raise ClipError(f"{codec} cannot be written as {asked}; it takes "
                            f"{', '.join(supported)}")
        if odd and encoder.even_sides and asked in FULL_CHROMA:
            raise ClipError(f"{codec} in {asked} needs even sides; this clip is "
                            f"{info.width}x{info.height}: use {FULL_CHROMA[asked]}")
        return asked
    deep = usual.replace("p", "p10le", 1) if info.deep and usual.startswith("yuv") else usual
    chosen = info.pixel_format if info.pixel_format in supported else \
        deep if deep in supported else usual
    if info.deep and (not deep_kept or _bits(chosen) <= 8):
        chosen = usual
        log.warning("the input has more than 8 bits a sample; %s is written at 8 (%s)", codec,
                    "the encoder here takes no more" if deep_kept else
                    "10-bit H.264 many players cannot play: --video-codec h265, or .mkv, keeps "
                    "the depth")
    if odd and encoder.even_sides and chosen in FULL_CHROMA:
        log.info("%dx%d has an odd side: written in %s (full colour resolution), which %s "
                 "needs for odd sides", info.width, info.height, FULL_CHROMA[chosen], codec)
        chosen = FULL_CHROMA[chosen]
    return chosen


def _bits(pixel_format):
    return 16 if "16" in pixel_format else 12 if "12" in pixel_format else \
        10 if "10" in pixel_format else 8


def _reason(error):
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _display_matrix(frame):
    """A decoded frame's display matrix (how it is to be turned), or None. PyAV 18.1.1 made
    frame.side_data a mapping iterated by its types; 18.1.0 iterated the side data itself."""
    for item in frame.side_data:
        side = item if hasattr(item, "type") else frame.side_data[item]
        if "DISPLAYMATRIX" in str(side.type):
            return side
    return None


def open_source(path, kind, max_megapixels, rate=25):
    """A clip's source: a video file ("video"), an animated GIF or WebP ("animation"), or a
    folder of frames ("frames", at `rate` frames a second)."""
    if kind == "frames":
        return FolderSource(path, rate, max_megapixels)
    if kind == "animation":
        return AnimationSource(path, max_megapixels)
    return VideoSource(path, max_megapixels)


def open_sink(target, source, codec="auto", quality=VIDEO_QUALITY.default,
              pixel_format="auto"):
    """Where the restored frames of `source` (a ClipSource) go, by the target's name alone: a
    video file (the source's other streams copied into it), an animation (GIF or WebP), or a
    folder of frames (codec png writes a video's name as a folder of PNG frames)."""
    target = Path(target)
    suffix = target.suffix.lower()
    if suffix in VIDEO_SUFFIXES and codec != "png":
        return VideoSink(target, source.info, source.other_streams, codec, quality,
                         pixel_format)
    if suffix in ANIMATION_SUFFIXES:
        return AnimationSink(target, source.info)
    if suffix in VIDEO_SUFFIXES:
        target = target.with_suffix("")
    if source.other_streams:
        log.warning("%s: frames only; the audio and subtitle streams are not written to a "
                    "folder", target)
    return FolderSink(target)


def restore_clip(restorer, source, sink, options, landmarks=None, on_frame=None):
    """Restore a clip from `source` into `sink` (open_source, open_sink), frame by frame
    through FaceRestorer.restore_stream, each frame tagged with its ClipFrame; `landmarks`:
    None, or an iterable with one list of faces per frame. `on_frame(frames done, faces in
    this one)` after each frame. Returns (frames, faces: a Counter by the release that restored
    them, as face_tally counts them). The sink is closed (the file put in
    place) when the clip is done; on a failure it is discarded, and on an interruption
    (Ctrl-C, SIGTERM) what was written is kept as a partial file, named in the exception's
    `partial` attribute."""
    faces = Counter()
    feed = ((frame.pixels, frame) for frame in source.frames(sink.copy))
    stream = restorer.restore_stream(feed, options, landmarks, any_float_range=True,
                                     tagged=True)
    try:
        for result in stream:
            sink.write(result.image, result.tag)
            faces.update(face_tally(result))
            if on_frame is not None:
                on_frame(sink.written, len(result.faces))
    except BaseException as error:
        interrupted = not isinstance(error, Exception)  # KeyboardInterrupt, SIGTERM's exit
        error.partial = sink.abort(keep_partial=interrupted)
        raise
    finally:
        stream.close()
        feed.close()  # the decoding thread stops before the file is closed
        source.close()
    sink.close()
    return sink.written, faces
