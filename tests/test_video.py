"""Clips through the command line and the Python API: what comes out plays like what went in
(frames, timestamps, rate, audio, subtitles, rotation, pixel aspect), and bad clips are told
apart clearly. The network is a stand-in and the faces supplied, so that the I/O is what runs."""

import hashlib
import json
import logging
import re
import signal
import subprocess
import sys
import threading
from fractions import Fraction

import cv2
import numpy as np
import pytest

from gpen_ext import cli
from gpen_ext.face_models import FaceModels
from gpen_ext.jobs import RestoreJob, UsageError, plan_tasks
from gpen_ext.options import RestoreOptions
from gpen_ext.pipeline import FaceRestorer
from gpen_ext.video import ClipError, open_sink, open_source, restore_clip

from helpers import ROOT, CountingNetwork, mux_tone

av = pytest.importorskip("av")

SRT = (b"1\n00:00:00,000 --> 00:00:00,400\nHello\n\n"
       b"2\n00:00:00,500 --> 00:00:00,900\nWorld\n\n")


def make_clip(path, frames=12, width=96, height=80, rate=25, audio=True, subtitles=False,
              rotation=0, pts=None, sar=None, codec="libx264", pixel_format="yuv420p"):
    """A small clip: a moving gradient, optionally with a tone, subtitles, a display rotation,
    irregular timestamps (`pts`, in 1/1000 s) and a pixel aspect ratio."""
    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=rate)
    video.width, video.height, video.pix_fmt = width, height, pixel_format
    if pts is not None:
        video.codec_context.time_base = Fraction(1, 1000)
        video.time_base = Fraction(1, 1000)
    if sar:
        video.codec_context.sample_aspect_ratio = sar
    if rotation:
        video.set_display_rotation(rotation)
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    captions = None
    if subtitles:
        (path.parent / "captions.srt").write_bytes(SRT)
        source = av.open(str(path.parent / "captions.srt"))
        captions = (out.add_stream_from_template(source.streams[0]),
                    [packet for packet in source.demux() if packet.dts is not None])
    y, x = np.mgrid[0:height, 0:width]
    for index in range(frames):
        pixels = np.stack([(x * 2 + index * 5) % 256, (y * 3) % 256, (x + y) % 256], -1)
        frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
        frame.pts = index if pts is None else pts[index]
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if sound is not None:
        mux_tone(out, sound, frames / rate if pts is None else (pts[-1] + 40) / 1000)
    if captions is not None:
        for packet in captions[1]:
            packet.stream = captions[0]
            out.mux(packet)
    out.close()
    return path


