"""benchmarks/device_check.py as CI runs it: on the CPU, at 256."""

import subprocess
import sys

import pytest
import torch

from helpers import ROOT, SOLVAY

pytestmark = pytest.mark.slow  # the fast lane leaves these out (README)


@pytest.mark.skipif(not SOLVAY.is_file(), reason="needs ../shared/faces")
def test_device_check_runs_on_the_cpu_and_passes_parity():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"),
                             "--device", "cpu", "--sizes", "256"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    fp32 = next(line for line in lines if line.split()[:2] == ["256", "fp32"])
    assert float(fp32.split()[2]) < 1e-4
    assert any("(not on cpu)" in line for line in lines)  # fp16 is a GPU feature
    assert any(line.startswith("pipeline") and "29 faces" in line for line in lines)
    assert lines[-1].startswith("parity: fp32 within 1e-4")


def test_the_memory_table_is_measured_on_the_device_path():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"),
                             "--device", "cpu", "--sizes", "256", "--memory-table"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("  256"))
    batch_1, batch_4, per_face = map(float, row[1:])
    assert 0 < batch_1 < batch_4 and per_face > 0
    assert "parser, one face:" in result.stdout


def test_the_benchmark_stage_clock_hears_every_stage_it_times(tiny_state_dict, face_weights,
                                                               astronaut, tmp_path):
    """The benchmarks time the pipeline's stages from its own progress events
    (benchmarks/common.py): a stage renamed in the pipeline must fail here, not half-way
    through an hour's benchmark."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from common import STAGES, StageClock
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from gpen_ext import load_restorer
    from gpen_ext.options import RestoreOptions
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    restorer = load_restorer(str(tmp_path / "tiny.pth"), tmp_path,
                             face_models_dir=face_weights, download=False)
    clock = StageClock()
    clock.start()
    restorer.restore(astronaut, RestoreOptions(detection_model="retinaface_mobile0.25",
                                               parser="bisenet"), progress=clock)
    heard = {stage for stage in STAGES if clock.seconds[stage] > 0}
    assert heard == set(StageClock.ENDS.values()) - {None}  # network, parse, paste


def test_the_layer_table_counts_each_decoder_conv_as_its_shape_says():
    """benchmarks/layers.py: a level's stride-1 3x3 conv (the part Winograd may take) is
    2 * 9 * in * out * side^2 flops; the rest of the level (up-conv, to-RGB) is counted
    beside it, and the groups add up to the whole network but its style code (the mapping
    network's few products)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from layers import group_flops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from gpen_ext.arch.gpen.network import GPEN
    from torch.utils.flop_counter import FlopCounterMode
    network = GPEN(64, 32, 2, 1, 0.25).eval().requires_grad_(False)
    x = torch.rand(1, 3, 64, 64)
    groups = group_flops(network, x)
    for resolution, _, conv, _ in network.generator.levels():
        out_channels, in_channels = conv.conv.weight.shape[1:3]
        gflop, winograd_gflop = groups[f"decoder {resolution}"]
        assert winograd_gflop == pytest.approx(
            2 * 9 * in_channels * out_channels * resolution ** 2 / 1e9)
        assert gflop > winograd_gflop
    assert all(winograd == 0 for name, (_, winograd) in groups.items() if "encoder" in name)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(x)
    total = counter.get_total_flops() / 1e9
    assert 0.999 * total < sum(gflop for gflop, _ in groups.values()) < total
