"""The AUTOMATIC1111 / Forge adapter: GPEN as a face restorer, an Extras script, settings and
HTTP routes. The only module of the project that imports the WebUI's `modules`."""

from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from modules import (devices, face_restoration, paths, script_callbacks, scripts_postprocessing,
                     shared, ui_components)

from ..face_models import DETECTORS
from ..inference import PRECISIONS
from ..pipeline import MASKS, restore_options
from ..registry import DEFAULT_MODEL, KNOWN_MODELS, installed_checkpoints
from .api import create_router
from .service import HostEnvironment, RestorationService

NAME = "GPEN"
SECTION = ("gpen", "GPEN")
CATEGORY = "postprocessing"  # the Settings category that holds Face restoration


def models_dir():
    custom = getattr(shared.cmd_opts, "gpen_models_path", None)
    return Path(custom) if custom else Path(paths.models_path) / "GPEN"


def face_models_dir():
    return Path(paths.models_path) / "GFPGAN"  # where the WebUI keeps facexlib's weights


def model_choices():
    """The four releases, then any other checkpoint found in the models folder."""
    others = [path.name for path in installed_checkpoints(models_dir())
              if path.name not in {info.filename for info in KNOWN_MODELS.values()}]
    return [*KNOWN_MODELS, *others]


def _device():
    if NAME.lower() in (getattr(shared.cmd_opts, "use_cpu", None) or []):
        return devices.cpu
    return devices.device_codeformer or devices.get_device_for("codeformer")


def _free_memory():
    try:
        from modules_forge.utils import prepare_free_memory  # Forge only
    except ImportError:
        return
    prepare_free_memory()


SERVICE = RestorationService(HostEnvironment(
    models_dir=models_dir, face_models_dir=face_models_dir, device=_device,
    unload_after_use=lambda: bool(getattr(shared.opts, "face_restoration_unload", False)),
    collect_garbage=devices.torch_gc, free_memory=_free_memory))

# key: (default, label, component, component arguments)
SETTINGS = {
    "gpen_model": (DEFAULT_MODEL, "GPEN model", gr.Dropdown, lambda: {"choices": model_choices()}),
    "gpen_weight": (1.0, "GPEN weight", gr.Slider, {"minimum": 0, "maximum": 1, "step": 0.01}),
    "gpen_visibility": (1.0, "GPEN visibility", gr.Slider, {"minimum": 0, "maximum": 1, "step": 0.01}),
    "gpen_face_selection": ("all", "GPEN face selection", gr.Radio,
                            {"choices": ["all", "largest", "center"]}),
    "gpen_detection_model": ("retinaface_resnet50", "GPEN face detector", gr.Radio,
                             {"choices": list(DETECTORS)}),
    "gpen_detection_threshold": (0.9, "GPEN detection confidence", gr.Slider,
                                 {"minimum": 0.1, "maximum": 0.99, "step": 0.01}),
    "gpen_mask": ("parsing", "GPEN paste mask", gr.Radio, {"choices": list(MASKS)}),
    "gpen_color_correction": (False, "GPEN colour correction", gr.Checkbox, None),
    "gpen_small_face_smoothing": (True, "GPEN small-face smoothing", gr.Checkbox, None),
    "gpen_batch_size": (4, "GPEN batch size", gr.Slider, {"minimum": 1, "maximum": 16, "step": 1}),
    "gpen_precision": ("auto", "GPEN precision", gr.Radio, {"choices": list(PRECISIONS)}),
    "gpen_extras_enabled": (False, "GPEN in Extras API calls without GPEN arguments",
                            gr.Checkbox, None),
}


def setting(key):
    return getattr(shared.opts, key, SETTINGS[key][0])


def current_settings(model=None, weight=None, visibility=None):
    """(model, RestoreOptions, precision) from Settings, with optional overrides."""
    options = restore_options(
        weight=weight if weight is not None else setting("gpen_weight"),
        visibility=visibility if visibility is not None else setting("gpen_visibility"),
        selection=setting("gpen_face_selection"), detection_model=setting("gpen_detection_model"),
        detection_threshold=setting("gpen_detection_threshold"), mask=setting("gpen_mask"),
        color_correction=setting("gpen_color_correction"),
        small_face_smoothing=setting("gpen_small_face_smoothing"),
        batch_size=int(setting("gpen_batch_size")), keep_crops=False)
    precision = setting("gpen_precision")
    if precision == "fp16" and _device().type == "cpu":
        precision = "fp32"  # the host may put face restorers on the CPU (--use-cpu)
    return model or setting("gpen_model"), options, precision


def restore_array(image, **overrides):
    """Restore an RGB(A) uint8 array; on any failure the array comes back as it was."""
    model, options, precision = current_settings(**overrides)
    restored, _ = SERVICE.restore_safely(image, model, options, precision)
    return restored


class GPENFaceRestoration(face_restoration.FaceRestoration):
    """Chosen in Settings > Face restoration, runs after txt2img and img2img."""

    def name(self):
        return NAME

    def restore(self, np_image):
        return restore_array(np_image)


class GPENPostprocessing(scripts_postprocessing.ScriptPostprocessing):
    """The Extras tab's GPEN section."""
    name = NAME
    order = 3500  # after Upscale (1000), GFPGAN (2000) and CodeFormer (3000)

    def ui(self):
        with ui_components.InputAccordion(False, label=NAME) as enable:
            with gr.Row():
                visibility = gr.Slider(minimum=0.0, maximum=1.0, step=0.001, value=1.0,
                                       label="GPEN visibility", elem_id="extras_gpen_visibility")
                weight = gr.Slider(minimum=0.0, maximum=1.0, step=0.001, value=setting("gpen_weight"),
                                   label="GPEN weight", elem_id="extras_gpen_weight")
                model = gr.Dropdown(choices=model_choices(), value=setting("gpen_model"),
                                    label="GPEN model", elem_id="extras_gpen_model")
        return {"enable": enable, "visibility": visibility, "weight": weight, "model": model}

    def process(self, pp, enable=None, visibility=None, weight=None, model=None):
        if enable is None:  # the extras API passes None for extension scripts: use Settings
            enable = setting("gpen_extras_enabled")
        visibility = setting("gpen_visibility") if visibility is None else visibility
        if not enable or visibility == 0:
            return
        model = model or setting("gpen_model")
        weight = setting("gpen_weight") if weight is None else weight
        keep_mode = pp.image.mode in ("RGB", "RGBA")
        pixels = np.array(pp.image if keep_mode else pp.image.convert("RGB"))
        pp.image = Image.fromarray(restore_array(pixels, model=model, weight=weight,
                                                 visibility=visibility))
        pp.info["GPEN visibility"] = round(visibility, 3)
        pp.info["GPEN weight"] = round(weight, 3)
        pp.info["GPEN model"] = model


def on_ui_settings():
    for key, (default, label, component, arguments) in SETTINGS.items():
        option = shared.OptionInfo(default, label, component, arguments, section=SECTION)
        option.category_id = CATEGORY
        shared.opts.add_option(key, option)


def on_app_started(demo, app):
    from modules.call_queue import queue_lock  # GPU work waits for generation to finish
    app.include_router(create_router(SERVICE, current_settings, queue_lock))


def install():
    """Called when the WebUI imports the extension's scripts (again on a UI reload)."""
    shared.face_restorers[:] = [r for r in shared.face_restorers if r.name() != NAME]
    shared.face_restorers.append(GPENFaceRestoration())
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_app_started(on_app_started)
