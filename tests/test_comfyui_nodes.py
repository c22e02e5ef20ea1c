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

from helpers import HERE, ROOT

sys.path.insert(0, str(HERE / "comfy_stand_in"))
import folder_paths  # noqa: E402
from comfy import model_management, utils as comfy_utils  # noqa: E402


def load_pack(name="gpen_pack"):
    """The repository as ComfyUI loads a node pack: its root __init__.py as a package. The
    gpen_ext modules already imported serve the pack too, so that tests patch one copy."""
    import gpen_ext.hosts  # noqa: F401
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] == "gpen_ext" and not module_name.endswith(".comfyui"):
            sys.modules[f"{name}.{module_name}"] = module
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
        del sys.modules[name]  # the pack registers its folders when it is imported
    pack = load_pack()
    model_management.freed.clear()
    comfy_utils.updates.clear()
    return pack


def nodes(pack):
    return {name: cls() for name, cls in pack.NODE_CLASS_MAPPINGS.items()}


def restore_inputs(pack, **overrides):
    """Every restore input at its default, as ComfyUI would pass them, with overrides."""
    required = pack.NODE_CLASS_MAPPINGS["GPENRestoreFaces"].INPUT_TYPES()["required"]
    values = {name: spec[1]["default"] for name, spec in required.items()
              if name not in ("gpen_model", "image")}
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
    for name in ("gpen", "facerestore_models", "facedetection"):
        assert folder_paths.get_folder_paths(name)


def test_inputs_are_derived_from_the_option_descriptions(comfy):
    from gpen_ext.options import CHOICE, restore_option_list
    required = comfy.NODE_CLASS_MAPPINGS["GPENRestoreFaces"].INPUT_TYPES()["required"]
    for option in restore_option_list():
        kind, spec = required[option.name]
        assert spec["tooltip"].startswith(option.help)
        if option.minimum is not None:
            assert (spec["min"], spec["max"], spec["default"]) == \
                (option.minimum, option.maximum, option.default)
        if option.kind == CHOICE:
            assert kind == list(option.choices)
    loader = comfy.NODE_CLASS_MAPPINGS["GPENModelLoader"].INPUT_TYPES()["required"]
    assert loader["precision"][0] == ["auto", "fp32", "fp16", "bf16"]


def test_the_loader_lists_and_finds_models_in_comfyuis_folders(comfy, tmp_path,
                                                               tiny_state_dict):
    facerestore = tmp_path / "models" / "facerestore_models"
    torch.save(tiny_state_dict, facerestore / "GPEN-BFR-256.pth")  # where ReActor keeps it
    (facerestore / "codeformer.pth").write_bytes(b"another restorer")
    choices = comfy.NODE_CLASS_MAPPINGS["GPENModelLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices[:4] == ["GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024", "GPEN-BFR-2048"]
    assert "tiny.pth" in choices and "codeformer.pth" not in choices
    loader = nodes(comfy)["GPENModelLoader"]
    model, = loader.load("256", "auto")  # the release, found in facerestore_models
    assert model.restorer.size == 64 and model.restorer.device.type == "cpu"
    model, = loader.load("tiny.pth", "fp32")
    assert model.restorer.size == 64
    with pytest.raises(ValueError, match="unknown model 'nope.pth'"):
        loader.load("nope.pth", "auto")


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
    monkeypatch.setattr(FaceRestorer, "restore_batch", lambda self, batch, options: batches.append(
        [id(frame) for frame, _ in batch]) or original(self, batch, options))
    frames = torch.from_numpy(np.stack([astronaut, astronaut[:, ::-1]]).astype(np.float32) / 255)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "auto")
    images, masks = node["GPENRestoreFaces"].restore(model, frames, **restore_inputs(comfy))
    assert images.shape == frames.shape and images.dtype == torch.float32
    assert masks.shape == frames.shape[:3] and masks.max() == 1.0
    changed = (images - frames).abs().amax(dim=-1) > 1e-6
    assert changed.any() and not changed[masks == 0].any()  # only where faces were pasted
    assert max(map(len, batches)) == 4  # batch_size faces at a time, across the frames:
    assert any(len(set(frames_in_batch)) == 2 for frames_in_batch in batches)
    assert masks[0].max() == masks[1].max() == 1.0
    assert model_management.freed and comfy_utils.updates[-1][0] == comfy_utils.updates[-1][1]
    assert model.restorer.device.type == "cpu"  # parked on the offload device


