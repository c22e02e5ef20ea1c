"""Threads matched to the free cores: the same bits on any thread count, the caller's setting
given back, faces side by side, the load and the quota read right."""

import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gpen_ext.arch import cpu as cpu_threads
from gpen_ext.arch.gpen.fast import FastGPEN
from gpen_ext.arch.bisenet import FastBiSeNet
from gpen_ext.arch.parsenet import FastParseNet
from gpen_ext.arch.threads import bands_shared_by, torch_threads
from gpen_ext.device_memory import Precisions
from gpen_ext.inference import NetworkRunner
from gpen_ext.registry import RELEASE_CONFIGS

from helpers import random_bisenet, random_parsenet


def on_threads(network, x, counts=(1, 2, 3), sharers=(1, 2)):
    """The network's output on each thread count, its bands alone or shared."""
    outputs = []
    with torch.inference_mode():
        for count in counts:
            for workers in sharers:
                with torch_threads(count), bands_shared_by(workers):
                    outputs.append(network(x))
    return outputs


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_the_network_gives_the_same_bits_on_any_thread_count(precision):
    """Faces go side by side on one thread each, or alone on every free core with their bands
    shared among threads: the output must not depend on which (the small maps, the
    modulations and the skip path's upsampling would otherwise round differently on one
    thread than on several)."""
    torch.manual_seed(0)
    network = FastGPEN(RELEASE_CONFIGS[256].build().eval()).to(precision)
    x = (torch.rand(1, 3, 256, 256) * 2 - 1).to(precision)
    first, *others = on_threads(network, x)
    assert all(torch.equal(first, other) for other in others)


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_the_parser_gives_the_same_bits_on_any_thread_count(precision):
    """As the pipeline runs it (logits in fp32); bf16 at 256, where it may be emulated (AVX2
    only: a minute at 512)."""
    network = Precisions(FastParseNet(random_parsenet()).eval(), kept_fp32=("logits",))
    side = 512 if precision == torch.float32 else 256
    x = torch.rand(1, 3, side, side) * 2 - 1
    run = functools.partial(network, precision="fp32" if precision == torch.float32 else "bf16")
    first, *others = on_threads(run, x, (1, 2))
    assert all(torch.equal(first, other) for other in others)


# Only the kernels of an AVX2 CPU (no AVX-512, no native bf16), as on many desktops and cloud
# machines: torch's, oneDNN's and MKL's own switches, so that any CI machine checks them
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2", reason="already AVX2 only")
def test_the_same_bits_and_the_bf16_bound_hold_with_avx2_kernels_only():
    """There, the to-RGB product and the first 1x1 conv split their sums among threads (the
    suite failed on an AVX2-only AMD EPYC), and bf16 is emulated (the parser's bf16 is left
    to the suite on such a CPU: emulated, it takes a minute)."""
    tests = Path(__file__).parent
    same_bits = "gives_the_same_bits_on_any_thread_count"
    chosen = [f"test_cpu_threads.py::test_the_network_{same_bits}",
              f"test_cpu_threads.py::test_the_parser_{same_bits}[fp32]",
              f"test_cpu_threads.py::test_the_light_parser_{same_bits}[fp32]",
              "test_fast_path.py::test_bf16_stays_above_its_bound_against_fp32_on_every_parity_face"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(str(tests / test) for test in chosen)],
        cwd=tests.parent, env={**os.environ, **AVX2_ONLY}, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_light_parser_gives_the_same_bits_on_any_thread_count(precision):
    network = Precisions(FastBiSeNet(random_bisenet()).eval(), kept_fp32=("logits",))
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    first, *others = on_threads(functools.partial(network, precision=precision), x, (1, 2))
    assert all(torch.equal(first, other) for other in others)


def test_the_callers_thread_count_is_given_back_also_on_errors():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def _count_in_a_new_thread():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_two_blocks_at_once_in_two_threads_give_the_host_its_count_back():
    """The later block in the other thread starts from the earlier's count and ends last: the
    count that threads starting later take is still the host's afterwards."""
    before, new_threads_before = torch.get_num_threads(), _count_in_a_new_thread()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with torch_threads(1):
            first_in.set()
            second_in.wait()
        first_out.set()

    def second():
        first_in.wait()
        with torch_threads(3):  # from the first's 1, which this thread starts with
            second_in.set()
            first_out.wait()
        second_after.append(torch.get_num_threads())
    second_after = []
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torch.get_num_threads() == before and second_after == [new_threads_before]
    assert _count_in_a_new_thread() == new_threads_before


