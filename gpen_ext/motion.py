"""Where a face is, frame after frame, measured from its pixels, which say it far more precisely
than any detector's five points.

A face's look at the start of its track (a FaceReference: a grey crop around it and the corners
in it, cv2.goodFeaturesToTrack) is placed in each later frame directly, not through the frames
between, so that errors do not add up along a clip: the frame is warped by the placement so
far into the reference's crop, the corners are followed into it by pyramidal Lucas-Kanade
(cv2.calcOpticalFlowPyrLK) and back again, and those that come back to where they started
carry a similarity (rotation, scale and translation) fitted with RANSAC
(cv2.estimateAffinePartial2D). Where that fails (the face turned, or moved too far), the motion
from the frame before is measured the same way (`face_motion`). Where the face has too little
texture, is blurred or covered, or the fit leaves too much residual, there is no answer (None),
and the tracker falls back on what the detector says. A face is measured at most WORK_SIDE
pixels across (a larger one in a smaller copy), so that a measurement costs a few
milliseconds whatever the face's size.
"""

import cv2
import numpy as np

from .alignment import invert_affine

IDENTITY = np.array([[1.0, 0, 0], [0, 1.0, 0]])

WORK_SIDE = 192         # pixels across the measured region, at most
MARGIN = 0.15           # of the box's side, around it: the edges of the face are texture too
CORNERS = 120           # corners followed at most
MIN_FOLLOWED = 12       # corners that must come back to where they started
BACK_PX = 0.4           # ... within this (in the measured region's pixels)
FIT_PX = 0.5            # RANSAC's threshold
MIN_INLIERS = 0.6       # share of the followed corners the similarity must explain
LUCAS_KANADE = dict(winSize=(15, 15), maxLevel=2,
                    criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def grey_frame(pixels, full_scale=255.0):
    """An image's grey 8-bit copy (RGB, RGBA or grey; any depth of `full_scale`)."""
    if pixels.ndim == 3:
        rgb = pixels[..., :3]
        if rgb.dtype not in (np.uint8, np.uint16, np.float32):  # what OpenCV converts
            rgb = rgb.astype(np.float32)
        pixels = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels.astype(np.float32) * (255.0 / full_scale), 0, 255) \
            .astype(np.uint8)
    return pixels


class FaceReference:
    """A face's look in one frame (grey), to place it in later frames (`place`)."""

    def __init__(self, grey, box):
        region = _region(box, grey.shape)
        self.crop = self.corners = None
        if region is not None:
            (x0, y0, x1, y1), scale = region
            self.to_crop = np.array([[scale, 0, -scale * x0], [0, scale, -scale * y0]])
            self.size = (round(scale * (x1 - x0)), round(scale * (y1 - y0)))
            self.crop = cv2.warpAffine(grey, self.to_crop, self.size, flags=cv2.INTER_LINEAR)
            self.corners = _corners(self.crop)

    def place(self, grey, guess):
        """The 2x3 similarity taking this frame's points of the face to where they are in
        `grey`, from `guess`, a placement near it (the one of the frame before); None where
        the pixels cannot tell."""
        if self.corners is None:
            return None
        crop_to_frame = compose(guess, invert_affine(self.to_crop))
        seen = cv2.warpAffine(grey, crop_to_frame, self.size,
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        fit = _followed_similarity(self.crop, seen, self.corners)
        return None if fit is None else compose(crop_to_frame, compose(fit, self.to_crop))


def face_motion(previous, current, box):
    """The 2x3 similarity taking points of the face in `box` (x1, y1, x2, y2) of the grey frame
    `previous` to where they are in the grey frame `current`; None where the pixels cannot
    tell."""
    reference = FaceReference(previous, box)
    return reference.place(current, IDENTITY)


def _corners(crop):
    corners = cv2.goodFeaturesToTrack(crop, CORNERS, 0.01, 4, blockSize=5)
    return corners if corners is not None and len(corners) >= MIN_FOLLOWED else None


def _followed_similarity(before, after, start):
    """The similarity the corners `start` of `before` follow into `after` (Lucas-Kanade,
    checked back), or None."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, start, None, **LUCAS_KANADE)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, moved, None, **LUCAS_KANADE)
    followed = (found[:, 0] == 1) & (found_back[:, 0] == 1) & \
        (np.linalg.norm((back - start)[:, 0], axis=1) < BACK_PX)
    if followed.sum() < MIN_FOLLOWED:
        return None
    fit, inliers = cv2.estimateAffinePartial2D(start[followed], moved[followed],
                                               method=cv2.RANSAC, ransacReprojThreshold=FIT_PX)
    if fit is None or inliers.mean() < MIN_INLIERS:
        return None
    return fit


def _region(box, shape):
    """The pixels measured for `box`, with MARGIN, inside the frame; and the scale that makes
    them WORK_SIDE across at most."""
    x0, y0, x1, y1 = box
    grow = MARGIN * max(x1 - x0, y1 - y0)
    x0, y0 = max(int(x0 - grow), 0), max(int(y0 - grow), 0)
    x1, y1 = min(int(np.ceil(x1 + grow)), shape[1]), min(int(np.ceil(y1 + grow)), shape[0])
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return (x0, y0, x1, y1), min(1.0, WORK_SIDE / max(x1 - x0, y1 - y0))


def apply(transform, points):
    """Points (..., 2) through a 2x3 transform."""
    return points @ transform[:, :2].T + transform[:, 2]


def compose(outer, inner):
    """The 2x3 transform doing `inner`, then `outer`."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


