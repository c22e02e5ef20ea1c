"""The ComfyUI adapter: a model loader, a face restorer for IMAGE batches and a restorer of
aligned face crops. The only module of the project that imports ComfyUI.

Inputs are derived from the option descriptions in options.py; models resolve through the
registry like everywhere else; the device and its memory are ComfyUI's (model_management).
"""

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import comfy.model_management as model_management
import comfy.model_patcher
import comfy.utils
import folder_paths

from ..device_memory import PARSER_MB, network_mb_per_face
from ..inference import resolve_precision
from ..options import (CHOICE, FACE_INDICES, FACE_NUMBERS, FLAG, INTEGER, MODEL, NAMES,
                       PRECISION, RESTORE_OPTIONS, RestoreOptions)
from ..registry import (AUTO_MODEL, KNOWN_MODELS, list_models, resolve_model, shown_name,
                        unmarked)
from ..restorers import load_restorer
from ..results import release_counts
from .service import ConsoleProgress

CATEGORY = "image/restoration/GPEN"
GPEN_MODEL = "GPEN_MODEL"
# Where GPEN checkpoints are looked for: its own folder, then where ReActor and facerestore
# users keep theirs; and where ComfyUI's face tools keep facexlib's weights.
MODEL_FOLDERS = ("gpen", "facerestore_models")
FACE_MODELS_FOLDER = "facedetection"
MB = 2 ** 20

log = logging.getLogger(__name__)


def register_folders():
    """GPEN's model folders in ComfyUI's list (where a user's extra_model_paths.yaml has not
    put them already); done when first needed, not when imported."""
    for name in (*MODEL_FOLDERS, FACE_MODELS_FOLDER):
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))


def model_folders():
    register_folders()
    return [Path(path) for name in MODEL_FOLDERS for path in folder_paths.get_folder_paths(name)]


def model_choices():
    """The releases, marked where not yet in a model folder, then GPEN checkpoints in the
    model folders (in facerestore_models, those named GPEN: the others there are other
    restorers)."""
    installed = {item.name for folder in model_folders() for item in list_models(folder)
                 if item.installed}
    names = [shown_name(name, name in installed) for name in KNOWN_MODELS] + [AUTO_MODEL]
    own = set(folder_paths.get_folder_paths("gpen"))
    for folder in model_folders():
        names += [item.name for item in list_models(folder) if item.name not in KNOWN_MODELS
                  and (str(folder) in own or "gpen" in item.name.lower())]
    return list(dict.fromkeys(names))


def face_models_folder():
    register_folders()
    return Path(folder_paths.get_folder_paths(FACE_MODELS_FOLDER)[0])


class RestorerModule(torch.nn.Module):
    """A restorer as ComfyUI's memory manager sees a model: one module whose weights are the
    network's and those of the face models loaded so far, moved as one."""

    def __init__(self, restorer):
        super().__init__()
        self.restorer = restorer
        self.device = restorer.device

    def state_dict(self, *args, **kwargs):
        return {f"{name}.{key}": tensor for name, network in self.restorer.networks_loaded().items()
                for key, tensor in network.state_dict().items()}

    def to(self, device, *args, **kwargs):
        self.restorer.to(device)
        self.device = torch.device(device)
        return self


class RestorerPatcher(comfy.model_patcher.ModelPatcher):
    """ComfyUI's handle on a restorer: it loads it onto the device when a node needs it and
    unloads it when another model needs the memory. Its size is counted afresh each time,
    since face models join the restorer on first use."""

    def model_size(self):
        return model_management.module_size(self.model)


class GPENModel:
    """A loaded restorer and ComfyUI's handle on it."""

    def __init__(self, restorer, name):
        self.restorer, self.name = restorer, name
        self.patcher = RestorerPatcher(RestorerModule(restorer), model_management.get_torch_device(),
                                       model_management.unet_offload_device())

    def on_device(self, options, aligned=False):
        """The restorer with what `options` need loaded (for aligned crops, the network
        alone), on ComfyUI's device, with room made there (ComfyUI's own accounting) for the
        faces of a batch."""
        restorer = self.restorer
        if not aligned:
            restorer.prepare(options)
        device = self.patcher.load_device
        precision = resolve_precision(restorer.requested_precision, device, warn=False)
        parsing = not aligned and options.mask == "parsing"
        working = network_mb_per_face(restorer.size, precision) * options.batch_size + \
            (PARSER_MB if parsing else 0)
        model_management.load_models_gpu([self.patcher], memory_required=working * MB,
                                         force_full_load=True)  # it has no partial loading
        return restorer


