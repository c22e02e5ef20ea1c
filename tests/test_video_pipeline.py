"""The face pipeline over a sequence of frames: streamed, steadied, stable in its choices."""

import numpy as np
import pytest

from gpen_ext.arch.cpu import CpuPlan
from gpen_ext.face_models import FaceModels
from gpen_ext.options import RestoreOptions
from gpen_ext.pipeline import FaceRestorer, RestorationInterrupted

from helpers import CountingNetwork


def restorer(network):
    return FaceRestorer(network, FaceModels("/nonexistent", download=False))


def brighten(x):
    return (x + 0.3).clamp(-1, 1)


def jittered(landmarks, frames, sigma=1.5, seed=0):
    rng = np.random.default_rng(seed)
    return [[landmarks + rng.normal(0, sigma, landmarks.shape)] for _ in range(frames)]


def test_frames_stream_through_with_bounded_look_ahead(astronaut, astronaut_landmarks):
    """A generator of frames is read only as far as the look-ahead and a batch need."""
    pulled = []

    def frames():
        for index in range(20):
            pulled.append(index)
            yield astronaut

    options = RestoreOptions(mask="box", temporal_smoothing=3, batch_size=2, keep_crops=False)
    stream = restorer(CountingNetwork(64, brighten)).restore_stream(
        frames(), options, landmarks=[[astronaut_landmarks]] * 20)
    for index, result in enumerate(stream):
        assert len(result.faces) == 1
        assert len(pulled) - index <= 3 + 2 + 1
    assert len(pulled) == 20


def test_steadied_landmarks_move_less_than_the_jitter(astronaut, astronaut_landmarks):
    supplied = jittered(astronaut_landmarks, 16)
    network = CountingNetwork(64, brighten)
    results = restorer(network).restore_images([astronaut] * 16, RestoreOptions(
        mask="box", temporal_smoothing=4), landmarks=supplied)
    used = np.stack([result.faces[0].landmarks for result in results])
    given = np.stack([faces[0] for faces in supplied])
    assert np.abs(np.diff(used, axis=0)).mean() < np.abs(np.diff(given, axis=0)).mean() / 4
    frames = np.stack([result.image for result in results]).astype(float)
    still = restorer(network).restore_images([astronaut] * 16, RestoreOptions(
        mask="box", temporal_smoothing=0), landmarks=supplied)
    shaky = np.stack([result.image for result in still]).astype(float)
    assert np.abs(np.diff(frames, axis=0)).mean() < np.abs(np.diff(shaky, axis=0)).mean() / 2


def test_without_smoothing_each_frame_is_restored_as_an_image(astronaut, astronaut_landmarks):
    supplied = jittered(astronaut_landmarks, 3)
    network = CountingNetwork(64, brighten)
    options = RestoreOptions(mask="box", temporal_smoothing=0)
    together = restorer(network).restore_images([astronaut] * 3, options, landmarks=supplied)
    for result, faces in zip(together, supplied):
        alone = restorer(network).restore(astronaut, options, landmarks=faces)
        assert np.array_equal(result.image, alone.image)


def test_identical_frames_come_out_as_the_image_does(astronaut, astronaut_landmarks):
    network = CountingNetwork(64, brighten)
    options = RestoreOptions(mask="box")
    alone = restorer(network).restore(astronaut, options, landmarks=[astronaut_landmarks])
    for result in restorer(network).restore_images([astronaut] * 5, options,
                                                   landmarks=[[astronaut_landmarks]] * 5):
        assert np.array_equal(result.image, alone.image)


def test_the_largest_face_stays_chosen_along_its_track(astronaut, astronaut_landmarks):
    """Two faces of about one size, the larger by turns by 2%: each frame on its own flips
    between them; along tracks the first choice holds."""
    shift = np.array([250.0, 250.0])
    image = np.zeros((700, 700, 3), np.uint8)
    image[:512, :512] = astronaut
    frames, supplied = [], []
    for index in range(8):
        scale = 1.02 if index % 2 else 0.98
        other = (astronaut_landmarks - astronaut_landmarks.mean(axis=0)) * scale + \
            astronaut_landmarks.mean(axis=0) + shift
        frames.append(image)
        supplied.append([astronaut_landmarks, other])
    numbers = {}
    for smoothing in (0, 3):
        options = RestoreOptions(mask="box", face_selection="largest", temporal_smoothing=smoothing)
        results = restorer(CountingNetwork(64, brighten)).restore_images(frames, options,
                                                                         landmarks=supplied)
        numbers[smoothing] = [round(result.faces[0].box[0]) for result in results]
    assert len(set(numbers[0])) == 2 and len(set(numbers[3])) == 1


