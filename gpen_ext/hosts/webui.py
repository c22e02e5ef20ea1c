"""The AUTOMATIC1111 / Forge adapter: GPEN as a face restorer, an Extras script, settings and
HTTP routes. The only module of the project that imports the WebUI's `modules`.

Every setting and control is derived from the option descriptions in options.py."""

import contextlib
import html
import json
import logging
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from modules import (devices, face_restoration, paths, script_callbacks, scripts_postprocessing,
                     shared, ui_components)

from ..options import FACES_PER_IMAGE, HOST_OPTIONS, MAX_MEGAPIXELS, MODEL, Settings
from ..pipeline import RestorationInterrupted
from ..sheets import face_sheet, numbered_faces
from ..registry import list_models, shown_name
from . import controls
from .webui_settings import (EXTRAS_GROUPS, NAME, OPTIONS_BY_NAME, SETTING_OPTIONS,
                             infotext, label, setting_key)
from .api import create_router
from .service import HostEnvironment, RestorationService

log = logging.getLogger(__name__)

SECTION = ("gpen", "GPEN")
CATEGORY = "postprocessing"  # the Settings category that holds Face restoration
EXTRAS_ENABLED = "gpen_extras_enabled"
SHOW_NUMBERS, SHOW_FACES = "show_numbers", "show_faces"
DIAGNOSTICS = {
    SHOW_NUMBERS: ("Show face numbers", "Only find the faces, and return the photo with each "
                   "face's box and number (for face numbers); nothing is restored"),
    SHOW_FACES: ("Show each face", "Also return one sheet with every restored face before and "
                 "after and its paste mask, headed by its number"),
}


def models_dir():
    custom = getattr(shared.cmd_opts, "gpen_models_path", None)
    return Path(custom) if custom else Path(paths.models_path) / "GPEN"


def face_models_dir():
    return Path(paths.models_path) / "GFPGAN"  # where the WebUI keeps facexlib's weights


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


SERVICE = None  # the RestorationService, made by install()


def host_environment():
    """The WebUI's folders, device, memory and progress text, as the service asks for them."""
    return HostEnvironment(
        models_dir=models_dir, face_models_dir=face_models_dir, device=_device,
        unload_after_use=lambda: bool(getattr(shared.opts, "face_restoration_unload", False)),
        collect_garbage=devices.torch_gc, free_memory=_free_memory,
        faces_per_image=lambda: setting(FACES_PER_IMAGE),
        status=lambda text: setattr(shared.state, "textinfo", text))

def stored(option, value):
    """An option's value as a WebUI setting or control holds it (gradio 3 shows what it
    stores); the model marked where it would download."""
    return model_label(value) if option is MODEL else controls.stored(option, value)


parsed = controls.parsed


def model_label(name):
    """A model's name, marked where it is a release not yet in the models folder."""
    listing = next((item for item in list_models(models_dir()) if item.name == name), None)
    return shown_name(name, listing is None or listing.installed)


def model_choices():
    """The releases, marked where not yet here, then every other checkpoint in the folder."""
    return [shown_name(item.name, item.installed) for item in list_models(models_dir())]


def control(option, **arguments):
    """The gradio component class and its arguments for an option."""
    return controls.control(gr, option, model_choices(), **arguments)


def setting(option):
    return parsed(option, getattr(shared.opts, setting_key(option), stored(option, option.default)))


def current_settings(keep_crops=False, **overrides):
    """options.Settings from the WebUI's settings, with optional overrides as controls hold
    them (None: the setting); precision auto follows the host's full-precision flags."""
    settings = Settings().overlay(**{option.name: setting(option) for option in HOST_OPTIONS})
    settings = settings.overlay(keep_crops=keep_crops, **{
        name: parsed(OPTIONS_BY_NAME[name], value) for name, value in overrides.items()})
    return settings.overlay(precision="fp32") if settings.precision == "auto" and \
        host_wants_full_precision() else settings


def host_wants_full_precision():
    """Whether the WebUI was started for fp32 everywhere (--no-half, --precision full)."""
    options = shared.cmd_opts
    return bool(getattr(options, "no_half", False)) or \
        getattr(options, "precision", None) == "full"


def usable_settings(**overrides):
    """current_settings, or None (and a log entry) where a setting is not usable."""
    try:
        return current_settings(**overrides)
    except ValueError as error:
        log.error("GPEN: face restoration skipped, a setting is not usable: %s", error)
        return None


def restore_array(image, settings):
    """Restore an RGB(A) uint8 array with options.Settings: (image, result), where on any
    failure the image comes back as it was and the result is None; the WebUI's progress
    shows the faces, and its Interrupt stops them."""
    if settings is None:
        return image, None
    return SERVICE.restore_safely(image, settings, progress=HostProgress())


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
    hints.update({text: hint for text, hint in DIAGNOSTICS.values()})
    hints[NAME] = "Restore faces with GPEN (GAN Prior Embedded Network)"
    return f"<div data-gpen-hints=\"{html.escape(json.dumps(hints), quote=True)}\" hidden></div>"


