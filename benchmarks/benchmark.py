"""Speed and memory: the whole restoration with default options, then the network alone.

    python benchmarks/benchmark.py                      # pipeline, then every network size
    python benchmarks/benchmark.py --no-networks        # the pipeline part only
    python benchmarks/benchmark.py --no-pipeline --sizes 512 --batches 1

Pipeline: GPEN-BFR-512 with every option at its default (parsing mask, batch 4), on the
29-face Solvay photo and on a one-face image, each in a fresh process set up as the command
line sets it up (gpen_ext/allocator.py). Time end to end and stage by stage (detect, align,
network, parse, paste), peak resident memory of the whole process. In the same run, the
reference arithmetic for the same faces: the straightforward network and facexlib's ParseNet,
one face at a time. The faces are the supplied landmarks (the weights here are random, so a
detector would find nothing); the detector still runs on each image, as it would without
landmarks, and its time is one of the stages.

Networks: the fast path against the straightforward network, per size and batch, fp32.

Weights are random, in the released shapes (speed does not depend on the values). Times are
the best of `--repeats` runs after a first one (a shared machine's slow moments only add
time); memory is of the first.
"""

import argparse
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
sys.path.insert(0, str(ROOT))

from gpen_ext.allocator import keep_freed_memory  # noqa: E402
from gpen_ext.arch.gpen.fast import FastGPEN  # noqa: E402
from gpen_ext.inference import NetworkRunner  # noqa: E402
from gpen_ext.registry import RELEASE_CONFIGS  # noqa: E402