def probe(path):
    """What a player would see: per stream, its kind, codec and packets (digest of the
    non-video ones); the video's frame timestamps, rate, rotation and pixel aspect."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        found = {"rate": video.average_rate, "sar": video.sample_aspect_ratio,
                 "streams": [(stream.type, stream.codec_context.name)
                             for stream in container.streams]}
        digests = {stream.index: hashlib.sha256() for stream in container.streams}
        for packet in container.demux():
            if packet.size and packet.stream.type != "video":
                digests[packet.stream.index].update(bytes(packet))
        found["copied"] = [digests[stream.index].hexdigest() for stream in container.streams
                           if stream.type != "video"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        found["pts"] = [float(frame.pts * stream.time_base) for frame in frames]
        found["rotation"] = frames[0].rotation
        found["size"] = (frames[0].width, frames[0].height)
        found["first"] = frames[0].to_ndarray(format="rgb24")
    return found


class Darken(CountingNetwork):
    def __init__(self):
        super().__init__(64, transform=lambda x: (x + 1) * 0.5 - 1)


def restorer():
    return FaceRestorer(Darken(), FaceModels("/nonexistent", download=False))


def face_in(width, height):
    """Five landmarks of a face filling the middle of a frame."""
    cx, cy, s = width / 2, height / 2, min(width, height) / 4
    return [[cx - s / 2, cy - s / 3], [cx + s / 2, cy - s / 3], [cx, cy], [cx - s / 3, cy + s / 2],
            [cx + s / 3, cy + s / 2]]


def restore(path, target, **settings):
    options = RestoreOptions(mask="box", **settings.pop("options", {}))
    source = open_source(path, "video", 150)
    sink = open_sink(target, source, **settings)
    info = source.info
    landmarks = [[face_in(info.width, info.height)]] * max(info.frames, 1000)
    return restore_clip(restorer(), source, sink, options, iter(landmarks))


def test_a_clip_keeps_frames_timestamps_rate_audio_and_subtitles(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=15, subtitles=True)
    frames, faces = restore(clip, tmp_path / "out.mkv")
    before, after = probe(clip), probe(tmp_path / "out.mkv")
    assert (frames, faces.total()) == (15, 15)
    assert after["pts"] == pytest.approx(before["pts"]) and after["rate"] == before["rate"]
    assert [kind for kind, _ in after["streams"]] == ["video", "audio", "subtitle"]
    assert after["streams"][1:] == before["streams"][1:]
    assert after["copied"] == before["copied"]  # the same packets, not re-encoded
    assert not np.array_equal(after["first"], before["first"])  # the face was darkened
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "captions.srt", "in.mkv", "out.mkv"]  # no temporary file left


def test_variable_frame_rate_rotation_and_pixel_aspect_are_kept(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 440, 480]  # gaps: a variable frame rate
    clip = make_clip(tmp_path / "in.mp4", frames=len(pts), pts=pts, rotation=90,
                     sar=Fraction(4, 3), audio=False)
    restore(clip, tmp_path / "out.mp4")
    before, after = probe(clip), probe(tmp_path / "out.mp4")
    assert after["pts"] == pytest.approx(before["pts"])
    assert after["rotation"] == before["rotation"] == 90
    assert after["sar"] == Fraction(4, 3) and after["size"] == before["size"]


def test_a_rotated_clip_is_restored_upright(tmp_path):
    """The faces are found and pasted in the picture as it is shown."""
    clip = make_clip(tmp_path / "in.mp4", frames=3, width=96, height=64, rotation=90,
                     audio=False)
    source = open_source(clip, "video", 150)
    frame = next(source.frames(lambda packet: None))
    assert frame.pixels.shape[:2] == (96, 64)  # shown 64 wide, 96 high
    source.close()


def test_odd_sides_keep_their_size(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=4, width=95, height=71, audio=False,
                     pixel_format="yuv444p")
    restore(clip, tmp_path / "out.mp4", codec="h264")
    assert probe(tmp_path / "out.mp4")["size"] == (95, 71)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    with pytest.raises(ClipError, match="needs even sides"):
        restore(clip, tmp_path / "out2.mp4", codec="h264", pixel_format="yuv420p")


@pytest.mark.parametrize("codec,suffix,written,pixel_format", [
    ("auto", ".mp4", "h264", "yuv420p"), ("h265", ".mp4", "hevc", "yuv420p"),
    ("vp9", ".webm", "vp9", "yuv420p"), ("ffv1", ".mkv", "ffv1", "yuv420p"),
    ("auto", ".webm", "vp9", "yuv420p")])  # auto: h264, but WebM takes VP9 only
def test_other_codecs(tmp_path, codec, suffix, written, pixel_format):
    """The codec asked for (or the one auto means for the container) is the one written, in
    the input's pixel format where the codec takes it, every frame there."""
    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=False)
    restore(clip, tmp_path / f"out{suffix}", codec=codec)
    found = probe(tmp_path / f"out{suffix}")
    assert len(found["pts"]) == 4 and found["streams"] == [("video", written)]
    with av.open(str(tmp_path / f"out{suffix}")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pixel_format


def test_a_png_sequence_is_a_folder_of_frames(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5, audio=False)
    restore(clip, tmp_path / "out.mp4", codec="png")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        f"frame_{index:06d}.png" for index in range(1, 6)]


