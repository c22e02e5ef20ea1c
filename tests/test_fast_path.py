"""The fast execution path against the straightforward network and the reference vectors."""

import pytest
import torch

from gpen_ext.arch.gpen.fast import FastGPEN, FastLevel
from gpen_ext.arch.gpen.to_rgb import upsample_rows
from gpen_ext.arch.gpen.network import GPEN, blur_kernel, upfirdn2d
from gpen_ext.checkpoints import load_model
from gpen_ext.inference import NetworkRunner, cpu_has_native_bf16

from helpers import PARITY_FILES, fast_path_for


@pytest.mark.parametrize("path", PARITY_FILES, ids=lambda p: p.stem)
def test_fast_path_matches_reference_vectors_batched_and_alone(path):
    vector, fast = fast_path_for(path)
    x = vector["input"]
    with torch.inference_mode():
        batched = fast(x)
        alone = torch.cat([fast(x[i:i + 1]) for i in range(len(x))])
    assert (batched - vector["output"]).abs().max().item() < 1e-4
    assert (alone - vector["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("size,multiplier,narrow,batch", [(32, 2, 0.125, 3), (128, 2, 0.0625, 2),
                                                          (64, 1, 0.25, 1)])
def test_fast_path_matches_the_network_on_random_weights(size, multiplier, narrow, batch):
    torch.manual_seed(size)
    network = GPEN(size, 32, 3, multiplier, narrow).eval()
    with torch.no_grad():  # non-trivial values everywhere, negative noise weights included
        for name, tensor in network.named_parameters():
            if name.endswith(("noise.weight", "bias")):
                tensor.uniform_(-0.5, 0.5)
    fast = FastGPEN(network)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.inference_mode():
        assert (fast(x) - network(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize("band_bytes", [1, 3000])
@pytest.mark.parametrize("path", PARITY_FILES, ids=lambda p: p.stem)
def test_row_bands_of_any_height_give_the_same_output(path, band_bytes, monkeypatch):
    """Large maps run a band of rows at a time: one row (two when upsampling) per band, and
    ragged bands, must reproduce the vectors, batched, with the inputs overwritten in place."""
    monkeypatch.setattr("gpen_ext.arch.bands.BAND_BYTES", band_bytes)
    vector, fast = fast_path_for(path)
    with torch.inference_mode():
        assert (fast(vector["input"]) - vector["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("winograd", [False, True], ids=["direct", "winograd"])
@pytest.mark.parametrize("band_bytes", [1, 3000, 8 << 20])
def test_top_level_in_bands_equals_it_layer_by_layer(band_bytes, winograd, monkeypatch):
    """The top level streams on the CPU (up-conv, conv and to-RGB a band at a time, its conv
    direct or on Winograd, whose tiles round a band's rows up); with that turned off, the
    same layers run one after the other over whole maps."""
    monkeypatch.setattr("gpen_ext.arch.bands.BAND_BYTES", band_bytes)
    vector, fast = fast_path_for(PARITY_FILES[0])
    fast.levels[-1].conv.winograd_on_cpu = winograd
    x = torch.rand(3, 3, fast.size, fast.size) * 2 - 1
    streamed = []
    original = FastLevel.streams
    monkeypatch.setattr(FastLevel, "streams",
                        lambda self, out: streamed.append(original(self, out)) or streamed[-1])
    with torch.inference_mode():
        in_bands = fast(x)
        monkeypatch.setattr(FastLevel, "streams", lambda self, out: False)
        layer_by_layer = fast(x)
    assert streamed == [True] * len(x)  # called on its own, the network takes a face at a time
    assert (in_bands - layer_by_layer).abs().max().item() < 1e-5


def test_skip_upsampling_equals_zero_insert_and_filter():
    rgb = torch.randn(2, 3, 33, 17)
    expected = upfirdn2d(rgb, blur_kernel(gain=4.0), up=2, pad=(2, 1))
    assert (upsample_rows(rgb, 0, 2 * rgb.shape[2]) - expected).abs().max().item() < 1e-5
    halves = [upsample_rows(rgb, 0, 5), upsample_rows(rgb, 5, 2 * rgb.shape[2])]
    assert torch.equal(torch.cat(halves, dim=2), upsample_rows(rgb, 0, 2 * rgb.shape[2]))


def test_load_model_gives_the_fast_path_by_default(tiny_parity, tiny_state_dict):
    fast, plain = load_model(tiny_state_dict), load_model(tiny_state_dict, fast=False)
    assert isinstance(fast, FastGPEN) and isinstance(plain, GPEN) and fast.size == plain.size == 64
    with torch.inference_mode():
        assert (fast(tiny_parity["input"]) - tiny_parity["output"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("path", PARITY_FILES, ids=lambda path: path.stem)
def test_bf16_stays_above_its_bound_against_fp32_on_every_parity_face(path):
    """Every face of every parity vector in bf16 against the reference's fp32 output (PSNR as
    images in [0, 1]): at least 45 dB where the CPU computes bf16 natively, the bound 'auto'
    is held to where it picks bf16; at least 44 dB where bf16 is emulated (AVX2 only: 44.8 at
    worst, measured), where auto never picks it and only a forced bf16 runs so."""
    parity = torch.load(path, weights_only=True)
    runner = NetworkRunner(load_model(parity["state_dict"]), "cpu", "bf16")
    to_image = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    mse = (to_image(runner(parity["input"])) - to_image(parity["output"])).pow(2).flatten(1)
    assert runner.precision == "bf16"
    bound = 45 if cpu_has_native_bf16() else 44
    assert (10 * torch.log10(1 / mse.mean(dim=1))).min().item() >= bound


def test_non_finite_reduced_precision_output_falls_back_to_fp32(tiny_parity):
    class OverflowsWhenReduced(torch.nn.Module):
        size = 64

        def forward(self, x):
            if x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
                return torch.full_like(x, float("inf"))
            return x * 0.5

    runner = NetworkRunner(OverflowsWhenReduced(), "cpu", "bf16")
    output = runner(tiny_parity["input"])
    assert torch.isfinite(output).all() and runner.precision == "fp32"
    assert torch.allclose(output, tiny_parity["input"] * 0.5)


def test_fp16_on_the_cpu_runs_in_fp32_with_a_warning(caplog):
    runner = NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "fp16")
    assert runner.precision == "fp32" and "fp16 is not supported on the CPU" in caplog.text
    with pytest.raises(ValueError, match="unknown precision"):
        NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "fp64")


@pytest.mark.parametrize("path", PARITY_FILES, ids=lambda p: p.stem)
def test_winograd_on_every_3x3_layer_matches_reference_vectors(path):
    vector, fast = fast_path_for(path)
    layers = [fast.conv1, *(level.conv for level in fast.levels)]
    for conv in layers:  # beyond where it pays, to check its arithmetic everywhere
        conv.winograd_on_cpu = True
    with torch.inference_mode():
        output = fast(vector["input"])
    assert all(conv._winograd_weight is not None for conv in layers)
    assert (output - vector["output"]).abs().max().item() < 1e-4


def test_winograd_is_chosen_for_wide_layers_on_large_maps():
    torch.manual_seed(0)
    network = GPEN(64, 32, 3, 1, 0.5).eval()  # 512 input channels at 32x32, 256 at 64x64
    fast = FastGPEN(network)
    chosen = [(8 << index, conv is level.conv) for index, level in enumerate(fast.levels)
              for conv in (level.up_conv, level.conv) if conv.winograd_on_cpu]
    assert chosen == [(32, True), (64, True)]  # the stride-1 layers at 32x32 and 64x64
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert (fast(x) - network(x)).abs().max().item() < 1e-4


def test_bf16_on_a_cpu_without_native_bf16_says_it_is_slow(monkeypatch, caplog):
    monkeypatch.setattr("gpen_ext.inference.cpu_has_native_bf16", lambda: False)
    NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "bf16")
    assert "no native bf16" in caplog.text and "slower than fp32" in caplog.text
    caplog.clear()
    monkeypatch.setattr("gpen_ext.inference.cpu_has_native_bf16", lambda: True)
    NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "bf16")
    assert "native bf16" not in caplog.text


@pytest.mark.parametrize("native, amx, vendor, expected", [
    (True, True, "GenuineIntel", "bf16"), (True, False, "AuthenticAMD", "bf16"),
    (True, False, "GenuineIntel", "fp32"), (True, False, "", "fp32"),
    (False, False, "AuthenticAMD", "fp32")])
def test_auto_is_bf16_where_the_cpu_computes_it_faster_than_fp32(
        native, amx, vendor, expected, real_cpu_auto_is_bf16, monkeypatch, caplog):
    """AMX, or AVX-512 BF16 on AMD (measured faster than fp32); not AVX-512 BF16 on Intel
    without AMX (measured slower), nor without native bf16. Decided by what the CPU is,
    never by a timing that load could flip: every process on a machine picks the same; said
    once in the log."""
    from gpen_ext import inference
    from gpen_ext.arch import cpu
    monkeypatch.setattr(inference, "cpu_auto_is_bf16", real_cpu_auto_is_bf16)
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(cpu, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(cpu, "cpu_vendor", lambda: vendor)
    real_cpu_auto_is_bf16.cache_clear()
    try:
        with caplog.at_level("INFO", logger="gpen_ext.arch.cpu"):
            precisions = [NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "auto").precision
                          for _ in range(3)]
        assert precisions == [expected] * 3
        assert caplog.text.count("precision auto on this CPU is") == 1
        assert NetworkRunner(GPEN(8, 8, 1, 1, 0.0625), "cpu", "fp32").precision == "fp32"
    finally:
        real_cpu_auto_is_bf16.cache_clear()


def test_auto_is_fp32_where_native_bf16_cannot_be_told(real_cpu_auto_is_bf16, monkeypatch):
    from gpen_ext.arch import cpu
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    real_cpu_auto_is_bf16.cache_clear()
    try:
        assert real_cpu_auto_is_bf16() is False
    finally:
        real_cpu_auto_is_bf16.cache_clear()


def test_amx_counts_only_where_onednn_may_use_it(monkeypatch):
    from gpen_ext.arch import cpu
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cpu.cpu_has_amx()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert not cpu.cpu_has_amx()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert cpu.cpu_has_amx()


def test_the_cpu_vendor_comes_from_the_platform_where_the_kernel_does_not_say(monkeypatch):
    from gpen_ext.arch import cpu
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    monkeypatch.setattr(cpu.platform, "processor",
                        lambda: "AMD64 Family 25 Model 17 Stepping 1, AuthenticAMD")
    assert cpu.cpu_vendor() == "AuthenticAMD"
