"""The ComfyUI nodes against a stand-in with ComfyUI's signatures (tests/comfy_stand_in);
tests/test_comfyui_real.py runs them in a real ComfyUI when COMFYUI_DIR is set."""

import importlib.util
import shutil
import sys
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
import torch

from helpers import ROOT, TEMPLATE, forget_modules, stand_in

with stand_in("comfy_stand_in"):
    import folder_paths  # noqa: E402
    from comfy import model_management, utils as comfy_utils  # noqa: E402


def load_pack(name="gpen_pack"):
    """The repository as ComfyUI loads a node pack: its root __init__.py as a package. The
    gpen_ext modules already imported serve the pack too, so that tests patch one copy."""
    import gpen_ext.device_memory, gpen_ext.hosts.service, gpen_ext.restorers  # noqa: F401, E401
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] == "gpen_ext" and not module_name.endswith(".comfyui"):
            sys.modules[f"{name}.{module_name}"] = module
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def stand_in_host():
    """The stand-in ComfyUI for this module's tests only: gone from sys.modules afterwards,
    with the packs loaded from it."""
    yield
    forget_modules("folder_paths", "comfy", "gpen_pack", "gpen_pack_again")


@pytest.fixture
def comfy(tmp_path, monkeypatch, tiny_state_dict, face_weights):
    """The pack in a stand-in ComfyUI whose models folder has a small GPEN checkpoint in
    models/gpen and facexlib's (rigged) weights in models/facedetection."""
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", {})
    for name in ("gpen", "facerestore_models"):
        (tmp_path / "models" / name).mkdir(parents=True)
    torch.save(tiny_state_dict, tmp_path / "models" / "gpen" / "tiny.pth")
    shutil.copytree(face_weights, tmp_path / "models" / "facedetection")
    for name in [name for name in sys.modules if name.startswith("gpen_pack")]:
        del sys.modules[name]  # a fresh import of the pack
    pack = load_pack()
    model_management.freed.clear()
    comfy_utils.updates.clear()
    return pack


def nodes(pack):
    return {name: cls() for name, cls in pack.NODE_CLASS_MAPPINGS.items()}


def restore_inputs(pack, **overrides):
    """Every restore input at its default, as ComfyUI would pass them, with overrides."""
    types = pack.NODE_CLASS_MAPPINGS["GPENRestoreFaces"].INPUT_TYPES()
    values = {name: spec[1]["default"] for group in ("required", "optional")
              for name, spec in types[group].items() if name not in ("gpen_model", "image")}
    values.update(detection_model="retinaface_mobile0.25", mask="box")
    values.update(overrides)
    return values


def test_importing_the_pack_registers_nodes_and_loads_nothing(comfy, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: pytest.fail("importing must not touch the network"))
    monkeypatch.setattr(torch.serialization, "load",
                        lambda *a, **k: pytest.fail("importing must not load a model"))
    pack = load_pack("gpen_pack_again")
    assert set(pack.NODE_CLASS_MAPPINGS) == {"GPENModelLoader", "GPENRestoreFaces",
                                             "GPENRestoreAlignedFaces"}
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(pack.NODE_CLASS_MAPPINGS)
    folders = ("gpen", "facerestore_models", "facedetection")
    assert not set(folders) & set(folder_paths.folder_names_and_paths)  # not at import
    pack.NODE_CLASS_MAPPINGS["GPENModelLoader"].INPUT_TYPES()  # ComfyUI lists the models
    for name in folders:
        assert folder_paths.get_folder_paths(name)


def test_inputs_are_derived_from_the_option_descriptions(comfy):
    from gpen_ext.options import CHOICE, NAMES, restore_option_list
    types = comfy.NODE_CLASS_MAPPINGS["GPENRestoreFaces"].INPUT_TYPES()
    inputs = {**types["required"], **types["optional"]}
    for option in restore_option_list():
        if option.kind == NAMES:  # one toggle a region, which cannot hold a wrong name
            assert [name for name in inputs if name.startswith("region_")] == [
                f"region_{choice}" for choice in option.choices]
            continue
        kind, spec = inputs[option.name]
        assert spec["tooltip"].startswith(option.help)
        assert spec["display_name"] == option.label  # short: fits the node's width
        assert (option.name in types["optional"]) == option.advanced == spec.get(
            "advanced", False)  # advanced ones behind "Show Advanced"
        if option.minimum is not None:
            assert (spec["min"], spec["max"], spec["default"]) == \
                (option.minimum, option.maximum, option.default)
        if option.kind == CHOICE:
            assert kind == list(option.choices)
    loader = comfy.NODE_CLASS_MAPPINGS["GPENModelLoader"].INPUT_TYPES()["required"]
    assert loader["precision"][0] == ["auto", "fp32", "fp16", "bf16"]
    for node in comfy.NODE_CLASS_MAPPINGS.values():  # described, outputs explained
        assert node.DESCRIPTION and len(node.OUTPUT_TOOLTIPS) == len(node.RETURN_TYPES)
        assert all(name == name.lower() for name in node.RETURN_NAMES)


