"""One command for a machine with a GPU: parity, speed and memory of every released size in
every precision, then the default pipeline on the 29-face photo.

    python benchmarks/device_check.py                        # the best device there is
    python benchmarks/device_check.py --device cpu --sizes 256
    python benchmarks/device_check.py --memory-table         # re-measure device_memory.py's table

For each size and precision: the largest difference from the straightforward network run on
the CPU in fp32 (the oracle), its PSNR as an image, seconds per face at batch 1, 4 and 8, and
the peak memory of the batch-8 call (device allocator; on the CPU, resident memory). Exits 1
when fp32 differs from the oracle by more than 1e-4. Weights are random, in the released shapes.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from benchmark import (PeakSampler, face_weights, images, release_network,  # noqa: E402
                       RELEASES)
from gpen_ext.arch import bands  # noqa: E402
from gpen_ext.arch.gpen.fast import FastGPEN  # noqa: E402
from gpen_ext.arch.parsenet import FastParseNet  # noqa: E402
from gpen_ext.face_models import build_parser_network  # noqa: E402
from gpen_ext.faces import PARSE_SIZE  # noqa: E402
from gpen_ext.inference import NetworkRunner, resolve_device  # noqa: E402

FP32_TOLERANCE = 1e-4
LIVE_MEMORY_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "65536")
BATCHES = (1, 4, 8)


class DevicePeak:
    """Peak memory of the block on `device`, in MB above what was in use before it."""

    def __init__(self, device):
        self.device = torch.device(device)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.sampler = PeakSampler().__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2 ** 20
        else:
            self.sampler.__exit__(*exc)
            self.mb = (self.sampler.peak - self.sampler.base) / 2 ** 20


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_size(size, precisions, device):
    """Rows of (precision, max diff, PSNR, seconds per face by batch, peak MB at batch 8)."""
    network = release_network(size)
    torch.manual_seed(size)
    x = torch.rand(max(BATCHES), 3, size, size) * 2 - 1
    with torch.inference_mode():
        oracle = network(x[:2])
    runner = NetworkRunner(FastGPEN(network), device, "fp32")
    rows = []
    for precision in precisions:
        if precision == "fp16" and device.type == "cpu":
            rows.append((precision, None, None, {}, None))  # a GPU feature
            continue
        runner.precision = runner.asked_precision = precision
        with torch.inference_mode():
            output = runner.run(x[:2])
            difference = (output - oracle).abs().max().item()
            mse = torch.mean((((output + 1) / 2).clamp(0, 1) - ((oracle + 1) / 2).clamp(0, 1))
                             ** 2).item()
            psnr = float("inf") if mse == 0 else 10 * np.log10(1 / mse)
            seconds = {}
            for batch in BATCHES:
                runner.run(x[:batch])  # warm: kernels chosen, caches filled
                synchronize(device)
                start = time.perf_counter()
                with DevicePeak(device) as peak:
                    runner.run(x[:batch])
                seconds[batch] = (time.perf_counter() - start) / batch
        rows.append((precision, difference, psnr, seconds, peak.mb))
    return rows


def photo_pipeline(device, size):
    """The default pipeline on the 29-face photo on `device`: seconds, faces, peak MB."""
    from gpen_ext.face_models import FaceModels
    from gpen_ext.options import RestoreOptions
    from gpen_ext.pipeline import FaceRestorer

    image, landmarks = images()["photo"]
    with tempfile.TemporaryDirectory() as folder:
        face_weights(Path(folder))
        restorer = FaceRestorer(FastGPEN(release_network(size)), FaceModels(folder, False),
                                device)
        options = RestoreOptions(keep_crops=False)
        restorer.restore(image, options, landmarks[:2])  # warm
        synchronize(device)
        start = time.perf_counter()
        with DevicePeak(device) as peak:
            result = restorer.restore(image, options, landmarks)
        return time.perf_counter() - start, len(result.faces), peak.mb, restorer.precision


def memory_table(device, sizes):
    """Activation MB per face on the device path (whole maps, direct convolutions): measured
    for batches of 1 and 4, which device_memory.NETWORK_MB_PER_FACE records; then the parser,
    one face, which PARSER_MB records. On the CPU the device path is forced (bands.map_policy)
    and glibc returns every freed block at once, so the figures are the bytes alive on a GPU's
    path."""
    print(f"{'size':>5} {'batch 1 MB':>11} {'batch 4 MB':>11} {'per face MB':>12}")
    with bands.map_policy("device"):
        for size in sorted(sizes):
            network = FastGPEN(release_network(size)).to(device)
            peaks = []
            for batch in (1, 4):
                x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
                peaks.append(measured_peak(network, x, device))
            print(f"{size:>5} {peaks[0]:>11.0f} {peaks[1]:>11.0f} "
                  f"{(peaks[1] - peaks[0]) / 3:>12.0f}", flush=True)
            del network
        parser = FastParseNet(build_parser_network().eval()).eval().to(device)
        x = torch.rand(1, 3, PARSE_SIZE, PARSE_SIZE, device=device) * 2 - 1
        print(f"parser, one face: {measured_peak(parser, x, device):.0f} MB")


def measured_peak(network, x, device):
    """Peak MB of a second call of `network` on `x` (the first chooses kernels)."""
    with torch.inference_mode():
        network(x)
        with DevicePeak(device) as peak:
            network(x)
    return peak.mb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(RELEASES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"])
    parser.add_argument("--no-photo", action="store_true")
    parser.add_argument("--memory-table", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.memory_table and device.type == "cpu" and LIVE_MEMORY_ENVIRONMENT[0] not in os.environ:
        # every freed block goes back to the system at once, so resident memory follows the
        # tensors alive rather than what glibc keeps for reuse
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **dict([LIVE_MEMORY_ENVIRONMENT, ("MALLOC_TRIM_THRESHOLD_", "0")])})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device {device} ({name}), torch {torch.__version__}")
    if args.memory_table:
        memory_table(device, args.sizes)
        return 0
    failed = []
    print(f"{'size':>5} {'precision':>9} {'max |diff|':>11} {'PSNR dB':>8}"
          + "".join(f" {f'b{batch} s/face':>10}" for batch in BATCHES) + f" {'peak MB b8':>11}")
    for size in args.sizes:
        for precision, difference, psnr, seconds, peak in check_size(size, args.precisions,
                                                                     device):
            if difference is None:
                print(f"{size:>5} {precision:>9}   (not on {device.type})")
                continue
            print(f"{size:>5} {precision:>9} {difference:>11.2e} {psnr:>8.1f}"
                  + "".join(f" {seconds[batch]:>10.3f}" for batch in BATCHES)
                  + f" {peak:>11.0f}", flush=True)
            if precision == "fp32" and difference > FP32_TOLERANCE:
                failed.append(f"{size} fp32: {difference:.2e}")
    if not args.no_photo:
        size = 512 if 512 in args.sizes else min(args.sizes)
        seconds, faces, peak, precision = photo_pipeline(device, size)
        print(f"pipeline, default options, GPEN-{size} ({precision}), Solvay photo: {faces} "
              f"faces in {seconds:.1f} s ({seconds / faces:.2f} s a face), peak {peak:.0f} MB")
    if failed:
        print(f"PARITY FAILED (fp32 above {FP32_TOLERANCE}): {'; '.join(failed)}")
        return 1
    print("parity: fp32 within 1e-4 of the oracle at every size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
