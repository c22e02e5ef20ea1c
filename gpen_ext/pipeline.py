"""A whole photo in, a restored photo out.

Faces are found (or supplied), numbered left to right and chosen; then, `batch_size` faces at
a time, aligned, restored, blended, masked and pasted into a copy of the photo, so that memory
does not grow with the number of faces. Nothing here knows about any host, and nothing here
finds or downloads weights: the caller hands in a loaded network and the face models.
"""

import logging
import numbers
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .alignment import align_face, invert_affine, similarity_transform, template_points
from .compositing import BOX_MASK, blend_crop, feathered_face_mask, paste_face
from .face_models import DetectedFace
from .images import merge_image, split_image, to_dtype
from .inference import NetworkRunner
from .options import RestoreOptions
from .tracking import FaceTracker, scene_signature

log = logging.getLogger(__name__)

SMALL_FACE_PX = 100  # the official pipeline smooths faces whose box is smaller than this


@dataclass
class FaceRecord:
    number: int                  # among all faces found, from 0 left to right
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    aligned: np.ndarray = None   # RGB uint8 crop given to the network
    restored: np.ndarray = None  # RGB uint8 crop after blending, before pasting
    mask: np.ndarray = None      # its paste mask, float in [0, 1], in crop coordinates


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list = field(default_factory=list)
    found: int = 0  # faces detected or supplied, before selection
    paste_mask: np.ndarray = None  # with options.keep_paste_mask: where the faces went (H x W)
    ran_on: str = ""  # the device and precision the network ran in, e.g. "cuda:0 (fp16)"
    interrupted: bool = False  # stopped before every chosen face was restored

    @property
    def message(self):
        if self.interrupted:
            return f"stopped: restored {len(self.faces)} of {self.found} face(s)" if \
                self.found else "stopped before its faces were looked for; image unchanged"
        if not self.found:
            return "no faces found; image unchanged"
        if not self.faces:
            return f"{self.found} face(s) found, none selected; image unchanged"
        return f"restored {len(self.faces)} of {self.found} face(s)"


