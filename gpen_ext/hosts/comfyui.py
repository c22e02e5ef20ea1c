"""The ComfyUI adapter: a model loader, a face restorer for IMAGE batches and a restorer of
aligned face crops. The only module of the project that imports ComfyUI.

Inputs are derived from the option descriptions in options.py; models resolve through the
registry like everywhere else; the device and its memory are ComfyUI's (model_management).
"""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

import comfy.model_management as model_management
import comfy.utils
import folder_paths

from ..checkpoints import load_model
from ..device_memory import PARSER_MB, network_mb_per_face
from ..download import ensure_model
from ..face_models import FaceModels
from ..inference import resolve_precision
from ..options import PRECISION, restore_option_list, restore_options
from ..pipeline import FaceRestorer
from ..registry import KNOWN_MODELS, UnknownModelError, list_models, resolve_model

CATEGORY = "image/restoration/GPEN"
GPEN_MODEL = "GPEN_MODEL"
# Where GPEN checkpoints are looked for: its own folder, then where ReActor and facerestore
# users keep theirs; and where ComfyUI's face tools keep facexlib's weights.
MODEL_FOLDERS = ("gpen", "facerestore_models")
FACE_MODELS_FOLDER = "facedetection"
ALIGNED_OPTIONS = ("weight", "visibility", "color_correction", "batch_size")


def _register_folders():
    for name in (*MODEL_FOLDERS, FACE_MODELS_FOLDER):
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))


_register_folders()


def model_folders():
    return [Path(path) for name in MODEL_FOLDERS for path in folder_paths.get_folder_paths(name)]


def model_choices():
    """The releases, then GPEN checkpoints in the model folders (in facerestore_models, those
    named GPEN: the others there are other restorers)."""
    names = list(KNOWN_MODELS)
    own = set(folder_paths.get_folder_paths("gpen"))
    for folder in model_folders():
        names += [item.name for item in list_models(folder) if item.name not in KNOWN_MODELS
                  and (str(folder) in own or "gpen" in item.name.lower())]
    return list(dict.fromkeys(names))


def find_model(name):
    """registry.resolve_model over the model folders: the first folder that has the file; a
    release missing everywhere goes to the first folder, to be downloaded there."""
    references = []
    for folder in model_folders():
        try:
            references.append(resolve_model(name, folder))
        except UnknownModelError:
            continue
    if not references:
        return resolve_model(name, model_folders()[0])  # raises, naming the choices
    present = [reference for reference in references if reference.path.is_file()]
    return (present or references)[0]


def face_models_folder():
    return Path(folder_paths.get_folder_paths(FACE_MODELS_FOLDER)[0])


class GPENModel:
    """A loaded restorer, kept on ComfyUI's offload device between runs."""

    def __init__(self, restorer, name):
        self.restorer, self.name = restorer, name

    @contextmanager
    def on_device(self, batch_size):
        """The restorer on ComfyUI's device, room made for it there; back afterwards."""
        device = model_management.get_torch_device()
        runner = self.restorer.runner
        precision = resolve_precision(runner.asked_precision, device, warn=False)
        per_face = network_mb_per_face(self.restorer.size, precision)
        required = model_management.module_size(runner.network) + \
            (PARSER_MB + batch_size * per_face) * 2 ** 20
        model_management.free_memory(required, device)
        self.restorer.to(device)
        try:
            yield self.restorer
        finally:
            self.restorer.to(model_management.unet_offload_device())
            model_management.soft_empty_cache()


def _input(option):
    """An option as a ComfyUI input: its widget, default, limits and help."""
    extra = {"default": option.default, "tooltip": option.help}
    if option.kind is bool:
        return "BOOLEAN", extra
    if option.kind is tuple:
        names = ", ".join(option.choices)
        tooltip = option.help + (f" (comma-separated: {names})" if names else " (e.g. 0, 2)")
        return "STRING", {"default": option.to_text(option.default), "tooltip": tooltip}
    if option.choices:
        return list(option.choices), extra
    kind = "INT" if option.kind is int else "FLOAT"
    return kind, {**extra, "min": option.minimum, "max": option.maximum, "step": option.step}


