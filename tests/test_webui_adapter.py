"""The WebUI adapter against a stand-in of A1111's host modules (tests/webui_stand_in)."""

import base64
import importlib
import inspect
import json
import logging
import re
import runpy
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from helpers import HERE, forget_modules, stand_in

SCRIPTS = HERE.parent / "scripts"

gr = pytest.importorskip("gradio")
with stand_in("webui_stand_in"):
    from modules import (devices, face_restoration, paths, script_callbacks,  # noqa: E402
                         scripts_postprocessing, shared)
from PIL import Image  # noqa: E402

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def stand_in_host():
    """The stand-in WebUI for this module's tests only: gone from sys.modules afterwards, and
    the adapter that imported it with it."""
    yield
    forget_modules("modules", "gpen_ext.hosts.webui")


@pytest.fixture
def webui(tmp_path, tiny_state_dict, face_weights, monkeypatch):
    """The adapter installed into a fresh stand-in host with a small checkpoint and local
    facexlib weights; the detector is the rigged MobileNet, the network random."""
    models = tmp_path / "models"
    (models / "GPEN").mkdir(parents=True)
    (models / "GFPGAN").symlink_to(face_weights, target_is_directory=True)
    torch.save(tiny_state_dict, models / "GPEN" / "GPEN-BFR-512.pth")
    monkeypatch.setattr(paths, "models_path", str(models))
    monkeypatch.setattr(shared, "face_restorers", [])
    monkeypatch.setattr(shared, "opts", shared.Options())
    monkeypatch.setattr(shared.cmd_opts, "use_cpu", [])
    script_callbacks.clear_callbacks()
    adapter = importlib.import_module("gpen_ext.hosts.webui")
    runpy.run_path(str(SCRIPTS / "gpen_face_restorer.py"))  # as the WebUI loads it: install()
    script_callbacks.ui_settings_callback()
    shared.opts.face_restoration_model = "GPEN"
    shared.opts.gpen_detection_model = "retinaface_mobile0.25"
    shared.opts.gpen_mask = "box"
    yield adapter
    adapter.SERVICE.unload()


def changed(a, b):
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def test_registered_once_and_used_by_restore_faces(webui, astronaut):
    webui.install()  # a UI reload imports the scripts again
    assert [r.name() for r in shared.face_restorers] == ["GPEN"]
    restored = face_restoration.restore_faces(astronaut)
    assert restored.shape == astronaut.shape and restored.dtype == np.uint8
    assert changed(restored, astronaut) > 1


def test_settings_have_their_own_section_beside_face_restoration(webui):
    labels = shared.opts.data_labels
    pointer = labels["gpen_face_restoration_pointer"]  # where Face restoration names GPEN
    assert pointer.section == ("face-restoration", "Face restoration")
    assert "Settings &gt; Postprocessing &gt; GPEN" in pointer.default
    keys = [key for key in labels if key.startswith("gpen_") and labels[key] is not pointer]
    assert {"gpen_model", "gpen_weight", "gpen_face_selection", "gpen_detection_model",
            "gpen_detection_threshold", "gpen_mask", "gpen_color_correction", "gpen_batch_size",
            "gpen_precision"} <= set(keys)
    assert all(labels[key].section == ("gpen", "GPEN") for key in keys)
    assert all(labels[key].category_id == "postprocessing" for key in keys)
    choices = labels["gpen_model"].component_args()["choices"]
    assert choices[:4] == ["GPEN-BFR-256 (downloaded on first use)", "GPEN-BFR-512",
                           "GPEN-BFR-1024 (downloaded on first use)",
                           "GPEN-BFR-2048 (downloaded on first use)"]
    from gpen_ext.options import restore_option_list
    for option in restore_option_list():  # derived from the one description, limits and all
        if option.frames_only:  # the WebUI restores single images: not offered
            assert f"gpen_{option.name}" not in labels
            continue
        info = labels[f"gpen_{option.name}"]
        assert info.component_args["info"] == option.help  # shown by gradio in either host
        assert not info.label.startswith("GPEN")  # the section says it
        if option.minimum is not None:
            assert (info.component_args["minimum"], info.component_args["maximum"]) == \
                (option.minimum, option.maximum)


