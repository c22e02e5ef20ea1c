"""Speed and memory of the fast path against the straightforward network, and end to end.

    python benchmarks/benchmark.py                 # all sizes, batch 1 and 4, then the photo
    python benchmarks/benchmark.py --sizes 512 --batches 1 --no-photo

Networks have random weights in the released shapes (speed does not depend on the values).
Each measurement runs in a fresh process: peak memory on the first call (on the CPU the
resident set sampled during the pass minus what was resident before it; on CUDA the
allocator's peak above the loaded model), time as the best of the next `--repeats` calls
(a shared machine's slow moments only ever add time, so the best is the steadiest figure;
both paths are timed alike). The photo is restored `--repeats` times and the best is kept.

On the CPU both paths are measured twice: under glibc's default malloc, where every large
tensor is faulted in afresh, and with freed memory kept for reuse, as the command line sets
up (gpen_ext/allocator.py) and as tcmalloc does in the WebUI on Linux.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpen_ext.allocator import keep_freed_memory  # noqa: E402
from gpen_ext.arch.gpen.fast import FastGPEN  # noqa: E402
from gpen_ext.arch.gpen.network import GPEN  # noqa: E402
from gpen_ext.inference import NetworkRunner  # noqa: E402

RELEASES = {256: (1, 0.5), 512: (2, 1.0), 1024: (2, 1.0), 2048: (2, 1.0)}
SOLVAY = ROOT.parent / "shared" / "faces" / "Solvay_conference_1927.png"


def release_network(size, seed=0):
    torch.manual_seed(seed)
    multiplier, narrow = RELEASES[size]
    network = GPEN(size, 512, 8, multiplier, narrow).eval().requires_grad_(False)
    with torch.no_grad():
        for name, tensor in network.named_parameters():
            if name.endswith("noise.weight"):
                tensor.fill_(0.1)  # trained checkpoints inject their features; zero would not
    return network


def resident_bytes():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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


def measure(size, batch, path, device, precision="fp32", repeats=2):
    """Seconds per face (best of `repeats` calls after the first) and peak memory (MB above
    the loaded model, first call)."""
    network = release_network(size)
    if path == "fast":
        network = FastGPEN(network)
    runner = NetworkRunner(network, device, precision)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        runner(x)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with PeakSampler() as sampler:
            runner(x)
        peak = sampler.peak - sampler.base

    def call():
        runner(x)
        if device == "cuda":
            torch.cuda.synchronize()

    return {"seconds_per_face": best_seconds(call, repeats) / batch, "peak_mb": peak / 2 ** 20}


def in_subprocess(*arguments, keep=False):
    command = [sys.executable, __file__, *map(str, arguments)] + (["--keep-freed"] if keep else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


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


def photo_run(path, device, batch_size, repeats=2):
    import cv2

    from gpen_ext.pipeline import FaceRestorer, RestoreOptions

    rgba = cv2.cvtColor(cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    landmarks = json.loads((SOLVAY.parent / "solvay_landmarks.json").read_text())["landmarks"]
    network = release_network(512)
    restorer = FaceRestorer(FastGPEN(network) if path == "fast" else network, "/nonexistent",
                            device, "fp32", download=False)
    options = RestoreOptions(mask="box", batch_size=batch_size, keep_crops=False)
    faces = []

    def call():
        faces[:] = restorer.restore(rgba, options, landmarks=landmarks).faces

    return {"seconds": best_seconds(call, repeats), "faces": len(faces)}


def table(args, keep):
    allocator = "freed memory kept for reuse" if keep else "glibc's default malloc"
    print(f"\n{args.device}, fp32, {allocator}" if args.device == "cpu" else f"\n{args.device}, fp32")
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
    if not args.no_photo and SOLVAY.is_file():
        fast = in_subprocess("--photo", "fast", args.device, args.repeats, keep=keep)
        plain = in_subprocess("--photo", "straight", args.device, args.repeats, keep=keep)
        print(f"Solvay photo, {fast['faces']} faces, GPEN-512, batch 4, end to end: fast "
              f"{fast['seconds']:.1f} s, straightforward {plain['seconds']:.1f} s, "
              f"speed-up {plain['seconds'] / fast['seconds']:.2f}x", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(RELEASES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-photo", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed calls per measurement, the best kept (default 2)")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--photo", nargs=3, help=argparse.SUPPRESS)
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
    if args.photo:
        path, device, repeats = args.photo
        print(json.dumps(photo_run(path, device, batch_size=4, repeats=int(repeats))))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random weights in the "
          f"released shapes; time: best of {args.repeats} calls after the first, memory of the first")
    for keep in ([False, True] if args.device == "cpu" else [False]):
        table(args, keep)
    print()
    size = 512 if 512 in args.sizes else args.sizes[0]
    for precision, psnr in precision_psnr(size, args.device).items():
        timing = in_subprocess("--measure", size, 1, "fast", args.device, precision,
                               args.repeats, keep=True)
        print(f"fast path in {precision} at {size}: {timing['seconds_per_face']:.3f} s/face, "
              f"PSNR {psnr:.1f} dB against fp32")


if __name__ == "__main__":
    main()
