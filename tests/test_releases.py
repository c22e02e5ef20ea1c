"""model auto: each face through the release its pasted size calls for."""

import logging

import numpy as np
import pytest
import torch

from gpen_ext import cli
from gpen_ext.alignment import template_points
from gpen_ext.download import DownloadError
from gpen_ext.face_models import FaceModels
from gpen_ext.options import RestoreOptions
from gpen_ext.pipeline import FaceRestorer
from gpen_ext.registry import (ENLARGEMENT, RELEASE_SIZES, list_models, release_for,
                               resolve_model)
from gpen_ext.releases import ReleaseNetworks, pasted_side

from helpers import RELEASES, CountingNetwork

BOX = RestoreOptions(mask="box")


class Release(CountingNetwork):
    """A stand-in release: its output darkened by a share that tells the releases apart,
    with `mb` of weights for the budget."""

    def __init__(self, size, mb=0.0):
        super().__init__(size, transform=lambda x: (x + 1) * (1 - size / 4096) - 1)
        self.register_buffer("weights", torch.zeros(int(mb * 2 ** 18)))


def releases(loaded, unobtainable=(), installed=RELEASE_SIZES, budget_mb=600, mb=0.0):
    def load(size):
        loaded.append(size)
        if size in unobtainable:
            raise DownloadError(f"GPEN-BFR-{size}.pth: the server cannot be reached")
        return Release(size, mb)
    return ReleaseNetworks(load, installed, "cpu", "fp32", budget_mb)


def auto_restorer(networks):
    return FaceRestorer(networks, FaceModels("/nonexistent", download=False))


def face_at(centre_x, centre_y, eye_distance):
    """Five landmarks of an upright face with its eyes `eye_distance` apart."""
    template = template_points("gpen", 512)
    scale = eye_distance / (template[1, 0] - template[0, 0])
    return (template - template[:2].mean(axis=0)) * scale + [centre_x, centre_y]


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 256, (1400, 1800, 3), dtype=np.uint8)


def test_the_rule_takes_the_smallest_release_that_covers_the_pasted_face():
    assert [release_for(side) for side in (10, 384, 385, 768, 769, 1536, 1537, 9000)] == \
        [256, 256, 512, 512, 1024, 1024, 2048, 2048]
    assert ENLARGEMENT == 1.5
    points = face_at(500, 500, 40)
    side = pasted_side(points)  # the crop's side in the image: eyes 107.4 of a 512 crop apart
    assert side == pytest.approx(40 * 512 / 107.36, rel=1e-3)
    assert pasted_side(face_at(500, 500, 80)) == pytest.approx(2 * side)
    assert pasted_side(points, "ffhq") < side  # the tighter framing covers less


def test_each_face_goes_through_its_release_as_that_release_alone_restores_it(photo):
    """The oracle: a face restored under auto is the face the chosen release restores by
    itself; the faces come back in order, each with its release, and counted so."""
    faces = [face_at(150, 150, 20), face_at(900, 700, 250), face_at(1500, 300, 60)]
    loaded = []
    result = auto_restorer(releases(loaded)).restore(photo, BOX, landmarks=faces)
    assert [face.release for face in result.faces] == [256, 1024, 256]
    assert [face.aligned.shape[0] for face in result.faces] == [256, 1024, 256]
    assert loaded == [256, 1024]
    assert result.message == "3 of 3 face(s) restored (auto: 256 x 2, 1024 x 1)"
    for face, points in zip(result.faces, faces):
        alone = FaceRestorer(Release(face.release), FaceModels("/nonexistent", False))
        expected = alone.restore(photo, BOX, landmarks=[points]).faces[0]
        assert np.array_equal(face.restored, expected.restored) and expected.release is None


def test_a_release_that_cannot_be_had_gives_way_to_the_nearest_installed_one(photo, caplog):
    loaded = []
    networks = releases(loaded, unobtainable={1024}, installed={256, 512})
    restorer = auto_restorer(networks)
    faces = [face_at(900, 700, 250), face_at(150, 150, 20)]
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            result = restorer.restore(photo, BOX, landmarks=faces)
    assert [face.release for face in result.faces] == [256, 512]  # numbered left to right
    assert loaded == [256, 1024, 512]  # tried once, not again for every face
    assert networks.substitutes() == {1024: 512}
    assert sum("GPEN-BFR-1024 cannot be had" in record.message
               for record in caplog.records) == 1


