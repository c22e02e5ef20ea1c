"""Recognise a GPEN state dict and rebuild its network from tensor shapes alone."""

import re

from .config import GPENConfig, channels_for

# Keys every GPEN checkpoint has, whatever its size: enough to tell it from other models.
SIGNATURE_KEYS = ("ecd0.0.0.weight", "final_linear.0.weight", "generator.input.input",
                  "generator.conv1.conv.weight", "generator.to_rgb1.conv.weight")
GPEN_STATE_DICT = ("a GPEN generator state dict (keys such as " + ", ".join(SIGNATURE_KEYS[:3])
                   + ")")

# Channels per resolution before the multiplier; resolutions from 64 up carry it.
_MULTIPLIED_FROM = 64


class NotGPENError(ValueError):
    """The tensors do not form a GPEN generator; the message says what differs."""


def is_gpen_state_dict(state_dict):
    return all(key in state_dict for key in SIGNATURE_KEYS)


def _shape(state_dict, key):
    return tuple(state_dict[key].shape)


def infer_config(state_dict):
    """Read size, style dim, mapping depth, channel multiplier and narrow from the tensors."""
    if not is_gpen_state_dict(state_dict):
        missing = [key for key in SIGNATURE_KEYS if key not in state_dict]
        raise NotGPENError(f"not a GPEN checkpoint: expected {GPEN_STATE_DICT}; "
                           f"missing {missing}; found {_summarise_keys(state_dict)}")
    stages = [int(m.group(1)) for key in state_dict if (m := re.match(r"ecd(\d+)\.", key))]
    size = 2 ** (max(stages) + 2)
    style_dim = _shape(state_dict, "final_linear.0.weight")[0]
    n_mlp = sum(1 for key in state_dict if re.fullmatch(r"generator\.style\.\d+\.weight", key))
    narrow = _shape(state_dict, "generator.input.input")[1] / 512
    channel_multiplier = 1
    if size >= _MULTIPLIED_FROM:
        full_size_channels = _shape(state_dict, "ecd0.0.0.weight")[0]
        unmultiplied = channels_for(size, 1, 1.0)[size] * narrow
        channel_multiplier = max(1, round(full_size_channels / unmultiplied))
    return GPENConfig(size, style_dim, n_mlp, channel_multiplier, narrow)


def build_from_state_dict(state_dict):
    """A GPEN network carrying these weights; strict on names and shapes.

    Blur/upsample kernels are fixed buffers that some files omit: the network's own are used
    then. Anything else missing, extra or mis-shaped is reported in one NotGPENError."""
    config = infer_config(state_dict)
    if not 8 <= config.size <= 2048:
        raise NotGPENError(f"GPEN checkpoint with an unsupported size {config.size}")
    model = config.build()
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    missing = [key for key in expected if key not in state_dict and key not in buffers]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [f"{key}: file {_shape(state_dict, key)}, expected {tuple(expected[key].shape)}"
                  for key in expected
                  if key in state_dict and _shape(state_dict, key) != tuple(expected[key].shape)]
    if missing or unexpected or mismatched:
        details = "; ".join(f"{label}: {_clip(items)}" for label, items in
                            (("missing keys", missing), ("unexpected keys", unexpected),
                             ("mismatched shapes", mismatched)) if items)
        raise NotGPENError(f"checkpoint looks like GPEN-{config.size} but does not match its "
                           f"layout ({details})")
    full = {key: state_dict.get(key, expected[key]) for key in expected}
    model.load_state_dict({key: value.float() for key, value in full.items()}, strict=True)
    return model


def _clip(items, limit=6):
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _summarise_keys(state_dict):
    keys = list(state_dict)
    if not keys:
        return "an empty dict"
    return f"{len(keys)} keys: {_clip(keys, limit=5)}"
