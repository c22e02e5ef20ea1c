"""What happens to a restored crop between the network and the photo: blending in crop space
(weight, small-face smoothing, colour), the paste mask, and the paste itself.

Masks are made at PASTE_MASK_SIZE in crop coordinates, whatever the network's size (the size
the parser sees a face at, so that its masks need no resampling), and scaled by the warp that
pastes them.
"""

import cv2
import numpy as np

from .alignment import invert_affine
from .faces import PARSE_SIZE, face_side
from .images import FULL_SCALE, to_dtype

PASTE_MASK_SIZE = PARSE_SIZE
SMALL_FACE_PX = 100  # the official pipeline smooths faces whose box is smaller than this
SMALL_FACE_KERNEL = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
# Paste mask geometry on a 512 crop: a feathered square inside the crop; parsing masks are
# cut to that square and feathered less, as the official pipeline does.
MASK_BORDER_PX, BOX_FEATHER_SIGMA, PARSE_FEATHER_SIGMA = 26, 11.0, 4.0
COLOUR_GRID = 32  # colour correction works on this many cells across the crop


def feathered_box_mask():
    """A square of ones inside the crop, zero near the crop edge, feathered."""
    size = PASTE_MASK_SIZE
    mask = np.zeros((size, size), np.float32)
    mask[MASK_BORDER_PX:size - MASK_BORDER_PX, MASK_BORDER_PX:size - MASK_BORDER_PX] = 1.0
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (0, 0), BOX_FEATHER_SIGMA)
    # The blur's tail reaches the crop edge: lower it to exactly 0 there, so nothing from
    # beyond the crop is ever blended in.
    edge_value = mask[0].max()
    return np.clip((mask - edge_value) / (mask.max() - edge_value), 0, 1)


BOX_MASK = feathered_box_mask()


def feathered_face_mask(face):
    """A parser's face/not-face mask (PASTE_MASK_SIZE square, 1 on the face) cut to the box
    mask and feathered."""
    mask = face * BOX_MASK
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (0, 0), PARSE_FEATHER_SIGMA)
    return mask


def restored_crops(runner, crops, options, boxes=None, step_plan=None):
    """Aligned float RGB crops (N, S, S, 3) in [0, 1] through `runner` (an
    inference.NetworkRunner, on the CPU as `step_plan` says) -> the restored crops, blended
    (see blend_crop; faces smaller than SMALL_FACE_PX smoothed, where their `boxes` are
    given)."""
    restored = runner.run_crops(crops, options.batch_size, step_plan)
    for index, crop in enumerate(restored):
        small = boxes is not None and face_side(boxes[index]) < SMALL_FACE_PX
        restored[index] = blend_crop(crop, crops[index], options.weight,
                                     options.small_face_smoothing and small,
                                     options.color_correction)
    return restored


def blend_crop(restored, aligned, weight, smooth, match_colours):
    """A restored crop (float RGB in [0, 1]) blended with the network's input in crop space:
    `weight` of the restoration, optionally smoothed (small faces) and given the input's
    low-frequency colour."""
    crop = weight * restored + (1 - weight) * aligned
    if smooth:
        crop = cv2.filter2D(crop, -1, SMALL_FACE_KERNEL, borderType=cv2.BORDER_REFLECT_101)
    if match_colours:
        crop = match_colour(crop, aligned)
    return np.clip(crop, 0, 1)


def match_colour(restored, original):
    """Give the restored crop the original's low-frequency colour, keeping its detail."""
    size = restored.shape[0]
    cell = (COLOUR_GRID, COLOUR_GRID)
    difference = cv2.resize(original, cell, interpolation=cv2.INTER_AREA) - \
        cv2.resize(restored, cell, interpolation=cv2.INTER_AREA)
    difference = cv2.GaussianBlur(difference, (0, 0), 1.5)
    return restored + cv2.resize(difference, (size, size), interpolation=cv2.INTER_CUBIC)


def paste_masks(crops, parse=None):
    """Paste masks in crop coordinates for restored uint8 crops: the feathered parsed face
    (`parse(crops)`: face_models.FaceParser.face_masks), or, without `parse`, BOX_MASK."""
    if parse is None:
        return [BOX_MASK] * len(crops)
    return [feathered_face_mask(face) for face in parse(crops)]


def paste_face(image, crop, aligned, mask, forward, visibility=1.0):
    """Composite a restored crop into `image` through its mask; touches only the face region,
    which it returns as (rows, columns, alpha), or None where the face is outside the image.

    `crop` and `aligned` (the network's input) are float in the image's sample scale; `mask`
    is in crop coordinates, at any size. A crop much larger than its place in the image would
    alias when resampled, so the network's change (crop - aligned) is shrunk with area
    averaging first, while the aligned input, which came from these very pixels, is resampled
    as is."""
    height, width = image.shape[:2]
    size = crop.shape[0]
    inverse = invert_affine(forward)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    mapped = corners @ inverse.T
    x0, y0 = np.maximum(np.floor(mapped.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(mapped.max(axis=0)).astype(int) + 1, [width, height])
    if x1 <= x0 or y1 <= y0:
        return None
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
    full_scale = FULL_SCALE[image.dtype]
    np.clip(face, 0, full_scale, out=face)  # cubic resampling overshoots a little
    alpha = (np.clip(warp(mask, cv2.INTER_LINEAR), 0, 1) * visibility)[:, :, None]
    region = image[y0:y1, x0:x1]
    original = region.astype(np.float32)
    blended = original + alpha * (face - original)
    region[...] = np.where(alpha > 0, to_dtype(blended, image.dtype, full_scale), region)
    return slice(y0, y1), slice(x0, x1), alpha[:, :, 0]


def _scaled(matrix, factor):
    """A crop -> image matrix for a copy of the crop resized by 1/factor."""
    return matrix @ np.diag([factor, factor, 1.0])
