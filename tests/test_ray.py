"""Whole folders on a local Ray (2 CPUs, 2 workers): the plain command line's outputs, a
manifest, a run resumed, and a worker killed part way, losing and repeating nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ROOT

pytestmark = pytest.mark.slow  # the fast lane leaves these out (README)

pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tiny_state_dict, astronaut, astronaut_landmarks, face_weights):
    """Eight photos of one face (each a little different), a file that is no image and an
    animation; a small model and the faces' landmarks."""
    folder = tmp_path_factory.mktemp("archive")
    photos = folder / "photos"
    (photos / "album").mkdir(parents=True)
    for index in range(8):
        shade = np.clip(astronaut.astype(int) + 6 * index, 0, 255).astype(np.uint8)
        where = photos / ("album" if index % 2 else ".") / f"photo{index}.png"
        cv2.imwrite(str(where), shade[..., ::-1])
    (photos / "broken.jpg").write_bytes(b"not a photo")
    frames = [Image.new("RGB", (32, 32), (index * 60, 0, 0)) for index in range(3)]
    frames[0].save(photos / "moving.gif", save_all=True, append_images=frames[1:])
    torch.save(tiny_state_dict, folder / "tiny.pth")
    (folder / "faces.json").write_text(json.dumps([astronaut_landmarks.tolist()]))
    for weights in face_weights.iterdir():
        (folder / weights.name).write_bytes(weights.read_bytes())
    return folder


def command(archive, output, *extra):
    return [sys.executable, "-m", "gpen_ext", "restore", str(archive / "photos"), "-o",
            str(output), "--model", str(archive / "tiny.pth"), "--models-dir", str(archive),
            "--landmarks", str(archive / "faces.json"), "--no-download", *extra]


def run(archive, output, *extra):
    return subprocess.run(command(archive, output, *extra), cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def manifest(output):
    return [json.loads(line) for line in (output / "gpen-manifest.jsonl").read_text().splitlines()]


def images(output):
    return {path.relative_to(output): cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            for path in sorted(output.rglob("*.png"))}


ON_RAY = ("--ray", "--ray-workers", "2", "--ray-threads-per-worker", "1")


@pytest.fixture(scope="module")
def plain(archive, tmp_path_factory):
    output = tmp_path_factory.mktemp("plain") / "out"
    result = run(archive, output)
    assert result.returncode == 1, result.stderr  # two files fail, the rest restored
    return output


def test_a_folder_on_ray_is_restored_as_the_command_line_restores_it(archive, plain, tmp_path,
                                                                     capfd):
    """Called from Python (restore_files, the command line's own), with this process as
    Ray's driver."""
    import ray
    from gpen_ext import restore_files
    try:
        code = restore_files([archive / "photos"], tmp_path / "out", model=archive / "tiny.pth",
                             models_dir=archive, landmarks=archive / "faces.json",
                             no_download=True, ray="local", ray_workers=2,
                             ray_threads_per_worker=1)
    finally:
        ray.shutdown()
    stderr = capfd.readouterr().err
    assert code == 1, stderr
    ours, theirs = images(tmp_path / "out"), images(plain)
    assert ours.keys() == theirs.keys() and len(ours) == 8
    for name in ours:
        assert np.abs(ours[name].astype(int) - theirs[name]).max() <= 1, name
    rows = manifest(tmp_path / "out")
    assert sorted(row["input"] for row in rows) == sorted(
        str(path) for path in (archive / "photos").rglob("*") if path.is_file())
    failed = {os.path.basename(row["input"]): row["error"] for row in rows if row["error"]}
    assert set(failed) == {"broken.jpg", "moving.gif"} and "frames" in failed["moving.gif"]
    assert all(row["faces"] == 1 and row["seconds"] > 0 for row in rows if not row["error"])
    assert "broken.jpg: " in stderr and "2 failed:" in stderr
    assert "8 file(s) restored on Ray, 8 face(s)" in stderr  # the failures not among them


def test_a_stopped_run_resumes_with_only_what_is_missing(archive, tmp_path):
    output = tmp_path / "out"
    process = subprocess.Popen(command(archive, output, *ON_RAY), cwd=ROOT, text=True,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (output / "gpen-manifest.jsonl").is_file() and len(manifest(output)) >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    pressed = time.monotonic()
    process.communicate(timeout=120)
    assert time.monotonic() - pressed < 15  # within seconds (2.6 s measured)
    assert left_behind(process.pid) == []
    first = manifest(output)
    before = {row["input"] for row in first if not row["error"]}
    assert before, "the first run should have finished a few files"
    result = run(archive, output, *ON_RAY)
    assert f"{len(before)} file(s) done in an earlier run" in result.stderr
    again = manifest(output)[len(first):]
    assert not {row["input"] for row in again} & before  # nothing done twice
    done = [row["input"] for row in first + again if not row["error"]]
    assert len(done) == len(set(done)) == 8  # every photo exactly once


def left_behind(session, seconds=10):
    """The processes of a run's session still alive `seconds` after it ended (Ray's own
    shut down with the run), as pgrep lists them."""
    deadline = time.monotonic() + seconds
    while True:
        found = subprocess.run(["pgrep", "-a", "-s", str(session)], capture_output=True,
                               text=True).stdout.splitlines()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def run_killing_a_worker(arguments, name, marker):
    """Run `arguments` on Ray, killing the worker whose first attempt at the file `name` is
    part way (tests/ray_stall); (the killed worker's pid, the run's stderr)."""
    stall = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "ray_stall"), str(ROOT)]),
             "GPEN_TEST_STALL_ON": name, "GPEN_TEST_STALL_MARKER": str(marker)}
    process = subprocess.Popen(arguments, cwd=ROOT, text=True, stderr=subprocess.PIPE,
                               env={**os.environ, **stall})
    deadline, killed = time.monotonic() + 300, None
    while time.monotonic() < deadline and process.poll() is None and killed is None:
        if marker.is_file() and marker.read_text():
            killed = int(marker.read_text())
            os.kill(killed, signal.SIGKILL)  # the worker dies with the file half done
        time.sleep(0.1)
    _, errors = process.communicate(timeout=600)
    assert killed, errors
    return killed, errors