@pytest.mark.parametrize("flags, expected", [({}, "auto"), ({"no_half": True}, "fp32"),
                                             ({"precision": "full"}, "fp32")])
def test_auto_precision_follows_the_webuis_full_precision_flags(webui, monkeypatch, flags,
                                                                 expected):
    for name, value in flags.items():
        monkeypatch.setattr(shared.cmd_opts, name, value, raising=False)
    assert webui.current_settings().precision == expected
    shared.opts.gpen_precision = "bf16"  # a precision chosen in Settings stays chosen
    assert webui.current_settings().precision == "bf16"


def test_face_numbers_setting_is_text_and_a_bad_one_leaves_the_image(webui, astronaut, caplog):
    shared.opts.gpen_face_indices = "0"
    assert webui.current_settings().options.face_indices == (0,)
    shared.opts.gpen_face_indices = "first"
    with caplog.at_level(logging.ERROR):
        assert face_restoration.restore_faces(astronaut) is astronaut
    assert "face_indices" in caplog.text


def test_a_missing_model_returns_the_image_and_says_where_to_put_it(webui, astronaut, caplog,
                                                                     monkeypatch):
    from gpen_ext.registry import KNOWN_MODELS
    monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-1024",
                        replace(KNOWN_MODELS["GPEN-BFR-1024"],
                                urls=("http://127.0.0.1:9/GPEN-BFR-1024.pth",)))
    shared.opts.gpen_model = "GPEN-BFR-1024"
    with caplog.at_level(logging.ERROR):
        restored = face_restoration.restore_faces(astronaut)
    assert restored is astronaut
    assert "image left unrestored" in caplog.text
    assert str(webui.models_dir()) in caplog.text


def test_model_switch_swaps_the_cached_network(webui, astronaut, tiny_state_dict, monkeypatch):
    torch.save(tiny_state_dict, webui.models_dir() / "other.pth")
    face_restoration.restore_faces(astronaut)
    first = webui.SERVICE._restorer
    face_restoration.restore_faces(astronaut)
    assert webui.SERVICE._restorer is first  # loaded once
    shared.opts.gpen_model = "other.pth"
    texts = []
    monkeypatch.setattr(webui.SERVICE.environment, "status", texts.append)
    face_restoration.restore_faces(astronaut)
    assert webui.SERVICE._restorer is not first
    assert texts == ["GPEN: loading other.pth"]  # the bar moves while a model loads


def test_host_device_and_unload_option(webui, astronaut, monkeypatch):
    monkeypatch.setattr(shared.cmd_opts, "use_cpu", ["gpen"])
    assert webui._device() == devices.cpu
    moves = []
    shared.opts.face_restoration_unload = True
    face_restoration.restore_faces(astronaut)
    restorer = webui.SERVICE._restorer
    monkeypatch.setattr(restorer, "to", lambda device: moves.append(str(device)) or restorer)
    devices.gc_calls.clear()
    face_restoration.restore_faces(astronaut)
    assert moves == ["cpu"] and devices.gc_calls


def test_scripts_expose_only_the_gpen_postprocessing_class(webui):
    namespace = runpy.run_path(str(SCRIPTS / "postprocessing_gpen.py"))
    classes = [value for value in namespace.values() if inspect.isclass(value)
               and issubclass(value, scripts_postprocessing.ScriptPostprocessing)]
    assert classes == [webui.GPENPostprocessing] and classes[0].name == "GPEN"


EXTRAS_CONTROLS = ["enable", "model", "weight", "visibility", "face_selection", "face_indices", "min_face_size", "min_face_ratio", "max_faces", "face_regions", "show_numbers", "show_faces"]


