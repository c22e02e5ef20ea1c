"""facexlib's face detector and face parser, with weights from a models folder.

Weights are fetched with the verified downloader (temporary file, checked by loading them into
the network, then renamed), never by facexlib's own unverified download. facexlib is imported
on first use: it imports torchvision, which a bare command line may not need.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .checkpoints import CheckpointError, read_state_dict
from .download import download_file

FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download/"
DETECTORS = {
    "retinaface_resnet50": ("resnet50", "detection_Resnet50_Final.pth", "v0.1.0"),
    "retinaface_mobile0.25": ("mobile0.25", "detection_mobilenet0.25_Final.pth", "v0.1.0"),
}
PARSENET_FILE, PARSENET_RELEASE = "parsing_parsenet.pth", "v0.2.2"
PARSE_SIZE = 512
# CelebAMask-HQ classes that are not the face itself: background, neck, necklace, cloth,
# hair, hat. Pasting only the rest keeps the restorer off hair and clothes.
NOT_FACE_CLASSES = (0, 14, 15, 16, 17, 18)


class FaceModelError(RuntimeError):
    """facexlib or its weights are not usable; says what to fix."""


def _facexlib(module):
    try:
        return importlib.import_module(f"facexlib.{module}")
    except Exception as error:  # a missing package or a torchvision that does not match torch
        raise FaceModelError(f"face detection and parsing need facexlib (and a torchvision "
                             f"matching torch), which failed to import: {error}") from None


@dataclass
class DetectedFace:
    box: np.ndarray        # x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray  # 5 x 2, see alignment


def _load_weights(network, path):
    """Load a facexlib state dict strictly; raises CheckpointError for a wrong file."""
    state_dict = read_state_dict(path)
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    try:
        network.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit {type(network).__name__}: "
                              f"{str(error).splitlines()[0]}") from None
    return network


def _weights_file(filename, release, models_dir, build, download):
    path = Path(models_dir) / filename
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"{filename} is not in {models_dir}")
        download_file([FACEXLIB_RELEASES + f"{release}/{filename}"], path,
                      verify=lambda candidate: _load_weights(build(), candidate))
    return path


class FaceDetector:
    """RetinaFace with five landmarks per face."""

    def __init__(self, name, models_dir, device="cpu", download=True):
        if name not in DETECTORS:
            raise ValueError(f"unknown detection model '{name}': choose one of {list(DETECTORS)}")
        RetinaFace = _facexlib("detection.retinaface").RetinaFace
        network_name, filename, release = DETECTORS[name]
        build = lambda: RetinaFace(network_name=network_name, half=False, device="cpu")  # noqa: E731
        path = _weights_file(filename, release, models_dir, build, download)
        self.network = _load_weights(build(), path).eval()
        self.name = name
        self.move_to(device)

    def move_to(self, device):
        # facexlib's RetinaFace keeps its device and mean in attributes of its own
        self.network.device = torch.device(device)
        self.network.mean_tensor = self.network.mean_tensor.to(device)
        self.network.to(device)

    @torch.inference_mode()
    def detect(self, rgb, threshold=0.9, max_side=1280):
        """Faces in an RGB uint8 image, found on a copy no larger than `max_side`."""
        scale = min(1.0, max_side / max(rgb.shape[:2]))
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_AREA)
        rows = self.network.detect_faces(np.ascontiguousarray(small[:, :, ::-1]), threshold)
        return [DetectedFace(row[:4] / scale, float(row[4]), row[5:15].reshape(5, 2) / scale)
                for row in rows]


class FaceParser:
    """ParseNet segmentation of aligned face crops into face / not face."""

    def __init__(self, models_dir, device="cpu", download=True):
        ParseNet = _facexlib("parsing.parsenet").ParseNet
        build = lambda: ParseNet(in_size=PARSE_SIZE, out_size=PARSE_SIZE, parsing_ch=19)  # noqa: E731
        path = _weights_file(PARSENET_FILE, PARSENET_RELEASE, models_dir, build, download)
        self.network = _load_weights(build(), path).eval()
        self.move_to(device)

    def move_to(self, device):
        self.device = torch.device(device)
        self.network.to(self.device)

    @torch.inference_mode()
    def face_masks(self, crops):
        """(N, 512, 512) float masks, 1 on the face, for N RGB uint8 crops of any size."""
        batch = np.stack([cv2.resize(crop, (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_AREA)
                          if crop.shape[0] != PARSE_SIZE else crop for crop in crops])
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        classes = self.network(x)[0].argmax(dim=1).cpu().numpy()
        return (~np.isin(classes, NOT_FACE_CLASSES)).astype(np.float32)