def test_face_numbers_are_checked_before_the_workflow_runs(comfy):
    restore = comfy.NODE_CLASS_MAPPINGS["GPENRestoreFaces"]
    assert restore.VALIDATE_INPUTS(face_indices="") is True
    assert restore.VALIDATE_INPUTS(face_indices="0, 2") is True
    assert "face numbers" in restore.VALIDATE_INPUTS(face_indices="first")
    assert "every face" in restore.INPUT_TYPES()["required"]["face_indices"][1]["tooltip"]


def test_the_loader_lists_and_finds_models_in_comfyuis_folders(comfy, tmp_path,
                                                               tiny_state_dict):
    facerestore = tmp_path / "models" / "facerestore_models"
    torch.save(tiny_state_dict, facerestore / "GPEN-BFR-256.pth")  # where ReActor keeps it
    (facerestore / "codeformer.pth").write_bytes(b"another restorer")
    choices = comfy.NODE_CLASS_MAPPINGS["GPENModelLoader"].INPUT_TYPES()["required"]["model"][0]
    missing = " (downloaded on first use)"
    assert choices[:4] == ["GPEN-BFR-256", "GPEN-BFR-512" + missing, "GPEN-BFR-1024" + missing,
                           "GPEN-BFR-2048" + missing]  # which are here, which are not
    assert "tiny.pth" in choices and "codeformer.pth" not in choices
    validate = comfy.NODE_CLASS_MAPPINGS["GPENModelLoader"].VALIDATE_INPUTS
    assert validate("GPEN-BFR-512" + missing) is validate("GPEN-BFR-512") is True  # saved
    assert "unknown model" in validate("nope.pth")  # either way, still valid once it is here
    loader = nodes(comfy)["GPENModelLoader"]
    model, = loader.load("256", "auto")  # the release, found in facerestore_models
    assert model.restorer.size == 64 and model.restorer.device.type == "cpu"
    model, = loader.load("tiny.pth", "fp32")
    assert model.restorer.size == 64
    with pytest.raises(ValueError, match="unknown model 'nope.pth'"):
        loader.load("nope.pth", "auto")


@pytest.mark.parametrize("fp16, bf16, expected", [(False, False, "fp32"), (False, True, "bf16"),
                                                   (True, True, "fp16")])
def test_auto_precision_is_the_one_comfyui_picks_for_its_device(comfy, monkeypatch, fp16, bf16,
                                                                expected):
    from comfy import model_management
    monkeypatch.setattr(model_management, "should_use_fp16", lambda *args, **kwargs: fp16)
    monkeypatch.setattr(model_management, "should_use_bf16", lambda *args, **kwargs: bf16)
    model, = nodes(comfy)["GPENModelLoader"].load("tiny.pth", "auto")
    assert model.restorer.requested_precision == expected


def test_a_missing_release_names_its_urls_and_folder(comfy, tmp_path, monkeypatch):
    from gpen_ext.download import DownloadError
    from gpen_ext.registry import KNOWN_MODELS
    monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-1024",
                        replace(KNOWN_MODELS["GPEN-BFR-1024"],
                                urls=("http://127.0.0.1:9/GPEN-BFR-1024.pth",)))
    with pytest.raises(DownloadError) as error:
        nodes(comfy)["GPENModelLoader"].load("GPEN-BFR-1024", "auto")
    assert "http://127.0.0.1:9/GPEN-BFR-1024.pth" in str(error.value)
    assert str(tmp_path / "models" / "gpen") in str(error.value)


def test_restore_faces_on_a_batch_of_frames(comfy, astronaut, monkeypatch):
    from gpen_ext.pipeline import FaceRestorer
    batches, original = [], FaceRestorer.restore_batch
    monkeypatch.setattr(FaceRestorer, "restore_batch", lambda self, batch, options, count:
                        batches.append([id(frame) for frame, _ in batch]) or
                        original(self, batch, options, count))
    frames = torch.from_numpy(np.stack([astronaut, astronaut[:, ::-1]]).astype(np.float32) / 255)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "auto")
    images, masks = node["GPENRestoreFaces"].restore_faces(model, frames, **restore_inputs(comfy))
    assert images.shape == frames.shape and images.dtype == torch.float32
    assert masks.shape == frames.shape[:3] and masks.max() == 1.0
    changed = (images - frames).abs().amax(dim=-1) > 1e-6
    assert changed.any() and not changed[masks == 0].any()  # only where faces were pasted
    assert max(map(len, batches)) == 4  # batch_size faces at a time, across the frames:
    assert any(len(set(frames_in_batch)) == 2 for frames_in_batch in batches)
    assert masks[0].max() == masks[1].max() == 1.0
    assert model_management.freed and comfy_utils.updates[-1][0] == comfy_utils.updates[-1][1]
    assert model.restorer.device.type == "cpu"  # parked on the offload device