def test_extras_ui_controls_and_infotext(webui, astronaut):
    script = webui.GPENPostprocessing()
    with gr.Blocks():
        controls = script.ui()
    assert list(controls) == EXTRAS_CONTROLS
    assert controls["enable"].value is False
    shown = [choice[0] if isinstance(choice, tuple) else choice  # gradio 4 pairs them
             for choice in controls["model"].choices]
    assert shown[:2] == ["GPEN-BFR-256 (downloaded on first use)", "GPEN-BFR-512"]
    assert isinstance(controls["min_face_size"], gr.Number)  # small sizes within reach
    assert webui.parsed(webui.MODEL, shown[0]) == "GPEN-BFR-256"
    detector = webui.OPTIONS_BY_NAME["detection_model"]
    assert webui.stored(detector, "retinaface_resnet50") == "RetinaFace ResNet-50"
    assert webui.parsed(detector, "RetinaFace ResNet-50") == "retinaface_resnet50"
    assert webui.parsed(detector, "retinaface_resnet50") == "retinaface_resnet50"
    assert controls["face_regions"].value == ["skin", "brows", "eyes", "ears", "nose", "mouth"]
    assert script.order > 1000 and isinstance(script, scripts_postprocessing.ScriptPostprocessing)
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    script.process(pp, enable=True, visibility=0.5, weight=0.8, model="GPEN-BFR-512")
    faces = pp.info.pop("GPEN faces")  # the rigged detector finds many
    assert pp.info == {"GPEN visibility": 0.5, "GPEN weight": 0.8, "GPEN model": "GPEN-BFR-512"}
    assert re.fullmatch(r"(\d+) of \1 face\(s\) restored", faces)
    assert changed(pp.image, astronaut) > 0.5 and pp.extra_images == []


def test_the_settings_page_lists_options_in_the_order_extras_shows_them(webui):
    shown = [name for _, rows in webui.EXTRAS_GROUPS for row in rows for name in row]
    settings = [option.name for option in webui.SETTING_OPTIONS]
    assert [name for name in settings if name in shown] == shown


def test_extras_face_choices_reach_the_pipeline_and_the_infotext(webui, astronaut, caplog):
    script = webui.GPENPostprocessing()
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    with caplog.at_level(logging.INFO):
        script.process(pp, enable=True, visibility=1.0, weight=1.0, model="GPEN-BFR-512",
                       face_selection="all", face_indices="1, 0", min_face_size=0, max_faces=0,
                       face_regions=["skin", "nose"], show_faces=True)
    assert pp.info["GPEN face numbers"] == "1, 0" and pp.info["GPEN face regions"] == "skin, nose"
    assert "GPEN face selection" not in pp.info  # at its default
    assert [extra.nametags for extra in pp.extra_images] == [["gpen-faces"]]  # one sheet
    sheet = np.asarray(pp.extra_images[0].image)
    assert sheet.shape == (2 * (64 + 24), 192, 3) and pp.extra_images[0].disable_processing
    summary = next(line for line in caplog.messages if " face(s) restored" in line
                   and " s on cpu" in line)
    assert summary.startswith("GPEN: 2 of 2 face(s) restored") and "(fp32)" in summary
    assert pp.info["GPEN faces"] == summary.split("GPEN: ")[1].split(" in ")[0]


def test_extras_api_none_arguments_follow_settings(webui, astronaut):
    script = webui.GPENPostprocessing()
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    script.process(pp, enable=None, visibility=None, weight=None, model=None)
    assert pp.info == {} and np.array_equal(np.asarray(pp.image), astronaut)
    shared.opts.gpen_extras_enabled = True
    script.process(pp, enable=None, visibility=None, weight=None, model=None)
    assert pp.info["GPEN model"] == "GPEN-BFR-512" and changed(pp.image, astronaut) > 0.5


def test_rgba_extras_images_keep_their_alpha(webui, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 77, np.uint8)])
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(rgba))
    webui.GPENPostprocessing().process(pp, enable=True, visibility=1.0, weight=1.0, model=None)
    assert pp.image.mode == "RGBA" and (np.asarray(pp.image)[..., 3] == 77).all()