def test_face_choices_and_regions_as_text(comfy, astronaut, monkeypatch):
    from gpen_ext.face_models import FaceParser
    classes = torch.zeros(1, 512, 512, dtype=torch.uint8)
    classes[:, 100:400, 100:400], classes[:, 200:300, 200:300] = 1, 10  # skin, a nose in it
    monkeypatch.setattr(FaceParser, "run", lambda self, batch, where="device": classes)
    frames = torch.from_numpy(astronaut[None].astype(np.float32) / 255)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    restore = node["GPENRestoreFaces"].restore
    one, one_mask = restore(model, frames, **restore_inputs(comfy, face_indices="0",
                                                            mask="parsing",
                                                            face_regions="skin, nose"))
    nose, nose_mask = restore(model, frames, **restore_inputs(comfy, face_indices="0",
                                                              mask="parsing", face_regions="nose"))
    assert 0 < nose_mask.sum() < one_mask.sum()
    none, none_mask = restore(model, frames, **restore_inputs(comfy, min_face_size=4096))
    assert torch.equal(none, frames) and none_mask.max() == 0
    assert 0 < (one_mask > 0).float().mean() < 0.2
    with pytest.raises(ValueError, match="face numbers"):
        restore(model, frames, **restore_inputs(comfy, face_indices="first"))
    with pytest.raises(ValueError, match="face_regions"):
        restore(model, frames, **restore_inputs(comfy, face_regions="teeth"))


def test_aligned_faces_and_interruption(comfy):
    crops = torch.rand(3, 80, 80, 3)
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    restored, = node["GPENRestoreAlignedFaces"].restore(model, crops, weight=1.0, visibility=1.0,
                                                        color_correction=False, batch_size=2)
    assert restored.shape == crops.shape and not torch.equal(restored, crops)
    model_management.interrupted = True
    with pytest.raises(model_management.InterruptProcessingException):
        node["GPENRestoreAlignedFaces"].restore(model, crops, weight=1.0, visibility=1.0,
                                                color_correction=False, batch_size=2)


def test_the_example_workflow_gives_every_input_a_valid_value(comfy):
    import json
    workflow = json.loads((ROOT / "example_workflows" / "gpen_restore_faces.json").read_text())
    for node in workflow.values():
        if node["class_type"] not in comfy.NODE_CLASS_MAPPINGS:
            continue
        required = comfy.NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()["required"]
        assert set(node["inputs"]) == set(required), node["class_type"]
        for name, value in node["inputs"].items():
            kind, *rest = required[name]
            spec = rest[0] if rest else {}
            if isinstance(kind, list):
                assert value in kind, name
            elif kind in ("INT", "FLOAT"):
                assert spec["min"] <= value <= spec["max"], name


def test_comfyuis_memory_manager_sizes_loads_and_unloads_the_restorer(comfy, astronaut,
                                                                      monkeypatch):
    """The restorer is one model to ComfyUI (a ModelPatcher): its size counts the face models
    as they join, it is loaded for a run with room for a batch of faces, and ComfyUI moves
    it away when it unloads it."""
    node = nodes(comfy)
    model, = node["GPENModelLoader"].load("tiny.pth", "fp32")
    patcher = model.patcher
    network_bytes = model_management.module_size(model.restorer.runner.network)
    assert patcher.model_size() == network_bytes
    assert (patcher.load_device, patcher.offload_device) == (
        model_management.get_torch_device(), model_management.unet_offload_device())
    frames = torch.from_numpy(astronaut[None].astype(np.float32) / 255)
    node["GPENRestoreFaces"].restore(model, frames, **restore_inputs(comfy, mask="parsing"))
    loaded_patcher, working, full = model_management.loaded[-1]
    assert loaded_patcher is patcher and full and working > 0
    parser = model.restorer.face_models.parser().network
    detector = model.restorer.face_models.detector("retinaface_mobile0.25").network
    assert patcher.model_size() == network_bytes + model_management.module_size(parser) + \
        model_management.module_size(detector)
    moves = []
    monkeypatch.setattr(model.restorer, "to", lambda device: moves.append(str(device)))
    patcher.detach()
    assert moves == [str(patcher.offload_device)]
