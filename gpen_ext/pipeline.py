"""A whole photo in, a restored photo out.

Faces are found (or supplied), numbered left to right and chosen; then, `batch_size` faces at
a time, aligned, restored, blended, masked and pasted into a copy of the photo, so that memory
does not grow with the number of faces. Nothing here knows about any host, and nothing here
finds or downloads weights: the caller hands in a loaded network and the face models.
"""

import numpy as np
import torch

from .aligned import restore_aligned_crops
from .alignment import align_face
from .arch.cpu import CpuPlan, plan
from .compositing import paste_face, paste_masks, restored_crops
from .faces import left_to_right
from .images import split_image, to_dtype, uint8_of
from .landmarks import check_landmarks, face_from_landmarks
from .options import RestoreOptions
from .progress import (FaceCount, FaceProgress,  # noqa: F401 (part of the API)
                       RestorationInterrupted)
from .releases import SIDE_AT, OneNetwork, ReleaseNetworks, pasted_side
from .results import FaceRecord, RestoreResult  # noqa: F401 (part of the API)
from .scheduling import FrameScheduler, PendingImage


class FaceRestorer:
    """The GPEN face pipeline around its networks and its `face_models` (FaceModels: the
    detectors and the parser, each loaded on first use, moved with the restorer)."""

    def __init__(self, network, face_models, device="cpu", precision="auto"):
        """`network`: a loaded GPEN network, run on `device` in `precision`; or, for
        `model: auto`, a releases.ReleaseNetworks (which has its own)."""
        self.networks = network if isinstance(network, ReleaseNetworks) else \
            OneNetwork(network, device, precision)
        self.face_models = face_models
        face_models.move_to(self.device)

    @property
    def size(self):
        """The network's crop size; under auto, the largest a face may get."""
        return self.networks.size

    @property
    def device(self):
        return self.networks.device

    @property
    def precision(self):
        """The precision the network runs in (see inference.resolve_precision)."""
        return self.networks.precision

    @property
    def requested_precision(self):
        """The precision asked for ("auto", ...): a move to another device resolves it again."""
        return self.networks.asked_precision

    def networks_loaded(self):
        """The networks loaded so far, by name: GPEN's, then the face models'."""
        return {**self.networks.loaded(), **self.face_models.networks()}

    def to(self, device):
        """Move the networks and the face models (e.g. to the CPU between uses)."""
        for part in (self.networks, self.face_models):
            part.move_to(torch.device(device))
        return self

    def step_plan(self, faces):
        """How a step of at most `faces` faces goes, decided once for the step and handed to
        the network and the parser: on the CPU the faces it runs side by side anyway, each
        on the threads the free cores allow (cpu.plan), so that a stop waits for one
        step only; on a device the whole batch (no CPU plan)."""
        return plan(faces) if self.device.type == "cpu" else CpuPlan(faces, None)

    def prepare(self, options, detecting=True):
        """Load the detector and parser that `options` need now (missing weights are then
        reported before any face goes through the network)."""
        if detecting:
            self.face_models.detector(options.detection_model)
        if options.mask == "parsing":
            self.face_models.parser(options.parser)

    def restore(self, image, options=RestoreOptions(), landmarks=None, any_float_range=False,
                progress=None):
        """Restore the faces of `image` (see images.py for accepted layouts).

        `landmarks`: optional five (x, y) points per face found elsewhere (see
        `check_landmarks`); only those are restored and no detector runs. `any_float_range`:
        float samples outside [0, 1] are kept as they are away from the faces. `progress` as
        for restore_images."""
        return self.restore_images([image], _one_image(options), None if landmarks is None
                                   else [landmarks], any_float_range, progress)[0]

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
                       any_float_range=False, progress=None, tagged=False):
        """Restore the faces of a sequence of images (a video's frames, any number), yielding
        each one's RestoreResult in order as soon as its faces are pasted, faces `batch_size`
        at a time across images; only the images that a batch and the steadying's look-ahead
        need are held (scheduling.py). With `temporal_smoothing`, faces are followed and
        steadied from frame to frame and stay chosen along their tracks (tracking.py).
        `landmarks`: None, or one list of faces per image. `tagged`: each item is (image,
        tag), the tag handed back as the result's `tag`. `progress(FaceProgress)`, at each
        stage (finding an image's faces, each face through the network, the masks, each
        paste), may raise RestorationInterrupted to stop at the next stage, keeping the faces
        restored (the others left as they were, their images marked `interrupted`)."""
        _check_options(options)
        schedule = FrameScheduler(options, progress)
        supplied = None if landmarks is None else iter(landmarks)
        for index, item in enumerate(images):
            image, tag = item if tagged else (item, None)
            pending = PendingImage(image, options, any_float_range, index, tag)
            given = None if supplied is None else _next_landmarks(supplied)
            schedule.add(pending, _faces_in(self, pending, given, options, schedule.count))
            yield from _restored(self, schedule, options, whole_only=True)
        schedule.finish()
        yield from _restored(self, schedule, options, whole_only=False)

    def detect(self, image, options=RestoreOptions(), any_float_range=False):
        """The faces of an image, left to right: a face's number is its place here."""
        return detect_faces(self.face_models, image, options, any_float_range)

    def restore_batch(self, batch, options, count=None):
        """Align, restore, mask and paste a batch of (PendingImage, tracking.TrackedFace),
        each face from its image's source into its image's output, with its record; `count`
        (scheduling.FaceCount) is told each stage. Under auto the faces go release by
        release. The faces go through every stage a step at a time (those the network runs
        side by side): a stop waits for one stage of one step, and leaves the faces not yet
        pasted as they are."""
        count = FaceCount(None) if count is None else count
        self.prepare(options, detecting=False)  # the parser, loaded at the first batch
        wanted = [self.networks.release_for(pasted_side(
            (tracked.typical or tracked.face).landmarks, options.template))
            for _, tracked in batch]
        for release in dict.fromkeys(wanted):
            faces = [item for item, want in zip(batch, wanted) if want == release]
            done = 0 if count.stopped else self._restore_faces(
                self.networks.runner(release), faces, options, count)
            for image, _ in faces[done:]:
                image.skip()

    def _restore_faces(self, runner, faces, options, count):
        """restore_batch's faces of one release, through `runner`: how many were pasted."""
        aligned = [align_face(image.source, tracked.face.landmarks, runner.size,
                              options.template) for image, tracked in faces]
        inputs = np.clip(np.stack([crop / image.layout.full_scale for (image, _), (crop, _)
                                   in zip(faces, aligned)]).astype(np.float32), 0, 1)
        step_plan, done = self.step_plan(len(faces)), 0
        step = step_plan.side_by_side
        while done < len(faces) and not count.stopped and _restore_step(
                self, runner, *(items[done:done + step] for items in (faces, aligned, inputs)),
                options, count, step_plan):
            done += step
        return done

    def restore_aligned(self, image, options=RestoreOptions(), any_float_range=False):
        """Restore an image that is already an aligned face crop, at its own size."""
        return self.restore_aligned_images([image], options, any_float_range)[0]

    def restore_aligned_images(self, images, options=RestoreOptions(), any_float_range=False,
                               progress=None):
        """Restore aligned face crops (any sizes), `batch_size` at a time (aligned.py)."""
        _check_options(options)
        return restore_aligned_crops(self, images, options, any_float_range, progress)


