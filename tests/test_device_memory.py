"""Batches that fit a device, and the step-down when they do not (simulated on the CPU)."""

import logging

import pytest
import torch

from gpen_ext import device_memory
from gpen_ext.arch import bands
from gpen_ext.arch.gpen.fast import FastGPEN
from gpen_ext.device_memory import faces_that_fit, network_mb_per_face, placed, run_fitting
from gpen_ext.inference import NetworkRunner

from helpers import PARITY_FILES, fast_path_for

OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def test_the_batch_is_what_fits_the_free_memory(monkeypatch):
    gb = 2 ** 30
    monkeypatch.setattr(device_memory, "free_bytes", lambda device: 2 * gb)
    per_face = network_mb_per_face(512, "fp16")  # fp32's figure, 16-bit activations
    assert per_face == device_memory.NETWORK_MB_PER_FACE[512] * 0.5 * 1.5
    expected = int((2048 - 512 - device_memory.PARSER_MB) // per_face)
    assert faces_that_fit("cuda", 512, "fp16", 64) == expected > 4
    assert faces_that_fit("cuda", 512, "fp16", 4) == 4  # never more than asked
    monkeypatch.setattr(device_memory, "free_bytes", lambda device: 100 * 2 ** 20)
    assert faces_that_fit("cuda", 2048, "fp32", 8) == 1  # always at least one
    monkeypatch.setattr(device_memory, "free_bytes", lambda device: None)
    assert faces_that_fit("cpu", 512, "fp32", 8) == 8


def test_out_of_memory_halves_the_batch_down_to_one(caplog):
    seen = []

    def run(chunk, where):
        seen.append((len(chunk), where))
        if len(chunk) > 2:
            raise OOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return chunk * 2

    items = torch.arange(7.0)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(run_fitting(run, items, 8, "cuda", "the network"), items * 2)
    assert seen == [(7, "device"), (4, "device"), (2, "device"), (2, "device"), (2, "device"),
                    (1, "device")]
    assert "trying 4 at a time" in caplog.text and "trying 2 at a time" in caplog.text


def test_a_face_that_does_not_fit_alone_runs_in_bands_then_on_the_cpu(caplog):
    def run(chunk, where):
        if where != "cpu":
            raise RuntimeError("MPS backend out of memory (MPS allocated: 5 GB)")
        return chunk + 1

    with caplog.at_level(logging.WARNING):
        assert torch.equal(run_fitting(run, torch.zeros(3), 4, "mps", "the network"),
                           torch.ones(3))
    assert "in bands" in caplog.text and "on the CPU" in caplog.text


def test_other_errors_are_not_swallowed():
    def run(chunk, where):
        raise RuntimeError("expected scalar type Half but found Float")

    with pytest.raises(RuntimeError, match="scalar type"):
        run_fitting(run, torch.zeros(2), 2, "cuda", "the network")


def test_placed_moves_the_module_for_the_cpu_and_back_and_forces_bands():
    moves = []

    class Module(torch.nn.Module):
        def to(self, device):
            moves.append(str(device))
            return self

    with placed(Module(), "cuda", "cpu") as device:
        assert device.type == "cpu"
    assert moves == ["cpu", "cuda"]
    gpu_map = torch.empty(1, 1, 8, 8, device="meta")
    assert not bands.in_bands(gpu_map)
    with placed(Module(), "cuda", "bands"):
        assert bands.in_bands(gpu_map)
    assert not bands.in_bands(gpu_map)


def convolution_calls(network, x, monkeypatch):
    """How many convolutions (direct and Winograd) one call of `network` makes, and its output."""
    from gpen_ext.arch import winograd
    calls = []
    for module, name in ((torch.nn.functional, "conv2d"),
                         (torch.nn.functional, "conv_transpose2d"), (winograd, "conv3x3")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _original=original, _name=name, **k:
                            calls.append(_name) or _original(*a, **k))
    with torch.inference_mode():
        output = network(x)
    monkeypatch.undo()
    return calls, output


@pytest.mark.parametrize("which", ["network", "parser"])
def test_the_device_path_forced_on_the_cpu_reaches_both_fast_paths(which, monkeypatch):
    """What benchmarks/device_check.py --memory-table measures: under map_policy("device") the
    CPU convolves whole maps, directly, in the network and the parser alike, with the output
    of the CPU's path; tiny bands make the difference countable."""
    from gpen_ext.arch.parsenet import FastParseNet
    from helpers import random_parsenet
    if which == "network":
        vector, network = fast_path_for(PARITY_FILES[0])
        x = vector["input"]
    else:
        network = FastParseNet(random_parsenet(64, seed=2)).eval()
        x = torch.rand(1, 3, 64, 64) * 2 - 1
    monkeypatch.setattr(bands, "BAND_BYTES", 1)
    cpu_calls, cpu_output = convolution_calls(network, x, monkeypatch)
    with bands.map_policy("device"):
        monkeypatch.setattr(bands, "BAND_BYTES", 1)
        device_calls, device_output = convolution_calls(network, x, monkeypatch)
    monkeypatch.setattr(bands, "BAND_BYTES", 1 << 40)  # one band a map: as many as whole maps
    one_band_calls, _ = convolution_calls(network, x, monkeypatch)
    assert len(device_calls) < len(cpu_calls)
    assert "conv3x3" not in device_calls
    assert len(device_calls) <= len(one_band_calls)
    assert (device_output - cpu_output).abs().max().item() < 1e-4


def test_an_unknown_map_policy_is_refused():
    with pytest.raises(ValueError, match="map policy"):
        with bands.map_policy("sideways"):
            pass


def test_the_runner_steps_down_to_the_same_output(monkeypatch):
    """A network that cannot take more than one face, asked for five at once (as on a GPU with
    room for five): the output is the unconstrained one."""
    vector, fast = fast_path_for(PARITY_FILES[0])
    x = vector["input"][:1].repeat(5, 1, 1, 1) + torch.linspace(0, 0.1, 5)[:, None, None, None]
    with torch.inference_mode():
        expected = fast(x)

    class OneAtATime(torch.nn.Module):
        size = fast.size

        def __init__(self):
            super().__init__()
            self.fast, self.batches = fast, []

        def forward(self, batch):
            self.batches.append(len(batch))
            if len(batch) > 1:
                raise OOM("CUDA out of memory")
            return self.fast(batch)

    network = OneAtATime()
    runner = NetworkRunner(network, "cpu", "fp32")
    with torch.inference_mode():  # what the runner does on a device, here on the CPU
        output = run_fitting(runner.run, x, 5, runner.device, "the network")
    assert (output - expected).abs().max().item() < 1e-5  # batched or alone: rounding only
    assert network.batches == [5, 2, 1, 1, 1, 1, 1]
    assert isinstance(fast, FastGPEN)