def test_a_container_that_cannot_hold_the_codec_is_refused_before_any_work(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3)
    source = open_source(clip, "video", 150)
    with pytest.raises(ClipError, match=r"\.webm container does not take h264"):
        open_sink(tmp_path / "out.webm", source, "h264")
    with pytest.raises(ClipError, match=r"with the audio \(aac\) copied from the input"):
        open_sink(tmp_path / "out.webm", source, "vp9")  # WebM takes VP9, not AAC
    source.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]


def test_bad_clips_are_named_plainly(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video at all")
    with pytest.raises(ClipError, match="cannot read"):
        open_source(tmp_path / "text.mp4", "video", 150)
    sound = av.open(str(tmp_path / "sound.m4a"), "w")
    stream = sound.add_stream("aac", rate=8000)
    stream.layout = "mono"
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                       layout="mono")
    chunk.sample_rate = 8000
    sound.mux(stream.encode(chunk))
    sound.mux(stream.encode(None))
    sound.close()
    with pytest.raises(ClipError, match="no video stream"):
        open_source(tmp_path / "sound.m4a", "video", 150)
    big = make_clip(tmp_path / "big.mp4", frames=2, width=640, height=480, audio=False)
    with pytest.raises(ClipError, match="over the limit"):
        open_source(big, "video", 0.2)


def test_a_truncated_clip_is_restored_as_far_as_it_goes(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=30, audio=False)
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[:len(data) * 2 // 3])
    frames, _ = restore(tmp_path / "cut.mkv", tmp_path / "out.mkv")
    assert 0 < frames < 30
    assert len(probe(tmp_path / "out.mkv")["pts"]) == frames


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_truncated_clip_fails_saying_where_it_stopped_and_keeps_what_was_restored(
        tmp_path, tiny_state_dict, capfd, suffix):
    """Containers that count no frames (Matroska, WebM) say how long they are: a clip cut
    short is restored as far as it goes, and the run fails (exit 1) saying where. (An MP4 cut
    short loses its index and cannot be read at all; an MPEG-TS says no length.)"""
    import torch
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    clip = make_clip(tmp_path / f"in{suffix}", frames=30, audio=False, codec=codec)
    data = clip.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:len(data) * 2 // 3])
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    arguments = ["--model", str(tmp_path / "tiny.pth"), "--mask", "box", "--landmarks",
                 str(tmp_path / "faces.json")]
    (tmp_path / "faces.json").write_text(json.dumps([face_in(96, 80)]))
    assert cli.main(["restore", str(clip), "-o", str(tmp_path / f"whole{suffix}"),
                     *arguments]) == 0  # a whole clip is no cut one
    code = cli.main(["restore", str(cut), "-o", str(tmp_path / f"out{suffix}"), *arguments])
    error = capfd.readouterr().err
    frames = len(probe(tmp_path / f"out{suffix}")["pts"])
    assert code == 1 and 0 < frames < 30
    # the true count decoded, and where it ends against what the file states
    assert re.search(rf"ends after frame {frames}, at [\d.]+ s of the 1.20 s it declares", error), \
        error


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4", ".mov"])
def test_a_whole_variable_frame_rate_clip_is_no_cut_one(tmp_path, tiny_state_dict, capfd, suffix):
    """12 frames at irregular times (0 to 640 ms, as phones and screen recorders write): an
    average rate times the duration says 16 (or 11); the run restores all 12 and exits 0."""
    import torch
    pts = [0, 40, 80, 200, 240, 280, 400, 440, 480, 560, 600, 640]
    codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
    clip = make_clip(tmp_path / f"in{suffix}", frames=len(pts), pts=pts, audio=False,
                     codec=codec)
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    (tmp_path / "faces.json").write_text(json.dumps([face_in(96, 80)]))
    code = cli.main(["restore", str(clip), "-o", str(tmp_path / f"out{suffix}"), "--model",
                     str(tmp_path / "tiny.pth"), "--mask", "box", "--landmarks",
                     str(tmp_path / "faces.json")])
    error = capfd.readouterr().err
    assert code == 0, error
    before, after = probe(clip), probe(tmp_path / f"out{suffix}")
    assert len(after["pts"]) == 12 and after["pts"] == pytest.approx(before["pts"])


def test_an_interrupted_clip_leaves_a_playable_partial_file(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20)
    source = open_source(clip, "video", 150)
    sink = open_sink(tmp_path / "out.mp4", source)

    def stop(done, faces):
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as raised:
        restore_clip(restorer(), source, sink, RestoreOptions(mask="box"),
                     iter([[face_in(96, 80)]] * 20), on_frame=stop)
    assert raised.value.partial == tmp_path / "out.partial.mp4"
    assert len(probe(tmp_path / "out.partial.mp4")["pts"]) == 6
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4", "out.partial.mp4"]


def test_a_failure_part_way_leaves_nothing(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10)
    source = open_source(clip, "video", 150)
    sink = open_sink(tmp_path / "out.mp4", source)

    def fail(done, faces):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        restore_clip(restorer(), source, sink, RestoreOptions(mask="box"), None, on_frame=fail)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]