class FaceRestorer:
    """The GPEN face pipeline around one loaded network.

    `face_models` provides the detectors and the parser (`face_models.FaceModels`: each
    loaded on first use); it moves with the restorer."""

    def __init__(self, network, face_models, device="cpu", precision="auto"):
        self.runner = NetworkRunner(network, device, precision)
        self.size = self.runner.size
        self.face_models = face_models
        face_models.move_to(self.device)

    @property
    def device(self):
        return self.runner.device

    @property
    def precision(self):
        return self.runner.precision

    def networks(self):
        """The networks loaded so far, by name: GPEN's, then the face models'."""
        return {"network": self.runner.network, **self.face_models.networks()}

    def to(self, device):
        """Move the network and the face models (e.g. to the CPU between uses)."""
        device = torch.device(device)
        self.runner.move_to(device)
        self.face_models.move_to(device)
        return self

    def prepare(self, options, detecting=True):
        """Load the detector and parser that `options` need now: a missing package or weights
        file is then reported before any face goes through the network."""
        if detecting:
            self.face_models.detector(options.detection_model)
        if options.mask == "parsing":
            self.face_models.parser()

    def restore(self, image, options=RestoreOptions(), landmarks=None, any_float_range=False,
                progress=None):
        """Restore the faces of `image` (see images.py for accepted layouts).

        `landmarks`: optional five (x, y) points per face found elsewhere (see
        `check_landmarks`); only those are restored and no detector runs. `any_float_range`:
        float samples outside [0, 1] are kept as they are away from the faces. `progress` as
        for restore_images."""
        return self.restore_images([image], options, None if landmarks is None else [landmarks],
                                   any_float_range, progress)[0]

    def restore_images(self, images, options=RestoreOptions(), landmarks=None,
                       any_float_range=False, progress=None):
        """Restore the faces of several images (a video's frames): a list of RestoreResults,
        one per image (see restore_stream)."""
        if landmarks is not None and hasattr(images, "__len__") and \
                len(landmarks) != len(images):
            raise ValueError(f"landmarks: one list of faces per image, got {len(landmarks)} "
                             f"for {len(images)} images")
        return list(self.restore_stream(images, options, landmarks, any_float_range, progress))

    def restore_stream(self, images, options=RestoreOptions(), landmarks=None,
                       any_float_range=False, progress=None):
        """Restore the faces of a sequence of images (a video's frames, any number), yielding
        each one's RestoreResult in order as soon as its faces are pasted: only the frames
        that a batch and the steadying's look-ahead need are held.

        Faces go `batch_size` at a time across frames. With `temporal_smoothing`, faces are
        followed from frame to frame and their landmarks steadied over that many frames
        before and after (tracking.py); face numbers then run per shot, and the faces chosen
        (`face_selection`, `max_faces`, ...) stay chosen along their tracks. `landmarks`:
        None, or one list of faces per image (an iterable as long as `images`).
        `progress(done, total)`: faces restored and faces to restore found so far, after
        each frame's detection and each batch; it may raise to stop: RestorationInterrupted
        keeps what is restored so far (the rest of the images come back as they were, their
        results marked `interrupted`), anything else propagates."""
        _check_options(options)
        supplied = None if landmarks is None else iter(landmarks)
        tracker, chooser = FaceTracker(options.temporal_smoothing), FaceChooser(options)
        undecided, waiting, work = deque(), deque(), deque()
        tally = Tally(progress)
        for image in images:
            frame = Frame(image, options, any_float_range)
            given = None if supplied is None else _next_landmarks(supplied)
            frame.unexamined = tally.stopped  # no more looking for faces once stopped
            faces = [] if tally.stopped else self.find_faces(frame.source, frame.layout, options,
                                                             given)
            undecided.append(frame)
            waiting.append(frame)
            self._decide(tracker.add(faces, frame.signature()), undecided, chooser, work, tally)
            self._restore_work(work, options, tally, whole_batches=True)
            yield from self._ready(waiting)
        self._decide(tracker.finish(), undecided, chooser, work, tally)
        self._restore_work(work, options, tally)
        yield from self._ready(waiting)

    def _decide(self, tracked_frames, undecided, chooser, work, tally):
        """Choose the faces of the frames the tracker has completed, and queue them."""
        for tracked in tracked_frames:
            frame = undecided.popleft()
            frame.choose(tracked.faces, chooser.choose(tracked, frame.source.shape))
            work.extend((frame, face) for face in frame.chosen)
            tally.found(len(frame.chosen))

    def _restore_work(self, work, options, tally, whole_batches=False):
        """Restore queued faces `batch_size` at a time (only whole batches, unless the images
        have ended), or drop them once stopped."""
        while work and (len(work) >= options.batch_size or not whole_batches):
            batch = [work.popleft() for _ in range(min(options.batch_size, len(work)))]
            if tally.stopped:
                for frame, _ in batch:
                    frame.skip()
                continue
            if not tally.done:
                self._before_first_batch(options)
            self.restore_batch(batch, options)
            tally.restored(len(batch))

    def _before_first_batch(self, options):
        self.prepare(options, detecting=False)
        unused = options.unused_with_box_mask() if options.mask == "box" else []
        if unused:
            log.warning("GPEN: %s: only with the parsing mask; the box mask pastes the "
                        "whole face square", ", ".join(option.label for option in unused))

    def _ready(self, waiting):
        while waiting and waiting[0].ready:
            result = waiting.popleft().result()
            result.ran_on = f"{self.device} ({self.precision})"
            yield result

    def detect(self, image, options=RestoreOptions(), any_float_range=False):
        """The faces of an image, left to right: a face's number is its place here."""
        rgb, layout = split_image(image, any_float_range)
        return self.find_faces(rgb, layout, options)

    def find_faces(self, rgb, layout, options, landmarks=None):
        """Faces, ordered left to right by their box centres: the supplied ones, or those the
        detector finds (on 8-bit pixels)."""
        if landmarks is not None:
            faces = [face_from_landmarks(points, self.size) for points in check_landmarks(landmarks)]
        else:
            preview = rgb if rgb.dtype == np.uint8 else \
                to_dtype(rgb * (255.0 / layout.full_scale), np.uint8, 255.0)
            faces = self.face_models.detector(options.detection_model).detect(
                preview, options.detection_threshold, options.detection_max_side)
        return sorted(faces, key=lambda face: (face.box[0] + face.box[2]) / 2)

    def restore_batch(self, batch, options):
        """Align, restore, mask and paste a batch of (frame, tracking.TrackedFace), each face
        from its frame's source into its frame's output, with its record."""
        aligned = [align_face(frame.source, tracked.face.landmarks, self.size, options.template)
                   for frame, tracked in batch]
        inputs = np.clip(np.stack([crop / frame.layout.full_scale for (frame, _), (crop, _)
                                   in zip(batch, aligned)]).astype(np.float32), 0, 1)
        restored = self.restore_crops(inputs, options,
                                      [tracked.face.box for _, tracked in batch])
        masks = self.paste_masks(restored, options)
        for (frame, tracked), (crop, forward), before, after, mask in zip(
                batch, aligned, inputs, restored, masks):
            pasted = paste_face(frame.output, after * frame.layout.full_scale,
                                crop.astype(np.float32), mask, forward, options.visibility)
            face = tracked.face
            record = FaceRecord(tracked.number, face.box, face.landmarks, face.score)
            if options.keep_crops:
                record.aligned, record.restored = _to_uint8(before), _to_uint8(after)
                record.mask = mask
            frame.add(record, pasted)

    def restore_aligned(self, image, options=RestoreOptions(), any_float_range=False):
        """Restore an image that is already an aligned face crop, at its own size."""
        return self.restore_aligned_images([image], options, any_float_range)[0]

    def restore_aligned_images(self, images, options=RestoreOptions(), any_float_range=False,
                               progress=None):
        """Restore aligned face crops (any sizes), `batch_size` at a time."""
        _check_options(options)
        split = [split_image(image, any_float_range) for image in images]
        crops = np.stack([np.clip(_resized(rgb, self.size) / layout.full_scale, 0, 1)
                          for rgb, layout in split])
        restored = np.empty_like(crops)
        for start in range(0, len(crops), options.batch_size):
            part = slice(start, start + options.batch_size)
            restored[part] = self.restore_crops(crops[part], options)
            if progress is not None:
                progress(min(start + options.batch_size, len(crops)), len(crops))
        return [self.aligned_result(rgb, layout, crop, after, options)
                for (rgb, layout), crop, after in zip(split, crops, restored)]

    def aligned_result(self, rgb, layout, crop, restored, options):
        height, width = rgb.shape[:2]
        back = _resized(restored, (height, width))
        blended = options.visibility * np.clip(back, 0, 1) * layout.full_scale + \
            (1 - options.visibility) * rgb.astype(np.float32)
        output = to_dtype(blended, layout.dtype, layout.full_scale)
        box = np.array([0.0, 0.0, width, height])
        template = template_points(options.template, self.size) * [width / self.size,
                                                                   height / self.size]
        record = FaceRecord(0, box, template, 1.0)
        if options.keep_crops:
            record.aligned, record.restored = _to_uint8(crop), _to_uint8(restored)
            record.mask = np.ones((height, width), np.float32)
        paste_mask = np.full((height, width), options.visibility, np.float32) \
            if options.keep_paste_mask else None
        return RestoreResult(merge_image(output, layout), [record], 1, paste_mask)

    def restore_crops(self, crops, options, boxes=None):
        """Aligned float RGB crops (N, S, S, 3) in [0, 1] -> restored crops, blended."""
        restored = np.empty_like(crops)
        for start in range(0, len(crops), options.batch_size):
            batch = torch.from_numpy(crops[start:start + options.batch_size]).permute(0, 3, 1, 2)
            output = ((self.runner(batch * 2 - 1) + 1) / 2).clamp(0, 1)
            restored[start:start + len(batch)] = output.permute(0, 2, 3, 1).numpy()
        for index, crop in enumerate(restored):
            small = boxes is not None and face_side(boxes[index]) < SMALL_FACE_PX
            restored[index] = blend_crop(crop, crops[index], options.weight,
                                         options.small_face_smoothing and small,
                                         options.color_correction)
        return restored

    def paste_masks(self, restored, options):
        """Paste masks in crop coordinates for restored float crops."""
        if options.mask == "box":
            return [BOX_MASK] * len(restored)
        faces = self.face_models.parser().face_masks([_to_uint8(crop) for crop in restored],
                                                     options.face_regions, self.precision)
        return [feathered_face_mask(face) for face in faces]


