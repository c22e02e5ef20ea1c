"""facexlib's detector and parser as the pipeline gets them."""

import subprocess
import sys

import pytest
import torch

from gpen_ext.face_models import FaceModelError, FaceModels
from gpen_ext.torchvision_ops import nms

from helpers import ROOT


def test_facexlib_imports_in_a_fresh_process_whatever_torchvision_is():
    """Beside a CPU-only torch the PyPI torchvision cannot load its compiled operators; the
    detector and parser must import anyway (and, with a matching pair, use the real ones)."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from gpen_ext.face_models import facexlib_module\n"
            "facexlib_module('detection.retinaface'); facexlib_module('parsing.parsenet')\n"
            "import torch, torchvision\n"
            "boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])\n"
            "print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())"
            % str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 2]"


def test_cpu_nms_keeps_the_best_of_each_overlapping_group():
    torch.manual_seed(0)
    corners = torch.rand(200, 2) * 100
    boxes = torch.cat([corners, corners + torch.rand(200, 2) * 30 + 1], dim=1)
    scores = torch.rand(200)
    kept = nms(boxes, scores, 0.4).tolist()
    assert kept == sorted(kept, key=lambda i: -scores[i].item())  # best first
    for position, i in enumerate(kept):  # no two kept boxes overlap beyond the threshold
        for j in kept[position + 1:]:
            top_left = torch.maximum(boxes[i, :2], boxes[j, :2])
            bottom_right = torch.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = (bottom_right - top_left).clamp(min=0).prod()
            area = lambda k: (boxes[k, 2:] - boxes[k, :2]).prod()  # noqa: E731
            assert inter / (area(i) + area(j) - inter) <= 0.4
    suppressed = set(range(200)) - set(kept)  # each suppressed box overlaps a better kept one
    assert suppressed and all(any(scores[k] >= scores[s] for k in kept) for s in suppressed)


def test_missing_weights_with_downloads_off_say_what_to_do(tmp_path):
    models = FaceModels(tmp_path, download=False)
    with pytest.raises(FaceModelError) as error:
        models.parser()
    message = str(error.value)
    assert "parsing_parsenet.pth" in message and str(tmp_path) in message
    assert "https://github.com/xinntao/facexlib/releases/download/" in message
    with pytest.raises(FaceModelError, match="detection_Resnet50_Final.pth"):
        models.detector("retinaface_resnet50")
