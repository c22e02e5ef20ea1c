import json

import numpy as np
import pytest

from gpen_ext.alignment import (align_face, gpen_template, invert_affine, similarity_transform,
                                template_points)

from helpers import DATA, REFERENCE

ALIGNMENT = json.loads(((REFERENCE if (REFERENCE / "alignment.json").is_file() else DATA)
                        / ("alignment.json" if (REFERENCE / "alignment.json").is_file()
                           else "alignment_expected.json")).read_text())


@pytest.mark.parametrize("size", ["256", "512", "1024", "2048"])
def test_gpen_template_matches_the_official_points(size):
    expected = np.array(ALIGNMENT["gpen"][size])
    assert np.abs(gpen_template(int(size)) - expected).max() < 1e-4


@pytest.mark.parametrize("size", ["256", "512", "1024", "2048"])
def test_worked_example_transforms(size):
    example = ALIGNMENT["example"]
    expected = example["transforms"][size]
    forward = similarity_transform(example["landmarks"], gpen_template(int(size)))
    assert np.abs(forward - np.array(expected["forward"])).max() < 1e-4
    assert np.abs(invert_affine(forward) - np.array(expected["inverse"])).max() < 1e-4


def test_similarity_recovers_a_known_transform_and_never_reflects():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    assert np.allclose(matrix[:, :2], scale * rotation) and np.allclose(matrix[:, 2], shift)
    mirrored = similarity_transform(source, target * [-1, 1])
    assert np.linalg.det(mirrored[:, :2]) > 0


def test_ffhq_template_scales_with_size():
    assert np.allclose(template_points("ffhq", 1024), template_points("ffhq", 512) * 2)
    with pytest.raises(ValueError, match="unknown alignment template"):
        template_points("arcface", 512)


def test_aligned_crop_samples_the_image_through_the_inverse(astronaut_landmarks):
    # a smooth image, so that interpolation is exact enough to compare values directly
    ys, xs = np.mgrid[0:512, 0:512].astype(np.float32)
    image = np.dstack([xs / 2, ys / 2, (xs + ys) / 4])
    crop, forward = align_face(image, astronaut_landmarks, 256)
    assert crop.shape == (256, 256, 3)
    inverse = invert_affine(forward)
    for u, v in [(128, 128), (40, 200), (230, 30)]:
        x, y = inverse @ [u, v, 1]
        assert np.allclose(crop[v, u], [x / 2, y / 2, (x + y) / 4], atol=0.05)
