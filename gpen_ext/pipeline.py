"""A whole photo in, a restored photo out: detect, align, restore in batches, paste back.

Data flows one way: faces (found or supplied) -> selection -> aligned crops -> network in
batches -> crop-space blending (weight, smoothing, colour) -> paste masks -> composite over
the original, region by region. Nothing here knows about any host.
"""

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from .alignment import TEMPLATES, align_face, invert_affine, similarity_transform, template_points
from .checkpoints import load_model
from .download import ensure_model
from .face_models import DETECTORS, PARSE_SIZE, DetectedFace, FaceDetector, FaceParser
from .images import FULL_SCALE, merge_image, split_image, to_dtype
from .inference import NetworkRunner

SELECTIONS = ("all", "largest", "center", "index")
MASKS = ("parsing", "box")
SMALL_FACE_PX = 100  # the official pipeline smooths faces whose box is smaller than this
SMALL_FACE_KERNEL = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
# Paste mask geometry, defined on a 512 crop and scaled: a feathered square inside the crop.
MASK_BORDER_PX, MASK_FEATHER_SIGMA, PARSE_FEATHER_SIGMA = 26, 11.0, 4.0
COLOUR_GRID = 32  # colour correction works on this many cells across the crop


@dataclass(frozen=True)
class RestoreOptions:
    weight: float = 1.0            # restored vs aligned input, in crop space (official alpha)
    visibility: float = 1.0        # result vs original, over the whole image
    template: str = "gpen"
    selection: str = "all"
    face_indices: tuple = ()       # with selection "index": positions in left-to-right order
    min_face_size: int = 0         # pixels, shorter side of the face box
    max_faces: int = 0             # 0: no limit; otherwise the largest ones
    detection_model: str = "retinaface_resnet50"
    detection_threshold: float = 0.9
    detection_max_side: int = 1280
    mask: str = "parsing"
    color_correction: bool = False
    small_face_smoothing: bool = True
    batch_size: int = 4
    keep_crops: bool = True        # put aligned/restored crops in the face records

    def __post_init__(self):
        checks = [
            (0.0 <= self.weight <= 1.0, f"weight must be in [0, 1], got {self.weight}"),
            (0.0 <= self.visibility <= 1.0, f"visibility must be in [0, 1], got {self.visibility}"),
            (self.template in TEMPLATES, f"template must be one of {TEMPLATES}"),
            (self.selection in SELECTIONS, f"selection must be one of {SELECTIONS}"),
            (self.selection != "index" or len(self.face_indices) > 0,
             "selection 'index' needs face_indices"),
            (all(int(i) >= 0 for i in self.face_indices), "face indices start at 0"),
            (self.min_face_size >= 0 and self.max_faces >= 0,
             "min_face_size and max_faces cannot be negative"),
            (self.detection_model in DETECTORS, f"detection_model must be one of {list(DETECTORS)}"),
            (0.0 < self.detection_threshold < 1.0, "detection_threshold must be in (0, 1)"),
            (self.detection_max_side >= 64, "detection_max_side must be at least 64"),
            (self.mask in MASKS, f"mask must be one of {MASKS}"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class FaceRecord:
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    aligned: np.ndarray = None   # RGB uint8 crop given to the network
    restored: np.ndarray = None  # RGB uint8 crop after blending, before pasting


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list = field(default_factory=list)
    found: int = 0  # faces detected or supplied, before selection

    @property
    def message(self):
        if not self.found:
            return "no faces found; image unchanged"
        if not self.faces:
            return f"{self.found} face(s) found, none selected; image unchanged"
        return f"restored {len(self.faces)} of {self.found} face(s)"


class FaceRestorer:
    """The GPEN face pipeline around one network. Detector and parser load on first use."""

    def __init__(self, network, face_models_dir, device="cpu", precision="auto", download=True):
        self.runner = NetworkRunner(network, device, precision)
        self.size = self.runner.size
        self.face_models_dir = face_models_dir  # facexlib detection and parsing weights
        self.download = download
        self._detectors = {}
        self._parser = None

    @classmethod
    def from_model(cls, model, models_dir, device="cpu", precision="auto", download=True,
                   face_models_dir=None):
        """A restorer for a registry name (fetched into `models_dir` if allowed) or a path;
        facexlib weights live in `face_models_dir`, by default the same folder."""
        path = ensure_model(model, models_dir, download=download)
        return cls(load_model(path), face_models_dir or models_dir, device, precision, download)

    @property
    def device(self):
        return self.runner.device

    def to(self, device):
        """Move the network, detectors and parser (e.g. to the CPU between uses)."""
        device = torch.device(device)
        self.runner.move_to(device)
        for detector in self._detectors.values():
            detector.move_to(device)
        if self._parser is not None:
            self._parser.move_to(device)
        return self

    def detector(self, name):
        if name not in self._detectors:
            self._detectors[name] = FaceDetector(name, self.face_models_dir, self.device, self.download)
        return self._detectors[name]

    @property
    def parser(self):
        if self._parser is None:
            self._parser = FaceParser(self.face_models_dir, self.device, self.download)
        return self._parser

    def restore(self, image, options=RestoreOptions(), landmarks=None):
        """Restore the faces of `image` (see images.py for accepted layouts).

        `landmarks`: optional (N, 5, 2) points of faces found elsewhere; only those are
        restored and no detector runs."""
        rgb, layout = split_image(image)
        if landmarks is not None:
            faces = [self._supplied_face(points) for points in _check_landmarks(landmarks)]
        else:  # the detector takes 8-bit pixels
            preview = rgb if rgb.dtype == np.uint8 else \
                to_dtype(rgb * (255.0 / layout.full_scale), np.uint8, 255.0)
            faces = self.detector(options.detection_model).detect(
                preview, options.detection_threshold, options.detection_max_side)
        chosen = select_faces(faces, options, rgb.shape)
        if not chosen:
            return RestoreResult(image.copy(), [], len(faces))
        crops, matrices = zip(*(align_face(rgb, face.landmarks, self.size, options.template)
                                for face in chosen))
        inputs = np.stack(crops).astype(np.float32) / layout.full_scale
        restored = self.restore_crops(inputs, options, [face.box for face in chosen])
        masks = self.paste_masks(restored, options)
        output = rgb  # our own copy: faces are composited into it one after another
        for crop, aligned, mask, forward in zip(restored, crops, masks, matrices):
            paste_face(output, crop * layout.full_scale, aligned.astype(np.float32), mask,
                       forward, options.visibility)
        records = [FaceRecord(face.box, face.landmarks, face.score) for face in chosen]
        if options.keep_crops:
            for record, before, after in zip(records, inputs, restored):
                record.aligned, record.restored = _to_uint8(before), _to_uint8(after)
        return RestoreResult(merge_image(output, layout), records, len(faces))

    def restore_aligned(self, image, options=RestoreOptions()):
        """Restore an image that is already an aligned face crop, at its own size."""
        rgb, layout = split_image(image)
        height, width = rgb.shape[:2]
        shrinking = min(height, width) > self.size
        crop = cv2.resize(rgb, (self.size, self.size),
                          interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        crop = crop.astype(np.float32)[None] / layout.full_scale
        restored = self.restore_crops(crop, options)[0]
        back = cv2.resize(restored, (width, height),
                          interpolation=cv2.INTER_CUBIC if shrinking else cv2.INTER_AREA)
        blended = options.visibility * np.clip(back, 0, 1) * layout.full_scale + \
            (1 - options.visibility) * rgb.astype(np.float32)
        output = to_dtype(blended, layout.dtype, layout.full_scale)
        box = np.array([0.0, 0.0, width, height])
        template = template_points(options.template, self.size) * [width / self.size,
                                                                   height / self.size]
        record = FaceRecord(box, template, 1.0)
        if options.keep_crops:
            record.aligned, record.restored = _to_uint8(crop[0]), _to_uint8(restored)
        return RestoreResult(merge_image(output, layout), [record], 1)

    def restore_crops(self, crops, options, boxes=None):
        """Aligned float RGB crops (N, S, S, 3) in [0, 1] -> restored crops, blended."""
        outputs = []
        for start in range(0, len(crops), options.batch_size):
            batch = torch.from_numpy(crops[start:start + options.batch_size]).permute(0, 3, 1, 2)
            result = self.runner(batch * 2 - 1)
            outputs.append(((result + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy())
        restored = np.concatenate(outputs)
        restored = options.weight * restored + (1 - options.weight) * crops
        for index, crop in enumerate(restored):
            if options.small_face_smoothing and boxes is not None and \
                    face_side(boxes[index]) < SMALL_FACE_PX:
                crop = cv2.filter2D(crop, -1, SMALL_FACE_KERNEL, borderType=cv2.BORDER_REFLECT_101)
            if options.color_correction:
                crop = match_colour(crop, crops[index])
            restored[index] = crop
        return np.clip(restored, 0, 1)

    def paste_masks(self, restored, options):
        """(N, 512, 512) feathered masks in crop space (at 512; scaled when pasting)."""
        if options.mask == "box":
            return [BOX_MASK] * len(restored)
        sigma = PARSE_FEATHER_SIGMA
        return [cv2.GaussianBlur(cv2.GaussianBlur(face * BOX_MASK, (0, 0), sigma), (0, 0), sigma)
                for face in self.parser.face_masks([_to_uint8(crop) for crop in restored])]

    def _supplied_face(self, points):
        """A face record for caller-supplied landmarks; its box is the template's face square
        (the unpadded reference crop) mapped back into the image."""
        forward = similarity_transform(points, template_points("gpen", self.size))
        inner = self.size / 6, self.size * 5 / 6
        corners = np.array([[x, y, 1.0] for x in inner for y in inner])
        mapped = corners @ invert_affine(forward).T
        box = np.concatenate([mapped.min(axis=0), mapped.max(axis=0)])
        return DetectedFace(box, 1.0, points)


def _check_landmarks(landmarks):
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim == 2 and points.shape == (5, 2):
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"landmarks must be five (x, y) points per face, shape (N, 5, 2); "
                         f"got {points.shape}")
    return points


def face_side(box):
    """The shorter side of a face box, in pixels."""
    return min(box[2] - box[0], box[3] - box[1])


def select_faces(faces, options, image_shape):
    """Faces to restore, in left-to-right order of their box centres."""
    faces = sorted(faces, key=lambda face: (face.box[0] + face.box[2]) / 2)
    side = lambda face: face_side(face.box)  # noqa: E731
    faces = [face for face in faces if side(face) >= options.min_face_size]
    if options.selection == "index":
        faces = [faces[i] for i in sorted(set(int(i) for i in options.face_indices)) if i < len(faces)]
    elif faces and options.selection == "largest":
        faces = [max(faces, key=side)]
    elif faces and options.selection == "center":
        centre = np.array(image_shape[1::-1]) / 2
        faces = [min(faces, key=lambda face: np.linalg.norm(
            (face.box[:2] + face.box[2:]) / 2 - centre))]
    if options.max_faces and len(faces) > options.max_faces:
        keep = sorted(faces, key=side, reverse=True)[:options.max_faces]
        faces = [face for face in faces if any(face is kept for kept in keep)]
    return faces


def feathered_box_mask():
    """A square of ones inside the crop, zero near the crop edge, feathered (at 512)."""
    mask = np.zeros((PARSE_SIZE, PARSE_SIZE), np.float32)
    edge = MASK_BORDER_PX
    mask[edge:PARSE_SIZE - edge, edge:PARSE_SIZE - edge] = 1.0
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (0, 0), MASK_FEATHER_SIGMA)
    # The blur's tail reaches the crop edge: lower it to exactly 0 there, so nothing from
    # beyond the crop is ever blended in.
    edge_value = mask[0].max()
    return np.clip((mask - edge_value) / (mask.max() - edge_value), 0, 1)


BOX_MASK = feathered_box_mask()


def match_colour(restored, original):
    """Give the restored crop the original's low-frequency colour, keeping its detail."""
    size = restored.shape[0]
    cell = (COLOUR_GRID, COLOUR_GRID)
    difference = cv2.resize(original, cell, interpolation=cv2.INTER_AREA) - \
        cv2.resize(restored, cell, interpolation=cv2.INTER_AREA)
    difference = cv2.GaussianBlur(difference, (0, 0), 1.5)
    return restored + cv2.resize(difference, (size, size), interpolation=cv2.INTER_CUBIC)


def paste_face(image, crop, aligned, mask, forward, visibility=1.0):
    """Composite a restored crop into `image` through its mask; touches only the face region.

    `crop` and `aligned` (the network's input) are float in the image's sample scale; `mask`
    is at 512 in crop coordinates. A crop much larger than its place in the image would alias
    when resampled, so the network's change (crop - aligned) is shrunk with area averaging
    first, while the aligned input, which came from these very pixels, is resampled as is."""
    height, width = image.shape[:2]
    size = crop.shape[0]
    inverse = invert_affine(forward)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    mapped = corners @ inverse.T
    x0, y0 = np.maximum(np.floor(mapped.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(mapped.max(axis=0)).astype(int) + 1, [width, height])
    if x1 <= x0 or y1 <= y0:
        return image
    to_region = inverse.copy()
    to_region[:, 2] -= (x0, y0)
    warp = lambda source, flags: cv2.warpAffine(  # noqa: E731 (outside the crop: 0)
        source, _scaled(to_region, size / source.shape[0]), (x1 - x0, y1 - y0), flags=flags)
    image_px_per_crop_px = np.sqrt(abs(np.linalg.det(inverse[:, :2])))
    if image_px_per_crop_px < 0.5:
        side = max(int(round(size * image_px_per_crop_px * 2)), 8)
        change = cv2.resize(crop - aligned, (side, side), interpolation=cv2.INTER_AREA)
        face = warp(aligned, cv2.INTER_CUBIC) + warp(change, cv2.INTER_CUBIC)
    else:
        face = warp(crop, cv2.INTER_CUBIC)
    alpha = (np.clip(warp(mask, cv2.INTER_LINEAR), 0, 1) * visibility)[:, :, None]
    original = image[y0:y1, x0:x1].astype(np.float32)
    blended = original + alpha * (face - original)
    full_scale = FULL_SCALE[image.dtype]
    if image.dtype.kind == "f":
        blended = np.clip(blended, 0.0, 1.0)
    image[y0:y1, x0:x1] = np.where(alpha > 0, to_dtype(blended, image.dtype, full_scale),
                                   image[y0:y1, x0:x1])
    return image


def _scaled(matrix, factor):
    """A crop -> image matrix for a copy of the crop resized by 1/factor."""
    return matrix @ np.diag([factor, factor, 1.0])


def _to_uint8(crop):
    return to_dtype(crop * 255.0, np.uint8, 255.0)


def restore_options(**overrides):
    """RestoreOptions with the given fields replaced, None meaning 'keep the default'."""
    return replace(RestoreOptions(), **{k: v for k, v in overrides.items() if v is not None})