FACE_REGIONS = next(option for option in RESTORE_OPTIONS if option.name == "face_regions")


def _input(option):
    """An option as a ComfyUI input: its widget, default, limits, label and help (advanced
    ones behind the node's "Show Advanced")."""
    extra = {"default": option.default, "tooltip": option.help, "display_name": option.label}
    if option.advanced:
        extra["advanced"] = True
    if option.kind == FLAG:
        return "BOOLEAN", extra
    if option.kind == FACE_NUMBERS:
        return "STRING", {**extra, "default": "", "tooltip": option.help + " (e.g. 0, 2)"}
    if option.kind == CHOICE:
        return list(option.choices), extra
    kind = "INT" if option.kind == INTEGER else "FLOAT"
    return kind, {**extra, "min": option.minimum, "max": option.maximum, "step": option.step}


def _region_inputs():
    """Face regions as one toggle each, which cannot hold a wrong name."""
    return {f"region_{name}": ("BOOLEAN", {
        "default": name in FACE_REGIONS.default, "display_name": f"region: {name}",
        "advanced": True, "tooltip": f"Paste the restored {name}; off keeps the original "
        f"{name}. With the parsing mask"}) for name in FACE_REGIONS.choices}


def _restore_inputs(shown):
    """A restore node's inputs: the basic options required, the advanced ones optional."""
    inputs = {option.name: _input(option) for option in shown if option.kind != NAMES}
    regions = _region_inputs() if FACE_REGIONS in shown else {}
    basic = {name: spec for name, spec in inputs.items() if not spec[1].get("advanced")}
    advanced = {name: spec for name, spec in inputs.items() if spec[1].get("advanced")}
    return basic, {**advanced, **regions}


def _options(values, **fields):
    """RestoreOptions from a node's inputs: face numbers as text, regions as toggles; those
    not given (optional inputs) at their defaults."""
    given = {option.name: option.from_text(values[option.name])
             if option.kind == FACE_NUMBERS else values[option.name]
             for option in RESTORE_OPTIONS if option.name in values}
    toggles = {name: values.get(f"region_{name}") for name in FACE_REGIONS.choices}
    if any(value is not None for value in toggles.values()):
        given[FACE_REGIONS.name] = tuple(name for name, on in toggles.items() if on or (
            on is None and name in FACE_REGIONS.default))
    return RestoreOptions().overlay(**given, **fields)


def _progress(restorer, options, node=None):
    """ComfyUI's bar in tenths of a face, the node's text ("GPEN: finding faces", then the
    faces restored) from the first second, its console lines, and its Cancel honoured at
    every check."""
    bar = comfy.utils.ProgressBar(1)
    shown = [None]

    def report(progress):
        model_management.throw_exception_if_processing_interrupted()
        total = max(10 * progress.chosen, 1)
        bar.update_absolute(min(round(10 * progress.work), total), total)
        if node is not None and progress.text != shown[0]:
            shown[0] = progress.text
            _show_text(progress.text, node)
    return ConsoleProgress(report, options.batch_size,
                           f"{restorer.device} ({restorer.precision})")


def _show_text(text, node):
    """Text under the node, where this ComfyUI has a server to send it (not in tests)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.send_progress_text(text, node)


def _log_releases(results):
    """Under auto, the faces each release restored, in ComfyUI's console."""
    releases = sum((result.releases for result in results), Counter())
    if releases:
        log.info("GPEN: %s", release_counts(releases))


def _frames(image):
    """ComfyUI's IMAGE batch (B, H, W, C) float as the pipeline's float32 frames."""
    return [frame for frame in image.detach().cpu().float().numpy()]


def comfyui_precision(device):
    """The precision ComfyUI itself picks for a model on `device` (fp32 on the CPU)."""
    if model_management.should_use_fp16(device):
        return "fp16"
    return "bf16" if model_management.should_use_bf16(device) else "fp32"


