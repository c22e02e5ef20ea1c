"""What a face is before any network runs, with no torch: facexlib's models by name, a face
found (DetectedFace), how faces are numbered (left to right) and sized. The face models
themselves (face_models.py) and every layer that only handles faces (tracking, scheduling,
landmarks, compositing, options) take these from here.
"""

from dataclasses import dataclass

import numpy as np

FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download/"
DETECTORS = {
    "retinaface_resnet50": ("resnet50", "detection_Resnet50_Final.pth", "v0.1.0"),
    "retinaface_mobile0.25": ("mobile0.25", "detection_mobilenet0.25_Final.pth", "v0.1.0"),
}
# facexlib's face parsers: (weights file, release). ParseNet is the official GPEN pipeline's;
# BiSeNet (ResNet-18), facexlib's own default, costs about a seventeenth of it at 512.
PARSERS = {"parsenet": ("parsing_parsenet.pth", "v0.2.2"),
           "bisenet": ("parsing_bisenet.pth", "v0.2.0")}
PARSE_SIZE = 512
# The parsers' CelebAMask-HQ classes (both in one order), grouped as a user names the parts of
# a face (background, cloth and hat are never pasted). The default is the face itself, as the
# official pipeline pastes it: hair and neck keep their own pixels.
FACE_REGIONS = {"skin": (1,), "brows": (2, 3), "eyes": (4, 5, 6), "ears": (7, 8, 9),
                "nose": (10,), "mouth": (11, 12, 13), "neck": (14, 15), "hair": (17,)}
DEFAULT_REGIONS = ("skin", "brows", "eyes", "ears", "nose", "mouth")


@dataclass
class DetectedFace:
    box: np.ndarray        # x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray  # 5 x 2, see alignment


def left_to_right(items, box=lambda item: item.box):
    """`items` in the order faces are numbered: left to right by the centres of their boxes."""
    return sorted(items, key=lambda item: box(item)[0] + box(item)[2])


def face_side(box):
    """The shorter side of a face box, in pixels."""
    return min(box[2] - box[0], box[3] - box[1])
