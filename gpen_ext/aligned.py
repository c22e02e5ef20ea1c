"""Faces that are already aligned crops (the reference tool's default input, ComfyUI's aligned
faces node): each restored at its own size, with no detection, alignment or paste."""

import cv2
import numpy as np

from .alignment import template_points
from .compositing import restored_crops
from .images import merge_image, split_image, to_dtype, uint8_of
from .progress import FaceCount, RestorationInterrupted
from .results import FaceRecord, RestoreResult


def restore_aligned_crops(restorer, images, options, any_float_range=False, progress=None):
    """RestoreResults for aligned face crops of any size, through `restorer` (a FaceRestorer)
    a few at a time; `progress(FaceProgress)` after each step may stop the work, the crops
    not restored then coming back as they were, marked `interrupted`."""
    images = list(images)
    split = [split_image(image, any_float_range) for image in images]
    networks = restorer.networks  # under auto, the release the largest crop calls for
    runner = networks.runner(networks.release_for(max(
        (max(rgb.shape[:2]) for rgb, _ in split), default=0)))
    crops = np.stack([np.clip(resized(rgb, runner.size) / layout.full_scale, 0, 1)
                      for rgb, layout in split])
    count = FaceCount(progress)
    count.found(len(crops))
    step_plan = restorer.step_plan(min(len(crops), options.batch_size))
    restored, step = [], step_plan.side_by_side
    for start in range(0, len(crops), step):
        try:
            with count.checker("network", len(crops[start:start + step])):
                restored.extend(restored_crops(runner, crops[start:start + step], options,
                                               step_plan=step_plan))
        except RestorationInterrupted:
            break
        for stage in ("network", "masks", "pasted"):  # no masks or pastes: at once
            count.passed(stage, len(restored) - start)
    release = runner.size if networks.auto else None
    return [_result(rgb, layout, crop, after, options, runner.size, release)
            for (rgb, layout), crop, after in zip(split, crops, restored)] + \
        [RestoreResult(image.copy(), [], 1, interrupted=True, chosen=1)
         for image in images[len(restored):]]


def _result(rgb, layout, crop, restored, options, size, release):
    """The restored crop back at the image's size, shown by `visibility`, with its record."""
    height, width = rgb.shape[:2]
    back = resized(restored, (height, width))
    blended = options.visibility * np.clip(back, 0, 1) * layout.full_scale + \
        (1 - options.visibility) * rgb.astype(np.float32)
    output = to_dtype(blended, layout.dtype, layout.full_scale)
    box = np.array([0.0, 0.0, width, height])
    template = template_points(options.template, size) * [width / size, height / size]
    record = FaceRecord(0, box, template, 1.0, release=release)
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
