"""What a user is shown of the faces: the photo with each face's box and number, and each
restored face before and after with its paste mask, alone or gathered on one sheet."""

import cv2
import numpy as np

from .images import side_by_side, to_dtype

INK = (255, 210, 0)  # boxes and numbers: a yellow that stands out on skin and on grey


def numbered_faces(rgb, boxes):
    """A copy of an RGB uint8 photo with each face's box drawn and its number (its place in
    `boxes`, which run left to right) on a tab beside it: above the box, else below it or
    inside it, else moved along, always inside the photo and never over another number, so
    that a group photo reads at a glance."""
    shown = np.ascontiguousarray(rgb[:, :, :3]).copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 600))
    corners = [tuple(int(round(value)) for value in box) for box in boxes]
    for x1, y1, x2, y2 in corners:
        cv2.rectangle(shown, (x1, y1), (x2, y2), INK, thickness)
    tabs = []
    for number, (x1, y1, x2, y2) in enumerate(corners):
        scale = max(0.4, min(2.0, (x2 - x1) / 60))
        text = str(number)
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        size = (width + 2 * thickness, height + 2 * thickness)
        left, top = _free_place((x1, y1, x2, y2), size, shown.shape, tabs)
        tabs.append((left, top, left + size[0], top + size[1]))
        cv2.rectangle(shown, (left, top), (left + size[0] - 1, top + size[1] - 1), INK, -1)
        cv2.putText(shown, text, (left + thickness, top + height + thickness),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return shown


def _free_place(box, size, shape, taken):
    """Where a number's tab of `size` goes for a face's `box`: the first of the places
    beside the box (above, below, inside; then moved along by a tab) that lies in the photo
    and clear of the `taken` tabs; the least covered one if none is clear."""
    x1, y1, x2, y2 = box
    width, height = size
    places = [(x, y) for y in (y1 - height, y2, y1, y1 - 2 * height, y2 + height)
              for x in (x1, x2 - width, x1 + width, x1 - width)]
    inside = [(min(max(x, 0), max(shape[1] - width, 0)), min(max(y, 0),
                                                          max(shape[0] - height, 0)))
              for x, y in places]

    def covered(place):
        x, y = place
        return sum(max(0, min(x + width, right) - max(x, left)) *
                   max(0, min(y + height, bottom) - max(y, top))
                   for left, top, right, bottom in taken)
    return next((place for place in inside if not covered(place)), min(inside, key=covered))


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
