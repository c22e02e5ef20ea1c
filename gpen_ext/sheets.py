"""What a user is shown of the faces: the photo with each face's box and number, and each
restored face before and after with its paste mask, alone or gathered on one sheet."""

import cv2
import numpy as np

from .images import side_by_side, to_dtype

INK = (255, 210, 0)  # boxes and numbers: a yellow that stands out on skin and on grey


def numbered_faces(rgb, boxes):
    """A copy of an RGB uint8 photo with each face's box drawn and its number (its place in
    `boxes`, which run left to right) written above it."""
    shown = np.ascontiguousarray(rgb[:, :, :3]).copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 600))
    for number, box in enumerate(boxes):
        x1, y1, x2, y2 = (int(round(value)) for value in box)
        cv2.rectangle(shown, (x1, y1), (x2, y2), INK, thickness)
        scale = max(0.4, min(2.0, (x2 - x1) / 60))
        text = str(number)
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - height - 2 * thickness, 0)
        cv2.rectangle(shown, (x1, top), (x1 + width + 2 * thickness, top + height +
                                          2 * thickness), INK, -1)
        cv2.putText(shown, text, (x1 + thickness, top + height + thickness),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return shown


def face_strip(record):
    """A face record's crops as one RGB uint8 image: before, after, and its paste mask."""
    size = record.restored.shape[:2][::-1]
    mask = cv2.resize(record.mask, size, interpolation=cv2.INTER_AREA)
    return side_by_side([record.aligned, record.restored,
                         np.repeat(to_dtype(mask * 255.0, np.uint8, 255.0)[:, :, None], 3,
                                   axis=2)])


def face_sheet(records):
    """Every face's strip on one sheet, one under another, each headed by its number."""
    strips = [_headed(face_strip(record), f"face {record.number}") for record in records]
    width = max(strip.shape[1] for strip in strips)
    return np.concatenate([np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)))
                           for strip in strips])


def _headed(strip, text):
    band = np.full((max(24, strip.shape[0] // 12), strip.shape[1], 3), 32, np.uint8)
    scale = band.shape[0] / 40
    cv2.putText(band, text, (8, int(band.shape[0] * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, round(scale * 2)), cv2.LINE_AA)
    return np.concatenate([band, strip])
