"""facexlib's BiSeNet as the light face parser: its fast path against facexlib's module (the
oracle), its input contract, its precision, and the pipeline and command line with it."""

import json

import numpy as np
import pytest
import torch

from gpen_ext import cli
from gpen_ext.arch.bisenet import IMAGENET_MEAN, IMAGENET_STD, FastBiSeNet
from gpen_ext.face_models import FaceModels, FaceParser, fast_parser_network
from gpen_ext.options import RestoreOptions

from helpers import random_bisenet


def facexlib_logits(network, x):
    """facexlib's main output for [-1, 1] input, normalised as facexlib's own parsing
    inference does for BiSeNet (ImageNet mean and deviation of [0, 1] RGB)."""
    mean, std = (torch.tensor(values)[:, None, None] for values in (IMAGENET_MEAN, IMAGENET_STD))
    return network(((x + 1) / 2 - mean) / std)[0]


@pytest.mark.parametrize("side", [512, 96])
def test_logits_match_facexlib_batched_and_face_by_face(side):
    network = random_bisenet()
    x = torch.rand(2, 3, side, side) * 2 - 1
    fast = FastBiSeNet(network)
    with torch.inference_mode():
        expected = facexlib_logits(network, x)
        batched = fast(x)
        alone = torch.cat([fast(x[i:i + 1]) for i in range(len(x))])
    assert batched.shape == expected.shape == (2, 19, side, side)
    for logits in (batched, alone):
        assert (logits - expected).abs().max().item() < 1e-4
        agree = (logits.argmax(dim=1) == expected.argmax(dim=1)).float().mean().item()
        assert agree >= 0.999  # random weights: near-ties


def test_bf16_keeps_the_logits_in_fp32_and_close(astronaut, astronaut_landmarks):
    """As for ParseNet: all but the logits in bf16 where the network runs so; the logits come
    out fp32, within 5% of their spread over the classes."""
    from gpen_ext.alignment import align_face
    parser = FaceParser(fast_parser_network("bisenet", random_bisenet()))
    crop = align_face(astronaut, astronaut_landmarks, 512)[0]
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.inference_mode():
        fp32, bf16 = (parser.precisions(x, precision) for precision in ("fp32", "bf16"))
    copy = parser.precisions.copy
    assert bf16.dtype == copy.logits.weight.dtype == torch.float32
    assert copy.stem.weight.dtype == torch.bfloat16
    assert (bf16 - fp32).abs().max().item() < 0.05 * fp32.std(dim=1).mean().item()


def test_the_pipeline_pastes_through_either_parser(face_weights, astronaut, astronaut_landmarks):
    """The same face, the same restored crop: only the mask's parser differs, each loaded
    once and kept."""
    from gpen_ext.pipeline import FaceRestorer
    from test_pipeline import IdentityNetwork
    models = FaceModels(face_weights, download=False)
    restorer = FaceRestorer(IdentityNetwork(512), models)
    results = {name: restorer.restore(astronaut, RestoreOptions(parser=name),
                                      landmarks=[astronaut_landmarks])
               for name in ("parsenet", "bisenet")}
    masks = {name: result.faces[0].mask for name, result in results.items()}
    assert all(mask.shape == (512, 512) for mask in masks.values())
    assert not np.array_equal(masks["parsenet"], masks["bisenet"])
    assert isinstance(models.parser("bisenet").network, FastBiSeNet)
    assert set(models.networks()) >= {"parser_parsenet", "parser_bisenet"}


def test_a_parser_is_a_choice_everywhere(face_weights, tmp_path, tiny_state_dict, astronaut,
                                         astronaut_landmarks, capsys):
    with pytest.raises(ValueError, match="parser must be one of parsenet, bisenet"):
        RestoreOptions(parser="segformer")
    with pytest.raises(ValueError, match="unknown face parser 'segformer'"):
        FaceModels(face_weights, download=False).parser("segformer")
    import cv2
    cv2.imwrite(str(tmp_path / "face.png"), astronaut[:, :, ::-1])
    (tmp_path / "faces.json").write_text(json.dumps([astronaut_landmarks.tolist()]))
    torch.save(tiny_state_dict, tmp_path / "tiny.pth")
    arguments = ["restore", str(tmp_path / "face.png"), "--model", str(tmp_path / "tiny.pth"),
                 "--models-dir", str(face_weights), "--landmarks", str(tmp_path / "faces.json"),
                 "--no-download"]
    assert cli.main([*arguments, "-o", str(tmp_path / "out"), "--parser", "bisenet"]) == 0
    assert (tmp_path / "out" / "face.png").is_file()
    with pytest.raises(SystemExit) as usage:
        cli.main([*arguments, "-o", str(tmp_path / "other"), "--parser", "segformer"])
    assert usage.value.code == 2 and "choose from 'parsenet', 'bisenet'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
