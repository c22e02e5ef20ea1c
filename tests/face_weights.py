"""facexlib networks with local weights, for tests that must not download anything.

The detector is rigged: its heads ignore the image and report a face at every anchor of the
coarsest level, with landmarks laid out like a face inside each anchor box. The parser has
random weights: its masks are arbitrary but have the real shapes and code paths."""

import torch

from gpen_ext.face_models import build_detector_network, build_parser_network
from gpen_ext.faces import PARSERS

# Landmark offsets in units of 0.1 x anchor size (RetinaFace's landmark variance).
FACE_LAYOUT = [(-1.5, -1.0), (1.5, -1.0), (0.0, 0.5), (-1.2, 2.0), (1.2, 2.0)]


def rigged_mobilenet_detector():
    state = build_detector_network("retinaface_mobile0.25").state_dict()
    for key in state:
        if "Head" in key:
            state[key].zero_()
    for level in range(3):
        fires = level == 2
        state[f"ClassHead.{level}.conv1x1.bias"].copy_(
            torch.tensor([-8.0, 8.0] * 2 if fires else [8.0, -8.0] * 2))
        offsets = torch.tensor([c for point in FACE_LAYOUT for c in point])
        state[f"LandmarkHead.{level}.conv1x1.bias"].copy_(offsets.repeat(2))
    return state


def write_face_weights(folder):
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(rigged_mobilenet_detector(), folder / "detection_mobilenet0.25_Final.pth")
    for name, (filename, _) in PARSERS.items():
        torch.save(build_parser_network(name).state_dict(), folder / filename)
    return folder