class Frame:
    """One image on its way through restore_stream: its source pixels, the faces found and
    chosen, the output they are pasted into, and what the result needs."""

    def __init__(self, image, options, any_float_range):
        self.image = image
        self.source, self.layout = split_image(image, any_float_range)
        self.output = None  # a copy of the source, made once a face is to be pasted
        self.paste_mask = np.zeros(self.source.shape[:2], np.float32) \
            if options.keep_paste_mask else None
        self.faces, self.chosen, self.records = [], [], []
        self.pending = None  # faces chosen and not yet pasted; None until chosen
        self.skipped = 0     # chosen faces left as they were: restoration was stopped
        self.unexamined = False  # stopped before its faces were looked for

    def signature(self):
        return scene_signature(self.source, self.layout.full_scale)

    def choose(self, faces, chosen):
        """`faces`: the frame's tracking.TrackedFaces; `chosen`: those to restore."""
        self.faces, self.chosen, self.pending = faces, chosen, len(chosen)
        if chosen:
            self.output = self.source.copy()  # faces are aligned from source, pasted here

    @property
    def ready(self):
        return self.pending == 0

    def add(self, record, pasted):
        """A restored face's record, and where it was pasted (see paste_face)."""
        self.records.append(record)
        self.pending -= 1
        if pasted is not None and self.paste_mask is not None:
            rows, columns, alpha = pasted
            np.maximum(self.paste_mask[rows, columns], alpha,
                       out=self.paste_mask[rows, columns])

    def skip(self):
        """A chosen face left as it is (restoration was stopped)."""
        self.pending -= 1
        self.skipped += 1

    def result(self):
        image = merge_image(self.output, self.layout) if self.records else self.image.copy()
        return RestoreResult(image, self.records, len(self.faces), self.paste_mask,
                             interrupted=self.skipped > 0 or self.unexamined)


