"""The one conversion between what callers hand in and what the pipeline works on.

The pipeline works on RGB, H x W x 3, in the caller's own sample type (uint8, uint16, or
float in [0, 1], float16 worked on as float32); `full_scale` tells it what 1.0 is. Grayscale comes in as three equal
channels and goes back as their luminance (the same value wherever nothing changed); an
alpha channel is set aside and put back untouched. Output has the input's shape and dtype.
"""

from dataclasses import dataclass

import numpy as np

MIN_SIDE = 8
MAX_SIDE = 32767  # OpenCV's warp functions address pixels with signed 16-bit coordinates
FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0,
              np.dtype(np.float16): 1.0, np.dtype(np.float32): 1.0, np.dtype(np.float64): 1.0}
LUMA = np.array([0.299, 0.587, 0.114])


class ImageError(ValueError):
    """An image the pipeline cannot take; the message says what is wrong with it."""


@dataclass(frozen=True)
class ImageLayout:
    """How the caller's array was laid out, to give the result back the same way."""
    shape: tuple
    dtype: np.dtype
    alpha: np.ndarray = None

    @property
    def full_scale(self):
        return FULL_SCALE[self.dtype]

    @property
    def grayscale(self):
        return len(self.shape) == 2 or self.shape[2] in (1, 2)


def split_image(image, any_float_range=False):
    """(rgb, layout): the RGB working image and what is needed to restore the caller's layout.
    `rgb` is the caller's own array where it is already contiguous RGB: read it, never write.

    Float samples must lie in [0, 1] unless `any_float_range` (an image file's data as it is:
    the faces are restored from the values clipped to [0, 1], the rest left as it was)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ImageError(f"expected H x W, H x W x 1, 3 or 4 (gray, RGB, RGBA), got shape "
                         f"{image.shape}")
    if image.dtype not in FULL_SCALE:
        raise ImageError(f"unsupported sample type {image.dtype}: use uint8, uint16 or float "
                         f"in [0, 1]")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"image of {width}x{height} px is too small (at least {MIN_SIDE} px a side)")
    if max(height, width) > MAX_SIDE:
        raise ImageError(f"image of {width}x{height} px is too large (at most {MAX_SIDE} px a side)")
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise ImageError("image contains NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if not any_float_range and (low < 0 or high > 1):
            raise ImageError(f"float images must hold values in [0, 1], got {low:.4g} to "
                             f"{high:.4g}: scale them first (8-bit values: divide by 255)")
    planes = image if image.ndim == 3 else image[:, :, None]
    if planes.dtype == np.float16:
        planes = planes.astype(np.float32)  # OpenCV's warps take no float16
    colour = planes[:, :, :3] if planes.shape[2] >= 3 else planes[:, :, :1]
    alpha = planes[:, :, -1].copy() if planes.shape[2] in (2, 4) else None
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return np.ascontiguousarray(rgb), ImageLayout(image.shape, image.dtype, alpha)


BAND_PIXELS = 1 << 20  # whole-image conversions go a band of rows this large at a time


def row_bands(height, width):
    """Slices of rows of about BAND_PIXELS pixels covering an image: a conversion's float
    temporaries stay that small however large the image (a 100-megapixel scan)."""
    rows = max(1, BAND_PIXELS // max(width, 1))
    return [slice(start, min(start + rows, height)) for start in range(0, height, rows)]


def merge_image(rgb, layout):
    """The working RGB image back in the caller's layout."""
    if layout.grayscale:
        colour = np.empty(rgb.shape[:2] + (1,), layout.dtype)
        for rows in row_bands(*rgb.shape[:2]):
            colour[rows, :, 0] = to_dtype(rgb[rows].astype(np.float64) @ LUMA, layout.dtype,
                                          layout.full_scale)
    else:
        colour = rgb.astype(layout.dtype, copy=False)  # float16 is worked on as float32
    planes = colour if layout.alpha is None else np.dstack([colour, layout.alpha])
    return planes.reshape(layout.shape)


def to_dtype(values, dtype, full_scale):
    """Float samples (0..full_scale) as `dtype`, rounded and clipped for integer types."""
    if np.dtype(dtype).kind == "f":
        return values.astype(dtype)
    return np.clip(np.rint(values), 0, full_scale).astype(dtype)


def uint8_of(unit):
    """Float samples in [0, 1] (a crop the network took or gave) as uint8."""
    return to_dtype(unit * 255.0, np.uint8, 255.0)


def side_by_side(images):
    """Images of one layout and dtype in a row, tops aligned, shorter ones padded with black."""
    height = max(image.shape[0] for image in images)
    return np.concatenate([np.pad(image, [(0, height - image.shape[0])] +
                                  [(0, 0)] * (image.ndim - 1)) for image in images], axis=1)
