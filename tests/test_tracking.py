"""Faces followed from frame to frame and their landmarks steadied (gpen_ext/tracking.py)."""

import numpy as np
import pytest

from gpen_ext.faces import DetectedFace
from gpen_ext.tracking import MAX_GAP, FaceTracker, line_fit, scene_signature, tracker_for

EYES_APART = 60.0
SHAPE = np.array([[-30, -20], [30, -20], [0, 5], [-22, 30], [22, 30]], float)  # eyes 60 px apart


def face_at(x, y, jitter=None):
    points = SHAPE + [x, y] + (0 if jitter is None else jitter)
    return DetectedFace(np.array([x - 50, y - 50, x + 50, y + 50], float), 0.99, points)


def run(tracker, frames, signature=None):
    """Every TrackedFrame out of the tracker for `frames` (lists of faces), in order."""
    signature = np.zeros((16, 16), np.float32) if signature is None else signature
    out = []
    for faces in frames:
        out += tracker.add(faces, signature)
    return out + tracker.finish()


def test_a_still_face_with_jitter_is_held_still():
    rng = np.random.default_rng(0)
    frames = [[face_at(200, 150, rng.normal(0, 1.5, (5, 2)))] for _ in range(60)]
    out = run(FaceTracker(4), frames)
    assert len(out) == 60 and all(len(frame.faces) == 1 for frame in out)
    raw = np.stack([faces[0].landmarks for faces in frames])
    steadied = np.stack([frame.faces[0].face.landmarks for frame in out])
    raw_motion = np.abs(np.diff(raw, axis=0)).mean()
    steady_motion = np.abs(np.diff(steadied, axis=0)).mean()
    assert steady_motion < raw_motion / 5
    error = np.abs(steadied - (SHAPE + [200, 150]))
    assert error.mean() < 0.5 < np.abs(raw - (SHAPE + [200, 150])).mean()  # nearer the truth
    assert np.sqrt((error[4:-4] ** 2).mean()) < 1.5 / 2.5  # with frames on both sides
    assert {frame.faces[0].number for frame in out} == {0}


def test_steady_motion_is_followed_without_lag():
    rng = np.random.default_rng(1)
    truth = [SHAPE + [100 + 2 * t, 150] for t in range(50)]  # a pan of 2 px a frame
    frames = [[face_at(100 + 2 * t, 150, rng.normal(0, 1.5, (5, 2)))] for t in range(50)]
    out = run(FaceTracker(4), frames)
    steadied = np.stack([frame.faces[0].face.landmarks for frame in out])
    centre_error = np.linalg.norm(steadied.mean(axis=1) - np.stack(truth).mean(axis=1), axis=1)
    assert centre_error.mean() < 0.5 and centre_error.max() < 1.0
    without_noise = run(FaceTracker(4), [[face_at(100 + 2 * t, 150)] for t in range(50)])
    exact = np.stack([frame.faces[0].face.landmarks for frame in without_noise])
    assert np.abs(exact - np.stack(truth)).max() < 1e-9  # a line through a line: no lag


def test_no_point_moves_more_than_its_share_of_the_eye_distance():
    from gpen_ext.tracking import MAX_CORRECTION
    frames = [[face_at(200, 150)] for _ in range(5)] + [[face_at(200, 150, np.full((5, 2), 99.0))]]
    out = run(FaceTracker(4), frames)
    moved = out[-1].faces[0].face.landmarks - frames[-1][0].landmarks
    assert np.linalg.norm(moved, axis=1).max() == pytest.approx(MAX_CORRECTION * EYES_APART)


def test_without_smoothing_every_frame_is_its_own_shot_as_found():
    frames = [[face_at(300, 100, 1.0), face_at(100, 100)] for _ in range(3)]
    tracker = tracker_for(0)
    out = [tracked for faces in frames
           for tracked in tracker.add_frame(faces, np.zeros((8, 8, 3)))] + tracker.finish()
    assert [frame.index for frame in out] == [0, 1, 2]  # each handed back as it came in
    assert all(frame.new_shot for frame in out)
    for frame, faces in zip(out, frames):
        assert [item.number for item in frame.faces] == [0, 1]  # left to right
        assert frame.faces[0].face is faces[1]  # untouched
    with pytest.raises(ValueError, match="FrameByFrame"):
        FaceTracker(0)