class RestorationInterrupted(Exception):
    """Raised by a progress callback to stop restoring: what is restored so far is kept."""


class Tally:
    """Faces found and restored, reported to a progress callback, which may stop the work."""

    def __init__(self, progress):
        self.progress = progress
        self.total = self.done = 0
        self.stopped = False

    def found(self, count):
        self.total += count
        self._report()

    def restored(self, count):
        self.done += count
        self._report()

    def _report(self):
        if self.progress is None or self.stopped:
            return
        try:
            self.progress(self.done, self.total)
        except RestorationInterrupted:
            self.stopped = True
            log.warning("GPEN: stopped after %d of %d face(s)", self.done, self.total)


class FaceChooser:
    """select_faces frame after frame: within a shot, faces chosen in the frame before keep
    their place unless another is clearly larger or nearer the centre (HYSTERESIS)."""

    def __init__(self, options):
        self.options = options
        self.previous = None

    def choose(self, tracked, shape):
        """The TrackedFaces to restore of a tracking.TrackedFrame."""
        if tracked.new_shot:
            self.previous = None
        faces = tracked.faces
        chosen = [faces[position] for position in select_faces(
            [item.face for item in faces], self.options, shape,
            [item.number for item in faces], self.previous)]
        self.previous = {item.number for item in chosen}
        return chosen


def _next_landmarks(supplied):
    try:
        return next(supplied)
    except StopIteration:
        raise ValueError("landmarks: one list of faces per image; there are more images") \
            from None


def _resized(image, size):
    """`image` resized to `size` (a side, or (height, width)): area averaging to shrink,
    bicubic to enlarge; float32."""
    height, width = (size, size) if isinstance(size, int) else size
    shrinking = min(image.shape[:2]) > min(height, width)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking
                      else cv2.INTER_CUBIC).astype(np.float32)


def _check_options(options):
    if not isinstance(options, RestoreOptions):
        raise ValueError(f"options must be RestoreOptions, got {type(options).__name__}")


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


def face_side(box):
    """The shorter side of a face box, in pixels."""
    return min(box[2] - box[0], box[3] - box[1])


HYSTERESIS = 1.1  # in a video, a face chosen before stays chosen against a face 10% better


def select_faces(faces, options, image_shape, numbers=None, previous=None):
    """The positions in `faces` (left to right) of the faces to restore: those whose number
    (their position, or `numbers`) is in `face_indices` (all if none), no smaller than
    `min_face_size`, then the largest or the most central if so chosen, at most `max_faces`
    of them (the largest). `previous`: the numbers chosen in a video's frame before, which
    count HYSTERESIS times larger (or nearer the centre), so that jitter flips no choice."""
    numbers = list(range(len(faces))) if numbers is None else numbers
    favour = [HYSTERESIS if previous is not None and number in previous else 1.0
              for number in numbers]
    side = lambda position: face_side(faces[position].box) * favour[position]  # noqa: E731
    chosen = [position for position, number in enumerate(numbers)
              if not options.face_indices or number in options.face_indices]
    chosen = [position for position in chosen if side(position) >= options.min_face_size]
    if chosen and options.face_selection == "largest":
        chosen = [max(chosen, key=side)]
    elif chosen and options.face_selection == "center":
        centre = np.array(image_shape[1::-1]) / 2
        chosen = [min(chosen, key=lambda position: np.linalg.norm(
            (faces[position].box[:2] + faces[position].box[2:]) / 2 - centre) / favour[position])]
    if options.max_faces and len(chosen) > options.max_faces:
        chosen = sorted(chosen, key=side, reverse=True)[:options.max_faces]
    return sorted(chosen)


def _to_uint8(crop):
    return to_dtype(crop * 255.0, np.uint8, 255.0)
