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
