"""Shared fixtures. Also makes facexlib importable on a CPU-only torch whose torchvision
wheel was built for CUDA: its compiled `torchvision::nms` is then missing, so a pure-PyTorch
one is registered, only in that case."""

import json
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
DATA = HERE / "data"
SHARED = HERE.parent.parent / "shared"
REFERENCE = SHARED / "reference"


def _nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep, suppressed = [], torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[:, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _torchvision_ops_work():
    try:
        return torch.ops.torchvision.nms is not None
    except (AttributeError, RuntimeError):
        return False


def _provide_cpu_nms():
    """Declare the ops torchvision registers fake kernels for at import, give `nms` a CPU
    kernel, and tell torchvision that its ops are available."""
    library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.impl("nms", _nms, "CPU")
    import torchvision.extension
    torchvision.extension._has_ops = lambda: True
    return library


def _import_torchvision():
    try:
        import torchvision  # noqa: F401  (loads the compiled ops when they match torch)
    except RuntimeError:
        pass  # a wheel built against another torch: fall back to the CPU nms below
    if not _torchvision_ops_work():
        import sys
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        return _provide_cpu_nms()
    return None


_TORCHVISION_FALLBACK = _import_torchvision()


@pytest.fixture(scope="session")
def tiny_parity():
    return torch.load(DATA / "gpen_parity_tiny64.pt", weights_only=True)


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_parity):
    return tiny_parity["state_dict"]


def reference_manifest(size):
    """Released checkpoint layout: key -> shape list."""
    lines = (DATA / f"keys_GPEN-BFR-{size}.txt").read_text().splitlines()
    return {key: json.loads(shape) for key, shape in (line.split("\t") for line in lines)}


class IdentityNetwork(torch.nn.Module):
    """Returns its input: what the pipeline does around the network must then change nothing."""

    def __init__(self, size=512):
        super().__init__()
        self.size = size

    def forward(self, x):
        return x.clone()


class CountingNetwork(IdentityNetwork):
    """Identity that records the batch sizes it was called with."""

    def __init__(self, size=512, transform=None):
        super().__init__(size)
        self.batches = []
        self.transform = transform

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.transform(x) if self.transform else x.clone()


def psnr(a, b, peak=255.0):
    import numpy as np
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_landmarks():
    import numpy as np
    if (REFERENCE / "alignment.json").is_file():
        example = json.loads((REFERENCE / "alignment.json").read_text())["example"]
        return np.array(example["landmarks"])
    return np.array(json.loads((DATA / "astronaut_landmarks.json").read_text()))


@pytest.fixture(scope="session")
def face_weights(tmp_path_factory):
    from face_weights import write_face_weights
    return write_face_weights(tmp_path_factory.mktemp("facexlib"))
