"""facexlib's face detector and face parser, with weights from a models folder.

Weights are fetched with the verified downloader (temporary file, checked by loading them into
the network, then renamed), never by facexlib's own unverified download. facexlib is imported
on first use: it imports torchvision, which a bare command line may not need.
"""

import functools
import importlib
import warnings
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch

from .arch.bisenet import FastBiSeNet
from .arch.cpu import map_faces, threads_for_one
from .arch.interrupts import interruptible
from .arch.parsenet import FastParseNet
from .checkpoints import CheckpointError, read_state_dict
from .device_memory import REDUCED_DTYPES, Precisions, placed, run_fitting
from .download import DownloadError, download_file
from .faces import (DEFAULT_REGIONS, DETECTORS, FACE_REGIONS, FACEXLIB_RELEASES, PARSE_SIZE,
                    PARSERS, DetectedFace)
from .torchvision_ops import provide_cpu_nms

class FaceModelError(RuntimeError):
    """facexlib or its weights are not usable; says what to fix."""


def facexlib_module(module):
    try:
        return importlib.import_module(f"facexlib.{module}")
    except ImportError as error:
        raise FaceModelError(f"face detection and parsing need facexlib: pip install facexlib "
                             f"({error})") from None
    except RuntimeError as error:  # a torchvision built for another torch
        if not provide_cpu_nms():
            raise FaceModelError(f"face detection and parsing need a torchvision that matches "
                                 f"torch {torch.__version__}: {error}") from None
    return importlib.import_module(f"facexlib.{module}")


def _load_weights(network, path):
    """Load a facexlib state dict strictly; raises CheckpointError for a wrong file."""
    state_dict = read_state_dict(path)  # unwrapped, DataParallel's prefix stripped
    try:
        network.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit {type(network).__name__}: "
                              f"{str(error).splitlines()[0]}") from None
    return network


def build_detector_network(name):
    network_name = DETECTORS[name][0]
    RetinaFace = facexlib_module("detection.retinaface").RetinaFace
    with warnings.catch_warnings():  # torchvision's notes on facexlib's outdated arguments
        warnings.simplefilter("ignore", UserWarning)
        return RetinaFace(network_name=network_name, half=False, device="cpu")


def build_parser_network(name="parsenet", size=PARSE_SIZE):
    """facexlib's parser `name` (19 CelebAMask-HQ classes); ParseNet released at PARSE_SIZE
    (BiSeNet takes any size)."""
    if name == "bisenet":
        return facexlib_module("parsing.bisenet").BiSeNet(num_class=19)
    ParseNet = facexlib_module("parsing.parsenet").ParseNet
    return ParseNet(in_size=size, out_size=size, parsing_ch=19)


def fast_parser_network(name, network):
    """The fast path of a loaded facexlib parser (arch/), which computes its logits from
    [-1, 1] input."""
    return (FastBiSeNet if name == "bisenet" else FastParseNet)(network.eval()).eval()