def test_a_stop_keeps_what_is_restored_and_says_so(astronaut, astronaut_landmarks):
    def progress(where):
        if where.restored >= 2:
            raise RestorationInterrupted()

    network = CountingNetwork(64, brighten)
    options = RestoreOptions(mask="box", batch_size=2, temporal_smoothing=0)
    results = restorer(network).restore_images([astronaut] * 4, options,
                                               landmarks=[[astronaut_landmarks]] * 4,
                                               progress=progress)
    assert [len(result.faces) for result in results] == [1, 1, 0, 0]
    assert [result.interrupted for result in results] == [False, False, True, True]
    assert np.array_equal(results[3].image, astronaut) and "stopped" in results[3].message
    assert sum(network.batches) == 2  # the faces after the stop never ran


def test_a_stop_takes_effect_within_a_batch_at_the_next_stage(astronaut, astronaut_landmarks):
    """The faces go through every stage a step at a time (one face here), and progress is
    told each face through each stage: a stop told after the first face's network ends the
    batch there, before its mask; no face was pasted, so every image is left as it was."""
    seen = []

    def progress(where):
        seen.append(where)
        if where.stage == "network":
            raise RestorationInterrupted()

    network = CountingNetwork(64, brighten)
    restoring = restorer(network)
    restoring.step_plan = lambda faces: CpuPlan(1, 1)
    options = RestoreOptions(mask="box", batch_size=4, temporal_smoothing=0)
    results = restoring.restore_images([astronaut] * 4, options,
                                       landmarks=[[astronaut_landmarks]] * 4, progress=progress)
    assert network.batches == [1]
    assert [len(result.faces) for result in results] == [0, 0, 0, 0]
    assert all(result.interrupted and np.array_equal(result.image, astronaut)
               for result in results)
    assert [result.message for result in results] == ["stopped: 0 of 1 face(s) restored"] * 4
    assert [(where.stage, where.restored, where.chosen) for where in seen] == [
        ("faces found", 0, 1), ("faces found", 0, 2), ("faces found", 0, 3),
        ("faces found", 0, 4), ("network", 0, 4)]
    assert seen[-1].work == pytest.approx(0.8)


def test_progress_moves_from_the_first_second_face_by_face(astronaut):
    """Finding the faces is said before the detector runs; then each face through each
    stage (a face a step here), the work counted in faces rising to all of them."""
    from gpen_ext.faces import DetectedFace
    seen = []
    restoring = restorer(CountingNetwork(64))
    restoring.step_plan = lambda faces: CpuPlan(1, 1)
    box = np.array([100.0, 100.0, 200.0, 200.0])
    points = np.array([[130, 140], [170, 140], [150, 160], [135, 180], [165, 180]], float)

    class Detector:
        def detect(self, image, threshold, max_side):
            assert seen[-1].stage == "finding faces"  # said before the detector runs
            return [DetectedFace(box + shift, 0.99, points + shift) for shift in (0, 150)]

    restoring.face_models.detector = lambda name: Detector()
    restoring.restore(astronaut, RestoreOptions(mask="box", batch_size=2), progress=seen.append)
    told = [where for where in seen if not where.stage.endswith("under way")]
    assert [where.stage for where in told] == ["finding faces", "faces found", "network",
                                                "masks", "pasted", "network", "masks", "pasted"]
    # each stage's share as given until every stage is timed, then as timed
    assert [where.work for where in told[:5]] == pytest.approx([0, 0, 0.8, 0.9, 1])
    work = [where.work for where in seen]
    assert work == sorted(work) and work[-1] == pytest.approx(2)
    assert [where.restored for where in told[-4:]] == [1, 1, 1, 2]  # a face a step
    assert seen[-1].restored == seen[-1].chosen == 2


def test_landmarks_must_be_given_for_every_frame(astronaut, astronaut_landmarks):
    with pytest.raises(ValueError, match="one list of faces per image"):
        restorer(CountingNetwork(64)).restore_images([astronaut] * 2, RestoreOptions(mask="box"),
                                                     landmarks=[[astronaut_landmarks]])
