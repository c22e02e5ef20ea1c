import os
import pickle

import pytest
import torch

from gpen_ext.checkpoints import CheckpointError, load_model, unwrap_state_dict


def save(tmp_path, data, name="model.pth"):
    path = tmp_path / name
    torch.save(data, path)
    return path


def same_output(model, vector):
    with torch.no_grad():
        output = model(vector["input"])
    return (output - vector["output"]).abs().max().item() < 1e-4


def test_loads_path_in_eval_mode_with_size(tmp_path, tiny_parity, tiny_state_dict):
    model = load_model(save(tmp_path, tiny_state_dict))
    assert model.size == 64 and not model.training
    assert same_output(model, tiny_parity)


@pytest.mark.parametrize("wrapper", ["g_ema", "params_ema", "params", "state_dict"])
def test_loads_wrapped_state_dicts(tmp_path, tiny_parity, tiny_state_dict, wrapper):
    data = {wrapper: tiny_state_dict, "iteration": torch.tensor(3)}
    assert same_output(load_model(save(tmp_path, data)), tiny_parity)


def test_loads_state_dict_objects_and_dataparallel_prefixes(tiny_parity, tiny_state_dict):
    prefixed = {"module." + key: value for key, value in tiny_state_dict.items()}
    assert same_output(load_model(prefixed), tiny_parity)


def test_loads_fp16_files_into_the_requested_dtype(tmp_path, tiny_state_dict):
    half = {key: value.half() for key, value in tiny_state_dict.items()}
    model = load_model(save(tmp_path, half), fast=False)
    assert next(model.parameters()).dtype == torch.float32
    assert load_model(half, dtype=torch.bfloat16, fast=False).final_linear[0].weight.dtype == \
        torch.bfloat16
    assert load_model(half, dtype=torch.bfloat16).final_weight.dtype == torch.bfloat16


def test_loads_files_without_blur_kernel_buffers(tiny_parity, tiny_state_dict):
    stripped = {k: v for k, v in tiny_state_dict.items() if not k.endswith("kernel")}
    assert len(stripped) < len(tiny_state_dict)
    assert same_output(load_model(stripped), tiny_parity)


def test_loads_safetensors(tmp_path, tiny_parity, tiny_state_dict):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "model.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in tiny_state_dict.items()}, str(path))
    assert same_output(load_model(path), tiny_parity)


class Payload:
    """Unpickling this runs code: the loader must refuse it before that happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_refuses_malicious_pickle_without_running_it(tmp_path, tiny_state_dict):
    marker = tmp_path / "pwned"
    path = save(tmp_path, {"state_dict": tiny_state_dict, "hook": Payload(marker)})
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError):
        load_model(raw)
    assert not marker.exists()


def test_empty_and_truncated_files_are_named(tmp_path, tiny_state_dict):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(empty)
    whole = save(tmp_path, tiny_state_dict).read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(truncated)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent.pth")


def test_other_models_are_rejected_with_the_expected_layout(tmp_path):
    other = {"conv_first.weight": torch.zeros(64, 3, 3, 3), "conv_first.bias": torch.zeros(64)}
    with pytest.raises(CheckpointError, match=r"not a GPEN checkpoint.*ecd0\.0\.0\.weight.*conv_first"):
        load_model(save(tmp_path, other))


def test_encoder_mapper_layout_is_explained(tmp_path):
    fake = {"encoder": {"conv.weight": torch.zeros(1)}, "mapper": {"w": torch.zeros(1)},
            "generator": {"w": torch.zeros(1)}, "args": {"lr": 0.1}}
    with pytest.raises(CheckpointError) as error:
        load_model(save(tmp_path, fake))
    message = str(error.value)
    assert "expected a GPEN generator state dict" in message
    assert "args" in message and "encoder" in message


def test_mismatched_and_missing_tensors_are_listed(tiny_state_dict):
    broken = dict(tiny_state_dict)
    broken["generator.convs.1.conv.weight"] = torch.zeros(1, 32, 63, 3, 3)
    del broken["generator.to_rgbs.0.bias"]
    broken["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        load_model(broken)
    message = str(error.value)
    assert "generator.convs.1.conv.weight: file (1, 32, 63, 3, 3), expected (1, 32, 64, 3, 3)" in message
    assert "missing keys: generator.to_rgbs.0.bias" in message
    assert "unexpected keys: extra.weight" in message


def test_non_tensor_entries_are_refused():
    with pytest.raises(CheckpointError, match="not tensors"):
        load_model({"ecd0.0.0.weight": [1, 2, 3]})
    with pytest.raises(CheckpointError, match="empty dict"):
        unwrap_state_dict({})


def test_weights_that_are_not_finite_are_refused_at_load(tmp_path, tiny_state_dict):
    damaged = dict(tiny_state_dict)
    damaged["generator.conv1.conv.weight"] = damaged["generator.conv1.conv.weight"].clone()
    damaged["generator.conv1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"not finite.*generator\.conv1\.conv\.weight"):
        load_model(save(tmp_path, damaged))


def forge_like_loader(original):
    """What Forge does to torch.load and safetensors' load_file: any error becomes a
    ValueError, and a file named by a str path is renamed to .corrupted."""
    def loader(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except Exception as error:
            for argument in list(args) + list(kwargs.values()):
                if isinstance(argument, str) and os.path.exists(argument):
                    os.replace(argument, argument + ".corrupted")
            raise ValueError(f"{error}\nFile corrupted") from None
    return loader


def test_under_forges_wrapped_loaders_files_are_named_right_and_left_alone(
        tmp_path, tiny_state_dict, monkeypatch):
    safetensors = pytest.importorskip("safetensors.torch")
    monkeypatch.setattr(torch, "load", forge_like_loader(torch.load))
    monkeypatch.setattr(safetensors, "load_file", forge_like_loader(safetensors.load_file))
    marker = tmp_path / "pwned"
    malicious = save(tmp_path, {"state_dict": tiny_state_dict, "hook": Payload(marker)})
    with pytest.raises(CheckpointError, match="could run code"):
        load_model(str(malicious))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        load_model(str(corrupt))
    assert malicious.exists() and corrupt.exists() and not marker.exists()
    assert not list(tmp_path.glob("*.corrupted"))


def test_a_file_that_is_no_checkpoint_at_all_is_called_that(tmp_path):
    (tmp_path / "notes.pth").write_text("a few bytes of text")
    with pytest.raises(CheckpointError, match="is not a checkpoint: neither a PyTorch") as error:
        load_model(tmp_path / "notes.pth")
    assert "Python objects" not in str(error.value)
