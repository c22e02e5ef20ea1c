
import cv2
import numpy as np
import pytest
import torch

from gpen_ext.compositing import paste_face
from gpen_ext.face_models import FaceModels
from gpen_ext.faces import DetectedFace
from gpen_ext.options import RestoreOptions
from gpen_ext.pipeline import FaceRestorer
from gpen_ext.scheduling import select_faces

from helpers import SOLVAY, CountingNetwork, IdentityNetwork, psnr, solvay


def restorer(network, folder="/nonexistent", **kwargs):
    return FaceRestorer(network, FaceModels(folder, download=False), **kwargs)


@pytest.mark.parametrize("mask", ["box", "parsing"])
def test_identity_network_leaves_the_astronaut_unchanged(astronaut, astronaut_landmarks,
                                                         face_weights, mask):
    result = restorer(IdentityNetwork(512), face_weights).restore(
        astronaut, RestoreOptions(mask=mask), landmarks=[astronaut_landmarks])
    assert len(result.faces) == 1
    assert psnr(result.image, astronaut) >= 50


@pytest.mark.skipif(not SOLVAY.is_file(), reason="needs ../shared/faces")
@pytest.mark.parametrize("size", [256, 1024])
def test_identity_network_leaves_the_29_solvay_faces_unchanged(size):
    rgba, landmarks = solvay()
    # smoothing of small faces is a deliberate change of the face, not a seam: off here
    options = RestoreOptions(mask="box", small_face_smoothing=False, batch_size=8)
    result = restorer(IdentityNetwork(size)).restore(rgba, options, landmarks=landmarks)
    assert len(result.faces) == 29
    assert psnr(result.image[..., :3], rgba[..., :3]) >= 50
    assert np.array_equal(result.image[..., 3], rgba[..., 3])


