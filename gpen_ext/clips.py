"""Clips as sources of frames and sinks of restored frames, with one declared interface, and
the clips that need no video library: animated GIF and WebP (through Pillow) and folders of
frames. Video files, through PyAV, are in video.py.

A source yields ClipFrames in order, each with its own timestamp and duration; a sink writes
each restored frame with the ClipFrame it came from, so that every sink keeps the timing (and
a folder its frames' names) without asking the source. A sink's file appears only when it is
complete (files.AtomicFile).
"""

import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .files import (IMAGE_SUFFIXES, AtomicFile, ImageFile, ImageFileError, check_pixels,
                    pillow_limit_at_least, read_header, read_image, write_image)

ANIMATION_SUFFIXES = (".gif", ".webp")  # clips only when asked: they are images too


class ClipError(ImageFileError):
    """A clip that cannot be read or written; says which and why."""


@dataclass
class ClipInfo:
    """What a clip says about itself, and what its copy must say too."""
    width: int                     # as stored (before rotation)
    height: int
    frames: int                    # expected: counted, or estimated from the duration; 0 if unknown
    rate: Fraction                 # average frames per second
    time_base: Fraction
    rotation: int = 0              # degrees counter-clockwise that show it upright
    display_matrix: list = None    # FFmpeg's, as read, to write back unchanged
    sample_aspect_ratio: Fraction = None
    pixel_format: str = "rgb24"
    deep: bool = False             # more than 8 bits a sample: restored as 16-bit
    colour: dict = field(default_factory=dict)  # colorspace, color_range, primaries, trc
    loop: int = 0                  # an animation's: times it plays, 0 for ever

    @property
    def duration(self):
        return self.frames / self.rate if self.frames and self.rate else None


@dataclass
class ClipFrame:
    pixels: np.ndarray   # upright RGB, uint8 or uint16
    pts: int             # in the clip's time_base
    duration: Fraction   # seconds it is shown for
    name: str = None     # a frame read from a folder: its file's name


class ClipSource:
    """Where a clip's frames come from."""
    info: ClipInfo
    stopped = None       # why reading ended before the clip did, if it did
    other_streams = ()   # streams a sink copies as they are (a video's audio and subtitles)

    def frames(self, copy):
        """ClipFrames in order; packets of `other_streams` go to `copy` as they come."""
        raise NotImplementedError

    def close(self):
        """Let go of the file."""


class ClipSink:
    """Where a clip's restored frames go."""
    written = 0

    def write(self, pixels, frame):
        """The restored `pixels` of `frame` (the source's ClipFrame: its time, its name)."""
        raise NotImplementedError

    def copy(self, packet):
        """A packet of one of the source's other streams: dropped unless the sink keeps them."""

    def close(self):
        """The clip is complete: put it in place."""

    def abort(self, keep_partial):
        """Stopped part way: keep what was written as a partial clip where asked and possible;
        returns where it is, or None."""
        return None


class AnimationSource(ClipSource):
    """An animated GIF or WebP's frames through Pillow, timed by their durations (ms)."""

    def __init__(self, path, max_megapixels):
        self.path = Path(path)
        data = self.path.read_bytes()
        header = read_header(data, str(path), max_megapixels)
        try:
            check_pixels(header.width, header.height, max_megapixels, path)
            with pillow_limit_at_least(max_megapixels):
                self.image = Image.open(self.path)
                self.image.load()
        except ImageFileError as error:
            raise ClipError(str(error)) from None
        except Exception as error:  # noqa: BLE001 (Pillow raises many kinds)
            raise ClipError(f"cannot read {path}: {error}") from None
        self.info = ClipInfo(header.width, header.height, getattr(self.image, "n_frames", 1),
                             Fraction(1000, max(1, self.image.info.get("duration", 100))),
                             Fraction(1, 1000), loop=self.image.info.get("loop", 0))

    def frames(self, copy=None):
        pts = 0
        for index in range(self.info.frames):
            try:
                self.image.seek(index)
                pixels = np.array(self.image.convert("RGB"))
            except Exception as error:  # noqa: BLE001
                self.stopped = f"decoding stopped after frame {index}: {error}"
                return
            milliseconds = int(self.image.info.get("duration", 100)) or 100
            yield ClipFrame(pixels, pts, Fraction(milliseconds, 1000))
            pts += milliseconds

    def close(self):
        self.image.close()


class AnimationSink(ClipSink):
    """An animated GIF or WebP, written by Pillow once every frame is in (animations are
    short): each frame shown as long as the one it was restored from, looping as `info`
    says."""

    def __init__(self, path, info):
        self.path, self.info, self.frames, self.durations = Path(path), info, [], []

    def write(self, pixels, frame):
        self.frames.append(Image.fromarray(pixels))
        self.durations.append(max(1, round(frame.duration * 1000)))
        self.written += 1

    def close(self):
        atomic = AtomicFile(self.path)
        try:
            self.frames[0].save(atomic.temporary, save_all=True, append_images=self.frames[1:],
                                duration=self.durations, loop=self.info.loop, lossless=True)
            atomic.commit()
        except BaseException:
            atomic.discard()
            raise


class FolderSource(ClipSource):
    """A folder of frames (images, in name order) as a clip at `rate` frames a second.
    `other_size`: the first frame whose size differs from the first frame's, as (name, (width,
    height)), told from the files' headers before any frame is restored; None if none."""

    def __init__(self, folder, rate, max_megapixels):
        self.files, self.max_megapixels = frame_files(folder), max_megapixels
        if not self.files:
            raise ClipError(f"no frames in {folder}")
        first = read_image(self.files[0], max_megapixels).pixels
        self.info = ClipInfo(first.shape[1], first.shape[0], len(self.files), Fraction(rate),
                             1 / Fraction(rate))
        sizes = ((path.name, upright_size(path)) for path in self.files[1:])
        self.other_size = next(((name, size) for name, size in sizes if size not in
                                (None, (self.info.width, self.info.height))), None)

    def frames(self, copy=None):
        for index, path in enumerate(self.files):
            try:
                pixels = read_image(path, self.max_megapixels).pixels
            except ImageFileError as error:
                self.stopped = f"reading stopped at frame {index} ({path.name}): {error}"
                return
            yield ClipFrame(pixels, index, 1 / self.info.rate, path.name)


class FolderSink(ClipSink):
    """Frames as image files in a folder: the source frames' names, or frame_000001.png."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def write(self, pixels, frame):
        name = frame.name or f"frame_{self.written + 1:06d}.png"
        write_image(self.folder / name, ImageFile(pixels))
        self.written += 1

    def abort(self, keep_partial):
        return self.folder if keep_partial and self.written else None


def upright_size(path):
    """(width, height) of an image file as it is shown (its EXIF orientation applied), from its
    header."""
    try:
        with Image.open(path) as image:
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            return image.size[::-1] if turned else image.size
    except Exception:  # noqa: BLE001 (told when the frame is read)
        return None


def frame_files(folder):
    """A folder's image files in name order: a clip's frames."""
    return sorted(path for path in Path(folder).iterdir()
                  if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def read_ahead(items, most):
    """`items` iterated in a thread of its own, at most `most` ahead of the reader: the next
    frames decode while the faces of these are restored. The thread stops when the reader
    does."""
    ahead, done, end = queue.Queue(maxsize=most), threading.Event(), object()

    def put(item):
        while not done.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):  # the reader stopped
                    return
        finally:
            put(end)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not end:
            yield item
    finally:
        done.set()
        while worker.is_alive():  # let a blocked put() see `done`
            try:
                ahead.get_nowait()
            except queue.Empty:
                worker.join(0.05)