def host_app():
    """A FastAPI app with the host's own API on it, as the WebUI starts with --api."""
    from modules.api.api import Api
    app = FastAPI()
    Api(app, None)
    script_callbacks.app_started_callback(None, app)
    return app


@pytest.fixture
def client(webui):
    return TestClient(host_app())


def test_routes_carry_the_hosts_authentication(webui, monkeypatch, astronaut):
    monkeypatch.setattr(shared.cmd_opts, "api_auth", "alice:secret")
    client = TestClient(host_app())
    for method, path in [("get", "/gpen/v1/models"), ("get", "/gpen/v1/options"),
                         ("post", "/gpen/v1/restore"), ("get", "/sdapi/v1/face-restorers")]:
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, auth=("alice", "wrong")).status_code == 401, path
    assert client.get("/gpen/v1/models", auth=("alice", "secret")).status_code == 200
    response = client.post("/gpen/v1/restore", auth=("alice", "secret"), json={
        "image": png_base64(astronaut), "landmarks": []})
    assert response.status_code == 200 and response.json()["faces"] == []


def test_no_routes_where_the_host_serves_no_api(webui):
    app = FastAPI()  # the WebUI without --api: no /sdapi routes, so none of ours either
    script_callbacks.app_started_callback(None, app)
    assert not [route for route in app.routes if "/gpen/" in getattr(route, "path", "")]


def png_base64(image):
    return base64.b64encode(cv2.imencode(".png", image[..., ::-1])[1].tobytes()).decode()


def test_restore_route_with_options(client, astronaut):
    """The options sent take effect: weight 0.7 moves the face 0.7 of the way that weight 1
    does."""
    def restored(weight):
        response = client.post("/gpen/v1/restore", json={
            "image": "data:image/png;base64," + png_base64(astronaut), "weight": weight,
            "face_selection": "largest", "mask": "box"})
        assert response.status_code == 200, response.text
        body = response.json()
        image = cv2.imdecode(np.frombuffer(base64.b64decode(body["image"]), np.uint8), 1)
        return body, image[..., ::-1].astype(float)

    body, partly = restored(0.7)
    assert len(body["faces"]) == 1 and body["faces"][0]["score"] > 0.9
    assert len(body["faces"][0]["landmarks"]) == 5 and body["model"] == "GPEN-BFR-512"
    assert body["ran_on"] == "cpu (fp32)"
    _, fully = restored(1.0)
    assert partly.shape == astronaut.shape and changed(partly, astronaut) > 0.1
    moved = np.abs(partly - astronaut).sum() / np.abs(fully - astronaut).sum()
    assert 0.65 < moved < 0.75


def test_restore_route_with_supplied_landmarks(client, astronaut, astronaut_landmarks):
    response = client.post("/gpen/v1/restore", json={
        "image": png_base64(astronaut), "landmarks": [astronaut_landmarks.tolist()]})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1


@pytest.mark.parametrize("body,message", [
    ({"image": "not base64!"}, "not valid base64"),
    ({"image": base64.b64encode(b"no image").decode()}, "not an image"),
    ({"image": "", "weight": 3}, "weight"),
    ({"image": "", "max_faces": 10 ** 400}, "max_faces must be in"),  # no float holds it
    ({"image": "", "min_face_size": -10 ** 400}, "min_face_size must be in"),
    ({"image": "", "mask": "oval"}, "mask"),
    ({"image": "IMAGE", "model": "../../etc/passwd"}, "unknown model"),
    ({"image": "IMAGE", "landmarks": [[[1, 2]]]}, "five"),
])
def test_restore_route_validation_answers_422(client, astronaut, body, message):
    body = {key: png_base64(astronaut) if value == "IMAGE" else value for key, value in body.items()}
    response = client.post("/gpen/v1/restore", json=body)
    assert response.status_code == 422 and message in response.text