def test_the_node_says_what_it_does_from_the_first_second(comfy, astronaut, monkeypatch):
    """Text under the node (ComfyUI's progress text): finding faces before the detector
    runs, then the faces restored, in the words every host uses."""
    import types
    texts = []
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_progress_text=lambda text, node: texts.append((text, node))))
    monkeypatch.setitem(sys.modules, "server", server)
    frames = torch.from_numpy(astronaut[None].astype(np.float32) / 255)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    assert node["GPENRestoreFaces"].INPUT_TYPES()["hidden"] == {"unique_id": "UNIQUE_ID"}
    node["GPENRestoreFaces"].restore_faces(model, frames, unique_id="7",
                                           **restore_inputs(comfy, face_indices="0"))
    assert texts[0] == ("GPEN: finding faces", "7")
    assert texts[-1] == ("GPEN: 1 of 1 face(s) restored", "7")


def test_face_choices_and_regions_as_text(comfy, astronaut, monkeypatch):
    from gpen_ext.face_models import FaceParser
    classes = torch.zeros(1, 512, 512, dtype=torch.uint8)
    classes[:, 100:400, 100:400], classes[:, 200:300, 200:300] = 1, 10  # skin, a nose in it
    monkeypatch.setattr(FaceParser, "run", lambda self, batch, where="device", precision="fp32":
                        classes)
    frames = torch.from_numpy(astronaut[None].astype(np.float32) / 255)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    restore = node["GPENRestoreFaces"].restore_faces
    only = {f"region_{name}": False for name in ("brows", "eyes", "ears", "mouth")}
    one, one_mask = restore(model, frames, **restore_inputs(comfy, face_indices="0",
                                                            mask="parsing", **only))
    nose, nose_mask = restore(model, frames, **restore_inputs(comfy, face_indices="0",
                                                              mask="parsing", region_skin=False,
                                                              **only))
    assert 0 < nose_mask.sum() < one_mask.sum()
    none, none_mask = restore(model, frames, **restore_inputs(comfy, min_face_size=4096))
    assert torch.equal(none, frames) and none_mask.max() == 0
    assert 0 < (one_mask > 0).float().mean() < 0.2
    with pytest.raises(ValueError, match="face numbers"):
        restore(model, frames, **restore_inputs(comfy, face_indices="first"))
    no_eyes, _ = restore(model, frames, **restore_inputs(comfy, region_eyes=False, mask="box"))
    assert no_eyes.shape == frames.shape


def test_aligned_faces_and_interruption(comfy):
    crops = torch.rand(3, 80, 80, 3)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    types = node["GPENRestoreAlignedFaces"].INPUT_TYPES()
    assert list(types["required"]) == ["gpen_model", "image", "weight", "color_correction"]
    assert list(types["optional"]) == ["batch_size"]
    restored, = node["GPENRestoreAlignedFaces"].restore_aligned_faces(model, crops, weight=1.0,
                                                        color_correction=False, batch_size=2)
    assert restored.shape == crops.shape and not torch.equal(restored, crops)
    model_management.interrupted = True
    with pytest.raises(model_management.InterruptProcessingException):
        node["GPENRestoreAlignedFaces"].restore_aligned_faces(model, crops, weight=1.0,
                                                color_correction=False, batch_size=2)


def test_the_example_workflow_is_the_editors_and_gives_every_input_a_valid_value(comfy):
    import json
    from helpers import graph_to_api
    graph = json.loads(TEMPLATE.read_text())
    assert graph["version"] == 0.4 and graph["nodes"] and graph["links"]  # the editor's format
    assert TEMPLATE.with_suffix(".jpg").is_file()  # its thumbnail
    core = {"LoadImage": {"required": {"image": (["example.png"], {})}},
            "SaveImage": {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {})}},
            "MaskToImage": {"required": {"mask": ("MASK",)}}}
    workflow = graph_to_api(graph, lambda kind: comfy.NODE_CLASS_MAPPINGS[kind].INPUT_TYPES()
                            if kind in comfy.NODE_CLASS_MAPPINGS else core[kind])
    assert workflow["1"]["inputs"]["image"] == "example.png"  # what every ComfyUI has
    for node in workflow.values():
        if node["class_type"] not in comfy.NODE_CLASS_MAPPINGS:
            continue
        types = comfy.NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()
        inputs = {**types["required"], **types.get("optional", {})}
        assert set(node["inputs"]) == set(inputs), node["class_type"]
        for name, value in node["inputs"].items():
            kind, *rest = inputs[name]
            spec = rest[0] if rest else {}
            if isinstance(kind, list):
                assert value in kind or value.removesuffix(" (downloaded on first use)") in [
                    choice.removesuffix(" (downloaded on first use)") for choice in kind], name
            elif kind in ("INT", "FLOAT"):
                assert spec["min"] <= value <= spec["max"], name


def test_the_pack_has_a_name_comfyui_users_recognise():
    import tomllib
    from gpen_ext import __version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["comfy"]["DisplayName"] == "GPEN Face Restoration"
    assert project["project"]["name"] == "comfyui-gpen"
    assert project["project"]["version"] == __version__
