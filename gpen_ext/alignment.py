"""Where the five landmarks sit in a GPEN crop, and the similarity that puts them there.

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth
corner, as (x, y) pixels.
"""

import cv2
import numpy as np

# The official reference points, on a 96 x 112 crop.
BASE_POINTS = np.array([[30.29459953, 51.69630051], [65.53179932, 51.50139999],
                        [48.02519989, 71.73660278], [33.54930115, 92.3655014],
                        [62.72990036, 92.20410156]])
BASE_CROP = np.array([96.0, 112.0])
GPEN_INNER_PADDING = 0.25  # GPEN frames the face looser than the tight base crop

# facexlib's FaceRestoreHelper template for a 512 crop (what GFPGAN/CodeFormer use).
FFHQ_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]])

TEMPLATES = ("gpen", "ffhq")


def gpen_template(size):
    """GPEN's own template: the base points squared, padded by a quarter each side, scaled."""
    square = BASE_CROP.max()
    points = BASE_POINTS + (square - BASE_CROP) / 2
    padding = square * GPEN_INNER_PADDING * 2
    points = points + padding / 2
    padded_side = square + np.round(padding)
    return points * (size / padded_side)


def template_points(name, size):
    if name == "gpen":
        return gpen_template(size)
    if name == "ffhq":
        return FFHQ_512 * (size / 512)
    raise ValueError(f"unknown alignment template '{name}': choose one of {TEMPLATES}")


def similarity_transform(source, target):
    """Least-squares rotation + uniform scale + translation mapping source points onto target
    (Umeyama's closed form, reflections excluded); a 2 x 3 matrix."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centered, target_centered = source - source_mean, target - target_mean
    covariance = target_centered.T @ source_centered / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / source_centered.var(axis=0).sum()
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def invert_affine(matrix):
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def align_face(image, landmarks, size, template="gpen"):
    """(crop, forward): the size x size face crop and the image -> crop matrix.

    Pixels outside the image are mirrored in, so faces at the border still see a face-like
    surround; they are never pasted back."""
    forward = similarity_transform(landmarks, template_points(template, size))
    crop = cv2.warpAffine(image, forward, (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)
    return crop, forward
