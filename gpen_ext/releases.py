"""Which GPEN network restores a face: a named model's one network, or, under `model: auto`,
the release each face's size calls for.

Under auto a face goes through the smallest release whose output, enlarged at most
ENLARGEMENT times, covers the face where it is pasted back (the side of its aligned crop in
the image, the same whatever the crop's size): small background faces through the light
GPEN-BFR-256, a portrait through 1024 or 2048. Each release is loaded when a face first
needs it (downloaded if missing and allowed); beyond a budget of weights the one least
recently used is let go. A release that cannot be had is replaced by the nearest one that
can, said once in the log.
"""

import logging
import math

import torch

from .alignment import similarity_transform, template_points
from .checkpoints import CheckpointError
from .download import DownloadError
from .inference import NetworkRunner, resolve_precision
from .registry import RELEASE_SIZES, release_for

log = logging.getLogger(__name__)

BUDGET_MB = 600  # weights held at once: 256 with one other, or two of the larger releases
SIDE_AT = 512  # the crop size the pasted side is measured at (any gives the same)


def pasted_side(landmarks, template="gpen"):
    """The side, in image pixels, that a face's aligned crop covers where it is pasted."""
    forward = similarity_transform(landmarks, template_points(template, SIDE_AT))
    return SIDE_AT / math.hypot(forward[0, 0], forward[0, 1])


def weight_bytes(network):
    return sum(tensor.nbytes for tensor in (*network.parameters(), *network.buffers()))


class OneNetwork:
    """A named model: every face goes through its network."""

    auto = False

    def __init__(self, network, device, precision):
        self.only = NetworkRunner(network, device, precision)
        self.size = self.only.size

    @property
    def device(self):
        return self.only.device

    @property
    def precision(self):
        return self.only.precision

    @property
    def asked_precision(self):
        return self.only.asked_precision

    def release_for(self, side):
        return self.size

    def runner(self, release):
        return self.only

    def loaded(self):
        return {"network": self.only.network}

    def move_to(self, device):
        self.only.move_to(device)

    def substitutes(self):
        return {}


class ReleaseNetworks:
    """`auto`: every release, through `load(size)` (the release's network, downloaded if
    need be), each when a face first needs it. `installed`: the sizes whose files are here,
    to fall back on."""

    auto = True
    size = max(RELEASE_SIZES)  # the largest crop a face may need

    def __init__(self, load, installed, device, precision, budget_mb=BUDGET_MB):
        self.load, self.installed = load, set(installed)
        self.device, self.asked_precision = torch.device(device), precision
        self.runners = {}  # size -> NetworkRunner, the one least recently used first
        self.unobtainable = {}  # size -> why it cannot be had
        self.budget = budget_mb * 2 ** 20
        self.last = None

    @property
    def precision(self):
        return self.last.precision if self.last is not None else \
            resolve_precision(self.asked_precision, self.device, warn=False)

    @staticmethod
    def release_for(side):
        """The release for a face pasted `side` pixels wide (see the module's text)."""
        return release_for(side)

    def runner(self, size):
        """The runner of release `size`, or of the nearest one that can be had."""
        while size not in self.runners:
            if size in self.unobtainable:
                size = self._nearest(size)
                continue
            try:
                network = self.load(size)
            except (DownloadError, CheckpointError, OSError) as error:
                self.unobtainable[size] = error
                log.warning("GPEN: auto: GPEN-BFR-%d cannot be had (%s); its faces go through "
                            "the nearest release that can", size, error)
                continue
            self._make_room(weight_bytes(network))
            self.runners[size] = NetworkRunner(network, self.device, self.asked_precision)
            self.installed.add(size)
        self.runners[size] = self.last = self.runners.pop(size)  # now the most recently used
        return self.last

    def _nearest(self, size):
        """The nearest release to `size` that can be had (the larger of two as near)."""
        candidates = (self.installed | set(self.runners)) - set(self.unobtainable)
        if not candidates:
            raise self.unobtainable[size]
        return min(candidates, key=lambda other: (abs(math.log2(other / size)), -other))

    def substitutes(self):
        """{release that could not be had: the one its faces went through instead}."""
        return {size: self._nearest(size) for size in self.unobtainable}

    def _make_room(self, needed):
        while self.runners and needed + sum(weight_bytes(runner.network) for runner in
                                            self.runners.values()) > self.budget:
            size = next(iter(self.runners))
            log.info("GPEN: auto: GPEN-BFR-%d let go to make room", size)
            if self.runners.pop(size) is self.last:
                self.last = None

    def loaded(self):
        return {f"network_{size}": runner.network for size, runner in self.runners.items()}

    def move_to(self, device):
        self.device = torch.device(device)
        for runner in self.runners.values():
            runner.move_to(self.device)

