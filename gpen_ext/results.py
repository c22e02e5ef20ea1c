"""What a restoration gives back: the image, and a record of each face restored."""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .images import uint8_of


@dataclass
class FaceRecord:
    number: int                  # among all faces found, from 0 left to right
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    aligned: np.ndarray = None   # RGB uint8 crop given to the network
    restored: np.ndarray = None  # RGB uint8 crop after blending, before pasting
    mask: np.ndarray = None      # its paste mask, float in [0, 1], in crop coordinates
    release: int = None          # under `model: auto`, the release that restored it (its size)

    @classmethod
    def of(cls, tracked, before, after, mask, keep_crops, release=None):
        """The record of a tracking.TrackedFace restored from float crop `before` into
        `after` (both in [0, 1]), pasted through `mask`; the crops kept if asked."""
        face = tracked.face
        record = cls(tracked.number, face.box, face.landmarks, face.score, release=release)
        if keep_crops:
            record.aligned, record.restored, record.mask = uint8_of(before), uint8_of(after), mask
        return record


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list = field(default_factory=list)
    found: int = 0  # faces detected or supplied, before selection
    paste_mask: np.ndarray = None  # with options.keep_paste_mask: where the faces went (H x W)
    ran_on: str = ""  # the device and precision the network ran in, e.g. "cuda:0 (fp16)"
    interrupted: bool = False  # stopped before every chosen face was restored
    tag: object = None  # restore_stream's: the caller's tag of this image, handed back
    chosen: int = None  # of the faces found, those chosen to restore; None: all of them

    @property
    def to_restore(self):
        """The faces there were to restore: those chosen, or all found."""
        return self.found if self.chosen is None else self.chosen

    @property
    def releases(self):
        """Under `model: auto`, how many faces each release restored (release_counts)."""
        return Counter(face.release for face in self.faces if face.release is not None)

    @property
    def message(self):
        if self.interrupted:
            return f"stopped: {counted(len(self.faces), self.to_restore, self.found)}" if \
                self.found else "stopped before its faces were looked for; image unchanged"
        if not self.found:
            return "no faces found; image unchanged"
        if not self.faces:
            return f"{self.found} face(s) found, none selected; image unchanged"
        return counted(len(self.faces), self.to_restore, self.found) + (
            f" ({release_counts(self.releases)})" if self.releases else "")


def counted(restored, chosen, found=None):
    """Faces counted as every host says it (progress, infotext, console): "4 of 4 face(s)
    restored", and "(23 found)" where fewer were chosen than found."""
    text = f"{restored} of {chosen} face(s) restored"
    return text if found is None or found == chosen else f"{text} ({found} found)"


def face_tally(result):
    """A result's faces restored by release, for adding up over files and frames: a Counter
    by size under auto, else under None."""
    return Counter(face.release for face in result.faces)


def release_counts(releases):
    """How many faces each release restored under auto, as every host tells it: "auto: 256 x
    28, 1024 x 1" (`releases`: a Counter by release size)."""
    return "auto: " + ", ".join(f"{size} x {count}" for size, count in sorted(releases.items()))
