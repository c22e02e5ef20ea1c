"""The AUTOMATIC1111 / Forge adapter: GPEN as a face restorer, an Extras script, settings and
HTTP routes. The only module of the project that imports the WebUI's `modules`.

Every setting and control is derived from the option descriptions in options.py."""

import html
import json
import logging
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from modules import (devices, face_restoration, paths, script_callbacks, scripts_postprocessing,
                     shared, ui_components)

from ..options import (CHOICE, FACE_NUMBERS, FACES_PER_IMAGE, FLAG, HOST_OPTIONS, LIST_KINDS,
                       MAX_MEGAPIXELS, MODEL, NAMES, NUMBER, Settings)
from ..pipeline import face_strip
from ..registry import list_models
from .api import create_router
from .service import HostEnvironment, RestorationService

log = logging.getLogger(__name__)

NAME = "GPEN"
SECTION = ("gpen", "GPEN")
CATEGORY = "postprocessing"  # the Settings category that holds Face restoration
EXTRAS_ENABLED = "gpen_extras_enabled"
# The Extras section's controls, row by row; the rest comes from Settings.
EXTRAS_ROWS = (("visibility", "weight", "model"),
               ("face_selection", "face_indices", "min_face_size", "max_faces"),
               ("face_regions",))
SHOW_FACES = "show_faces"


def models_dir():
    custom = getattr(shared.cmd_opts, "gpen_models_path", None)
    return Path(custom) if custom else Path(paths.models_path) / "GPEN"


def face_models_dir():
    return Path(paths.models_path) / "GFPGAN"  # where the WebUI keeps facexlib's weights


def model_choices():
    """The four releases, then any other checkpoint found in the models folder."""
    return [listing.name for listing in list_models(models_dir())]


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
    collect_garbage=devices.torch_gc, free_memory=_free_memory,
    faces_per_image=lambda: setting(FACES_PER_IMAGE)))

SETTING_OPTIONS = (*HOST_OPTIONS, MAX_MEGAPIXELS, FACES_PER_IMAGE)
OPTIONS_BY_NAME = {option.name: option for option in SETTING_OPTIONS}


def setting_key(option):
    return f"gpen_{option.name}"


def label(option):
    return f"{NAME} {option.label}"


def stored(option, value):
    """An option's value as a WebUI setting or control holds it (face numbers as text, names
    as a list)."""
    if option.kind == NAMES:
        return list(value)
    return option.to_text(value) if option.kind == FACE_NUMBERS else value


def parsed(option, value):
    """A setting's or control's value as the option takes it (None stays None)."""
    if value is None:
        return None
    if option.kind == NAMES:
        return tuple(value)
    return option.from_text(value) if option.kind == FACE_NUMBERS else value


def control(option, **arguments):
    """The gradio component class and its arguments for an option."""
    if option is MODEL:
        return gr.Dropdown, {"choices": model_choices(), **arguments}
    if option.kind == FLAG:
        return gr.Checkbox, arguments
    if option.kind == NAMES:
        return gr.CheckboxGroup, {"choices": list(option.choices), **arguments}
    if option.kind == FACE_NUMBERS:
        return gr.Textbox, {"placeholder": "e.g. 0, 2", **arguments}
    if option.kind == CHOICE:
        return gr.Radio, {"choices": list(option.choices), **arguments}
    return gr.Slider, {"minimum": option.minimum, "maximum": option.maximum,
                       "step": option.step, **arguments}


def setting(option):
    return parsed(option, getattr(shared.opts, setting_key(option), stored(option, option.default)))


def current_settings(keep_crops=False, **overrides):
    """options.Settings from the WebUI's settings, with optional overrides as controls hold
    them (None: the setting)."""
    settings = Settings().overlay(**{option.name: setting(option) for option in HOST_OPTIONS})
    return settings.overlay(keep_crops=keep_crops, **{
        name: parsed(OPTIONS_BY_NAME[name], value) for name, value in overrides.items()})


def usable_settings(**overrides):
    """current_settings, or None (and a log entry) where a setting is not usable."""
    try:
        return current_settings(**overrides)
    except ValueError as error:
        log.error("GPEN: face restoration skipped, a setting is not usable: %s", error)
        return None


def restore_array(image, settings):
    """Restore an RGB(A) uint8 array with options.Settings: (image, result), where on any
    failure the image comes back as it was and the result is None."""
    if settings is None:
        return image, None
    return SERVICE.restore_safely(image, settings)


class GPENFaceRestoration(face_restoration.FaceRestoration):
    """Chosen in Settings > Face restoration, runs after txt2img and img2img."""

    def name(self):
        return NAME

    def restore(self, np_image):
        return restore_array(np_image, usable_settings())[0]


