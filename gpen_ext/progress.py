"""Where a restoration is, as its caller is told, and the caller's stop.

A progress callback is told a FaceProgress at every stage (finding an image's faces, each
face through the network, the masks, the paste) and, while the detector, the network or the
parser works, every CHECK_SECONDS from inside it (`FaceCount.checker`), so that a stop raised
there lands within a layer or a band, not after a whole step of a busy CPU. The work is
counted in faces, each stage's share of a face taken from the time the stages have taken so
far in this run (STAGE_SHARE until each has been timed once), and a step under way moves the
bar by the time it has run against the time such a step took: the bar moves with time.
"""

import logging
import threading
import time
from dataclasses import dataclass

from .arch.interrupts import checked_by
from .results import counted

log = logging.getLogger(__name__)

STAGES = ("network", "masks", "pasted")
STAGE_SHARE = {"network": 0.8, "masks": 0.1, "pasted": 0.1}  # until each stage is timed
CHECK_SECONDS = 0.2   # how often work under way asks the caller whether to stop
UNDER_WAY_MOST = 0.9  # of a step's share, the most shown before the step is done


class RestorationInterrupted(Exception):
    """Raised by a progress callback to stop restoring: what is restored so far is kept."""


@dataclass(frozen=True)
class FaceProgress:
    """Where a restoration is: the faces restored of those chosen so far, the work done
    counted in faces (those restored and the parts done of the faces under way), and the
    stage: "finding faces", "faces found", a stage of STAGES just passed, or one under way
    ("network under way", "masks under way")."""
    restored: int
    chosen: int
    work: float
    stage: str

    @property
    def text(self):
        """The words every host shows: "GPEN: finding faces", "GPEN: 3 of 9 face(s)
        restored"."""
        if self.stage == "finding faces":
            return "GPEN: finding faces"
        return f"GPEN: {counted(self.restored, self.chosen)}"


class FaceCount:
    """Faces chosen and restored, told to a progress callback, which may stop the work by
    raising RestorationInterrupted: the work then stops at the next check, and `stopped`."""

    def __init__(self, progress, clock=time.monotonic):
        self.progress, self.clock = progress, clock
        self.chosen = self.restored = 0
        self.work = 0.0  # as last told: it never goes back
        self.stopped = False
        self.stop_error = None  # a caller's own error that stopped the work (ComfyUI's)
        self.faces = dict.fromkeys(STAGES, 0)      # faces past each stage
        self.seconds = dict.fromkeys(STAGES, 0.0)  # time each stage has taken
        self.mark = self.last_check = clock()      # when the last stage ended
        self.lock = threading.RLock()  # checks come from the threads that do the work

    def finding(self):
        self._report("finding faces")
        self.mark = self.clock()

    def found(self, count):
        self.chosen += count
        self._report("faces found")
        self.mark = self.clock()

    def passed(self, stage, faces):
        """`faces` faces have passed `stage`; "pasted" counts them restored."""
        now = self.clock()
        self.seconds[stage] += now - self.mark
        self.mark = now
        self.faces[stage] += faces
        if stage == "pasted":
            self.restored += faces
        self._report(stage)

    def checker(self, stage, faces=0):
        """A block in which the networks' work (`faces` faces through `stage`, or finding
        faces) is checked for a stop and told as under way; RestorationInterrupted leaves
        the block once stopped (at once, if it is already)."""
        self._raise_if_stopped()
        started = self.clock()

        def check():
            if not self.stopped and self.clock() - self.last_check >= CHECK_SECONDS and \
                    self.lock.acquire(blocking=False):
                try:
                    self.last_check = self.clock()
                    self._report("finding faces" if stage not in STAGES
                                 else f"{stage} under way", (stage, faces, started))
                finally:
                    self.lock.release()
            self._raise_if_stopped()
        return checked_by(check)

    def _raise_if_stopped(self):
        """Raise in every thread at work the error that stopped it: RestorationInterrupted,
        or the caller's own (which it may raise only once: ComfyUI's clears its flag)."""
        if self.stopped:
            raise self.stop_error or RestorationInterrupted()

    def shares(self):
        """Each stage's share of a face's time: as timed in this run, once each stage is."""
        if not all(self.faces.values()):
            return STAGE_SHARE
        per_face = {stage: self.seconds[stage] / self.faces[stage] for stage in STAGES}
        total = sum(per_face.values())
        return {stage: per_face[stage] / total for stage in STAGES} if total > 0 \
            else STAGE_SHARE

    def _work(self, under_way=None):
        shares = self.shares()
        work = sum(self.faces[stage] * shares[stage] for stage in STAGES)
        if under_way is not None and under_way[0] in STAGES and self.faces[under_way[0]]:
            stage, faces, started = under_way
            expected = self.seconds[stage] / self.faces[stage] * faces
            if expected > 0:
                done = min(UNDER_WAY_MOST, (self.clock() - started) / expected)
                work += faces * shares[stage] * done
        return min(work, self.chosen)

    def _report(self, stage, under_way=None):
        if self.progress is None or self.stopped:
            return
        with self.lock:
            self.work = max(self.work, self._work(under_way))
            try:
                self.progress(FaceProgress(self.restored, self.chosen, self.work, stage))
            except RestorationInterrupted:
                self.stopped = True
                log.warning("GPEN: stopped: %s", counted(self.restored, self.chosen))
            except BaseException as error:  # the caller's own way to stop: it goes on up
                self.stopped, self.stop_error = True, error
                raise