def test_changes_land_on_the_face_and_nowhere_else(astronaut, astronaut_landmarks):
    darken = CountingNetwork(512, transform=lambda x: (x + 1) * 0.5 - 1)  # half brightness
    result = restorer(darken).restore(astronaut, RestoreOptions(mask="box"),
                                      landmarks=[astronaut_landmarks])
    x1, y1, x2, y2 = result.faces[0].box.astype(int)
    centre = (slice((y1 + y2) // 2 - 10, (y1 + y2) // 2 + 10),
              slice((x1 + x2) // 2 - 10, (x1 + x2) // 2 + 10))
    ratio = result.image[centre].astype(float).mean() / astronaut[centre].astype(float).mean()
    assert 0.45 < ratio < 0.55
    outside = np.ones(astronaut.shape[:2], bool)
    outside[max(y1 - 60, 0):y2 + 60, max(x1 - 60, 0):x2 + 60] = False
    assert np.array_equal(result.image[outside], astronaut[outside])


def test_weight_and_visibility_blend(astronaut, astronaut_landmarks):
    black = CountingNetwork(512, transform=lambda x: torch.full_like(x, -1.0))
    centre = (slice(95, 115), slice(215, 235))
    run = lambda **kw: restorer(black).restore(  # noqa: E731
        astronaut, RestoreOptions(mask="box", **kw), landmarks=[astronaut_landmarks]).image
    full, weighted, visible = run(), run(weight=0.5), run(visibility=0.25)
    original = astronaut[centre].astype(float).mean()
    assert full[centre].mean() < 2
    assert abs(weighted[centre].mean() - original / 2) < 3
    assert abs(visible[centre].mean() - original * 0.75) < 3
    assert np.array_equal(run(visibility=0.0), astronaut)


def runner_batches(monkeypatch):
    """The batch sizes the pipeline hands the network runner."""
    from gpen_ext.inference import NetworkRunner
    batches, original = [], NetworkRunner.__call__
    monkeypatch.setattr(NetworkRunner, "__call__",
                        lambda self, batch, step_plan=None: batches.append(len(batch)) or
                        original(self, batch, step_plan))
    return batches


def test_all_faces_go_through_the_network_in_batches(astronaut, monkeypatch):
    """Batches of batch_size, each in steps of the faces the CPU runs side by side (a stop is
    honoured between steps); the network itself gets a face at a time."""
    network, batches = CountingNetwork(64), runner_batches(monkeypatch)
    pipeline = restorer(network)
    step = pipeline.step_plan(4).side_by_side
    result = pipeline.restore(astronaut, RestoreOptions(mask="box", batch_size=4),
                              landmarks=nine_faces())
    in_steps = [min(step, faces - start) for faces in (4, 4, 1)
                for start in range(0, faces, step)]
    assert len(result.faces) == 9 and batches == in_steps and network.batches == [1] * 9
    assert all(face.aligned.shape == (64, 64, 3) and face.restored.dtype == np.uint8
               for face in result.faces)


def test_no_faces_returns_the_image_unchanged_and_says_so(face_weights):
    class NoFaces:
        def detect(self, *args):
            return []

    blank = np.full((64, 64, 3), 127, np.uint8)
    pipeline = restorer(CountingNetwork(64), face_weights)
    pipeline.face_models._detectors["retinaface_resnet50"] = NoFaces()
    result = pipeline.restore(blank)
    assert result.faces == [] and result.found == 0 and "no faces found" in result.message
    assert np.array_equal(result.image, blank) and result.image is not blank


def test_detector_with_local_weights_feeds_the_pipeline(astronaut, face_weights):
    options = RestoreOptions(detection_model="retinaface_mobile0.25", mask="parsing",
                             face_selection="largest")
    network = CountingNetwork(64)
    result = restorer(network, face_weights).restore(astronaut, options)
    assert result.found > 1 and len(result.faces) == 1 and network.batches == [1]
    assert result.faces[0].score > 0.9 and result.faces[0].landmarks.shape == (5, 2)


def test_detection_on_a_downscaled_copy_reports_full_size_coordinates(astronaut, face_weights):
    pipeline = restorer(CountingNetwork(64), face_weights)
    detector = pipeline.face_models.detector("retinaface_mobile0.25")
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    on_half = detector.detect(half, 0.9, max_side=1280)
    downscaled = detector.detect(astronaut, 0.9, max_side=256)
    assert len(on_half) == len(downscaled)
    for small, large in zip(on_half, downscaled):
        assert np.allclose(small.box * 2, large.box) and np.allclose(small.landmarks * 2,
                                                                     large.landmarks)


@pytest.mark.parametrize("dtype,layout", [(np.uint16, 3), (np.float32, 3), (np.uint8, 1),
                                          (np.uint8, 4)])
def test_odd_formats_restore_and_keep_their_layout(astronaut, astronaut_landmarks, dtype, layout):
    scale = {np.uint16: 257.0, np.float32: 1 / 255, np.uint8: 1.0}[dtype]
    image = (astronaut.astype(np.float64) * scale).astype(dtype)
    if layout == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if layout == 4:
        image = np.dstack([image, np.arange(512 * 512).reshape(512, 512) % 256]).astype(dtype)
    black = CountingNetwork(256, transform=lambda x: torch.full_like(x, -1.0))
    result = restorer(black).restore(image, RestoreOptions(mask="box"),
                                     landmarks=[astronaut_landmarks])
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    colour = result.image[..., :3] if layout == 4 else result.image
    assert colour[100:110, 220:230].max() <= image.max() * 0.02
    assert np.array_equal(result.image[450:], image[450:])
    if layout == 4:
        assert np.array_equal(result.image[..., 3], image[..., 3])


def test_faces_at_the_border_and_overlapping_faces(astronaut, astronaut_landmarks):
    shifted = astronaut_landmarks - [200, 95]  # the face now runs off the top-left corner
    overlapping = [astronaut_landmarks, astronaut_landmarks + [15, 5]]
    gray = CountingNetwork(256, transform=lambda x: torch.zeros_like(x))
    result = restorer(gray).restore(astronaut, RestoreOptions(mask="box"), landmarks=[shifted])
    assert result.image.shape == astronaut.shape and abs(float(result.image[5, 5].mean()) - 127.5) < 2
    both = restorer(gray).restore(astronaut, RestoreOptions(mask="box"), landmarks=overlapping)
    assert np.abs(both.image[105:115, 225:235].astype(float) - 127.5).max() < 2


def test_small_face_smoothing_and_colour_correction_change_only_what_they_should(astronaut):
    small = np.array([[100, 100], [120, 100], [110, 110], [102, 120], [118, 120]], float)
    noisy = CountingNetwork(256, transform=lambda x: x + 0.5 * torch.randn_like(x))
    torch.manual_seed(0)
    rough = restorer(noisy).restore(astronaut, RestoreOptions(
        mask="box", small_face_smoothing=False), landmarks=[small]).faces[0].restored
    torch.manual_seed(0)
    smooth = restorer(noisy).restore(astronaut, RestoreOptions(mask="box"),
                                     landmarks=[small]).faces[0].restored
    assert np.abs(np.diff(smooth.astype(float), axis=1)).mean() < \
        0.8 * np.abs(np.diff(rough.astype(float), axis=1)).mean()
    tinted = CountingNetwork(256, transform=lambda x: (x + 0.4).clamp(-1, 1))
    options = RestoreOptions(mask="box", color_correction=True, small_face_smoothing=False)
    face = restorer(tinted).restore(astronaut, options, landmarks=[small]).faces[0]
    assert abs(face.restored.astype(float).mean() - face.aligned.astype(float).mean()) < 3


def test_face_selection():
    def face(x, width):
        return DetectedFace(np.array([x, 100, x + width, 100 + width], float), 0.99, np.zeros((5, 2)))

    faces = [face(10, 80), face(300, 40), face(600, 20)]  # numbered left to right
    shape = (400, 700, 3)
    pick = lambda **kw: [faces[n].box[0] for n in select_faces(faces, RestoreOptions(**kw), shape)]  # noqa: E731
    assert pick() == [10, 300, 600]
    assert pick(face_selection="largest") == [10]
    assert pick(face_selection="center") == [300]
    assert pick(face_indices=(2, 0, 7)) == [10, 600]
    assert pick(face_indices=[2, 1], face_selection="largest") == [300]
    assert pick(face_indices=(2,), min_face_size=30) == []
    assert pick(min_face_size=30) == [10, 300]
    assert pick(max_faces=2) == [10, 300]
    # relative to the largest face found (80): background faces left alone
    assert pick(min_face_ratio=0.3) == [10, 300]
    assert pick(min_face_ratio=0.5) == [10, 300] and pick(min_face_ratio=0.51) == [10]
    assert pick(face_indices=(2,), min_face_ratio=0.3) == []  # the largest of all, not of those
    assert pick(min_face_ratio=0.3, min_face_size=45) == [10]  # both hold


@pytest.mark.parametrize("options,message", [
    (dict(weight=1.5), "weight must be in"), (dict(mask="oval"), "mask must be one of"),
    (dict(face_selection="index"), "face_selection"), (dict(batch_size=0), "batch_size"),
    (dict(detection_model="yolo"), "detection_model"), (dict(weight="0.5"), "weight must be a number"),
    (dict(batch_size=2.5), "batch_size must be an integer"), (dict(face_indices="0 2"), "list"),
    (dict(face_indices=(-1,)), "from 0"), (dict(color_correction="no"), "true or false"),
    (dict(weight=float("nan")), "weight must be a number"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        RestoreOptions(**options)


def test_bad_landmarks_are_refused(astronaut):
    with pytest.raises(ValueError, match="five"):
        restorer(IdentityNetwork(64)).restore(astronaut, landmarks=[[1, 2], [3, 4]])


def test_paste_outside_the_image_changes_nothing():
    image = np.zeros((32, 32, 3), np.uint8)
    far_away = np.array([[1.0, 0, -5000], [0, 1.0, -5000]])
    crop = np.full((64, 64, 3), 255.0, np.float32)
    assert paste_face(image, crop, crop, np.ones((512, 512), np.float32), far_away) is None
    assert not image.any()


def nine_faces():
    return [np.array([[x + 10, 100], [x + 30, 100], [x + 20, 112], [x + 12, 122], [x + 28, 122]],
                     float) for x in range(0, 450, 50)]


@pytest.mark.slow
def test_every_stage_takes_at_most_batch_size_faces(astronaut, face_weights, monkeypatch):
    """Memory must not grow with the faces of a photo: the parser, like the network, never
    sees more than batch_size faces at once."""
    from gpen_ext.face_models import FaceParser
    parsed = []
    original = FaceParser.face_masks
    monkeypatch.setattr(FaceParser, "face_masks", lambda self, crops, *args: parsed.append(
        len(crops)) or original(self, crops, *args))
    network, batches = CountingNetwork(64), runner_batches(monkeypatch)
    result = restorer(network, face_weights).restore(
        astronaut, RestoreOptions(mask="parsing", batch_size=4), landmarks=nine_faces())
    assert len(result.faces) == 9 and max(batches) <= 4 and sum(batches) == 9
    assert max(parsed) <= 4 and sum(parsed) == 9


def test_a_parser_that_cannot_load_fails_before_any_face_is_restored(astronaut, tmp_path):
    from gpen_ext.face_models import FaceModelError
    network = CountingNetwork(64)
    with pytest.raises(FaceModelError, match="parsing_parsenet.pth"):
        restorer(network, tmp_path).restore(astronaut, RestoreOptions(mask="parsing"),
                                            landmarks=nine_faces())
    assert network.batches == []


def test_float16_images_restore_and_come_back_as_float16(astronaut, astronaut_landmarks):
    image = (astronaut / 255).astype(np.float16)
    result = restorer(IdentityNetwork(512)).restore(image, RestoreOptions(mask="box"),
                                                    landmarks=[astronaut_landmarks])
    assert result.image.dtype == np.float16 and result.image.shape == image.shape
    assert psnr(result.image, image, peak=1.0) > 45


@pytest.mark.parametrize("image,options,message", [
    (np.full((64, 64, 3), 255.0, np.float32), RestoreOptions(), r"float images must hold values in \[0, 1\]"),
    (np.zeros((64, 64, 3), np.uint8), "box", "options must be RestoreOptions"),
    (np.zeros((64, 64, 3), np.uint8), {"mask": "box"}, "options must be RestoreOptions"),
])
def test_python_callers_get_a_clear_value_error(image, options, message):
    with pytest.raises(ValueError, match=message):
        restorer(IdentityNetwork(64)).restore(image, options, landmarks=[])


def test_face_regions_choose_the_parsed_classes_that_are_pasted(face_weights, monkeypatch):
    from gpen_ext.face_models import FaceParser
    classes = torch.zeros(1, 512, 512, dtype=torch.uint8)
    classes[:, :, :128], classes[:, :, 128:256], classes[:, :, 256:384] = 1, 4, 11  # skin eyes mouth
    monkeypatch.setattr(FaceParser, "run", lambda self, batch, where="device", precision="fp32":
                        classes)
    parser = FaceModels(face_weights, download=False).parser()
    crop = [np.zeros((512, 512, 3), np.uint8)]
    default = parser.face_masks(crop)[0]
    assert default[:, :384].all() and not default[:, 384:].any()
    without_eyes = parser.face_masks(crop, ("skin", "mouth"))[0]
    assert without_eyes[:, :128].all() and not without_eyes[:, 128:256].any()
    assert without_eyes[:, 256:384].all()


def test_the_paste_mask_and_crops_come_back_when_asked(astronaut, astronaut_landmarks):
    options = RestoreOptions(mask="box", keep_paste_mask=True)
    result = restorer(IdentityNetwork(512)).restore(astronaut, options,
                                                    landmarks=[astronaut_landmarks])
    mask, face = result.paste_mask, result.faces[0]
    assert mask.shape == astronaut.shape[:2] and mask.max() == 1.0 and mask[450:].max() == 0
    x1, y1, x2, y2 = face.box.astype(int)
    assert mask[(y1 + y2) // 2, (x1 + x2) // 2] == 1.0
    assert face.mask.shape == (512, 512) and face.aligned.shape == face.restored.shape
    assert restorer(IdentityNetwork(512)).restore(astronaut, RestoreOptions(mask="box"),
                                                  landmarks=[astronaut_landmarks]).paste_mask is None


@pytest.mark.parametrize("layout", ["rgb", "rgba", "gray"])
def test_the_callers_image_is_never_written(astronaut, astronaut_landmarks, layout):
    image = {"rgb": astronaut.copy(), "rgba": np.dstack([astronaut, astronaut[..., :1]]),
             "gray": cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)}[layout]
    before = image.copy()
    darken = CountingNetwork(512, transform=lambda x: (x + 1) * 0.5 - 1)
    result = restorer(darken).restore(image, RestoreOptions(mask="box"),
                                      landmarks=[astronaut_landmarks])
    assert np.array_equal(image, before) and not np.array_equal(result.image, before)
