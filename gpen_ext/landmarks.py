"""Faces given as landmarks (five [x, y] points each: the eyes, the nose, the corners of the
mouth), checked as any user's input must be, and the face each stands for."""

import numbers

import numpy as np

from .alignment import invert_affine, similarity_transform, template_points
from .faces import DetectedFace


def check_landmarks(landmarks, most=None):
    """(N, 5, 2) float64 points from five (x, y) points per face; one face may be given as its
    five points alone, and an empty list is no faces; at most `most` faces. Anything else is a
    ValueError that says what is wrong."""
    if most is not None and isinstance(landmarks, (list, tuple)) and len(landmarks) > most:
        raise ValueError(f"landmarks for {len(landmarks)} faces; an image takes at most {most} "
                         f"(the faces-per-image limit)")
    points = np.asarray(_numbers(landmarks), dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 5, 2)
    if points.shape == (5, 2):
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be five [x, y] points per face, shape (faces, 5, 2); "
                         f"got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks must be finite numbers; got NaN or infinity")
    if np.abs(points).max() > LANDMARK_REACH:
        raise ValueError(f"landmarks must be pixel coordinates; got {np.abs(points).max():.3g}, "
                         f"beyond any image")
    if (np.ptp(points, axis=1).max(axis=1) < 1e-3).any():
        raise ValueError("landmarks: a face's five points must not all be in one place")
    return points


LANDMARK_DEPTH = 3  # faces, points, x and y: no landmarks are nested deeper
LANDMARK_REACH = 1e6  # pixels from the origin: far beyond any image's side (images.MAX_SIDE)


def _numbers(value, depth=0):
    """Nested lists of numbers as nested lists of floats; refuses anything else (strings,
    booleans, lists of uneven length, nesting deeper than faces of points, numbers no float
    holds)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise ValueError(f"landmarks must be numbers, got an array of {value.dtype}")
        return value
    if isinstance(value, (list, tuple)):
        if depth >= LANDMARK_DEPTH:
            raise ValueError("landmarks must be five [x, y] points per face; got lists nested "
                             "deeper than that")
        items = [_numbers(item, depth + 1) for item in value]
        shapes = {np.shape(item) for item in items}
        if len(shapes) > 1:
            raise ValueError("landmarks must be five [x, y] points per face; got lists of "
                             "different lengths")
        return items
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("landmarks must be finite numbers; got a number too large for "
                             "a pixel coordinate") from None
    raise ValueError(f"landmarks must be numbers, got {value!r}")


def face_from_landmarks(points, size):
    """A face for caller-supplied landmarks; its box is the template's face square (the
    unpadded reference crop) mapped back into the image."""
    forward = similarity_transform(points, template_points("gpen", size))
    inner = size / 6, size * 5 / 6
    corners = np.array([[x, y, 1.0] for x in inner for y in inner])
    mapped = corners @ invert_affine(forward).T
    box = np.concatenate([mapped.min(axis=0), mapped.max(axis=0)])
    return DetectedFace(box, 1.0, points)