def hints_html():
    """Every option's help, keyed by its label, for javascript/gpen_hints.js to show as the
    controls' hover titles."""
    hints = {label(option): option.help for option in SETTING_OPTIONS}
    hints[NAME] = "Restore faces with GPEN (GAN Prior Embedded Network)"
    return f"<div data-gpen-hints=\"{html.escape(json.dumps(hints), quote=True)}\" hidden></div>"


class GPENPostprocessing(scripts_postprocessing.ScriptPostprocessing):
    """The Extras tab's GPEN section."""
    name = NAME
    order = 3500  # after Upscale (1000), GFPGAN (2000) and CodeFormer (3000)

    def ui(self):
        controls = {}
        with ui_components.InputAccordion(False, label=NAME) as enable:
            for row in EXTRAS_ROWS:
                with gr.Row():
                    for option in (OPTIONS_BY_NAME[name] for name in row):
                        component, arguments = control(
                            option, value=stored(option, setting(option)), label=label(option),
                            elem_id=f"extras_gpen_{option.name}")
                        if option.parsing_mask:  # the mask is chosen in Settings
                            arguments["info"] = "with the parsing mask (Settings > GPEN)"
                        controls[option.name] = component(**arguments)
            controls[SHOW_FACES] = gr.Checkbox(
                False, label="GPEN: show each face before and after, with its paste mask",
                elem_id="extras_gpen_show_faces")
            gr.HTML(hints_html(), elem_id="gpen_hints")
        return {"enable": enable, **controls}

    def process(self, pp, enable=None, show_faces=False, **values):
        if enable is None:  # the extras API passes None for extension scripts: use Settings
            enable = bool(getattr(shared.opts, EXTRAS_ENABLED, False))
        settings = usable_settings(keep_crops=bool(show_faces), **values) if enable else None
        if settings is None or settings.options.visibility == 0:
            return
        keep_mode = pp.image.mode in ("RGB", "RGBA")
        pixels = np.array(pp.image if keep_mode else pp.image.convert("RGB"))
        restored, result = restore_array(pixels, settings)
        if result is None or not result.faces:
            return  # nothing restored: the image and the infotext stay as they were
        pp.image = Image.fromarray(restored)
        pp.info.update(infotext(settings))
        if show_faces:
            for face in result.faces:
                strip = Image.fromarray(face_strip(face))
                pp.extra_images.append(pp.create_copy(
                    strip, nametags=[f"gpen-face{face.number:02d}"], disable_processing=True))


def infotext(settings):
    """What GPEN did, for the image's infotext: visibility, weight and model, and every other
    option of the Extras section that is not at its default."""
    entries = {}
    for name in (name for row in EXTRAS_ROWS for name in row):
        option = OPTIONS_BY_NAME[name]
        value = settings.value(option)
        if name in EXTRAS_ROWS[0] or value != option.default:
            entries[label(option)] = round(value, 3) if option.kind == NUMBER else \
                option.to_text(value) if option.kind in LIST_KINDS else value
    return entries


def on_ui_settings():
    for option in SETTING_OPTIONS:
        component, arguments = control(option)
        if option is MODEL:  # the folder's checkpoints as they are when the page is built
            arguments = lambda: {"choices": model_choices()}  # noqa: E731
        info = shared.OptionInfo(stored(option, option.default), label(option), component,
                                 arguments, section=SECTION).info(option.help)
        info.category_id = CATEGORY
        shared.opts.add_option(setting_key(option), info)
    info = shared.OptionInfo(False, "GPEN in Extras API calls without GPEN arguments",
                             gr.Checkbox, None, section=SECTION).info(
        "The Extras API passes no GPEN settings; when on, those calls restore faces with the "
        "settings here")
    info.category_id = CATEGORY
    shared.opts.add_option(EXTRAS_ENABLED, info)


def on_app_started(demo, app):
    """GPEN's routes, served where the host serves its own API and guarded as those are."""
    host_routes = [route for route in app.routes
                   if getattr(route, "path", "").startswith("/sdapi/v1/")]
    if not host_routes:
        log.info("GPEN: the WebUI's API is off (start it with --api to use /gpen/v1)")
        return
    dependencies = host_routes[0].dependencies  # the host's authentication (--api-auth)
    if getattr(shared.cmd_opts, "api_auth", None) and not dependencies:
        log.error("GPEN: --api-auth is set but the WebUI's own authentication could not be "
                  "found; /gpen/v1 is not served")
        return
    from modules.call_queue import queue_lock  # GPU work waits for generation to finish
    app.include_router(create_router(SERVICE, current_settings, queue_lock, dependencies,
                                     max_megapixels=lambda: setting(MAX_MEGAPIXELS)))


def install():
    """Called when the WebUI imports the extension's scripts (again on a UI reload)."""
    shared.face_restorers[:] = [r for r in shared.face_restorers if r.name() != NAME]
    shared.face_restorers.append(GPENFaceRestoration())
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_app_started(on_app_started)
