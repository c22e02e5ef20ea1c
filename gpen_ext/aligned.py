"""Faces that are already aligned crops (the reference tool's default input, ComfyUI's aligned
faces node): each restored at its own size, with no detection, alignment or paste."""

import cv2
import numpy as np

from .alignment import template_points
from .images import merge_image, split_image, to_dtype, uint8_of
from .results import FaceRecord, RestoreResult


def restore_aligned_crops(restorer, images, options, any_float_range=False, progress=None):
    """RestoreResults for aligned face crops of any size, through `restorer` (a FaceRestorer)
    `batch_size` at a time; `progress(done, total)` after each batch."""
    split = [split_image(image, any_float_range) for image in images]
    crops = np.stack([np.clip(resized(rgb, restorer.size) / layout.full_scale, 0, 1)
                      for rgb, layout in split])
    restored = np.empty_like(crops)
    for start in range(0, len(crops), options.batch_size):
        part = slice(start, start + options.batch_size)
        restored[part] = restorer.restore_crops(crops[part], options)
        if progress is not None:
            progress(min(start + options.batch_size, len(crops)), len(crops))
    return [_result(rgb, layout, crop, after, options, restorer.size)
            for (rgb, layout), crop, after in zip(split, crops, restored)]


def _result(rgb, layout, crop, restored, options, size):
    """The restored crop back at the image's size, shown by `visibility`, with its record."""
    height, width = rgb.shape[:2]
    back = resized(restored, (height, width))
    blended = options.visibility * np.clip(back, 0, 1) * layout.full_scale + \
        (1 - options.visibility) * rgb.astype(np.float32)
    output = to_dtype(blended, layout.dtype, layout.full_scale)
    box = np.array([0.0, 0.0, width, height])
    template = template_points(options.template, size) * [width / size, height / size]
    record = FaceRecord(0, box, template, 1.0)
    if options.keep_crops:
        record.aligned, record.restored = uint8_of(crop), uint8_of(restored)
        record.mask = np.ones((height, width), np.float32)
    paste_mask = np.full((height, width), options.visibility, np.float32) \
        if options.keep_paste_mask else None
    return RestoreResult(merge_image(output, layout), [record], 1, paste_mask)


def resized(image, size):
    """`image` resized to `size` (a side, or (height, width)): area averaging to shrink,
    bicubic to enlarge; float32."""
    height, width = (size, size) if isinstance(size, int) else size
    shrinking = min(image.shape[:2]) > min(height, width)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking
                      else cv2.INTER_CUBIC).astype(np.float32)
