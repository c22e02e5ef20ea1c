"""Faces followed from frame to frame, steadied: the pixels say how a face moved, the detector
only where it is.

A detector's five points wander by a pixel or two from one frame to the next even on a still
face, and GPEN, aligned on them, answers each frame with a slightly different face: restored
faces shimmer. Each face is followed through its shot (a track), and how it moved from each
frame to the next is measured from its pixels (motion.py), chained along the track into a
frame of reference that moves with the face. The detector's points of every frame in a window
around a frame are mapped back into that frame of reference, where a still face is still
whatever the camera did; there the face's shape (the points' robust mean) and the similarity
that places it in each frame (what moves the crop: scale, rotation, translation) are combined
robustly over the window, so that one frame's bad point does not spread, and the result is
mapped forward into the frame. Real shake and motion are followed exactly, detector noise
averages out, and the frames at a clip's ends are steadied as well as those in its middle.

Where the pixels cannot tell (too little texture, blur, a face covered), the chain breaks: the
frames on either side are steadied apart, and a frame with no motion measured to any other is
fitted with a straight line through the window's points (a still face stays still, a steady
motion is followed), or, alone, left as the detector put it. No point moves by more than
MAX_CORRECTION of the eye distance from where the detector put it.

Tracks end at scene cuts (a frame that looks unlike the one before) and where a face is not
found again within a few frames; a short gap where the detector missed a face is filled from
the frames around it. Faces are numbered per shot in the order they appear, left to right
within a frame, so that a single picture's faces are numbered left to right as always.
"""

from collections import deque
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from .alignment import invert_affine, similarity_transform
from .faces import face_side, left_to_right
from .motion import IDENTITY, FaceReference, apply, compose, face_motion, grey_frame

SIGNATURE_SIDE = 16       # frames are compared as 16 x 16 grey thumbnails
CUT_DIFFERENCE = 0.12     # mean thumbnail difference (0..1) above which a frame starts a shot
MATCH_OVERLAP = 0.3       # a face continues a track whose box it overlaps this much (IoU)
MAX_GAP = 2               # frames a face may go unfound and still continue its track
MAX_CORRECTION = 0.3      # of the distance between the eyes: the most steadying moves a point
WEIGHT_WIDTH = 0.5        # the line fit's Gaussian weights: standard deviation radius x this
HUBER = 2.5               # robust means: samples beyond this many deviations weigh less