class FaceModels:
    """facexlib's detectors and parser for a pipeline: their weights found in one folder (and
    downloaded there, verified, if allowed), each loaded on first use, all on one device."""

    def __init__(self, folder, download=True, device="cpu"):
        self.folder = Path(folder)
        self.download = download
        self.device = torch.device(device)
        self._detectors = {}
        self._parsers = {}

    def detector(self, name):
        if name not in DETECTORS:
            raise ValueError(f"unknown detection model '{name}': choose one of {list(DETECTORS)}")
        if name not in self._detectors:
            _, filename, release = DETECTORS[name]
            build = lambda: build_detector_network(name)  # noqa: E731
            self._detectors[name] = FaceDetector(
                name, _load_weights(build(), self.weights(filename, release, build)), self.device)
        return self._detectors[name]

    def parser(self, name="parsenet"):
        if name not in PARSERS:
            raise ValueError(f"unknown face parser '{name}': choose one of {list(PARSERS)}")
        if name not in self._parsers:
            build = functools.partial(build_parser_network, name)
            network = _load_weights(build(), self.weights(*PARSERS[name], build))
            self._parsers[name] = FaceParser(fast_parser_network(name, network), self.device)
        return self._parsers[name]

    def fetch(self, options, detecting=True):
        """The weights files that `options` need (the detector's, if detecting; the parser's
        for the parsing mask), in the folder; nothing is loaded."""
        if detecting:
            _, filename, release = DETECTORS[options.detection_model]
            self.weights(filename, release, lambda: build_detector_network(
                options.detection_model))
        if options.mask == "parsing":
            self.weights(*PARSERS[options.parser],
                         functools.partial(build_parser_network, options.parser))

    def load_installed(self, options):
        """Load the detector and the parser `options` name where their weights are already in
        the folder, nothing downloaded: ready before a first image needs them."""
        _, filename, _ = DETECTORS[options.detection_model]
        if (self.folder / filename).is_file():
            self.detector(options.detection_model)
        if (self.folder / PARSERS[options.parser][0]).is_file():
            self.parser(options.parser)

    def weights(self, filename, release, build):
        """The weights file, downloaded if missing and allowed (checked by loading it into
        a freshly built network before it is renamed into place)."""
        path = self.folder / filename
        if path.is_file():
            return path
        url = FACEXLIB_RELEASES + f"{release}/{filename}"
        if not self.download:
            raise FaceModelError(f"{filename} is not in {self.folder} and downloads are off: "
                                 f"download it from {url} and place it there")
        try:
            return download_file([url], path,
                                 verify=lambda candidate: _load_weights(build(), candidate))
        except DownloadError as error:
            raise FaceModelError(str(error)) from None

    def networks(self):
        """The networks loaded so far, by name."""
        return {**{f"detector_{name}": detector.network
                   for name, detector in self._detectors.items()},
                **{f"parser_{name}": parser.network for name, parser in self._parsers.items()}}

    def move_to(self, device):
        self.device = torch.device(device)
        for model in [*self._detectors.values(), *self._parsers.values()]:
            model.move_to(self.device)


class FaceDetector:
    """RetinaFace with five landmarks per face."""

    def __init__(self, name, network, device="cpu"):
        self.network = interruptible(network.eval())
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
        height, width = rgb.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # a sliver too
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        across, down = size[0] / width, size[1] / height
        with threads_for_one() if self.network.device.type == "cpu" else nullcontext():
            rows = self.network.detect_faces(np.ascontiguousarray(small[:, :, ::-1]), threshold)
        return [DetectedFace(row[:4] / [across, down, across, down], float(row[4]),
                             row[5:15].reshape(5, 2) / [across, down]) for row in rows]


class FaceParser:
    """Segmentation of aligned face crops into face / not face, through a parser's fast path
    (arch/parsenet.py, arch/bisenet.py: [-1, 1] in, logits out)."""

    def __init__(self, network, device="cpu"):
        self.network = interruptible(network)
        # in a reduced precision, the logits stay fp32: each pixel's class is their argmax
        self.precisions = Precisions(self.network, kept_fp32=("logits",))
        self.move_to(device)

    def move_to(self, device):
        self.device = torch.device(device)
        self.network.to(self.device)
        self.precisions.forget()

    @torch.inference_mode()
    def face_masks(self, crops, regions=DEFAULT_REGIONS, precision="fp32", step_plan=None):
        """(N, 512, 512) float masks, 1 on the chosen FACE_REGIONS, for N RGB uint8 crops of
        any size; computed in `precision` (the network's: bf16 or fp16 but for the logits,
        which are fp32), or in fp32 where that gives no finite logits; on the CPU as
        `step_plan` (arch.cpu.CpuPlan) says."""
        batch = np.stack([cv2.resize(crop, (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_AREA)
                          if crop.shape[0] != PARSE_SIZE else crop for crop in crops])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        run = functools.partial(self.run, precision=precision)
        classes = map_faces(run, x, step_plan) if self.device.type == "cpu" else \
            run_fitting(run, x, len(x), self.device, "the face parser")
        classes = classes.numpy()
        wanted = [number for region in regions for number in FACE_REGIONS[region]]
        return np.isin(classes, wanted).astype(np.float32)

    def run(self, batch, where="device", precision="fp32"):
        """The class of every pixel (uint8) for a batch of parser inputs (see run_fitting)."""
        with placed(self.network, self.device, where) as device:
            precision = precision if device == self.device else "fp32"
            logits = self.precisions(batch.to(device), precision)
            if precision in REDUCED_DTYPES and not torch.isfinite(logits).all():
                logits = self.network(batch.to(device))  # fp32
            return logits.argmax(dim=1).to(torch.uint8).cpu()
