"""Reading checkpoint files safely and turning them into ready-to-run GPEN networks."""

import pickle
import zipfile
from pathlib import Path

import torch

from .arch.gpen.fast import FastGPEN
from .arch.gpen.loader import GPEN_STATE_DICT, NotGPENError, build_from_state_dict

# Containers that training code wraps the generator weights in, most specific first.
WRAPPER_KEYS = ("g_ema", "params_ema", "params", "state_dict", "model")
EXPECTED_LAYOUT = (f"{GPEN_STATE_DICT}, optionally wrapped under "
                   + ", ".join(f"'{key}'" for key in WRAPPER_KEYS))
DATA_PARALLEL_PREFIX = "module."


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what was expected and found."""


def read_state_dict(path):
    """Tensors of a checkpoint file, never unpickling anything but tensors and containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    kind = _container(path)
    if kind == "safetensors" or path.suffix.lower() == ".safetensors":
        return unwrap_state_dict(_read_safetensors(path), origin=str(path))
    if kind is None:
        raise CheckpointError(f"{path} is not a checkpoint: neither a PyTorch file (zip or "
                              f"pickle) nor safetensors")
    try:
        # torch.serialization.load, not torch.load, which hosts wrap: Forge turns every error
        # into "File corrupted" and renames the file, A1111 adds an unpickler of its own
        data = torch.serialization.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects other than tensors, which could "
            f"run code when unpickled ({_first_line(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {path}: truncated or not a PyTorch checkpoint "
                              f"({_first_line(error)})") from None
    return unwrap_state_dict(data, origin=str(path))


def _container(path):
    """What a file's first bytes say it is: "zip" (PyTorch's format since 1.6), "pickle" (its
    earlier one), "safetensors", or None."""
    with open(path, "rb") as stream:
        head = stream.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80":  # a pickle's protocol marker
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":  # a little-endian header length, then JSON
        return "safetensors"
    return None


def _read_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError:
        raise CheckpointError(f"{path} is a .safetensors file; install the 'safetensors' "
                              "package to load it") from None
    try:  # safe_open, not load_file, which Forge wraps (and renames the file on an error)
        with safe_open(str(path), framework="pt", device="cpu") as tensors:
            return {key: tensors.get_tensor(key) for key in tensors.keys()}
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"cannot read {path}: corrupt safetensors file "
                              f"({_first_line(error)})") from None


def unwrap_state_dict(data, origin="state dict"):
    """The flat name -> tensor mapping inside common training wrappers."""
    while isinstance(data, dict):
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(data.get(key), dict)), None)
        if wrapper is None:
            break
        data = data[wrapper]
    if not isinstance(data, dict) or not data:
        raise CheckpointError(f"{origin}: expected {EXPECTED_LAYOUT}, found "
                              f"{'an empty dict' if isinstance(data, dict) else type(data).__name__}")
    non_tensors = sorted(str(key) for key, value in data.items() if not torch.is_tensor(value))
    if non_tensors:
        raise CheckpointError(f"{origin}: expected {EXPECTED_LAYOUT}, found top-level entries "
                              f"that are not tensors: {non_tensors[:8]}")
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in data):  # saved from DataParallel
        data = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in data.items()}
    broken = sorted(key for key, value in data.items()
                    if value.is_floating_point() and not torch.isfinite(value).all())
    if broken:
        raise CheckpointError(f"{origin}: weights that are not finite (NaN or infinity) in "
                              f"{broken[:8]}: the file is damaged")
    return data


def load_model(source, device="cpu", dtype=torch.float32, fast=True):
    """A GPEN network in eval mode from a checkpoint path or a state dict.

    Every hyper-parameter is read from the tensors; the result has `size` and maps
    (N, 3, S, S) RGB in [-1, 1] to the same shape. `fast` gives the inference-only fast
    path (arch/gpen/fast.py); `fast=False` the straightforward network, in the released
    state-dict layout."""
    if isinstance(source, dict):
        state_dict, origin = unwrap_state_dict(source), "state dict"
    else:
        state_dict, origin = read_state_dict(source), str(source)
    try:
        model = build_from_state_dict(state_dict)
    except NotGPENError as error:
        raise CheckpointError(f"{origin}: {error}") from None
    model.requires_grad_(False)
    if fast:
        model = FastGPEN(model)
    return model.eval().to(device=device, dtype=dtype)


def verify_checkpoint(path):
    """Raise CheckpointError unless `path` is a loadable GPEN checkpoint; returns its size."""
    return load_model(path, fast=False).size


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
