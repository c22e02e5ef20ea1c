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


@pytest.fixture(scope="session")
def real_cpu_auto_is_bf16():
    from gpen_ext import inference
    return inference.cpu_auto_is_bf16


@pytest.fixture(autouse=True)
def auto_precision_is_fp32(real_cpu_auto_is_bf16, monkeypatch):
    """'auto' picks bf16 on CPUs with native bf16 (inference.cpu_auto_is_bf16): pinned to fp32
    so that outputs compared with fp32 oracles do not depend on the machine's CPU. Tests of
    the choice itself set it as they need."""
    monkeypatch.setattr("gpen_ext.inference.cpu_auto_is_bf16", lambda: False)
