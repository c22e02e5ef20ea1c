"""Running the network on a device, in a precision, with a safe fallback to fp32."""

import functools
import logging
import platform
import time

import torch
from torch.nn import functional as F

from .device_memory import REDUCED_DTYPES, Precisions, faces_that_fit, placed, run_fitting

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name="auto"):
    """A torch.device for 'auto', 'cpu', 'cuda[:N]' or 'mps'; 'auto' picks the best present."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but torch sees no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS was asked for but this torch build or machine has no MPS")
    return device


def resolve_precision(precision, device, warn=True):
    """The precision to run in on `device`: 'auto' is fp16 on CUDA, bf16 on a CPU that runs it
    faster than fp32 (cpu_bf16_pays), fp32 elsewhere; fp16 asked for on the CPU, where it is
    a GPU feature, runs in fp32 (with a warning unless `warn` is off: a model parked on the
    CPU between runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': choose one of {PRECISIONS}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_bf16_pays() else "fp32"
    if precision == "fp16" and device.type == "cpu":
        if warn:
            log.warning("GPEN: fp16 is not supported on the CPU; running in fp32")
        return "fp32"
    if warn and precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("GPEN: this CPU has no native bf16 (AVX-512 BF16 or AMX): bf16 runs many "
                    "times slower than fp32 on such CPUs (about 30x on one); fp32 is the better "
                    "choice")
    return precision


def cpu_has_native_bf16():
    """Whether this CPU computes in bf16 natively (x86: AVX-512 BF16 or AMX); True where that
    cannot be told (other CPUs, older torch), so that no false alarm is raised."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported",
                                                          "_is_amx_tile_supported")]
    probes = [probe for probe in probes if probe is not None]
    return not probes or any(probe() for probe in probes)


@functools.cache
def cpu_bf16_pays():
    """Whether this CPU runs bf16 faster than fp32: it computes in bf16 natively (x86:
    AVX-512 BF16 or AMX), and a 3x3 convolution of a face-sized map, timed once per process
    (a few hundredths of a second), takes under BF16_GAIN of its fp32 time."""
    if platform.machine().lower() in ("x86_64", "amd64") and not cpu_has_native_bf16():
        return False
    x = torch.rand(1, 128, 64, 64)
    weight = torch.rand(128, 128, 3, 3) * 0.01
    seconds = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            x_, weight_ = x.to(dtype), weight.to(dtype)
            F.conv2d(x_, weight_, padding=1)  # the first call picks kernels
            start = time.perf_counter()
            for _ in range(3):
                F.conv2d(x_, weight_, padding=1)
            seconds[dtype] = time.perf_counter() - start
    return seconds[torch.bfloat16] < BF16_GAIN * seconds[torch.float32]


BF16_GAIN = 0.8  # bf16 rounds more: worth it only if clearly faster


class NetworkRunner:
    """Calls an fp32 network in the chosen precision (device_memory.Precisions); a batch whose
    reduced-precision output is not finite is run again in fp32 (and later batches stay in
    fp32)."""

    def __init__(self, network, device="cpu", precision="auto"):
        self.device = torch.device(device)
        self.asked_precision = precision
        self.precision = resolve_precision(precision, self.device)
        self.network = network.to(self.device).float().eval()
        self.precisions = Precisions(self.network)
        self.size = network.size

    def move_to(self, device):
        self.device = torch.device(device)
        self.precision = resolve_precision(self.asked_precision, self.device, warn=False)
        self.network.to(self.device)
        self.precisions.forget()

    def faces_per_call(self, batch_size):
        """On the CPU one face at a time: the fast path convolves large maps face by face
        anyway, so a batch only adds memory (at 512: 1.01 s and 0.42 GB a face alone, 1.09 s
        and 0.95 GB for four). On a GPU as many as fit its free memory, up to `batch_size`."""
        if self.device.type == "cpu":
            return 1
        return faces_that_fit(self.device, self.size, self.precision, batch_size)

    @torch.inference_mode()
    def __call__(self, batch):
        """(N, 3, S, S) in [-1, 1] on any device -> float32 output on the CPU; batches that do
        not fit the device are split (device_memory.run_fitting)."""
        return run_fitting(self.run, batch, self.faces_per_call(len(batch)), self.device,
                           "the network")

    def run(self, batch, where="device"):
        """One call: on the device, on the device with large maps in bands, or on the CPU."""
        with placed(self.network, self.device, where) as device:
            precision = self.precision if device == self.device else "fp32"
            batch = batch.to(device, torch.float32)
            if precision in REDUCED_DTYPES:
                output = self.precisions(batch, precision).float()
                if torch.isfinite(output).all():
                    return output.cpu()
                log.warning("GPEN: %s output was not finite; running in fp32 from now on",
                            precision)
                self.precision = self.asked_precision = "fp32"
            return self.network(batch).float().cpu()