def test_an_encoder_this_build_lacks_is_named(tmp_path, monkeypatch):
    from gpen_ext import video
    from gpen_ext.encoders import Encoder
    monkeypatch.setitem(video.ENCODERS, "av1", Encoder("libnosuchcodec", "yuv420p", 63))
    clip = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    source = open_source(clip, "video", 150)
    with pytest.raises(ClipError, match="libnosuchcodec"):
        open_sink(tmp_path / "out.mkv", source, "av1")
    source.close()


def test_memory_holds_a_few_frames_however_long_the_clip(tmp_path, monkeypatch):
    """Frames alive at once stay bounded: decoded ahead, look-ahead, a batch."""
    import itertools
    import weakref
    clip = make_clip(tmp_path / "in.mp4", frames=60, audio=False)
    alive, peak = set(), [0]
    source = open_source(clip, "video", 150)
    decode = source._frame

    def tracked(frame):
        made = decode(frame)
        alive.add(id(made.pixels))
        weakref.finalize(made.pixels, alive.discard, id(made.pixels))
        peak[0] = max(peak[0], len(alive))
        return made

    monkeypatch.setattr(source, "_frame", tracked)
    sink = open_sink(tmp_path / "out.mp4", source)
    options = RestoreOptions(mask="box", batch_size=4)
    restore_clip(restorer(), source, sink, options, itertools.repeat([face_in(96, 80)]))
    from gpen_ext.video import DECODED_AHEAD
    assert 0 < peak[0] <= DECODED_AHEAD + options.temporal_smoothing + options.batch_size + 4 < 60


def test_the_command_line_restores_a_clip_with_landmarks_per_frame(tmp_path, tiny_state_dict,
                                                                   face_weights):
    import torch
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    landmarks = tmp_path / "faces.json"
    landmarks.write_text(json.dumps({"frames": [[face_in(96, 80)]] * 6}))
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    code = cli.main(["restore", str(clip), "-o", str(tmp_path / "out.mp4"), "--model",
                     str(tmp_path / "tiny.pth"), "--models-dir", str(face_weights),
                     "--landmarks", str(landmarks), "--mask", "box"])
    assert code == 0
    assert len(probe(tmp_path / "out.mp4")["pts"]) == 6
    landmarks.write_text(json.dumps({"frames": [[face_in(96, 80)]] * 3}))
    code = cli.main(["restore", str(clip), "-o", str(tmp_path / "again.mp4"), "--model",
                     str(tmp_path / "tiny.pth"), "--models-dir", str(face_weights),
                     "--landmarks", str(landmarks)])
    assert code == cli.EXIT_USAGE and not (tmp_path / "again.mp4").exists()
    for wrong in (["-o", str(tmp_path / "out.png")], ["-o", str(tmp_path / "x.mp4"), "--aligned"]):
        assert cli.main(["restore", str(clip), *wrong, "--model", str(tmp_path / "tiny.pth"),
                         "--models-dir", str(face_weights)]) == cli.EXIT_USAGE


