import pytest
import torch

from gpen_ext.arch.gpen.loader import GPENConfig, infer_config
from gpen_ext.arch.gpen.network import GPEN

from helpers import PARITY_FILES, REFERENCE, RELEASES, network_for, reference_manifest


@pytest.mark.parametrize("path", PARITY_FILES, ids=lambda p: p.stem)
def test_matches_reference_output(path):
    vector = torch.load(path, weights_only=True)
    model = network_for(vector)
    with torch.no_grad():
        output = model(vector["input"])
    assert (output - vector["output"]).abs().max().item() < 1e-4


def test_every_parity_vector_is_exercised():
    assert any(p.name == "gpen_parity_tiny64.pt" for p in PARITY_FILES)
    if REFERENCE.is_dir():
        assert len(PARITY_FILES) == len(list(REFERENCE.glob("gpen_parity_*.pt")))


@pytest.mark.parametrize("size", sorted(RELEASES))
def test_state_dict_layout_is_the_released_one(size):
    ours = {k: list(v.shape) for k, v in RELEASES[size].build().state_dict().items()}
    assert ours == reference_manifest(size)


@pytest.mark.parametrize("size", sorted(RELEASES))
def test_hyper_parameters_are_read_from_tensor_shapes(size):
    manifest = reference_manifest(size)
    shapes_only = {key: torch.empty(shape, device="meta") for key, shape in manifest.items()}
    assert infer_config(shapes_only) == RELEASES[size]


def test_small_configurations_are_recognised(tiny_parity):
    config = tiny_parity["config"]
    assert infer_config(tiny_parity["state_dict"]) == GPENConfig(
        config["size"], config["style_dim"], config["n_mlp"], config["channel_multiplier"],
        config["narrow"])


def test_output_depends_on_each_sample_alone(tiny_parity):
    model = network_for(tiny_parity)
    x = tiny_parity["input"]
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    assert (together - alone).abs().max().item() < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_runs_close_to_fp32(tiny_parity, dtype):
    model = network_for(tiny_parity)
    with torch.no_grad():
        reference = model(tiny_parity["input"])
        reduced = model.to(dtype)(tiny_parity["input"].to(dtype)).float()
    assert torch.isfinite(reduced).all()
    assert (reduced - reference).abs().mean().item() < 0.05


def test_rejects_sizes_that_are_not_released_shapes():
    with pytest.raises(ValueError, match="power of two"):
        GPEN(500)