def _value(option, value):
    """A ComfyUI input's value as the option takes it (lists arrive as text)."""
    return option.from_text(value) if option.kind is tuple else value


def _progress(total_hint):
    bar = comfy.utils.ProgressBar(total_hint)

    def report(done, total):
        model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)
    return report


def _frames(image):
    """ComfyUI's IMAGE batch (B, H, W, C) float as the pipeline's float32 frames."""
    return [frame for frame in image.detach().cpu().float().numpy()]


class GPENModelLoader:
    """A GPEN checkpoint from ComfyUI's model folders, or a release, downloaded and verified
    into models/gpen if missing."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (model_choices(), {"default": "GPEN-BFR-512", "tooltip": (
                "GPEN-BFR-512 suits most photos; 1024 and 2048 for large faces. A missing "
                "release is downloaded into models/gpen")}),
            "precision": (list(PRECISION.choices), {"default": PRECISION.default,
                                                   "tooltip": PRECISION.help}),
        }}

    RETURN_TYPES = (GPEN_MODEL,)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model, precision):
        network = load_model(ensure_model(find_model(model)))
        # made for the device it will run on (where the precision is decided), then parked
        restorer = FaceRestorer(network, FaceModels(face_models_folder()),
                                model_management.get_torch_device(), precision)
        restorer.to(model_management.unet_offload_device())
        return (GPENModel(restorer, model),)


class GPENRestoreFaces:
    """Find, restore and paste back the faces of every frame of an IMAGE batch, the faces
    batched across frames; the MASK says where restored pixels were pasted."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gpen_model": (GPEN_MODEL,), "image": ("IMAGE",),
                             **{option.name: _input(option) for option in restore_option_list()}}}

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    FUNCTION = "restore"
    CATEGORY = CATEGORY

    def restore(self, gpen_model, image, **values):
        options = restore_options(**{option.name: _value(option, values[option.name])
                                     for option in restore_option_list() if option.name in values},
                                  keep_crops=False, keep_paste_mask=True)
        with gpen_model.on_device(options.batch_size) as restorer:
            results = restorer.restore_images(_frames(image), options, any_float_range=True,
                                              progress=_progress(len(image)))
        images = torch.from_numpy(np.stack([result.image for result in results]))
        masks = torch.from_numpy(np.stack([result.paste_mask for result in results]))
        return images.to(image.dtype), masks


class GPENRestoreAlignedFaces:
    """Restore face crops that are already aligned (GPEN's framing), at their own size."""

    @classmethod
    def INPUT_TYPES(cls):
        options = {option.name: option for option in restore_option_list()}
        return {"required": {"gpen_model": (GPEN_MODEL,), "image": ("IMAGE",),
                             **{name: _input(options[name]) for name in ALIGNED_OPTIONS}}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "restore"
    CATEGORY = CATEGORY

    def restore(self, gpen_model, image, **values):
        options = restore_options(**values, keep_crops=False)
        with gpen_model.on_device(options.batch_size) as restorer:
            results = restorer.restore_aligned_images(_frames(image), options,
                                                      any_float_range=True,
                                                      progress=_progress(len(image)))
        return (torch.from_numpy(np.stack([result.image for result in results])).to(image.dtype),)


NODE_CLASS_MAPPINGS = {"GPENModelLoader": GPENModelLoader, "GPENRestoreFaces": GPENRestoreFaces,
                       "GPENRestoreAlignedFaces": GPENRestoreAlignedFaces}
NODE_DISPLAY_NAME_MAPPINGS = {"GPENModelLoader": "Load GPEN Model",
                              "GPENRestoreFaces": "GPEN Restore Faces",
                              "GPENRestoreAlignedFaces": "GPEN Restore Aligned Faces"}
