"""Shared fixtures and helpers for the tests."""

import json
from pathlib import Path

import pytest
import torch

import torchvision_fallback  # noqa: F401  (before anything imports facexlib)

HERE = Path(__file__).parent
DATA = HERE / "data"
SHARED = HERE.parent.parent / "shared"
REFERENCE = SHARED / "reference"


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