class GPENPostprocessing(scripts_postprocessing.ScriptPostprocessing):
    """The Extras tab's GPEN section."""
    name = NAME
    order = 3500  # after Upscale (1000), GFPGAN (2000) and CodeFormer (3000)

    def ui(self):
        controls = {}
        with ui_components.InputAccordion(False, label=NAME) as enable:
            for title, rows in EXTRAS_GROUPS:
                with gr.Accordion(title, open=False) if title else gr.Group():
                    for row in rows:
                        with gr.Row():
                            for name in row:
                                controls[name] = self.control(OPTIONS_BY_NAME[name])
            with gr.Accordion("Check the faces", open=False):
                with gr.Row():
                    for name, (text, hint) in DIAGNOSTICS.items():
                        controls[name] = gr.Checkbox(False, label=text, info=hint,
                                                     elem_id=f"extras_gpen_{name}")
            gr.HTML(hints_html(), elem_id="gpen_hints")
        return {"enable": enable, **controls}

    @staticmethod
    def control(option):
        component, arguments = control(option, value=stored(option, setting(option)),
                                       label=label(option), elem_id=f"extras_gpen_{option.name}")
        if option.parsing_mask:  # the mask is chosen in Settings
            arguments["info"] = "with the paste mask set to \"parsing\" (Settings > GPEN)"
        return component(**arguments)

    def process(self, pp, enable=None, show_numbers=False, show_faces=False, **values):
        if enable is None:  # the extras API passes None for extension scripts: use Settings
            enable = bool(getattr(shared.opts, EXTRAS_ENABLED, False))
        settings = usable_settings(keep_crops=bool(show_faces), **values) if enable else None
        if settings is None or (settings.options.visibility == 0 and not show_numbers):
            return
        keep_mode = pp.image.mode in ("RGB", "RGBA")
        pixels = np.array(pp.image if keep_mode else pp.image.convert("RGB"))
        if show_numbers:  # the numbered photo first, the photo as it was after it
            numbered, found = face_numbers(pixels, settings)
            # on both: the page shows the info of the last image, the plain copy
            pp.info[f"{NAME} faces found"] = f"{found}, numbered from 0 left to right"
            pp.extra_images.append(pp.create_copy(pp.image, disable_processing=True))
            pp.image = Image.fromarray(numbered)
            return
        with extras_progress():
            restored, result = restore_array(pixels, settings)
        if result is None or not result.faces:
            return  # nothing restored: the image and the infotext stay as they were
        pp.image = Image.fromarray(restored)
        pp.info.update(infotext(settings, result))
        if show_faces:
            pp.extra_images.append(pp.create_copy(Image.fromarray(face_sheet(result.faces)),
                                                  nametags=["gpen-faces"],
                                                  disable_processing=True))


def face_numbers(pixels, settings):
    """(the photo with each face found boxed and numbered, the number of faces); the photo
    alone and 0 if that fails."""
    try:
        faces = SERVICE.detect(pixels, settings)
    except Exception as error:  # the host's own work must go on whatever happens here
        log.error("GPEN: faces could not be found: %s", error)
        return pixels, 0
    log.info("GPEN: %d face(s) found, numbered from 0 left to right", len(faces))
    return numbered_faces(pixels, [face.box for face in faces]), len(faces)


class HostProgress:
    """Each face through each stage in the WebUI's own progress state (its bar in tenths of
    a face), and its Interrupt and Skip honoured at every stage."""

    def __call__(self, progress):
        state = shared.state
        if state.interrupted or state.skipped or getattr(state, "stopping_generation", False):
            raise RestorationInterrupted()
        state.sampling_steps = max(10 * progress.chosen, 1)
        state.sampling_step = min(round(10 * progress.work), state.sampling_steps)
        state.textinfo = progress.text


@contextlib.contextmanager
def extras_progress():
    """Extras counts an image done as it starts (its bar reads 100% at once): while GPEN
    restores, the image counts as under way and its faces as the steps, from none (the bar
    must not read a previous image's steps while a model loads)."""
    state = shared.state
    state.job_no = max(state.job_no - 1, 0)
    state.sampling_step = 0
    try:
        yield
    finally:
        state.job_no += 1
        state.sampling_step = state.sampling_steps


def on_ui_settings():
    for option in SETTING_OPTIONS:
        component, arguments = control(option, info=option.help)
        if option is MODEL:  # the folder's checkpoints as they are when the page is built
            arguments = lambda: {"choices": model_choices(), "info": MODEL.help}  # noqa: E731
        info = shared.OptionInfo(stored(option, option.default), label(option), component,
                                 arguments, section=SECTION)
        info.category_id = CATEGORY
        shared.opts.add_option(setting_key(option), info)
    info = shared.OptionInfo(False, "Restore faces in Extras API calls that carry no GPEN "
                             "values", gr.Checkbox, {"info": (
                                 "The Extras API passes no values to extension scripts; when "
                                 "on, those calls restore faces with the settings above")},
                             section=SECTION)
    info.category_id = CATEGORY
    shared.opts.add_option(EXTRAS_ENABLED, info)
    pointer = shared.OptionHTML("GPEN, when chosen above, takes its model, weight and every "
                                "other option from its own page: Settings &gt; Postprocessing "
                                "&gt; GPEN.")
    pointer.section, pointer.category_id = ("face-restoration", "Face restoration"), CATEGORY
    shared.opts.add_option("gpen_face_restoration_pointer", pointer)


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


def show_info_in_console():
    """The WebUI sets up no logging unless started with --loglevel, so only warnings reach
    the console: GPEN's lines on what it does (faces to restore, batches, downloads) are
    shown there all the same. A logging set-up of the host's own is left as it is."""
    package = logging.getLogger("gpen_ext")
    if not logging.getLogger().handlers and not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO)


def install():
    """Called when the WebUI imports the extension's scripts (again on a UI reload, which
    lets the previous service and its models go)."""
    global SERVICE
    if SERVICE is not None:
        SERVICE.unload()
    SERVICE = RestorationService(host_environment())
    show_info_in_console()
    shared.face_restorers[:] = [r for r in shared.face_restorers if r.name() != NAME]
    shared.face_restorers.append(GPENFaceRestoration())
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_app_started(on_app_started)