class GPENModelLoader:
    """A GPEN checkpoint from ComfyUI's model folders, or a release, downloaded and verified
    into models/gpen if missing."""

    DESCRIPTION = ("Loads a GPEN face restoration model: a release (downloaded and verified "
                   "into models/gpen on first use) or a GPEN checkpoint from models/gpen or "
                   "models/facerestore_models.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (model_choices(), {"default": MODEL.default, "tooltip": MODEL.help}),
            "precision": (list(PRECISION.choices), {"default": PRECISION.default,
                                                   "tooltip": PRECISION.help}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        """Any model name resolves (a release's too, marked or not, once it is downloaded)."""
        name = unmarked(model)
        try:
            resolve_model(name, model_folders())
        except ValueError as error:
            return str(error)
        return True

    RETURN_TYPES = (GPEN_MODEL,)
    RETURN_NAMES = ("gpen_model",)
    OUTPUT_TOOLTIPS = ("The GPEN model with its face detector and parser, for the GPEN "
                       "restore nodes",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model, precision):
        name = unmarked(model)
        device = model_management.get_torch_device()
        if precision == "auto":
            precision = comfyui_precision(device)
        # made for the device it will run on (where the precision is decided), then parked
        restorer = load_restorer(name, model_folders(), device, precision,
                                 face_models_dir=face_models_folder(), allow_paths=False)
        restorer.to(model_management.unet_offload_device())
        return (GPENModel(restorer, name),)


class GPENRestoreFaces:
    """Find, restore and paste back the faces of every frame of an IMAGE batch, the faces
    batched across frames; the MASK says where restored pixels were pasted."""

    DESCRIPTION = ("Finds the faces in every image of a batch, restores them with GPEN and "
                   "pastes them back. A batch of video frames is restored as a clip: faces are "
                   "followed from frame to frame and held steady (temporal smoothing); set "
                   "that to 0 for a batch of unrelated pictures. Right-click > Show Advanced "
                   "for the detector, template, batch size and face regions.")

    @classmethod
    def INPUT_TYPES(cls):
        basic, advanced = _restore_inputs(RESTORE_OPTIONS)
        return {"required": {"gpen_model": (GPEN_MODEL,), "image": ("IMAGE",), **basic},
                "optional": advanced, "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def VALIDATE_INPUTS(cls, face_indices=""):
        """Face numbers are checked before the workflow runs."""
        try:
            FACE_INDICES.from_text(face_indices)
        except ValueError as error:
            return str(error)
        return True

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The images with their faces restored",
                       "Where restored pixels were pasted, and how strongly (0 to 1)")
    FUNCTION = "restore_faces"
    CATEGORY = CATEGORY

    def restore_faces(self, gpen_model, image, unique_id=None, **values):
        options = _options(values, keep_crops=False, keep_paste_mask=True)
        restorer = gpen_model.on_device(options)
        results = restorer.restore_images(_frames(image), options, any_float_range=True,
                                          progress=_progress(restorer, options, unique_id))
        _log_releases(results)
        images = torch.from_numpy(np.stack([result.image for result in results]))
        masks = torch.from_numpy(np.stack([result.paste_mask for result in results]))
        return images.to(image.dtype), masks


class GPENRestoreAlignedFaces:
    """Restore face crops that are already aligned (GPEN's framing), at their own size."""

    DESCRIPTION = ("Restores face crops that are already aligned (GPEN's framing, as the "
                   "crops other face tools make), each at its own size.")

    @classmethod
    def INPUT_TYPES(cls):
        basic, advanced = _restore_inputs([option for option in RESTORE_OPTIONS
                                           if option.aligned])
        return {"required": {"gpen_model": (GPEN_MODEL,), "image": ("IMAGE",), **basic},
                "optional": advanced, "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The crops restored",)
    FUNCTION = "restore_aligned_faces"
    CATEGORY = CATEGORY

    def restore_aligned_faces(self, gpen_model, image, unique_id=None, **values):
        options = _options(values, keep_crops=False)
        restorer = gpen_model.on_device(options, aligned=True)
        results = restorer.restore_aligned_images(_frames(image), options, any_float_range=True,
                                                  progress=_progress(restorer, options,
                                                                     unique_id))
        _log_releases(results)
        return (torch.from_numpy(np.stack([result.image for result in results])).to(image.dtype),)


NODE_CLASS_MAPPINGS = {"GPENModelLoader": GPENModelLoader, "GPENRestoreFaces": GPENRestoreFaces,
                       "GPENRestoreAlignedFaces": GPENRestoreAlignedFaces}
NODE_DISPLAY_NAME_MAPPINGS = {"GPENModelLoader": "Load GPEN Model",
                              "GPENRestoreFaces": "GPEN Restore Faces",
                              "GPENRestoreAlignedFaces": "GPEN Restore Aligned Faces"}