def scene_signature(rgb, full_scale=255.0):
    """A frame's thumbnail for telling shots apart: grey, SIGNATURE_SIDE square, 0..1."""
    small = cv2.resize(rgb, (SIGNATURE_SIDE, SIGNATURE_SIDE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32).mean(axis=2) / full_scale


def overlap(a, b):
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@dataclass
class TrackedFace:
    """A face at one frame: its number in the shot and the face (box, score, landmarks)
    steadied; `face.landmarks` is where it is aligned from."""
    number: int
    face: object  # faces.DetectedFace
    typical: object = None  # its track's face at its typical size (the release it goes to)


@dataclass
class TrackedFrame:
    index: int        # the frame's place in the clip, from 0
    faces: list       # TrackedFace, left to right
    new_shot: bool    # the first frame of a shot: face numbers start again


class Placement(NamedTuple):
    """Where a face is at a frame, as measured from its pixels: its chain (frames linked by
    measured motion) and the 2x3 motion from the chain's first frame to this one."""
    chain: int
    matrix: np.ndarray


@dataclass
class Track:
    number: int
    seen: dict = field(default_factory=dict)    # frame index -> DetectedFace, as found
    placed: dict = field(default_factory=dict)  # frame index -> Placement, where measured
    references: dict = field(default_factory=dict)  # chain -> motion.FaceReference
    chains: int = 0                                 # chains started
    typical: object = None  # the face at its median size when first handed out, then kept

    def typical_face(self):
        """The face at its typical size, decided once (the frames seen by then: those up to
        the tracker's look-ahead), so that the track keeps one release its whole life."""
        if self.typical is None:
            by_size = sorted(self.seen.values(), key=lambda face: face_side(face.box))
            self.typical = by_size[len(by_size) // 2]
        return self.typical

    def last(self):
        return self.seen[max(self.seen)]

    def box_at(self, index):
        """Where the face is at frame `index`: as found, else its last box carried along by
        the motion measured since."""
        if index in self.seen:
            return self.seen[index].box
        last = max(self.seen)
        if index in self.placed and last in self.placed and \
                self.placed[index].chain == self.placed[last].chain:
            moved = compose(self.placed[index].matrix, invert_affine(self.placed[last].matrix))
            corners = apply(moved, self.seen[last].box.reshape(2, 2))
            return np.concatenate([corners.min(axis=0), corners.max(axis=0)])
        return self.seen[last].box

    def start_chain(self, index, grey):
        """Frame `index` starts a chain: the face's frame of reference is this frame's."""
        chain, self.chains = self.chains, self.chains + 1
        self.placed[index] = Placement(chain, IDENTITY)
        if grey is not None:
            self.references[chain] = FaceReference(grey, self.seen[index].box)

    def place(self, index, previous, grey):
        """Measure where the face is at frame `index` (grey) in its chain's frame of
        reference: directly against the chain's first frame, else through the motion from
        the frame before (`previous`, grey); the chain ends where neither can tell."""
        if index - 1 not in self.placed:
            return
        chain, guess = self.placed[index - 1]
        placed = self.references[chain].place(grey, guess) if chain in self.references \
            else None
        if placed is None:
            moved = face_motion(previous, grey, self.box_at(index - 1))
            placed = None if moved is None else compose(moved, guess)
        if placed is not None:
            self.placed[index] = Placement(chain, placed)


def tracker_for(smoothing):
    """The tracker a clip's frames go through for `temporal_smoothing`: faces followed and
    steadied over that many frames each way, or with 0 every frame on its own."""
    return FaceTracker(smoothing) if smoothing else FrameByFrame()


class FrameByFrame:
    """The tracker of smoothing 0: every frame a shot of its own, handed back at once with
    its faces numbered left to right as found."""

    def __init__(self):
        self.count = 0

    def add_frame(self, faces, rgb=None, full_scale=255.0):
        index, self.count = self.count, self.count + 1
        return [TrackedFrame(index, [TrackedFace(number, face, face) for number, face
                                     in enumerate(left_to_right(faces))], new_shot=True)]

    def finish(self):
        return []


class FaceTracker:
    """Frames go in with the faces found in each; each frame comes out, in order and once, as
    a TrackedFrame with its index, when the `radius` frames after it are in (or at `finish`),
    with its faces numbered and steadied."""

    def __init__(self, radius):
        if int(radius) < 1:
            raise ValueError("a FaceTracker steadies over at least one frame each way; "
                             "frame by frame, FrameByFrame (tracker_for(0))")
        self.radius = int(radius)
        self.waiting = deque()   # (index, new_shot, the shot's tracks then), not yet out
        self.tracks = []         # the current shot's tracks seen within reach
        self.next_number = 0     # the current shot's next face number
        self.count = 0           # frames taken
        self.signature = self.grey = None

    def add_frame(self, faces, rgb, full_scale=255.0):
        """Take the next frame's faces (DetectedFace) and its pixels (RGB, 0..full_scale),
        from which the tracker tells shots apart and measures the faces' motion; returns the
        TrackedFrames now complete."""
        return self.add(faces, scene_signature(rgb, full_scale), grey_frame(rgb, full_scale))

    def add(self, faces, signature, grey=None):
        """Take the next frame's faces (DetectedFace), its scene_signature and its grey
        pixels (motion.grey_frame; None: no motion measured); returns the TrackedFrames now
        complete."""
        index, self.count = self.count, self.count + 1
        new_shot = self._cut(signature) or (grey is not None and self.grey is not None and
                                            grey.shape != self.grey.shape)  # a new size
        if new_shot:
            self.tracks, self.next_number = [], 0
        previous, self.grey = self.grey, grey
        if not new_shot and previous is not None and self.grey is not None:
            self._measure_motion(index, previous, self.grey)
        self._match(index, faces)
        self.waiting.append((index, new_shot, list(self.tracks)))
        return self._complete(index - self.radius)

    def finish(self):
        """The frames still waiting for the frames after them: the clip has ended."""
        return self._complete(self.count)

    def _cut(self, signature):
        previous, self.signature = self.signature, signature
        return previous is None or previous.shape != signature.shape or \
            float(np.abs(previous - signature).mean()) > CUT_DIFFERENCE

    def _measure_motion(self, index, previous, grey):
        """How each track's face moved from the frame before (`previous`, grey) into this one
        (`grey`), chained onto its frame of reference."""
        for track in self.tracks:
            track.place(index, previous, grey)

    def _match(self, index, faces):
        """Give each face of frame `index` a track: the one whose box there it overlaps most,
        among those seen in the last MAX_GAP + 1 frames; else a new one."""
        alive = [track for track in self.tracks if index - max(track.seen) <= MAX_GAP + 1]
        pairs = sorted(((overlap(track.box_at(index), face.box), t, f)
                        for t, track in enumerate(alive) for f, face in enumerate(faces)),
                       key=lambda pair: -pair[0])
        taken_tracks, matched = set(), {}
        for score, t, f in pairs:
            if score < MATCH_OVERLAP or t in taken_tracks or f in matched:
                continue
            taken_tracks.add(t)
            matched[f] = alive[t]
        for f, face in left_to_right(enumerate(faces), box=lambda item: item[1].box):
            if f not in matched:  # new faces numbered left to right
                matched[f] = Track(self.next_number)
                self.next_number += 1
                self.tracks.append(matched[f])
            matched[f].seen[index] = face
            if index not in matched[f].placed:  # no motion into this frame: a new reference
                matched[f].start_chain(index, self.grey)

    def _complete(self, through):
        done = []
        while self.waiting and self.waiting[0][0] <= through:
            index, new_shot, tracks = self.waiting.popleft()
            faces = [TrackedFace(track.number, self._steadied(track, index),
                                 track.typical_face()) for track in tracks
                     if self._present(track, index)]
            done.append(TrackedFrame(index, left_to_right(faces, box=lambda item: item.face.box),
                                     new_shot))
        # forget what no waiting frame's window, and no match to come, reaches: memory stays
        # bounded however long the shot
        oldest = self.waiting[0][0] if self.waiting else self.count
        reach = min(oldest - self.radius, self.count - MAX_GAP - 1) - MAX_GAP - 1
        for track in self.tracks:
            for stale in [i for i in track.seen if i < reach]:
                del track.seen[stale]
            for stale in [i for i in track.placed if i < reach]:
                del track.placed[stale]
            chains = {placement.chain for placement in track.placed.values()}
            for stale in [chain for chain in track.references if chain not in chains]:
                del track.references[stale]
        self.tracks = [track for track in self.tracks if track.seen]
        return done

    def _present(self, track, index):
        """Found at this frame, or missed in a gap of at most MAX_GAP frames within it."""
        if index in track.seen:
            return True
        before = [i for i in track.seen if i < index]
        after = [i for i in track.seen if i > index]
        return bool(before and after) and min(after) - max(before) <= MAX_GAP + 1

    def _steadied(self, track, index):
        window = [i for i in sorted(track.seen) if abs(i - index) <= self.radius]
        chain = _chain_at(track, index)
        linked = [i for i in window if chain is not None and _chain_at(track, i) == chain]
        if len(linked) >= 2 or (linked and index not in track.seen):
            steadied = steadied_by_motion(track, index, linked)
        else:
            steadied = steadied_by_line(track, index, window, self.radius)
        own = track.seen.get(index)
        if own is None:  # a gap: filled from the frames around it
            return replace(steadied, score=min(track.seen[i].score for i in window))
        return replace(own, box=steadied.box,
                       landmarks=capped(own.landmarks, steadied.landmarks))


def _chain_at(track, index):
    """The chain a track's face is placed in at frame `index`, or None."""
    placement = track.placed.get(index)
    return None if placement is None else placement.chain


def steadied_by_motion(track, index, frames):
    """The face at `index` from the detector's points of `frames` (one chain of the track),
    in the track's frame of reference: the face's shape and the similarity that places it
    there, each combined robustly over the frames, mapped forward into frame `index`."""
    back = {i: invert_affine(track.placed[i].matrix) for i in frames}
    points = np.stack([apply(back[i], track.seen[i].landmarks) for i in frames])
    boxes = np.stack([apply(back[i], track.seen[i].box.reshape(2, 2)) for i in frames])
    shape = robust_mean(points)
    placements = np.stack([_similarity_parameters(similarity_transform(shape, frame_points))
                           for frame_points in points])
    placement = _similarity_matrix(robust_mean(placements))
    to_frame = compose(track.placed[index].matrix, placement)
    corners = apply(track.placed[index].matrix, robust_mean(boxes))
    box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])
    return replace(track.seen[frames[0]], box=box, landmarks=apply(to_frame, shape))


