"""The CPU policy, decided here and nowhere else: how many threads and bands a step's faces
get (matched to the cores actually free, so that speed holds when other programs run beside:
a browser, a second job, Ray's own processes), and whether precision auto is bf16 (by what the
CPU is). The malloc arenas a process keeps are set once at its start (allocator.py).

torch splits each operation among its threads in equal parts and waits for the last one: when
another program holds one of the cores, every one of the hundreds of operations in a network
waits for the thread that shares it, while the others spin (on two cores, one busy process
beside made the network 4x slower). So:
- several faces go side by side, each on threads of its own (one each where cores are few):
  a face whose core is shared only takes longer, and nothing waits for it;
- a face alone runs on as many threads as cores are free, measured just before (other
  processes' CPU time over the CPUs this process may use, from the kernel's counters); where
  other programs take a core, the bands of its large maps are shared among threads instead,
  each taking the next band as it finishes one (arch/threads.run_all), so that a thread
  slowed by them holds up no one (on a quiet CPU torch's own threads are a few per cent
  faster).
The ceiling is the caller's own torch thread count (a host's setting, the CPUs Ray gave a
worker), the CPUs this process may run on and its cgroup's CPU quota. Whatever is set is set
back afterwards (arch/threads.py). The output does not depend on any of this: the networks
give the same bits on any number of threads.
"""

import contextvars
import functools
import logging
import math
import os
import platform
import threading
import time
from pathlib import Path
from typing import NamedTuple

import torch

from .threads import MOST_SHARERS, bands_shared_by, share, torch_threads

log = logging.getLogger(__name__)

TAKEN = 0.55  # another process taking this share of a core's time or more takes the core
FRESH_SECONDS = 2.0  # a reading older than this says nothing of the load now...
SAMPLE_SECONDS = 0.1  # ...and a new one is taken over this long
SHORTEST_WINDOW = 0.2  # shorter windows are a few clock ticks: the last figure stands


@functools.cache
def usable_cpus():
    """The CPUs this process may run on (its affinity), capped by its cgroup's CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def cgroup_cpu_quota(root=Path("/sys/fs/cgroup")):
    """CPUs' worth of time the process's cgroup may use (cgroup v2 `cpu.max`, v1
    `cpu.cfs_quota_us`), or None where unlimited or not told."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: quota and period in one file
            candidates = [(root / path.lstrip("/") / "cpu.max", None), (root / "cpu.max", None)]
        elif "cpu" in controllers.split(","):
            folder = root / controllers
            candidates = [(folder / path.lstrip("/") / "cpu.cfs_quota_us", "cpu.cfs_period_us"),
                          (folder / "cpu.cfs_quota_us", "cpu.cfs_period_us")]
        else:
            continue
        for file, period_name in candidates:
            try:
                values = file.read_text().split()
                if period_name:
                    values.append((file.parent / period_name).read_text().strip())
            except OSError:
                continue
            if values[0] in ("max", "-1"):
                return None
            return int(values[0]) / int(values[1])
    return None


class CpuLoad:
    """Other processes' CPU use, in cores, over the CPUs this process may use: their busy
    time from /proc/stat less this process's own (Linux; elsewhere none is seen)."""

    def __init__(self, stat=Path("/proc/stat")):
        self.stat = stat
        self.last = None  # (monotonic seconds, busy ticks, all ticks, own ticks)
        self.figure = 0.0
        self.lock = threading.Lock()

    def others(self):
        """The figure now; a fresh sample is slept for outside the lock, so that a thread
        asking meanwhile takes the last figure instead of waiting."""
        now = self.reading()
        if now is None:
            return 0.0
        with self.lock:
            last, figure = self.last, self.figure
        if last is not None and now[0] - last[0] < SHORTEST_WINDOW:
            return figure
        earlier = last
        if last is None or now[0] - last[0] > FRESH_SECONDS:
            earlier = now
            time.sleep(SAMPLE_SECONDS)
            now = self.reading()
        figure = self.between(earlier, now)
        with self.lock:
            self.figure, self.last = figure, now
        return figure

    def between(self, earlier, later):
        cpus = len(self._cpus())
        elapsed = (later[2] - earlier[2]) / cpus  # ticks of one CPU
        if elapsed <= 0:
            return self.figure
        others = (later[1] - earlier[1]) - (later[3] - earlier[3])
        return min(float(cpus), max(0.0, others / elapsed))

    def reading(self):
        try:
            lines = self.stat.read_text().splitlines()
        except OSError:
            return None
        wanted = self._cpus()
        busy = total = 0
        for line in lines:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in wanted:
                continue
            # user nice system idle iowait irq softirq steal: idle and iowait are free time;
            # steal (the hypervisor's) is time this CPU was not ours
            ticks = [int(field) for field in fields[:8]]
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
        times = os.times()
        own = (times.user + times.system) * os.sysconf("SC_CLK_TCK")
        return time.monotonic(), busy, total, own

    @staticmethod
    def _cpus():
        try:
            return os.sched_getaffinity(0)
        except AttributeError:
            return set(range(os.cpu_count() or 1))


LOAD = CpuLoad()


class CpuPlan(NamedTuple):
    """How a step's faces go on the CPU: this many side by side, each on this many threads."""
    side_by_side: int
    threads: int