RELEASES = RELEASE_CONFIGS
SHARED = ROOT.parent / "shared"
SOLVAY = SHARED / "faces" / "Solvay_conference_1927.png"
STAGES = ("detect", "align", "network", "parse", "paste")


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
    command = [sys.executable, __file__, *map(str, arguments)] + (["--keep-freed"] if keep else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the pipeline

def images():
    """name -> (RGB(A) image, landmarks): the 29-face photo and a one-face image."""
    import cv2
    from skimage import data
    rgba = cv2.cvtColor(cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    photo = json.loads((SOLVAY.parent / "solvay_landmarks.json").read_text())["landmarks"]
    example = json.loads((SHARED / "reference" / "alignment.json").read_text())["example"]
    return {"photo": (rgba, np.array(photo, float)),
            "one-face": (data.astronaut(), np.array([example["landmarks"]], float))}


def face_weights(folder):
    """facexlib's detector and parser with random weights, where FaceModels looks for them."""
    from gpen_ext.face_models import build_detector_network, build_parser_network
    torch.manual_seed(0)
    torch.save(build_detector_network("retinaface_resnet50").state_dict(),
               folder / "detection_Resnet50_Final.pth")
    torch.save(build_parser_network().state_dict(), folder / "parsing_parsenet.pth")


class StageClock:
    """Seconds spent in each pipeline stage, by wrapping the functions that do them."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def wrap(self, owner, name, stage):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
        setattr(owner, name, timed)

    def attach(self):
        from gpen_ext import face_models, pipeline
        self.wrap(face_models.FaceDetector, "detect", "detect")
        self.wrap(pipeline, "align_face", "align")
        self.wrap(NetworkRunner, "__call__", "network")
        self.wrap(face_models.FaceParser, "face_masks", "parse")
        self.wrap(pipeline, "feathered_face_mask", "parse")
        self.wrap(pipeline, "paste_face", "paste")


def pipeline_run(image_name, mask, repeats):
    """Our pipeline, default options but `mask`: time and stages of the best run, peak."""
    from gpen_ext.face_models import FaceModels
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer

    image, landmarks = images()[image_name]
    clock = StageClock()
    clock.attach()
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        restorer = FaceRestorer(FastGPEN(release_network(512)), FaceModels(folder, False))
        options = RestoreOptions(mask=mask, keep_crops=False)
        faces = []

        def run():
            restorer.face_models.detector(options.detection_model).detect(
                image[..., :3], options.detection_threshold, options.detection_max_side)
            faces[:] = restorer.restore(image, options, landmarks).faces

        run()  # the first run: loads, Winograd weights
        runs = []
        for _ in range(repeats):
            clock.seconds = dict.fromkeys(STAGES, 0.0)
            start = time.perf_counter()
            run()
            runs.append((time.perf_counter() - start, dict(clock.seconds)))
    seconds, stages = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "stages": stages, "faces": len(faces),
            "peak_mb": peak_resident_bytes() / 2 ** 20}


def reference_run(image_name, repeats):
    """The reference arithmetic: the straightforward network and facexlib's ParseNet, one face
    at a time, on the same aligned faces."""
    from gpen_ext.alignment import align_face
    from gpen_ext.face_models import build_parser_network

    image, landmarks = images()[image_name]
    network = release_network(512)
    torch.manual_seed(0)
    parsenet = build_parser_network().eval()
    crops = [align_face(image[..., :3], points, 512)[0] for points in landmarks]
    inputs = [torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1 for crop in crops]
    stages = {}

    def run():
        stages.update(network=0.0, parse=0.0)
        with torch.inference_mode():
            for x in inputs:
                start = time.perf_counter()
                restored = network(x).clamp(-1, 1)
                middle = time.perf_counter()
                parsenet(restored)[0].argmax(dim=1)
                stages["network"] += middle - start
                stages["parse"] += time.perf_counter() - middle

    run()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runs.append((time.perf_counter() - start, dict(stages)))
    seconds, stages = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "stages": stages, "faces": len(inputs),
            "peak_mb": peak_resident_bytes() / 2 ** 20}


def pipeline_table(repeats):
    print(f"\nThe pipeline, default options (GPEN-BFR-512, parsing mask, batch 4), cpu fp32, "
          f"allocator as the command line sets it")
    print(f"{'':>34} {'faces':>5} {'total s':>8}" + "".join(f"{s:>9}" for s in STAGES)
          + f" {'peak MB':>8}")

    def row(label, result):
        stages = "".join(f"{result['stages'][s]:>9.2f}" if s in result["stages"] else f"{'':>9}"
                         for s in STAGES)
        print(f"{label:>34} {result['faces']:>5} {result['seconds']:>8.2f}{stages} "
              f"{result['peak_mb']:>8.0f}", flush=True)

    photo = in_subprocess("--pipeline", "photo", "parsing", repeats, keep=True)
    row("Solvay photo", photo)
    one = in_subprocess("--pipeline", "one-face", "parsing", repeats, keep=True)
    row("one-face image", one)
    reference = in_subprocess("--reference", "photo", repeats, keep=True)
    row("reference arithmetic, same faces", reference)
    plain = in_subprocess("--reference", "photo", repeats, keep=False)
    row("  the same under glibc's malloc", plain)
    box = in_subprocess("--pipeline", "photo", "box", repeats, keep=True)
    row("Solvay photo, box mask", box)
    per_face = lambda result: result["seconds"] / result["faces"]  # noqa: E731
    for label, base in (("the reference arithmetic", reference),
                        ("the same in a plain Python process", plain)):
        print(f"photo: {base['seconds'] / photo['seconds']:.2f}x faster than {label} "
              f"({per_face(photo):.2f} against {per_face(base):.2f} s a face; parsing "
              f"{base['stages']['parse'] / photo['stages']['parse']:.2f}x, network "
              f"{base['stages']['network'] / photo['stages']['network']:.2f}x)")
    print(f"peak memory: photo {photo['peak_mb']:.0f} MB, {photo['peak_mb'] / one['peak_mb']:.2f}"
          f" of the one-face image's; the box mask saves {photo['seconds'] - box['seconds']:.1f} s"
          f" on the photo ({box['seconds'] / photo['seconds']:.2f} of the time)")


# ---------------------------------------------------------------- the network alone

def measure(size, batch, path, device, precision="fp32", repeats=2):
    """Seconds per face (best of `repeats` calls after the first) and peak memory (MB above
    the loaded model, first call)."""
    network = release_network(size)
    if path == "fast":
        network = FastGPEN(network)
    runner = NetworkRunner(network, device, precision)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.inference_mode():  # the whole batch in one call, as the network takes it
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            runner.run(x)
            peak = torch.cuda.max_memory_allocated() - base
        else:
            with PeakSampler() as sampler:
                runner.run(x)
            peak = sampler.peak - sampler.base

    def call():
        with torch.inference_mode():
            runner.run(x)
        if device == "cuda":
            torch.cuda.synchronize()

    return {"seconds_per_face": best_seconds(call, repeats) / batch, "peak_mb": peak / 2 ** 20}


def precision_psnr(size, device):
    """PSNR (dB) of reduced-precision output against fp32, as images in [0, 1]."""
    network = FastGPEN(release_network(size))
    x = torch.rand(2, 3, size, size) * 2 - 1
    reference = NetworkRunner(network, device, "fp32")(x)
    choices = ["bf16"] + (["fp16"] if device == "cuda" else [])
    results = {}
    for precision in choices:
        reduced = NetworkRunner(network, device, precision)(x)
        a, b = ((reference + 1) / 2).clamp(0, 1), ((reduced + 1) / 2).clamp(0, 1)
        mse = torch.mean((a - b) ** 2).item()
        results[precision] = float("inf") if mse == 0 else 10 * np.log10(1 / mse)
    return results


def network_table(args, keep):
    allocator = "freed memory kept for reuse" if keep else "glibc's default malloc"
    print(f"\nThe network alone: {args.device}, fp32, {allocator}" if args.device == "cpu"
          else f"\nThe network alone: {args.device}, fp32")
    print(f"{'size':>5} {'batch':>5} {'fast s/face':>12} {'straight s/face':>16} {'speed-up':>9} "
          f"{'fast peak MB':>13} {'straight peak MB':>17} {'memory':>7}")
    for size in args.sizes:
        for batch in args.batches:
            fast = in_subprocess("--measure", size, batch, "fast", args.device, "fp32",
                                 args.repeats, keep=keep)
            plain = in_subprocess("--measure", size, batch, "straight", args.device, "fp32",
                                  args.repeats, keep=keep)
            print(f"{size:>5} {batch:>5} {fast['seconds_per_face']:>12.3f} "
                  f"{plain['seconds_per_face']:>16.3f} "
                  f"{plain['seconds_per_face'] / fast['seconds_per_face']:>8.2f}x "
                  f"{fast['peak_mb']:>13.0f} {plain['peak_mb']:>17.0f} "
                  f"{fast['peak_mb'] / max(plain['peak_mb'], 1):>7.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(RELEASES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--no-networks", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs per measurement, the best kept (default 2)")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--reference", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--keep-freed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.keep_freed:
        keep_freed_memory()
    if args.measure:
        size, batch, path, device, precision, repeats = args.measure
        print(json.dumps(measure(int(size), int(batch), path, device, precision, int(repeats))))
        return
    if args.pipeline:
        image, mask, repeats = args.pipeline
        print(json.dumps(pipeline_run(image, mask, int(repeats))))
        return
    if args.reference:
        image, repeats = args.reference
        print(json.dumps(reference_run(image, int(repeats))))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random weights in the "
          f"released shapes; time: best of {args.repeats} runs after the first, memory of the "
          f"first")
    if not args.no_pipeline and args.device == "cpu" and SOLVAY.is_file():
        pipeline_table(args.repeats)
    if args.no_networks:
        return
    for keep in ([False, True] if args.device == "cpu" else [False]):
        network_table(args, keep)
    print()
    size = 512 if 512 in args.sizes else args.sizes[0]
    for precision, psnr in precision_psnr(size, args.device).items():
        timing = in_subprocess("--measure", size, 1, "fast", args.device, precision,
                               args.repeats, keep=True)
        print(f"fast path in {precision} at {size}: {timing['seconds_per_face']:.3f} s/face, "
              f"PSNR {psnr:.1f} dB against fp32")


if __name__ == "__main__":
    main()
