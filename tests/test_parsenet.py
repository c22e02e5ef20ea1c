"""The parser's fast path against facexlib's ParseNet, the oracle."""

import pytest
import torch

from gpen_ext.arch.parsenet import FastParseNet
from gpen_ext.faces import DEFAULT_REGIONS, FACE_REGIONS

from helpers import random_parsenet


def face_mask(logits):
    classes = logits.argmax(dim=1)
    face = [number for region in DEFAULT_REGIONS for number in FACE_REGIONS[region]]
    return torch.isin(classes, torch.tensor(face))


@pytest.fixture(scope="module")
def parsenet_512():
    network = random_parsenet(512)
    x = torch.rand(2, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        return network, x, network(x)[0]


@pytest.mark.slow
def test_logits_and_masks_match_facexlib_batched_and_face_by_face(parsenet_512):
    network, x, expected = parsenet_512
    fast = FastParseNet(network)
    with torch.inference_mode():
        batched = fast(x)
        alone = torch.cat([fast(x[i:i + 1]) for i in range(len(x))])
    for logits in (batched, alone):
        assert (logits - expected).abs().max().item() < 1e-4
        agree = (face_mask(logits) == face_mask(expected)).float().mean().item()
        assert agree >= 0.999


@pytest.mark.parametrize("band_bytes", [1, 3000])
def test_bands_of_any_height_give_the_same_logits(band_bytes, monkeypatch):
    """Direct layers run a band of rows at a time (one row per band at 1 byte); the Winograd
    layers keep their own bands, checked in test_winograd.py."""
    monkeypatch.setattr("gpen_ext.arch.bands.BAND_BYTES", band_bytes)
    network = random_parsenet(128, seed=1)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.inference_mode():
        assert (FastParseNet(network)(x) - network(x)[0]).abs().max().item() < 1e-4


def test_the_512_network_runs_winograd_and_direct_layers(parsenet_512, monkeypatch):
    """At 512 the wide layers on maps of 64x64 or more go through Winograd with reflection
    padding (upsampling blocks' second conv writing over their shortcut); the rest direct."""
    from gpen_ext.arch import winograd
    calls = []
    original = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda *a, **k: calls.append(
        (a[0].shape[1], k["padding"], k["residual"] is not None)) or original(*a, **k))
    network, x, expected = parsenet_512
    with torch.inference_mode():
        assert (FastParseNet(network)(x[:1]) - expected[:1]).abs().max().item() < 1e-4
    assert {padding for _, padding, _ in calls} == {"reflect"}
    assert {64, 128} <= {size for size, _, _ in calls}
    assert any(residual for *_, residual in calls)


def test_bf16_changes_a_class_only_where_fp32_nearly_ties(astronaut, astronaut_landmarks):
    """bf16 (what 'auto' picks on a CPU where it pays) runs all but the logits in 16 bits.
    The logits come out fp32 and within 5% of their spread over the classes, and a pixel
    changes class only where fp32's two best classes are closer than that error: masks move
    at region borders, never inside a region. (Random weights with the last layer scaled up,
    so that the crop parses into several regions with many near-ties.)"""
    from gpen_ext.alignment import align_face
    from gpen_ext.face_models import FaceParser, fast_parser_network
    network = random_parsenet(512)
    with torch.no_grad():
        network.out_mask_conv.conv2d.weight.mul_(10)
    crop = align_face(astronaut, astronaut_landmarks, 512)[0]
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    parser = FaceParser(fast_parser_network("parsenet", network))
    with torch.inference_mode():
        fp32, bf16 = (parser.precisions(x, precision) for precision in ("fp32", "bf16"))
    copy = parser.precisions.copy
    assert bf16.dtype == copy.logits.weight.dtype == torch.float32
    assert copy.decoder[0].weight.dtype == torch.bfloat16
    error = (bf16 - fp32).abs().max().item()
    assert error < 0.05 * fp32.std(dim=1).mean().item()
    best_two = fp32.topk(2, dim=1).values
    changed = bf16.argmax(dim=1) != fp32.argmax(dim=1)
    assert len(fp32.argmax(dim=1).unique()) > 1 and changed.any()
    assert (best_two[:, 0] - best_two[:, 1])[changed].max().item() <= 2 * error