def test_restore_route_reports_failures(client, webui, astronaut, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(webui.SERVICE, "restore", broken)
    response = client.post("/gpen/v1/restore", json={"image": png_base64(astronaut)})
    assert response.status_code == 500 and "CUDA out of memory" in response.json()["detail"]


def test_models_route_lists_known_and_installed(client, webui, tiny_state_dict):
    torch.save(tiny_state_dict, webui.models_dir() / "finetuned.pth")
    body = client.get("/gpen/v1/models").json()
    models = {entry["name"]: entry for entry in body["models"]}
    assert models["GPEN-BFR-512"]["installed"] and not models["GPEN-BFR-2048"]["installed"]
    assert models["finetuned.pth"]["installed"] and models["GPEN-BFR-256"]["urls"]
    assert models["finetuned.pth"]["file"] == "finetuned.pth"
    assert str(webui.models_dir()) not in str(body)  # no server paths


def test_options_route_describes_every_option(client):
    options = {entry["name"]: entry for entry in client.get("/gpen/v1/options").json()}
    assert options["weight"]["minimum"] == 0 and options["weight"]["maximum"] == 1
    assert options["mask"]["choices"] == ["parsing", "box"] and options["model"]["type"] == "str"
    assert options["batch_size"]["maximum"] == 64


def test_install_script_installs_only_what_is_missing(monkeypatch, tmp_path):
    calls = []
    launch = type(sys)("launch")
    launch.is_installed = lambda name: name in {"numpy", "cv2", "PIL"}
    launch.run_pip = lambda command, desc: calls.append(command)
    monkeypatch.setitem(sys.modules, "launch", launch)
    source = (HERE.parent / "install.py").read_text()
    exec(compile(source, "install.py", "exec"), {"__file__": str(HERE.parent / "install.py"),
                                                 "__name__": "install"})
    installed = " ".join(calls)
    assert "facexlib" in installed and "tqdm" in installed
    for never in ("torch", "torchvision", "gradio", "basicsr", "numpy", "opencv", "av"):
        assert f'"{never}' not in installed


def test_a_decompression_bomb_is_refused_before_it_is_decoded(client):
    from test_files import png_header_only
    bomb = base64.b64encode(png_header_only(20000, 20000)).decode()
    response = client.post("/gpen/v1/restore", json={"image": bomb})
    assert response.status_code == 422 and "megapixels" in response.text
    shared.opts.gpen_max_megapixels = 0.1  # the limit is a setting
    response = client.post("/gpen/v1/restore", json={"image": png_base64(np.zeros(
        (400, 400, 3), np.uint8))})
    assert response.status_code == 422 and "over the limit of 0.1" in response.text


@pytest.mark.parametrize("payload", [
    b"\x89PNG\r\n\x1a\n" + b"\0" * 30,  # a PNG signature and nothing readable
    None,  # a PNG cut short after its header
])
def test_every_undecodable_image_is_a_422(client, astronaut, payload):
    if payload is None:
        payload = base64.b64decode(png_base64(astronaut))[:2000]
    response = client.post("/gpen/v1/restore", json={"image": base64.b64encode(payload).decode()})
    assert response.status_code == 422, response.text


def test_a_failed_request_leaves_the_loaded_model_in_place(client, webui, astronaut, monkeypatch):
    from gpen_ext.registry import KNOWN_MODELS
    monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-1024",
                        replace(KNOWN_MODELS["GPEN-BFR-1024"],
                                urls=("http://127.0.0.1:9/GPEN-BFR-1024.pth",)))
    image = png_base64(astronaut)
    assert client.post("/gpen/v1/restore", json={"image": image, "mask": "box"}).status_code == 200
    loaded = webui.SERVICE._restorer
    for body in ({"model": "GPEN-BFR-1024"}, {"model": "x" * 10000}, {"model": "nope.pth"},
                 {"precision": "fp16"}, {"weight": 2}):
        response = client.post("/gpen/v1/restore", json={"image": image, "mask": "box", **body})
        assert webui.SERVICE._restorer is loaded, body
        assert response.status_code in (200, 422, 500) and "Traceback" not in response.text
    assert client.post("/gpen/v1/restore", json={"image": image, "model": "x" * 10000}
                       ).status_code == 422


