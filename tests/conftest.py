"""Fixtures shared by the tests; helpers live in helpers.py."""

import json

import numpy as np
import pytest
import torch

from helpers import DATA, REFERENCE


@pytest.fixture(scope="session")
def tiny_parity():
    return torch.load(DATA / "gpen_parity_tiny64.pt", weights_only=True)


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_parity):
    return tiny_parity["state_dict"]


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_landmarks():
    if (REFERENCE / "alignment.json").is_file():
        example = json.loads((REFERENCE / "alignment.json").read_text())["example"]
        return np.array(example["landmarks"])
    return np.array(json.loads((DATA / "astronaut_landmarks.json").read_text()))


@pytest.fixture(scope="session")
def face_weights(tmp_path_factory):
    from face_weights import write_face_weights
    return write_face_weights(tmp_path_factory.mktemp("facexlib"))