def test_faces_are_numbered_in_order_of_appearance_and_again_after_a_cut():
    tracker = FaceTracker(3)
    calm, other = np.zeros((16, 16), np.float32), np.ones((16, 16), np.float32)
    out = []
    out += tracker.add([face_at(400, 100), face_at(100, 100)], calm)  # numbered left to right
    out += tracker.add([face_at(400, 100), face_at(100, 100), face_at(250, 100)], calm)
    out += tracker.add([face_at(402, 101), face_at(250, 100)], calm)
    out += tracker.add([face_at(402, 100)], other)  # a cut: numbering starts again
    out += tracker.finish()
    numbers = [[item.number for item in frame.faces] for frame in out]
    assert numbers == [[0, 1], [0, 2, 1], [2, 1], [0]]
    assert [frame.new_shot for frame in out] == [True, False, False, True]


def test_a_face_missed_for_a_frame_or_two_is_filled_in_and_a_lost_one_ends():
    frames = [[face_at(100 + 3 * t, 120)] for t in range(12)]
    frames[4] = frames[5] = []  # missed twice
    frames[9] = frames[10] = frames[11] = []  # lost for good
    out = run(FaceTracker(4), frames)
    present = [len(frame.faces) for frame in out]
    assert present == [1] * 9 + [0] * 3
    filled = out[4].faces[0].face
    assert np.abs(filled.landmarks - (SHAPE + [112, 120])).max() < 1e-6  # on the line
    assert out[4].faces[0].number == out[6].faces[0].number == 0
    assert MAX_GAP == 2


def test_frames_come_out_after_their_look_ahead_and_memory_stays_bounded():
    tracker = FaceTracker(5)
    signature = np.zeros((16, 16), np.float32)
    for index in range(400):
        done = tracker.add([face_at(100, 100), face_at(400, 100)], signature)
        assert len(done) == (1 if index >= 5 else 0)
        assert len(tracker.waiting) <= 6
        assert all(len(track.seen) <= 5 + 2 * MAX_GAP + 4 for track in tracker.tracks)
    assert len(tracker.finish()) == 5 and not tracker.waiting


def test_unrelated_pictures_start_new_shots(astronaut):
    from skimage import data
    a, b = astronaut, np.repeat(data.camera()[:, :, None], 3, axis=2)
    tracker = FaceTracker(4)
    out = tracker.add([face_at(80, 60)], scene_signature(a))
    out += tracker.add([face_at(82, 60)], scene_signature(a))
    out += tracker.add([face_at(80, 62)], scene_signature(b))
    out += tracker.finish()
    assert [frame.new_shot for frame in out] == [True, False, True]
    assert np.abs(out[2].faces[0].face.landmarks - (SHAPE + [80, 62])).max() < 1e-9


@pytest.mark.parametrize("offsets", [[0.0], [-1.0, 1.0], [2.0, 2.0, 2.0]])
def test_a_line_needs_three_frames_apart(offsets):
    values = np.arange(len(offsets), dtype=float)[:, None] + 5
    fitted = line_fit(np.array(offsets), values, np.ones(len(offsets)))
    assert fitted == pytest.approx(values.mean(axis=0))


def test_a_frame_of_another_size_starts_a_new_shot():
    """A folder of frames may change size part way; the motion measured across sizes would
    be meaningless, so a new size is a new shot."""
    from gpen_ext.motion import grey_frame
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (240, 320, 3)).astype(np.uint8)
    large = np.pad(small, ((0, 0), (0, 40), (0, 0)))
    signature = np.zeros((16, 16), np.float32)
    tracker = FaceTracker(4)
    out = []
    for pixels, x in ((small, 150), (small, 151), (large, 150), (large, 151)):
        out += tracker.add([face_at(x, 120)], signature, grey_frame(pixels))
    out += tracker.finish()
    assert [frame.new_shot for frame in out] == [True, False, True, False]
