"""A face's motion measured from its pixels (gpen_ext/motion.py), and faces steadied by it
(gpen_ext/tracking.py): shake and motion followed exactly, detector noise averaged away,
one bad point kept from spreading."""

import cv2
import numpy as np
import pytest

from gpen_ext import motion
from gpen_ext.landmarks import face_from_landmarks
from gpen_ext.tracking import FaceTracker


def moved(image, dx, dy, degrees=0.0, scale=1.0):
    """`image` seen by a camera so moved, and the 2x3 transform taking its points there."""
    height, width = image.shape[:2]
    transform = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    transform[:, 2] += [dx, dy]
    return cv2.warpAffine(image, transform, (width, height), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT), transform


@pytest.fixture(scope="module")
def shaken(astronaut, astronaut_landmarks):
    """24 frames of the astronaut under a hand-held camera: a drift of a few pixels, a shake
    of a third of a pixel a frame and a slow turn; the true points of her face."""
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.normal(0, 0.35, (24, 2)), axis=0)
    frames, truth = [], []
    for index, (dx, dy) in enumerate(steps):
        pixels, transform = moved(astronaut, dx, dy, degrees=0.1 * index)
        noisy = np.clip(pixels + rng.normal(0, 2.0, pixels.shape), 0, 255).astype(np.uint8)
        frames.append(noisy)
        truth.append(motion.apply(transform, astronaut_landmarks))
    return frames, np.stack(truth)


def test_a_subpixel_motion_is_measured_to_a_few_hundredths_of_a_pixel(astronaut,
                                                                      astronaut_landmarks):
    before, to_before = moved(astronaut, 0.0, 0.0)
    after, to_after = moved(astronaut, 0.37, -0.61, degrees=0.8, scale=1.01)
    box = face_from_landmarks(astronaut_landmarks, 512).box
    measured = motion.face_motion(motion.grey_frame(before), motion.grey_frame(after), box)
    truth = motion.compose(to_after, cv2.invertAffineTransform(to_before))
    error = motion.apply(measured, astronaut_landmarks) - motion.apply(truth, astronaut_landmarks)
    assert np.linalg.norm(error, axis=1).max() < 0.05


def test_no_answer_where_the_pixels_cannot_tell():
    flat = np.full((200, 200), 120, np.uint8)
    assert motion.face_motion(flat, flat, np.array([50.0, 50, 150, 150])) is None
    assert motion.face_motion(flat, flat, np.array([0.0, 0, 5, 5])) is None  # a sliver


def test_a_face_placed_against_its_first_frame_does_not_drift(shaken, astronaut_landmarks):
    frames, truth = shaken
    greys = [motion.grey_frame(frame) for frame in frames]
    reference = motion.FaceReference(greys[0], face_from_landmarks(truth[0], 512).box)
    placed = motion.IDENTITY
    errors = []
    for index in range(1, len(frames)):
        placed = reference.place(greys[index], placed)
        errors.append(np.linalg.norm(motion.apply(placed, truth[0]) - truth[index], axis=1).mean())
    assert max(errors) < 0.1 and errors[-1] < 0.1  # the last as good as the first


def steadied(tracker, frames, points):
    out = []
    for frame, faces in zip(frames, points):
        detected = [face_from_landmarks(face, 512) for face in faces]
        out += tracker.add(detected, np.zeros((16, 16), np.float32), motion.grey_frame(frame))
    out += tracker.finish()
    return np.stack([frame.faces[0].face.landmarks for frame in out])


def test_shake_is_followed_and_the_detectors_noise_averaged_away(shaken):
    """Detector-like jitter (a pixel, correlated from frame to frame) on a face the camera
    shakes: the steadied points follow every shake and are as near the truth as the mean of
    the jitter over the window could bring them (what averaging with the true motion gives),
    at the clip's ends too."""
    frames, truth = shaken
    rng = np.random.default_rng(1)
    error = np.zeros(truth.shape)
    error[0] = rng.normal(0, 0.7, truth.shape[1:])
    for index in range(1, len(truth)):
        error[index] = 0.5 * error[index - 1] + rng.normal(0, 0.6, truth.shape[1:])
    detected = truth + error
    out = steadied(FaceTracker(15), frames, detected[:, None])
    raw = np.linalg.norm(detected - truth, axis=-1).mean(axis=1)
    steady = np.linalg.norm(out - truth, axis=-1).mean(axis=1)
    window = [error[max(0, index - 15):index + 16].mean(axis=0) for index in range(len(error))]
    averaged = np.linalg.norm(np.stack(window), axis=-1).mean(axis=1)
    assert steady.mean() < raw.mean() / 1.7
    assert steady.mean() < 1.1 * averaged.mean() + 0.02
    assert steady[-3:].mean() < 1.1 * averaged[-3:].mean() + 0.05
    raw_change = np.abs(np.diff(detected - truth, axis=0)).mean()
    steady_change = np.abs(np.diff(out - truth, axis=0)).mean()
    assert steady_change < raw_change / 5  # the shake is the footage's, not flicker


def test_one_bad_point_does_not_spread(shaken):
    frames, truth = shaken
    detected = truth.copy()
    detected[10, 3] += [7.0, -2.0]  # one mouth corner 7 px off, once
    out = steadied(FaceTracker(15), frames, detected[:, None])
    error = np.linalg.norm(out - truth, axis=-1)
    assert error.max() < 0.35  # the frame itself too: the others outvote it
