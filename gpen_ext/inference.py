"""Running the network on a device, in a precision, with a safe fallback to fp32."""

import functools
import logging

import numpy as np
import torch

from .arch.cpu import cpu_auto_is_bf16, cpu_has_native_bf16, map_faces
from .arch.interrupts import interruptible
from .device_memory import REDUCED_DTYPES, Precisions, faces_that_fit, placed, run_fitting
from .options import PRECISIONS

log = logging.getLogger(__name__)



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
    """The precision to run in on `device`: 'auto' is fp16 on CUDA, bf16 on a CPU where it is
    the faster (cpu_auto_is_bf16), fp32 elsewhere; fp16 asked for on the CPU, where it
    is a GPU feature, runs in fp32 (with a warning unless `warn` is off: a model parked on the
    CPU between runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': choose one of {PRECISIONS}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_auto_is_bf16() else "fp32"
    if precision == "fp16" and device.type == "cpu":
        if warn:
            log.warning("GPEN: fp16 is not supported on the CPU; running in fp32")
        return "fp32"
    if warn and precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("GPEN: this CPU has no native bf16 (AVX-512 BF16 or AMX): bf16 runs many "
                    "times slower than fp32 on such CPUs (about 30x on one); fp32 is the better "
                    "choice")
    return precision


class NetworkRunner:
    """Calls an fp32 network in the chosen precision (device_memory.Precisions); a batch whose
    reduced-precision output is not finite is run again in fp32 (and later batches stay in
    fp32)."""

    def __init__(self, network, device="cpu", precision="auto"):
        self.device = torch.device(device)
        self.asked_precision = precision
        self.precision = resolve_precision(precision, self.device)
        self.network = interruptible(network.to(self.device).float().eval())
        self.precisions = Precisions(self.network)
        self.size = network.size

    def move_to(self, device):
        self.device = torch.device(device)
        self.precision = resolve_precision(self.asked_precision, self.device, warn=False)
        self.network.to(self.device)
        self.precisions.forget()

    def faces_per_call(self, batch_size):
        """On a GPU as many faces as fit its free memory, up to `batch_size`."""
        return faces_that_fit(self.device, self.size, self.precision, batch_size)

    def run_crops(self, crops, batch_size, step_plan=None):
        """Aligned float RGB crops (N, S, S, 3) in [0, 1] -> the network's crops, the same,
        `batch_size` at a time (on the CPU as `step_plan` says, see __call__)."""
        restored = np.empty_like(crops)
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(crops[start:start + batch_size]).permute(0, 3, 1, 2)
            output = ((self(batch * 2 - 1, step_plan) + 1) / 2).clamp(0, 1)
            restored[start:start + len(batch)] = output.permute(0, 2, 3, 1).numpy()
        return restored

    @torch.inference_mode()
    def __call__(self, batch, step_plan=None):
        """(N, 3, S, S) in [-1, 1] on any device -> float32 output on the CPU. On the CPU one
        face a call (the fast path convolves large maps face by face anyway, so a batch only
        adds memory), faces side by side as the step's CpuPlan says (`step_plan`; else one
        made now, cpu.map_faces); on a device, batches that do not fit are split
        (device_memory.run_fitting). A reduced precision whose output is not finite is given
        up here, in the caller's thread, and the batch run again in fp32."""
        precision = self.precision
        output = self._in(precision, batch, step_plan)
        if precision in REDUCED_DTYPES and not torch.isfinite(output).all():
            log.warning("GPEN: %s output was not finite; running in fp32 from now on",
                        precision)
            self.precision = self.asked_precision = "fp32"
            output = self._in("fp32", batch, step_plan)
        return output

    def _in(self, precision, batch, step_plan):
        run = functools.partial(self.run, precision=precision)
        if self.device.type == "cpu":
            return map_faces(run, batch, step_plan)
        return run_fitting(run, batch, self.faces_per_call(len(batch)), self.device,
                           "the network")

    def run(self, batch, where="device", precision="fp32"):
        """One call in `precision`: on the device, on the device with large maps in bands, or
        on the CPU (in fp32 there, where a device's reduced precision would not pay)."""
        with placed(self.network, self.device, where) as device:
            batch = batch.to(device, torch.float32)
            if device == self.device and precision in REDUCED_DTYPES:
                return self.precisions(batch, precision).float().cpu()
            return self.network(batch).float().cpu()