def test_a_killed_worker_loses_nothing_and_writes_nothing_twice(archive, plain, tmp_path):
    """A worker dies in the middle of a file (tests/ray_stall holds its first attempt at
    photo3.png until it is killed): the file is restored once, by another, and nothing is
    left of the attempt."""
    output = tmp_path / "out"
    killed, errors = run_killing_a_worker(command(archive, output, *ON_RAY), "photo3.png",
                                          tmp_path / "stalled.pid")
    rows = manifest(output)
    inputs = [row["input"] for row in rows]
    assert len(inputs) == len(set(inputs)) == 10, errors  # every file once: none lost
    assert sum(1 for row in rows if not row["error"]) == 8
    assert any(row["worker"] != killed for row in rows if row.get("worker"))
    assert next(row for row in rows if row["input"].endswith("photo3.png"))["worker"] != killed
    ours, theirs = images(output), images(plain)  # as an undisturbed run's
    assert ours.keys() == theirs.keys()
    assert all(np.abs(ours[name].astype(int) - theirs[name]).max() <= 1 for name in ours)
    assert sorted(path.name for path in output.rglob("*") if path.name.startswith(".")) == []


def test_a_clip_on_ray_is_restored_as_the_command_line_restores_it(archive, tmp_path,
                                                                   astronaut):
    """A clip is one task, streamed into its target by its worker: the same frames, audio
    and pixels as without Ray, also when a worker was killed half way through it, and
    nothing hidden left beside it."""
    from helpers import clip_frames, write_clip
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = [np.clip(astronaut.astype(int) + 4 * index, 0, 255).astype(np.uint8)
              for index in range(6)]
    write_clip(clips / "take.mp4", frames, rate=12, audio_seconds=0.5)
    outputs = {}
    for name, extra in (("plain", ()), ("ray", ON_RAY), ("killed", ON_RAY)):
        arguments = clip_command(archive, clips, tmp_path / name, *extra)
        if name == "killed":  # a worker killed with the clip half written, then retried
            run_killing_a_worker(arguments, "take.mp4", tmp_path / "stalled.pid")
        else:
            result = subprocess.run(arguments, cwd=ROOT, capture_output=True, text=True,
                                    timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert result.returncode == 0, result.stderr
        outputs[name] = clip_frames(tmp_path / name / "take.mp4")
    plain, plain_audio = outputs.pop("plain")
    for ray, ray_audio in outputs.values():
        assert len(ray) == len(plain) == 6 and ray_audio == plain_audio > 0
        assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(ray, plain))
    assert not np.array_equal(outputs["ray"][0][0], frames[0])  # restored, not copied
    for name in outputs:  # nothing hidden left beside it, not even by the killed attempt
        assert [path.name for path in (tmp_path / name).iterdir()
                if path.name.startswith(".")] == []


def clip_command(archive, clips, output, *extra):
    return [sys.executable, "-m", "gpen_ext", "restore", str(clips), "-o", str(output),
            "--model", str(archive / "tiny.pth"), "--models-dir", str(archive), "--landmarks",
            str(archive / "faces.json"), "--no-download", "--mask", "box", *extra]


def test_a_cluster_that_cannot_be_reached_is_named_within_seconds(archive, tmp_path):
    """A typo in --ray's address: Ray itself would retry for ever; the run says which address
    answers nothing and exits 2 quickly, writing nothing and leaving no process behind."""
    import socket
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    output = tmp_path / "out"
    started = time.monotonic()
    process = subprocess.Popen(command(archive, output, "--ray", f"127.0.0.1:{port}"), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)},
                               start_new_session=True)
    try:
        _, error = process.communicate(timeout=120)
    finally:
        os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
    seconds = time.monotonic() - started
    assert process.returncode == 2, error
    assert f"127.0.0.1:{port}" in error and "Traceback" not in error
    assert seconds < 30 and not output.exists()
    assert left_behind(process.pid) == []