def test_sigterm_leaves_a_partial_clip_and_no_temporary_file(tmp_path, tiny_state_dict,
                                                             face_weights):
    import time
    import torch
    clip = make_clip(tmp_path / "in.mp4", frames=400, width=64, height=64)
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    (tmp_path / "faces.json").write_text(json.dumps([face_in(64, 64)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "gpen_ext", "restore", str(clip), "-o", str(tmp_path / "out.mp4"),
         "--model", str(tmp_path / "tiny.pth"), "--models-dir", str(face_weights), "--mask",
         "box", "--landmarks", str(tmp_path / "faces.json")], cwd=ROOT,
        stderr=subprocess.PIPE, text=True)
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(iter(
        lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a few frames written, as the progress bar says
        done = re.findall(r"(\d+)/400", "".join(printed))
        if done and int(done[-1]) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    reader.join(timeout=10)
    errors = "".join(printed)
    assert process.returncode == 143, errors
    assert "stopped at frame" in errors
    names = sorted(path.name for path in tmp_path.iterdir())
    assert "out.partial.mp4" in names and "out.mp4" not in names
    assert not [name for name in names if ".part." in name]
    assert len(probe(tmp_path / "out.partial.mp4")["pts"]) > 0


def test_animations_as_clips_keep_their_timing_and_frames_folders_are_clips(tmp_path):
    from PIL import Image
    durations = [100, 200, 100, 300]
    frames = [Image.fromarray(np.full((64, 80, 3), 40 + index * 30, np.uint8))
              for index in range(4)]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:],
                   duration=durations, loop=0)
    landmarks = tmp_path / "faces.json"
    landmarks.write_text(json.dumps([face_in(80, 64)]))
    common = ["--model", "GPEN-BFR-256", "--no-download", "--landmarks", str(landmarks)]

    def run(*arguments):
        return cli.main(["restore", *arguments, *common])

    assert run(str(tmp_path / "in.gif"), "-o", str(tmp_path / "still.png")) == \
        cli.EXIT_USAGE  # an animation is not written as a still
    (tmp_path / "frames").mkdir()
    for index, frame in enumerate(frames):
        frame.save(tmp_path / "frames" / f"f{index}.png")
    source = open_source(tmp_path / "in.gif", "animation", 150)
    sink = open_sink(tmp_path / "out.gif", source)
    restore_clip(restorer(), source, sink, RestoreOptions(mask="box"),
                 iter([[face_in(80, 64)]] * 4))
    with Image.open(tmp_path / "out.gif") as out:
        timing = []
        for index in range(out.n_frames):
            out.seek(index)
            timing.append(out.info["duration"])
    assert timing == durations
    source = open_source(tmp_path / "frames", "frames", 150, rate=10)
    sink = open_sink(tmp_path / "out.mp4", source)
    restore_clip(restorer(), source, sink, RestoreOptions(mask="box"),
                 iter([[face_in(80, 64)]] * 4))
    assert probe(tmp_path / "out.mp4")["pts"] == pytest.approx([0, 0.1, 0.2, 0.3])
    source = open_source(tmp_path / "frames", "frames", 150)
    sink = open_sink(tmp_path / "restored", source)
    restore_clip(restorer(), source, sink, RestoreOptions(mask="box"),
                 iter([[face_in(80, 64)]] * 4))
    assert sorted(path.name for path in (tmp_path / "restored").iterdir()) == [
        "f0.png", "f1.png", "f2.png", "f3.png"]


def test_faces_in_a_clip_are_found_by_the_detector_and_steadied(tmp_path, face_weights):
    clip = make_clip(tmp_path / "in.mp4", frames=8, width=160, height=128, audio=False)
    source = open_source(clip, "video", 150)
    sink = open_sink(tmp_path / "out.mp4", source)
    network = Darken()
    restorer = FaceRestorer(network, FaceModels(face_weights, download=False))
    options = RestoreOptions(mask="box", detection_model="retinaface_mobile0.25",
                             detection_threshold=0.5, max_faces=2)
    frames, faces = restore_clip(restorer, source, sink, options)
    assert frames == 8 and faces.total() == 16 and sum(network.batches) == 16


def test_a_sequence_with_a_frame_of_another_size_is_refused_as_a_video(tmp_path, capsys):
    """Written as a video, every frame would be stretched to the first one's size: refused
    before any work, naming the frame; written as a folder, each frame keeps its own size."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, (width, height) in enumerate([(80, 64), (80, 64), (96, 64), (80, 64)]):
        cv2.imwrite(str(frames / f"f{index}.png"), np.full((height, width, 3), 90, np.uint8))
    common = ["--sequence", "--model", "GPEN-BFR-256", "--no-download", "--landmarks"]
    landmarks = tmp_path / "faces.json"
    landmarks.write_text(json.dumps({"frames": [[face_in(80, 64)]] * 4}))
    code = cli.main(["restore", str(frames), "-o", str(tmp_path / "out.mp4"), *common,
                     str(landmarks)])
    assert code == cli.EXIT_USAGE
    assert "frame f2.png is 96x64, the first frame 80x64" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faces.json", "frames"]
    source = open_source(frames, "frames", 150)
    restore_clip(restorer(), source, open_sink(tmp_path / "restored", source),
                 RestoreOptions(mask="box"), iter([[face_in(80, 64)]] * 4))
    sizes = [cv2.imread(str(tmp_path / "restored" / f"f{index}.png")).shape[:2]
             for index in range(4)]
    assert sizes == [(64, 80), (64, 80), (64, 96), (64, 80)]


def test_a_10_bit_clip_keeps_its_depth_in_a_codec_players_take(tmp_path, caplog):
    """auto: H.265 Main 10 (tagged hvc1 in MP4, as players and browsers want), not 10-bit
    H.264; where the encoder here gives no more than 8 bits, that is said."""
    clip = make_clip(tmp_path / "in.mkv", frames=4, audio=False, codec="ffv1",
                     pixel_format="yuv420p10le")
    restore(clip, tmp_path / "out.mp4", codec="auto")
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt, stream.codec_tag) == (
            "hevc", "yuv420p10le", "hvc1")
    with caplog.at_level(logging.WARNING):
        restore(clip, tmp_path / "out.webm", codec="auto")
    with av.open(str(tmp_path / "out.webm")) as container:
        written = container.streams.video[0].codec_context.pix_fmt
    assert written.endswith("10le") or "vp9 is written at 8" in caplog.text


def test_containers_that_lose_a_clips_timing_are_read_but_never_written(tmp_path, capsys):
    """AVI counts frames at one rate: a clip written there does not play as it went in. Named
    as the output, it is refused before any work; met in a folder, the clip goes to .mkv."""
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    with pytest.raises(UsageError, match=r"as \.avi \(its frames' timing would not"):
        plan_tasks(RestoreJob.from_flags([clip], tmp_path / "out.avi"))
    assert cli.main(["restore", str(clip), "-o", str(tmp_path / "out.avi"), "--model",
                     "GPEN-BFR-256", "--no-download"]) == cli.EXIT_USAGE
    assert "cannot write a video as .avi" in capsys.readouterr().err  # not the missing model
    archive = tmp_path / "archive"
    archive.mkdir()
    make_clip(archive / "old.avi", frames=3, audio=False, codec="mpeg4")
    tasks = plan_tasks(RestoreJob.from_flags([archive], tmp_path / "restored"))
    assert [task.target.name for task in tasks] == ["old.mkv"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["archive", "in.mp4"]