def steadied_by_line(track, index, frames, radius):
    """The face at `index` from a straight line through the points and boxes of `frames` (no
    motion measured between them), weighted by nearness within `radius`: a still face stays
    still, a steady motion is followed; the frame's own face where it is alone."""
    found = [track.seen[i] for i in frames]
    offsets = np.array(frames, np.float64) - index
    weights = np.exp(-0.5 * (offsets / (radius * WEIGHT_WIDTH)) ** 2)
    values = np.stack([np.concatenate([face.landmarks.ravel(), face.box]) for face in found])
    fitted = line_fit(offsets, values, weights)
    return replace(found[0], box=fitted[10:], landmarks=fitted[:10].reshape(5, 2))


def capped(detected, steadied):
    """`steadied` points no further than MAX_CORRECTION of the eye distance from `detected`."""
    eyes = float(np.linalg.norm(detected[1] - detected[0]))
    correction = steadied - detected
    length = np.linalg.norm(correction, axis=1, keepdims=True)
    correction *= np.minimum(1.0, MAX_CORRECTION * eyes / np.maximum(length, 1e-12))
    return detected + correction


def robust_mean(samples):
    """The mean over the first axis, samples far from the rest weighing less (Huber): one bad
    frame does not spread to its neighbours."""
    mean = np.median(samples, axis=0)
    spread = 1.4826 * np.median(np.abs(samples - mean), axis=0) + 1e-6
    for _ in range(3):
        distance = np.abs(samples - mean) / spread
        weights = np.minimum(1.0, HUBER / np.maximum(distance, 1e-12))
        mean = (weights * samples).sum(axis=0) / weights.sum(axis=0)
    return mean


def _similarity_parameters(matrix):
    """(a, b, tx, ty) of [[a, -b, tx], [b, a, ty]]."""
    return np.array([matrix[0, 0], matrix[1, 0], matrix[0, 2], matrix[1, 2]])


def _similarity_matrix(parameters):
    a, b, tx, ty = parameters
    return np.array([[a, -b, tx], [b, a, ty]])


def line_fit(offsets, values, weights):
    """The value at offset 0 of a weighted least-squares line through (offset, value) rows;
    the weighted mean where the offsets cannot fix a slope (fewer than three frames, or all
    on one frame)."""
    total = weights.sum()
    mean_offset = (weights * offsets).sum() / total
    mean_value = (weights[:, None] * values).sum(axis=0) / total
    spread = (weights * (offsets - mean_offset) ** 2).sum()
    if len(offsets) < 3 or spread <= 1e-9:
        return mean_value
    slope = (weights[:, None] * (offsets - mean_offset)[:, None] * (values - mean_value)).sum(
        axis=0) / spread
    return mean_value - slope * mean_offset