def plan(faces=1):
    """The CpuPlan for `faces` faces on the CPU now."""
    ceiling = min(torch.get_num_threads(), usable_cpus())
    # at most MOST_SHARERS: each face holds its network's maps (0.2-0.9 GB in fp32)
    side_by_side = max(1, min(faces, ceiling, MOST_SHARERS))
    if ceiling // side_by_side <= 1:
        return CpuPlan(side_by_side, 1)  # a thread each: no load can make that fewer
    taken = math.floor(LOAD.others() + 1 - TAKEN)
    threads = max(1, min(ceiling, usable_cpus() - taken) // side_by_side)
    if threads * side_by_side < ceiling:
        log.debug("GPEN: other programs take %d of %d CPUs: %d face(s) at a time on %d "
                  "thread(s) each", taken, usable_cpus(), side_by_side, threads)
    return CpuPlan(side_by_side, threads)


def threads_for_one():
    """A block's torch threads for one piece of work on the CPU (e.g. a detection)."""
    return torch_threads(plan(1)[1])


_PLAN_IN_FORCE = contextvars.ContextVar("cpu_plan_in_force", default=False)


def map_faces(run, batch, step_plan=None):
    """torch.cat of `run(face)` over the faces of `batch` (one at a time, as (1, ...)), as
    `step_plan` (the step's CpuPlan, made once by its caller; else one made now) says: side by
    side where cores allow, in the order of the batch. The networks `run` calls take that plan
    as it is (`on_free_cores`)."""
    token = _PLAN_IN_FORCE.set(True)
    try:
        usable = step_plan is not None and step_plan.threads  # a device's step has none
        return _mapped(run, batch, step_plan if usable else plan(len(batch)))
    finally:
        _PLAN_IN_FORCE.reset(token)


def on_free_cores(run, batch):
    """`run(batch)` as `map_faces` plans it where no plan is in force (a network called on its
    own, as `load_model` returns it); inside one (a restorer's), or off the CPU, as it is."""
    if _PLAN_IN_FORCE.get() or batch.device.type != "cpu":
        return run(batch)
    return map_faces(run, batch)


def _mapped(run, batch, step_plan):
    side_by_side, threads = min(step_plan.side_by_side, len(batch)), step_plan.threads
    faces = [batch[index:index + 1] for index in range(len(batch))]
    if side_by_side == 1:
        ceiling = min(usable_cpus(), torch.get_num_threads())
        sharers = 1 if threads == ceiling else min(ceiling, MOST_SHARERS)
        with torch_threads(threads), bands_shared_by(sharers, max(1, threads // sharers)):
            return torch.cat([run(face) for face in faces])
    outputs = [None] * len(faces)

    def one_face(index):
        with bands_shared_by(1):  # the faces beside it have the other threads
            outputs[index] = run(faces[index])
    share([functools.partial(one_face, index) for index in range(len(faces))],
          side_by_side, threads)
    return torch.cat(outputs)


# oneDNN's own names for the instruction sets it may be capped at (ONEDNN_MAX_CPU_ISA) that
# have no bf16 arithmetic: under such a cap its convolutions emulate bf16 as on an older CPU
_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_has_native_bf16():
    """Whether this CPU computes in bf16 natively (x86: AVX-512 BF16 or AMX, and oneDNN not
    capped below them); True where that cannot be told (other CPUs, older torch), so that no
    false alarm is raised."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ISAS_WITHOUT_BF16:
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported",
                                                          "_is_amx_tile_supported")]
    probes = [probe for probe in probes if probe is not None]
    return not probes or any(probe() for probe in probes)


def cpu_has_amx():
    """Whether oneDNN may use this CPU's AMX tiles (present, and no cap below them)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return probe is not None and probe() and (not cap or "AMX" in cap or cap == "ALL")


def cpu_vendor():
    """The x86 vendor string (GenuineIntel, AuthenticAMD), or '' where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    processor = platform.processor()  # Windows: "... GenuineIntel"
    return next((name for name in ("GenuineIntel", "AuthenticAMD") if name in processor), "")


@functools.cache
def cpu_auto_is_bf16():
    """What 'auto' is on this CPU, decided by what the CPU is, so that every process on a
    machine picks the same and the same command gives the same pixels whatever the load (a
    timing could flip): bf16 where the CPU has AMX, or AVX-512 BF16 on an AMD CPU, where the
    default pipeline was 1.8x faster than in fp32 (AMD EPYC, 29-face photo: 58 s against
    104 s); fp32 elsewhere: on an Intel CPU with AVX-512 BF16 but no AMX (a 2-core Xeon) the
    same photo took 124 s in bf16 against 68 s in fp32, and on CPUs without native bf16 it
    is emulated. Said once in the log."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    native = x86 and cpu_has_native_bf16()
    amx = native and cpu_has_amx()
    bf16 = amx or (native and cpu_vendor() == "AuthenticAMD")
    reason = ("AMX" if amx else "AVX-512 BF16 on an AMD CPU" if bf16 else
              "AVX-512 BF16 without AMX, slower than fp32" if native else
              "no native bf16" if x86 else "not an x86 CPU")
    log.info("GPEN: precision auto on this CPU is %s (%s)", "bf16" if bf16 else "fp32", reason)
    return bf16