def detect_faces(face_models, image, options=RestoreOptions(), any_float_range=False):
    """The faces of an image (see images.py for accepted layouts), left to right, as the
    detector of `face_models` (FaceModels) finds them: no GPEN network is needed."""
    rgb, layout = split_image(image, any_float_range)
    return find_faces(face_models, rgb, layout, options)


def find_faces(face_models, rgb, layout, options, landmarks=None):
    """Faces, ordered left to right by their box centres: the supplied ones, or those the
    detector finds (on 8-bit pixels)."""
    if landmarks is not None:
        faces = [face_from_landmarks(points, SIDE_AT) for points in check_landmarks(landmarks)]
    else:
        preview = rgb if rgb.dtype == np.uint8 else \
            to_dtype(rgb * (255.0 / layout.full_scale), np.uint8, 255.0)
        faces = face_models.detector(options.detection_model).detect(
            preview, options.detection_threshold, options.detection_max_side)
    return left_to_right(faces)


def _faces_in(restorer, pending, given, options, count):
    """The faces found in (or `given` for) an image; none once stopped, which may come while
    the detector works: the image is then marked unexamined."""
    if not count.stopped:
        if given is None:
            count.finding()
        try:
            with count.checker("finding faces"):
                return find_faces(restorer.face_models, pending.source, pending.layout, options,
                                  given)
        except RestorationInterrupted:
            pass
    pending.unexamined = True  # no more looking for faces once stopped
    return []


def _restored(restorer, schedule, options, whole_only):
    """The batches the schedule has ready restored (`whole_only`: only full ones, while
    images may still come), then the RestoreResults of the images now done, in order."""
    for batch in schedule.batches(whole_only):
        restorer.restore_batch(batch, options, schedule.count)
    for image in schedule.finished():
        records = sorted(image.records, key=lambda record: record.number)  # auto: by release
        yield RestoreResult(image.merged(), records, len(image.faces), image.paste_mask,
                            f"{restorer.device} ({restorer.precision})",
                            image.skipped > 0 or image.unexamined, image.tag, len(image.chosen))


def _next_landmarks(supplied):
    try:
        return next(supplied)
    except StopIteration:
        raise ValueError("landmarks: one list of faces per image; there are more images") \
            from None


def _restore_step(restorer, runner, batch, aligned, inputs, options, count, step_plan):
    """FaceRestorer.restore_batch's faces of one step, pasted unless a stop comes before
    they are all through the network and the parser (checked inside them too); one CPU plan
    for both."""
    try:
        with count.checker("network", len(inputs)):
            restored = restored_crops(runner, inputs, options,
                                      [tracked.face.box for _, tracked in batch], step_plan)
        count.passed("network", len(restored))
        if count.stopped:
            return False
        with count.checker("masks", len(restored)):
            masks = _masks_of(restorer, restored, options, step_plan)
    except RestorationInterrupted:
        return False
    release = runner.size if restorer.networks.auto else None
    count.passed("masks", len(restored))
    for (image, tracked), (crop, forward), before, after, mask in zip(
            batch, aligned, inputs, restored, masks):
        pasted = paste_face(image.output, after * image.layout.full_scale,
                            crop.astype(np.float32), mask, forward, options.visibility)
        image.add(FaceRecord.of(tracked, before, after, mask, options.keep_crops, release),
                  pasted)
        count.passed("pasted", 1)
    return True


def _masks_of(restorer, restored, options, step_plan=None):
    """Paste masks in crop coordinates for restored float crops: parsed, or the box's."""
    parser = None if options.mask == "box" else restorer.face_models.parser(options.parser)
    return paste_masks([uint8_of(crop) for crop in restored], parser and (
        lambda crops: parser.face_masks(crops, options.face_regions, restorer.precision,
                                        step_plan)))


def _one_image(options):
    """The options for one image, which is no clip: nothing to steady it against, and no grey
    copy of a huge scan made for the motion between frames."""
    _check_options(options)
    return options.overlay(temporal_smoothing=0)


def _check_options(options):
    if not isinstance(options, RestoreOptions):
        raise ValueError(f"options must be RestoreOptions, got {type(options).__name__}")