def test_extras_infotext_only_when_gpen_restored(webui, astronaut, caplog, monkeypatch):
    from gpen_ext.registry import KNOWN_MODELS
    monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-1024",
                        replace(KNOWN_MODELS["GPEN-BFR-1024"],
                                urls=("http://127.0.0.1:9/GPEN-BFR-1024.pth",)))
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    with caplog.at_level(logging.ERROR):
        webui.GPENPostprocessing().process(pp, enable=True, visibility=1.0, weight=1.0,
                                           model="GPEN-BFR-1024")
    assert pp.info == {} and np.array_equal(np.asarray(pp.image), astronaut)
    assert "GPEN-BFR-1024.pth" in caplog.text and "unrestored" in caplog.text


# Hostile requests, round two: each a clear 422 (never a 500 or a traceback), before any work.

@pytest.mark.parametrize("body,message", [
    ({"model": "é" * 255}, "1 to 255 characters"),  # 510 bytes: no file system takes it
    ({"model": "bad\u0000name.pth"}, "unknown model"),
    ({"landmarks": "DEEP"}, "nested deeper"),  # 950 lists deep
    ({"landmarks": [[[10 ** 400, 1]] * 5]}, "too large"),
    ({"landmarks": [[[1e300, 1]] * 5]}, "beyond any image"),
    ({"landmarks": [[[5, 5]] * 5]}, "all be in one place"),
    ({"face_indices": [1.0]}, "face_indices"), ({"face_indices": [True]}, "face_indices"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"batch_size": True}, "batch_size must be an integer"),
    ({"color_correction": 1}, "color_correction must be true or false"),
])
def test_hostile_values_are_422s_that_name_the_problem(client, astronaut, body, message,
                                                       monkeypatch):
    from gpen_ext.hosts import service
    monkeypatch.setattr(service, "load_restorer", lambda *a, **k: pytest.fail("no work"))
    text = json.dumps({"image": png_base64(astronaut), **body}).replace(
        '"DEEP"', "[" * 950 + "]" * 950)  # sent as written: too deep for json.dumps here
    response = client.post("/gpen/v1/restore", content=text,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and message in response.text, response.text
    assert "Traceback" not in response.text


def test_a_request_for_more_faces_than_allowed_is_refused_before_any_work(client, webui,
                                                                         astronaut,
                                                                         astronaut_landmarks,
                                                                         monkeypatch):
    from gpen_ext.hosts import service
    too_many = [astronaut_landmarks.tolist()] * 2000
    monkeypatch.setattr(service, "load_restorer", lambda *a, **k: pytest.fail("no work"))
    response = client.post("/gpen/v1/restore", json={"image": png_base64(astronaut),
                                                     "landmarks": too_many})
    assert response.status_code == 422 and "at most 100" in response.text
    shared.opts.gpen_faces_per_image = 3  # a setting; the image is refused unread
    response = client.post("/gpen/v1/restore", json={"image": "not even base64!",
                                                     "landmarks": too_many[:4]})
    assert response.status_code == 422 and "at most 3" in response.text


def test_faces_found_beyond_the_limit_are_left_alone(client, webui):
    shared.opts.gpen_faces_per_image = 2
    crowd = np.random.default_rng(0).integers(0, 255, (300, 600, 3), dtype=np.uint8)
    response = client.post("/gpen/v1/restore", json={"image": png_base64(crowd), "mask": "box",
                                                     "detection_threshold": 0.5})
    assert response.status_code == 200 and len(response.json()["faces"]) == 2
    found = re.fullmatch(r"2 of 2 face\(s\) restored \((\d+) found\)",
                         response.json()["message"])
    assert found and int(found.group(1)) > 2  # the rigged detector finds many


def test_extreme_aspect_ratios_are_restored_without_an_error(client):
    for shape in ((8, 32000), (10, 20000)):
        sliver = np.full(shape + (3,), 128, np.uint8)
        response = client.post("/gpen/v1/restore", json={"image": png_base64(sliver),
                                                         "mask": "box"})
        assert response.status_code == 200, response.text


def test_error_details_name_no_server_paths(client, webui, astronaut, monkeypatch):
    from gpen_ext.registry import KNOWN_MODELS
    models = webui.models_dir()
    (models / "broken.pth").write_text("not a checkpoint")
    monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-1024",
                        replace(KNOWN_MODELS["GPEN-BFR-1024"],
                                urls=("http://127.0.0.1:9/GPEN-BFR-1024.pth",)))
    image = png_base64(astronaut)
    for body, message in (({"model": "broken.pth"}, "broken.pth is not a checkpoint"),
                          ({"model": "GPEN-BFR-1024"}, "the models folder"),
                          ({"model": "missing.pth"}, "unknown model")):
        response = client.post("/gpen/v1/restore", json={"image": image, **body})
        assert response.status_code in (422, 500) and message in response.text, response.text
        assert str(models) not in response.text and str(models.resolve()) not in response.text