def test_with_no_release_to_be_had_the_error_is_told_and_the_photo_untouched(photo):
    before = photo.copy()
    restorer = auto_restorer(releases([], unobtainable=set(RELEASE_SIZES), installed=()))
    with pytest.raises(DownloadError, match="cannot be reached"):
        restorer.restore(photo, BOX, landmarks=[face_at(150, 150, 20)])
    assert np.array_equal(photo, before)


def test_releases_beyond_the_budget_are_let_go_least_recently_used_first(photo):
    loaded = []
    networks = releases(loaded, budget_mb=2.5, mb=1.0)
    restorer = auto_restorer(networks)
    for eyes in (20, 100, 20, 250):  # 256, 512, 256 again, then 1024: 512 is let go
        restorer.restore(photo, BOX, landmarks=[face_at(900, 700, eyes)])
    assert list(networks.runners) == [256, 1024] and loaded == [256, 512, 1024]
    assert set(restorer.networks_loaded()) == {"network_256", "network_1024"}


def test_a_face_followed_along_a_clip_keeps_one_release(photo):
    """A face growing across the 256/512 line keeps the release its typical size calls for
    (its median among the frames known when its first frame is restored: those up to the
    steadying's look-ahead); frames on their own (no smoothing) each take their own."""
    crossing = [face_at(900, 700, eyes) for eyes in np.linspace(70, 90, 16)]
    sides = [release_for(pasted_side(points)) for points in crossing]
    assert set(sides) == {256, 512}

    def releases_along(smoothing):
        results = auto_restorer(releases([])).restore_images(
            [photo] * 16, RestoreOptions(mask="box", temporal_smoothing=smoothing),
            landmarks=[[points] for points in crossing])
        return [result.faces[0].release for result in results]
    assert releases_along(5) == [sides[3]] * 16  # the median of frames 0-5
    assert releases_along(0) == sides


def test_aligned_crops_go_through_the_release_their_size_calls_for():
    crops = [np.full((700, 700, 3), 128, np.uint8)]
    results = auto_restorer(releases([])).restore_aligned_images(crops, BOX)
    assert results[0].faces[0].release == 512 and results[0].image.shape == (700, 700, 3)


def test_auto_is_a_model_name_every_host_lists(tmp_path):
    model = resolve_model("AUTO", [tmp_path, tmp_path / "more"])
    assert model.auto and model.folders == (tmp_path, tmp_path / "more")
    assert [item.name for item in list_models(tmp_path)][4] == "auto"


@pytest.fixture(scope="module")
def release_256(tmp_path_factory):
    """A models folder with a GPEN-BFR-256 of the release's shape (random weights)."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    torch.save(RELEASES[256].build().state_dict(), folder / "GPEN-BFR-256.pth")
    return folder


def test_the_command_line_says_which_release_each_face_got(release_256, photo, tmp_path,
                                                           capsys):
    """A face that needs 512, which is not installed and may not be downloaded, goes through
    the installed 256, and the summary says so."""
    import json

    import cv2
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    faces = [face_at(150, 150, 20).tolist(), face_at(900, 700, 100).tolist()]
    (tmp_path / "faces.json").write_text(json.dumps(faces))
    code = cli.main(["restore", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"),
                     "--model", "auto", "--models-dir", str(release_256), "--no-download",
                     "--landmarks", str(tmp_path / "faces.json"), "--mask", "box"])
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 0 and (tmp_path / "out.png").is_file()
    assert "2 face(s) (auto: 256 x 2); GPEN-BFR-512 could not be had, its faces went " \
        "through GPEN-BFR-256" in summary
    assert not list(release_256.glob("*.part")) and \
        sorted(path.name for path in release_256.iterdir()) == ["GPEN-BFR-256.pth"]
