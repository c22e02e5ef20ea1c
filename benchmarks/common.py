"""What the benchmarks share: paths, stand-in networks with the releases' shapes, memory and
time measures, the sample images, and one run of the pipeline timed stage by stage from its own
progress events. Imported by benchmark.py, contention.py, steadiness.py and page_latency.py;
it imports none of them (a measurement in a fresh process runs benchmark.py, `in_subprocess`).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = Path(__file__).with_name("benchmark.py")
sys.path.insert(0, str(ROOT))

from gpen_ext.arch.gpen.fast import FastGPEN  # noqa: E402
from gpen_ext.registry import RELEASE_CONFIGS  # noqa: E402

RELEASES = RELEASE_CONFIGS
SHARED = ROOT.parent / "shared"
SOLVAY = SHARED / "faces" / "Solvay_conference_1927.png"
STAGES = ("detect", "network", "parse", "paste")  # the network's column includes aligning


def release_network(size, seed=0):
    torch.manual_seed(seed)
    network = RELEASES[size].build().eval().requires_grad_(False)
    with torch.no_grad():
        for name, tensor in network.named_parameters():
            if name.endswith("noise.weight"):
                tensor.fill_(0.1)  # trained checkpoints inject their features; zero would not
    return network


def resident_bytes():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes():
    """The process's high-water mark of resident memory (Linux)."""
    with open("/proc/self/status") as stream:
        line = next(line for line in stream if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


class PeakSampler:
    """Highest resident set size seen while the block runs (Linux)."""

    def __enter__(self):
        self.base = self.peak = resident_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, resident_bytes())


def best_seconds(call, repeats):
    """The shortest of `repeats` timed runs of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def in_subprocess(*arguments, keep=False):
    """The JSON a fresh `benchmark.py` process prints last for `arguments` (its hidden
    measurement flags, e.g. --contended), set up as the command line (--keep-freed)."""
    command = [sys.executable, str(BENCHMARK), *map(str, arguments)] + \
        (["--keep-freed"] if keep else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the pipeline

PORTRAIT_FACE_PX = 700  # the portrait's face box: a face auto sends to a larger release


def images():
    """name -> (RGB(A) image, landmarks): the 29-face photo, a one-face image, and the same
    enlarged into a portrait whose face box is PORTRAIT_FACE_PX wide."""
    import cv2
    from skimage import data

    from gpen_ext.landmarks import face_from_landmarks
    rgba = cv2.cvtColor(cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    photo = json.loads((SOLVAY.parent / "solvay_landmarks.json").read_text())["landmarks"]
    example = json.loads((SHARED / "reference" / "alignment.json").read_text())["example"]
    face = np.array([example["landmarks"]], float)
    box = face_from_landmarks(face[0], 512).box
    scale = PORTRAIT_FACE_PX / (box[2] - box[0])
    portrait = cv2.resize(data.astronaut(), None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_CUBIC)
    return {"photo": (rgba, np.array(photo, float)), "one-face": (data.astronaut(), face),
            "portrait": (portrait, face * scale)}


def face_weights(folder):
    """facexlib's detector and parser with random weights, where FaceModels looks for them."""
    from gpen_ext.face_models import build_detector_network, build_parser_network
    from gpen_ext.faces import PARSERS
    torch.manual_seed(0)
    torch.save(build_detector_network("retinaface_resnet50").state_dict(),
               folder / "detection_Resnet50_Final.pth")
    for name, (filename, _) in PARSERS.items():
        torch.save(build_parser_network(name).state_dict(), folder / filename)


class StageClock:
    """Seconds in each stage of a restoration, from the pipeline's own progress events (a
    progress callback): the time up to a face passing a stage goes to that stage, aligning
    counted with the network."""
    ENDS = {"faces found": None, "network": "network", "masks": "parse", "pasted": "paste"}

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.last = time.perf_counter()

    def start(self):
        self.seconds, self.last = dict.fromkeys(STAGES, 0.0), time.perf_counter()

    def __call__(self, progress):
        if progress.stage not in self.ENDS:
            return  # finding faces, work under way
        now = time.perf_counter()
        stage = self.ENDS[progress.stage]
        if stage is not None:
            self.seconds[stage] += now - self.last
        self.last = now


def pipeline_run(image_name, model, mask, parser, precision, repeats):
    """Our pipeline, default options but `model` (a release's size, or auto), `mask`,
    `parser` and `precision`: time and stages of the best run, peak, faces by release."""
    from gpen_ext.face_models import FaceModels
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer
    from gpen_ext.releases import RELEASE_SIZES, ReleaseNetworks

    image, landmarks = images()[image_name]
    clock = StageClock()
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        network = ReleaseNetworks(lambda size: FastGPEN(release_network(size)), RELEASE_SIZES,
                                  "cpu", precision) if model == "auto" else \
            FastGPEN(release_network(int(model)))
        restorer = FaceRestorer(network, FaceModels(folder, False), precision=precision)
        options = RestoreOptions(mask=mask, parser=parser, keep_crops=False)
        faces = []

        def run():
            started = time.perf_counter()
            restorer.face_models.detector(options.detection_model).detect(
                image[..., :3], options.detection_threshold, options.detection_max_side)
            clock.start()
            clock.seconds["detect"] = time.perf_counter() - started
            faces[:] = restorer.restore(image, options, landmarks, progress=clock).faces

        run()  # the first run: loads, Winograd weights
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            runs.append((time.perf_counter() - start, dict(clock.seconds)))
    seconds, stages = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "stages": stages, "faces": len(faces),
            "peak_mb": peak_resident_bytes() / 2 ** 20, "precision": restorer.precision,
            "releases": {str(size): sum(face.release == size for face in faces)
                         for size in sorted({face.release for face in faces} - {None})}}


