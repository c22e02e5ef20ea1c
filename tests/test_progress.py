"""A stop that lands inside the networks, and a bar that moves with time."""

import threading
import time

import numpy as np
import pytest
import torch

from gpen_ext.arch.interrupts import between_steps
from gpen_ext.face_models import FaceModels
from gpen_ext.options import RestoreOptions
from gpen_ext.pipeline import FaceRestorer, RestorationInterrupted
from gpen_ext.progress import STAGE_SHARE, FaceCount

LAYER_SECONDS = 0.05


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_stage_shares_and_a_step_under_way_follow_the_time_taken():
    clock, seen = Clock(), []
    count = FaceCount(seen.append, clock)
    count.found(2)
    assert count.shares() == STAGE_SHARE  # nothing timed yet
    for stage, seconds in (("network", 3.0), ("masks", 1.0), ("pasted", 0.0)):
        clock.now += seconds
        count.passed(stage, 1)
    assert count.shares() == pytest.approx({"network": 0.75, "masks": 0.25, "pasted": 0.0})
    assert seen[-1].work == pytest.approx(1.0)
    with count.checker("network", 1):
        clock.now += 1.5  # half the time a face took
        between_steps()
    assert seen[-1].stage == "network under way"
    assert seen[-1].work == pytest.approx(1 + 0.75 * 0.5)
    with count.checker("network", 1):
        clock.now += 100  # far longer than expected: held short of the step's end
        between_steps()
    assert seen[-1].work == pytest.approx(1 + 0.75 * 0.9)


class SlowNetwork(torch.nn.Module):
    """Forty layers of LAYER_SECONDS each: two seconds a face."""

    def __init__(self, size=64):
        super().__init__()
        self.size = size
        self.layers = torch.nn.ModuleList(Sleep() for _ in range(40))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Sleep(torch.nn.Module):
    runs = 0

    def forward(self, x):
        Sleep.runs += 1
        time.sleep(LAYER_SECONDS)
        return x


def stopped_after(seconds):
    """A progress callback that asks to stop once `seconds` have passed; and when it did."""
    started, asked = time.monotonic(), []

    def progress(where):
        if time.monotonic() - started >= seconds:
            asked.append(asked[0] if asked else time.monotonic())
            raise RestorationInterrupted()
    return progress, asked


def test_a_stop_lands_inside_the_network_and_pastes_no_half_done_face(astronaut,
                                                                        astronaut_landmarks):
    restorer = FaceRestorer(SlowNetwork(), FaceModels("/nonexistent", False))
    progress, asked = stopped_after(0.5)
    Sleep.runs = 0
    result = restorer.restore(astronaut, RestoreOptions(mask="box"),
                              landmarks=[astronaut_landmarks] * 2, progress=progress)
    landed = time.monotonic() - asked[0]
    assert landed < 0.5, landed  # a layer and a check, not the two seconds of a face
    assert Sleep.runs < 40 and result.interrupted and not result.faces
    assert np.array_equal(result.image, astronaut)
    assert result.message == "stopped: 0 of 2 face(s) restored"


def test_a_stop_lands_while_the_detector_works(astronaut):
    class SlowDetector:
        def detect(self, image, threshold, max_side):
            for _ in range(40):  # as the detector's layers check
                between_steps()
                time.sleep(LAYER_SECONDS)
            return []

    restorer = FaceRestorer(SlowNetwork(), FaceModels("/nonexistent", False))
    restorer.face_models.detector = lambda name: SlowDetector()
    progress, asked = stopped_after(0.3)
    started = time.monotonic()
    result = restorer.restore(astronaut, RestoreOptions(mask="box"), progress=progress)
    assert time.monotonic() - started < 1.0 and result.interrupted
    assert result.message == "stopped before its faces were looked for; image unchanged"


def stopped_threads(count, caught):
    """Two threads at work under `count`'s checks, as faces side by side are: the errors of
    type `caught` that ended them."""
    ended = []

    def work():
        try:
            with count.checker("network", 1):
                for _ in range(100):
                    between_steps()
                    time.sleep(0.01)
        except caught as error:
            ended.append(error)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    return ended


def test_checks_from_helper_threads_stop_them_all():
    """Faces side by side each check on their own thread; a stop asked for while they work
    ends every one."""
    def progress(where):
        if where.stage == "network under way":
            raise RestorationInterrupted()
    count = FaceCount(progress)
    count.found(1)
    assert not count.stopped  # asked for only once the work is under way
    ended = stopped_threads(count, RestorationInterrupted)
    assert count.stopped and len(ended) == 2


def test_a_hosts_own_stop_raised_once_stops_every_thread_and_goes_on_up():
    """ComfyUI's Cancel raises its own exception once (it clears its flag as it raises):
    every thread at work stops with it, and that is what the caller gets."""
    class Cancelled(Exception):
        pass
    flag = {"set": True}

    def progress(where):
        if flag.pop("set", False):
            raise Cancelled()
    count = FaceCount(progress)
    ended = stopped_threads(count, Cancelled)
    assert len(ended) == 2 and ended[0] is ended[1] and count.stopped
    with pytest.raises(Cancelled):
        count.found(1)  # told nothing more, and a new step is refused
        with count.checker("network", 1):
            pass