def test_two_restorations_at_once_match_one_at_a_time(tiny_state_dict, face_weights,
                                                      astronaut, tmp_path):
    from gpen_ext import load_restorer
    from gpen_ext.options import RestoreOptions
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    options = RestoreOptions(detection_model="retinaface_mobile0.25", mask="box")
    before, new_threads_before = torch.get_num_threads(), _count_in_a_new_thread()
    restorers = [load_restorer(str(tmp_path / "tiny.pth"), tmp_path,
                               face_models_dir=face_weights, download=False) for _ in range(2)]
    alone = [restorer.restore(astronaut, options).image for restorer in restorers]
    together = [None, None]

    def restore(index):
        together[index] = restorers[index].restore(astronaut, options).image
    threads = [threading.Thread(target=restore, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all((a == b).all() for a, b in zip(alone, together))
    assert torch.get_num_threads() == before
    assert _count_in_a_new_thread() == new_threads_before


class Doubling(torch.nn.Module):
    """Records the thread each face ran on and its thread count."""
    size = 8

    def __init__(self, fail_on=None, seconds=0.0):
        super().__init__()
        self.calls, self.fail_on, self.seconds = [], fail_on, seconds

    def forward(self, x):
        self.calls.append((threading.current_thread().name, torch.get_num_threads(), len(x)))
        if self.fail_on is not None and float(x.flatten()[0]) == self.fail_on:
            raise RuntimeError("this face failed")
        time.sleep(self.seconds)
        return x * 2


def test_faces_go_side_by_side_on_a_thread_each_and_come_back_in_order(monkeypatch):
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    network = Doubling(seconds=0.05)
    batch = torch.arange(6, dtype=torch.float32).reshape(6, 1, 1, 1).expand(6, 3, 8, 8)
    with torch_threads(2):
        output = NetworkRunner(network, "cpu", "fp32")(batch.contiguous())
        assert torch.get_num_threads() == 2
    assert torch.equal(output, batch * 2)
    assert {count for _, count, _ in network.calls} == {1}
    assert {faces for _, _, faces in network.calls} == {1}
    assert len({name for name, _, _ in network.calls}) == 2  # the caller and a helper
    assert torch.get_num_threads() == before


def test_a_face_that_fails_stops_the_others_and_raises(monkeypatch):
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 2)
    network = Doubling(fail_on=1.0, seconds=0.1)
    batch = torch.arange(8, dtype=torch.float32).reshape(8, 1, 1, 1).expand(8, 3, 8, 8)
    with torch_threads(2), pytest.raises(RuntimeError, match="this face failed"):
        NetworkRunner(network, "cpu", "fp32")(batch.contiguous())
    assert len(network.calls) <= 3  # the failed face, and the one beside it at that moment


@pytest.mark.parametrize("others, expected", [(0.0, 4), (0.4, 4), (0.7, 3), (1.0, 3),
                                              (2.6, 1), (3.9, 1)])
def test_a_face_alone_gets_the_cores_other_programs_leave(others, expected, monkeypatch):
    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 4)
    monkeypatch.setattr(cpu_threads.LOAD, "others", lambda: others)
    with torch_threads(4):
        assert cpu_threads.plan(1) == (1, expected)
        assert cpu_threads.plan(2) == (2, max(1, expected // 2))
        assert cpu_threads.plan(9) == (4, 1)
    with torch_threads(2):  # the caller's count is the ceiling
        assert cpu_threads.plan(1) == (1, min(2, expected))


def test_the_load_is_other_processes_time_over_this_processes_cpus(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(cpu_threads.os, "sched_getaffinity", lambda pid: {0, 1})
    own = iter([0.0, 0.5])
    monkeypatch.setattr(cpu_threads.os, "times", lambda: type("T", (), {
        "user": next(own), "system": 0.0})())
    monkeypatch.setattr(cpu_threads.os, "sysconf", lambda name: 100)
    # two CPUs of ours and one that is not: over 100 ticks each, CPU 0 idle but for our own 50
    # ticks, CPU 1 busy all along (30 user, 50 system, 20 steal), CPU 2 busy (not ours)
    stat.write_text("cpu 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"
                    "cpu2 0 0 0 0 0 0 0 0\nintr 5\n")
    load = cpu_threads.CpuLoad(stat)
    before = load.reading()
    stat.write_text("cpu 0 0 0 0 0 0 0 0\ncpu0 50 0 0 45 5 0 0 0\ncpu1 30 0 50 0 0 0 0 20\n"
                    "cpu2 100 0 0 0 0 0 0 0\nintr 9\n")
    after = load.reading()
    assert load.between(before, after) == pytest.approx(1.0)


def test_no_proc_stat_means_no_load_seen(tmp_path):
    assert cpu_threads.CpuLoad(tmp_path / "missing").others() == 0.0


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None)])
def test_the_cgroup_quota_is_read_from_v2_and_v1(files, expected, tmp_path, monkeypatch):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    membership = "0::/\n" if "cpu.max" in files or not files else "4:cpu,cpuacct:/\n"
    real_read = cpu_threads.Path.read_text
    monkeypatch.setattr(cpu_threads.Path, "read_text", lambda self, *a, **k: membership if
                        str(self) == "/proc/self/cgroup" else real_read(self, *a, **k))
    if "4:cpu" in membership:
        (tmp_path / "cpu,cpuacct").symlink_to(tmp_path / "cpu")
    assert cpu_threads.cgroup_cpu_quota(tmp_path) == expected
