import numpy as np
import pytest

from gpen_ext.images import ImageError, merge_image, split_image


@pytest.mark.parametrize("shape,dtype", [
    ((20, 30), np.uint8), ((20, 30, 1), np.uint8), ((20, 30, 2), np.uint8),
    ((20, 30, 3), np.uint8), ((20, 30, 4), np.uint8), ((20, 30, 3), np.uint16),
    ((20, 30, 4), np.uint16), ((20, 30, 3), np.float32), ((20, 30), np.float64),
])
def test_split_then_merge_gives_the_same_image_back(shape, dtype):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        image = rng.random(shape).astype(dtype)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    rgb, layout = split_image(image)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == dtype
    back = merge_image(rgb, layout)
    assert back.shape == image.shape and back.dtype == image.dtype
    if dtype == np.float64 and image.ndim == 2:
        assert np.allclose(back, image)
    else:
        assert np.array_equal(back, image)


def test_alpha_is_set_aside_untouched():
    image = np.zeros((16, 16, 4), np.uint8)
    image[..., 3] = np.arange(256).reshape(16, 16)
    rgb, layout = split_image(image)
    rgb[:] = 200
    merged = merge_image(rgb, layout)
    assert np.array_equal(merged[..., 3], image[..., 3]) and (merged[..., :3] == 200).all()


def test_grayscale_comes_back_as_luminance():
    rgb, layout = split_image(np.full((16, 16), 100, np.uint8))
    rgb[0, 0] = (255, 0, 0)
    merged = merge_image(rgb, layout)
    assert merged.shape == (16, 16) and merged[0, 0] == 76 and merged[1, 1] == 100


@pytest.mark.parametrize("image,message", [
    (np.zeros((0, 0, 3), np.uint8), "too small"),
    (np.zeros((4, 100, 3), np.uint8), "too small"),
    (np.zeros((10, 10, 5), np.uint8), "expected H x W"),
    (np.zeros((10, 10, 3, 2), np.uint8), "expected H x W"),
    (np.zeros((10, 10, 3), np.int32), "unsupported sample type int32"),
    (np.zeros((10, 10, 3), bool), "unsupported sample type bool"),
    (np.full((10, 10, 3), np.nan, np.float32), "NaN"),
    ([[1, 2], [3, 4]], "expected a numpy array"),
])
def test_bad_images_get_a_specific_error(image, message):
    with pytest.raises(ImageError, match=message):
        split_image(image)


def test_huge_images_are_refused_before_any_work():
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (40000, 10, 3), (0, 0, 1))
    with pytest.raises(ImageError, match="too large"):
        split_image(huge)
