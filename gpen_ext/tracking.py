"""Faces followed from frame to frame, their landmarks steadied over time.

A detector's landmarks wander by a pixel or two from one frame to the next even on a still
face, and GPEN, aligned on them, answers each frame with a slightly different face: restored
faces shimmer and their seams crawl. Here each face is followed through its shot (a track),
and its landmarks at each frame are replaced by a weighted straight-line fit through its
landmarks over the frames around it, before and after. A still face then gets still
landmarks, and a face in steady motion is followed without lag: a line through a steady motion
is the motion itself, and the frames after a frame weigh as much as those before it. The
correction is capped at a share of the face's size (detectors jitter by up to a tenth of it on
small faces), so that a face never moves far from where the detector put it.

Tracks end at scene cuts (a frame that looks unlike the one before) and where a face is not
found again within a few frames; a short gap where the detector missed a face is filled from
the frames around it. Faces are numbered per shot in the order they appear, left to right
within a frame, so that a single picture's faces are numbered left to right as always.
"""

from collections import deque
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .face_models import left_to_right

SIGNATURE_SIDE = 16       # frames are compared as 16 x 16 grey thumbnails
CUT_DIFFERENCE = 0.12     # mean thumbnail difference (0..1) above which a frame starts a shot
MATCH_OVERLAP = 0.3       # a face continues a track whose last box it overlaps this much (IoU)
MAX_GAP = 2               # frames a face may go unfound and still continue its track
MAX_CORRECTION = 0.3      # of the distance between the eyes: the most steadying moves a point
WEIGHT_WIDTH = 0.5        # Gaussian weights of standard deviation radius x this


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
    face: object  # face_models.DetectedFace


@dataclass
class TrackedFrame:
    index: int        # the frame's place in the clip, from 0
    faces: list       # TrackedFace, left to right
    new_shot: bool    # the first frame of a shot: face numbers start again


@dataclass
class Track:
    number: int
    seen: dict = field(default_factory=dict)  # frame index -> DetectedFace

    def last(self):
        return self.seen[max(self.seen)]


class FaceTracker:
    """Frames go in with the faces found in each; each frame comes out, in order and once, as
    a TrackedFrame with its index, when the `radius` frames after it are in (or at `finish`),
    with its faces numbered and steadied.
    With radius 0, every frame is a shot of its own and its faces are left as found."""

    def __init__(self, radius):
        self.radius = int(radius)
        self.waiting = deque()   # (index, new_shot, the shot's tracks then), not yet out
        self.tracks = []         # the current shot's tracks seen within reach
        self.next_number = 0     # the current shot's next face number
        self.count = 0           # frames taken
        self.signature = None

    def add(self, faces, signature):
        """Take the next frame's faces (DetectedFace) and its scene_signature; returns the
        TrackedFrames now complete."""
        index, self.count = self.count, self.count + 1
        new_shot = self._cut(signature)
        if new_shot:
            self.tracks, self.next_number = [], 0
        self._match(index, faces)
        self.waiting.append((index, new_shot, list(self.tracks)))
        return self._complete(index - self.radius)

    def finish(self):
        """The frames still waiting for the frames after them: the clip has ended."""
        return self._complete(self.count)

    def _cut(self, signature):
        previous, self.signature = self.signature, signature
        return self.radius == 0 or previous is None or previous.shape != signature.shape or \
            float(np.abs(previous - signature).mean()) > CUT_DIFFERENCE

    def _match(self, index, faces):
        """Give each face of frame `index` a track: the one whose last box it overlaps most,
        among those seen in the last MAX_GAP + 1 frames; else a new one."""
        alive = [track for track in self.tracks if index - max(track.seen) <= MAX_GAP + 1]
        pairs = sorted(((overlap(track.last().box, face.box), t, f)
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

    def _complete(self, through):
        done = []
        while self.waiting and self.waiting[0][0] <= through:
            index, new_shot, tracks = self.waiting.popleft()
            faces = [TrackedFace(track.number, self._steadied(track, index)) for track in tracks
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
        if self.radius == 0:
            return track.seen[index]
        frames = sorted(i for i in track.seen if abs(i - index) <= self.radius)
        found = [track.seen[i] for i in frames]
        offsets = np.array(frames, np.float64) - index
        weights = np.exp(-0.5 * (offsets / (self.radius * WEIGHT_WIDTH)) ** 2)
        values = np.stack([np.concatenate([face.landmarks.ravel(), face.box]) for face in found])
        fitted = line_fit(offsets, values, weights)
        landmarks, box = fitted[:10].reshape(5, 2), fitted[10:]
        own = track.seen.get(index)
        if own is None:  # a gap: the fit through the frames around it
            return replace(found[0], box=box, landmarks=landmarks,
                           score=min(face.score for face in found))
        eyes = float(np.linalg.norm(own.landmarks[1] - own.landmarks[0]))
        correction = landmarks - own.landmarks
        length = np.linalg.norm(correction, axis=1, keepdims=True)
        limit = MAX_CORRECTION * eyes
        correction *= np.minimum(1.0, limit / np.maximum(length, 1e-12))
        return replace(own, box=box, landmarks=own.landmarks + correction)


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
