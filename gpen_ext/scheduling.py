"""Images on their way through a restoration, in order (FaceRestorer.restore_stream).

An image enters as a PendingImage with the faces found in it. The tracker (tracking.py) hands
each image's faces back, numbered and steadied, once the images after it that it needs are
in; the faces to restore are then chosen, and queued so that batches run across images; an
image comes out once its faces are pasted, in the order the images came in. Only the images
that a batch and the tracker's look-ahead need are held.

The tracker's side of the contract, checked here: it hands back the images in the order they
went in, each exactly once (TrackedFrame.index), so that the n-th tracked frame is the n-th
image.
"""

import logging
from collections import deque

import numpy as np

from .faces import face_side
from .images import merge_image, split_image
from .progress import FaceCount
from .tracking import tracker_for

log = logging.getLogger(__name__)

HYSTERESIS = 1.1  # in a video, a face chosen before stays chosen against a face 10% better


class PendingImage:
    """One image on its way: its source pixels, the faces found and chosen, the output they are
    pasted into, and what its result needs; `tag`, the caller's, comes back with the result."""

    def __init__(self, image, options, any_float_range, index, tag=None):
        self.image, self.index, self.tag = image, index, tag
        self.source, self.layout = split_image(image, any_float_range)
        self.output = None  # a copy of the source, made once a face is to be pasted
        self.paste_mask = np.zeros(self.source.shape[:2], np.float32) \
            if options.keep_paste_mask else None
        self.faces, self.chosen, self.records = [], [], []
        self.pending = None  # faces chosen and not yet pasted; None until chosen
        self.skipped = 0     # chosen faces left as they were: restoration was stopped
        self.unexamined = False  # stopped before its faces were looked for

    def choose(self, faces, chosen):
        """`faces`: the image's tracking.TrackedFaces; `chosen`: those to restore."""
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

    def merged(self):
        """The image to hand back: the output in the input's layout, or the input itself."""
        return merge_image(self.output, self.layout) if self.records else self.image.copy()


class FrameScheduler:
    """Images in, batches of faces to restore, images out in order (see the module's text).
    Passive: its caller (FaceRestorer.restore_stream) adds each image with its faces, takes
    the batches ready, restores them into their images, and takes the images finished."""

    def __init__(self, options, progress=None):
        self.options = options
        self.tracker = tracker_for(options.temporal_smoothing)
        self.chooser = FaceChooser(options)
        self.count = FaceCount(progress)
        self.untracked = deque()   # images the tracker has not handed back yet
        self.unfinished = deque()  # images not handed back to the caller yet
        self.queued = deque()      # (image, TrackedFace) to restore
        self.added = 0
        self.warned = False        # of the options the box mask does not use

    @property
    def stopped(self):
        return self.count.stopped

    def add(self, image, faces):
        """The next image (a PendingImage, index in order) and the faces found in it."""
        if image.index != self.added:
            raise ValueError(f"image {image.index} added where image {self.added} was due")
        self.added += 1
        self.untracked.append(image)
        self.unfinished.append(image)
        self._choose(self.tracker.add_frame(faces, image.source, image.layout.full_scale))

    def finish(self):
        """No more images: the tracker hands back those still waiting for later ones."""
        self._choose(self.tracker.finish())

    def _choose(self, tracked_frames):
        for tracked in tracked_frames:
            image = self.untracked.popleft()
            if tracked.index != image.index:  # the tracker broke its side of the contract
                raise RuntimeError(f"the tracker handed back frame {tracked.index} where "
                                   f"frame {image.index} was due")
            image.choose(tracked.faces, self.chooser.choose(tracked, image.source.shape))
            self.queued.extend((image, face) for face in image.chosen)
            self.count.found(len(image.chosen))

    def batches(self, whole_only=True):
        """Batches of (image, TrackedFace) of `batch_size`, to restore now (only whole ones
        while images may still come); once stopped, the queued faces are left as they are."""
        size = self.options.batch_size
        while self.queued and (len(self.queued) >= size or not whole_only):
            batch = [self.queued.popleft() for _ in range(min(size, len(self.queued)))]
            if self.stopped:
                for image, _ in batch:
                    image.skip()
                continue
            if not self.warned:
                self.warned = True
                self._warn_of_unused_options()
            yield batch

    def _warn_of_unused_options(self):
        unused = self.options.unused_with_box_mask() if self.options.mask == "box" else []
        if unused:
            log.warning("GPEN: %s: only with the parsing mask; the box mask pastes the "
                        "whole face square", ", ".join(option.label for option in unused))

    def finished(self):
        """The images whose chosen faces are all pasted (or skipped), in order."""
        while self.unfinished and self.unfinished[0].ready:
            yield self.unfinished.popleft()


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


def select_faces(faces, options, image_shape, numbers=None, previous=None):
    """The positions in `faces` (left to right) of the faces to restore: those whose number
    (their position, or `numbers`) is in `face_indices` (all if none), no smaller than
    `min_face_size` nor than `min_face_ratio` of the largest face found, then the largest or
    the most central if so chosen, at most `max_faces` of them (the largest). `previous`: the
    numbers chosen in a video's frame before, which count HYSTERESIS times larger (or nearer
    the centre), so that jitter flips no choice."""
    numbers = list(range(len(faces))) if numbers is None else numbers
    favour = [HYSTERESIS if previous is not None and number in previous else 1.0
              for number in numbers]
    side = lambda position: face_side(faces[position].box) * favour[position]  # noqa: E731
    chosen = [position for position, number in enumerate(numbers)
              if not options.face_indices or number in options.face_indices]
    smallest = max(options.min_face_size, options.min_face_ratio * max(
        (face_side(face.box) for face in faces), default=0))
    chosen = [position for position in chosen if side(position) >= smallest]
    if chosen and options.face_selection == "largest":
        chosen = [max(chosen, key=side)]
    elif chosen and options.face_selection == "center":
        centre = np.array(image_shape[1::-1]) / 2
        chosen = [min(chosen, key=lambda position: np.linalg.norm(
            (faces[position].box[:2] + faces[position].box[2:]) / 2 - centre) / favour[position])]
    if options.max_faces and len(chosen) > options.max_faces:
        chosen = sorted(chosen, key=side, reverse=True)[:options.max_faces]
    return sorted(chosen)