def test_show_face_numbers_draws_the_faces_and_restores_nothing(webui, astronaut):
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    webui.GPENPostprocessing().process(pp, enable=True, visibility=1.0, weight=1.0, model=None,
                                       show_numbers=True)
    boxed = np.asarray(pp.image)  # the numbered photo first, then the photo as it was
    assert boxed.shape == astronaut.shape and changed(boxed, astronaut) > 0
    assert np.array_equal(np.asarray(pp.extra_images[0].image), astronaut)
    assert webui.SERVICE._restorer is None  # the detector alone: no GPEN network loaded
    found = len(webui.SERVICE.detect(astronaut, webui.current_settings()))
    assert pp.info == pp.extra_images[0].info == {
        "GPEN faces found": f"{found}, numbered from 0 left to right"}
    assert webui.SERVICE._restorer is None
    restorer = webui.SERVICE.restorer("GPEN-BFR-512")
    assert restorer.face_models is webui.SERVICE.face_models()  # its detector loaded once


def test_extras_progress_counts_faces_and_interrupt_stops_them(webui, astronaut, caplog,
                                                              monkeypatch):
    state = shared.state
    state.job_count, state.job_no, state.interrupted = 1, 1, False  # as Extras leaves them
    state.sampling_step = state.sampling_steps = 10  # as an earlier image's faces leave them
    state.seen.clear()
    shared.opts.gpen_batch_size = 1
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    with caplog.at_level(logging.INFO):
        webui.GPENPostprocessing().process(pp, enable=True, visibility=1.0, weight=1.0,
                                           model=None)
    found = len([message for message in caplog.messages if "face(s) restored" in message])
    progress = [value for value, text in state.seen if text.startswith("GPEN:")]
    assert state.seen[0] == (0, "GPEN: loading GPEN-BFR-512")  # under the bar, from none
    assert progress == sorted(progress) and progress[-1] == 1 and found > 1
    assert state.job_no == 1  # as Extras left it

    original = webui.HostProgress.__call__

    def interrupt_after_the_first(self, progress):  # Interrupt pressed after one face
        if progress.restored >= 1:
            state.interrupted = True
        return original(self, progress)

    monkeypatch.setattr(webui.HostProgress, "__call__", interrupt_after_the_first)
    pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(astronaut))
    with caplog.at_level(logging.WARNING):
        webui.GPENPostprocessing().process(pp, enable=True, visibility=1.0, weight=1.0,
                                           model=None)
    state.interrupted = False
    assert pp.info["GPEN stopped"].startswith("after 1 of")
    assert "stopped: 1 of" in caplog.text and changed(pp.image, astronaut) > 0
