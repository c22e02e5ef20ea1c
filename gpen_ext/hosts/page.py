"""`python -m gpen_ext app`: a page of its own, for people outside Stable Diffusion. Drop photos
(or a zip of them) or a clip, see the faces numbered, choose some by number or by clicking
them, restore, compare before and after, download. Its controls are derived from the option
descriptions (options.py) as every host's are; the work is page_session.py's, done by the
command line's job engine. Needs gradio 6 (requirements-app.txt), never a host's own."""

import logging
import socket
import threading
import time

import gradio as gr

from ..files import read_image
from ..jobs import UsageError
from ..options import FACE_INDICES, MAX_MEGAPIXELS, MODEL, PRECISION, RESTORE_OPTIONS, Settings
from ..registry import list_models, shown_name, unmarked
from ..uploads import MOST_UPLOAD_BYTES
from . import controls
from .page_session import PageSession, viewable

if int(gr.__version__.split(".")[0]) < 6:
    raise ImportError(f"gradio {gr.__version__} is installed here")

log = logging.getLogger("gpen_ext")

OPTIONS = (MODEL, *RESTORE_OPTIONS, PRECISION)  # every one a control, in this order
DETECTION = ("detection_model", "detection_threshold")  # a change finds the faces again
POLL_SECONDS = 0.25


def folded(option):
    """Shown under "Advanced", closed: the options rarely changed."""
    return option.advanced or option is PRECISION


def option_controls(models_dir):
    """A control for every option, its label and help from its description, the advanced ones
    folded away; returned in OPTIONS' order."""
    models = [shown_name(item.name, item.installed) for item in list_models(models_dir)]
    made = {option.name: _control(option, models) for option in OPTIONS if not folded(option)}
    with gr.Accordion("Advanced", open=False, elem_id="gpen-advanced"):
        made.update({option.name: _control(option, models) for option in OPTIONS
                     if folded(option)})
    return [made[option.name] for option in OPTIONS]


def _control(option, models):
    kind, arguments = controls.control(gr, option, models, label=option.label.capitalize(),
                                       info=option.help, elem_id=f"gpen-{option.name}")
    value = next(name for name in models if unmarked(name) == option.default) \
        if option is MODEL else controls.stored(option, option.default)
    return kind(value=value, interactive=True, **arguments)


def settings_of(values):
    """The Settings the controls' `values` (in OPTIONS' order) describe; ValueError names
    an option out of its range."""
    return Settings().overlay(**{option.name: controls.parsed(option, value)
                                 for option, value in zip(OPTIONS, values)})


def failed_words(error):
    """An error as the page tells it: the error's own words, never a traceback."""
    if isinstance(error, (ValueError, OSError, UsageError)):
        return f"⚠️ {error}"
    log.error("GPEN page: unexpected failure", exc_info=error)
    return f"⚠️ something went wrong ({type(error).__name__}: {error}); the log has the details"


def run_in_thread(work, tab, progress):
    """Run `work(report)` in a thread: yields ("running", its latest words) while it runs,
    then ("done", its result) or ("failed", the words of its failure). A page closed half
    way cancels it."""
    latest = {"words": "starting", "fraction": 0.0}
    outcome = []

    def report(fraction, words):
        latest.update(words=words, fraction=min(max(fraction, 0.0), 1.0))

    def target():
        try:
            outcome.append(("done", work(report)))
        except Exception as error:  # told on the page; the server goes on
            outcome.append(("failed", failed_words(error)))
    thread = threading.Thread(target=target, daemon=True, name="gpen-page-work")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            progress(latest["fraction"], desc=latest["words"])
            yield "running", f"Working: {latest['words']}"
    finally:
        if thread.is_alive():  # the browser went away: stop at the next face or frame
            tab.cancel.set()
    yield outcome[0]


def take_uploads(part, open_tabs):
    def take(tab, files, request: gr.Request):
        """The tab's photos or clip replaced by an upload: (tab, the names, words)."""
        if tab is None:
            tab = open_tabs[request.session_hash] = PageSession()
        files = [files] if isinstance(files, str) else files or []
        try:
            taken = tab.take([(path, _name(path)) for path in files], part)
        except Exception as error:  # a bad upload is told; the page goes on without it
            tab.take([], part)
            return tab, gr.update(choices=[], value=None), failed_words(error)
        names = [path.name for path in taken]
        words = f"{len(names)} {'photo(s)' if part == 'photos' else 'clip'} ready" \
            if names else ""
        return tab, gr.update(choices=names, value=names[0] if names else None), \
            _with_refused(tab, words)
    return take


def _with_refused(tab, words):
    """`words` after why each photo of the last upload left out was."""
    return "\n\n".join([f"⚠️ {reason}; left out" for reason in tab.refused] +
                       ([words] if words else []))


def _name(path):
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


def _input_named(tab, name, part="photos"):
    return next((path for path in (tab.files[part] if tab else []) if path.name == name), None)


def face_finder(work):
    def find_faces(tab, name, *values):
        """(the shown photo with its faces numbered, their boxes, words)."""
        path = _input_named(tab, name)
        if path is None:
            return None, [], gr.update()
        try:
            shown, boxes = work.numbered(path, settings_of(values))
        except Exception as error:  # told; the page goes on
            return None, [], failed_words(error)
        words = f"{len(boxes)} face(s) found in {name}, numbered from 0 left to right: " \
            "click faces to choose them" if boxes else f"no faces found in {name}"
        return shown, boxes, _with_refused(tab, words)
    return find_faces


def choose_face(boxes, numbers, click: gr.SelectData):
    """The face numbers with the clicked face's number added, or taken away if it was
    there; of boxes under the click, the smallest counts."""
    x, y = click.index[:2]
    hits = sorted((abs((x2 - x1) * (y2 - y1)), number) for number, (x1, y1, x2, y2)
                  in enumerate(boxes) if x1 <= x <= x2 and y1 <= y <= y2)
    if not hits:
        return numbers
    number = hits[0][1]
    try:
        chosen = list(FACE_INDICES.from_text(numbers))
    except ValueError:
        chosen = []
    chosen = [item for item in chosen if item != number] if number in chosen else \
        sorted(chosen + [number])
    return FACE_INDICES.to_text(chosen)


def worked(tab, values, progress, part, work, finished):
    """A button's work on the tab's `part` with the controls' `values`, told as it goes:
    yields (words, then the outputs `finished(result)` gives, or None where the work could
    not start or failed)."""
    try:
        settings = settings_of(values)
    except ValueError as error:
        yield failed_words(error), None, None
        return
    if tab is None or not tab.files[part]:
        yield f"⚠️ drop {'photos' if part == 'photos' else 'a clip'} first", None, None
        return
    tab.cancel.clear()
    for state, value in run_in_thread(lambda report: work(tab, settings, report), tab,
                                      progress):
        if state == "running":
            yield value, gr.update(), gr.update()
        elif state == "failed":
            yield value, None, None
        else:
            yield finished(value)


def photo_restorer(work):
    def restore_photos(tab, name, *values, progress=gr.Progress()):
        """Every photo of the tab restored: yields (words, before/after, downloads)."""
        def finished(lines):
            stopped = "**Cancelled**: the faces restored so far are kept.\n" \
                if tab.cancel.is_set() else ""
            return stopped + "\n".join(f"- {line}" for line in lines), \
                before_after(tab, name), downloads(tab, name)
        yield from worked(tab, values, progress, "photos", work.restore_photos, finished)
    return restore_photos


def before_after(tab, name):
    """The shown photo before and after, 8-bit for the screen, or None if not restored."""
    source = _input_named(tab, name)
    if source is None or source not in tab.results:
        return None
    return tuple(viewable(read_image(path, MAX_MEGAPIXELS.maximum).pixels)
                 for path in (source, tab.results[source]))


def downloads(tab, name):
    """The shown photo's result first, then all results in one zip where there are
    several."""
    source = _input_named(tab, name)
    results = list(tab.results.values())
    first = [tab.results[source]] if source in tab.results else []
    return [str(path) for path in first + ([tab.archive()] if len(results) > 1 else [])] or None


def clip_restorer(work):
    def restore_clip(tab, *values, progress=gr.Progress()):
        """The tab's clip restored: yields (words, the clip to play, the file to download)."""
        def finished(outcome):
            played, words = outcome
            return words, played and str(played), played and str(played)
        yield from worked(tab, values, progress, "clip",
                          lambda tab, settings, report: work.restore_clip(
                              tab, tab.files["clip"][0], settings, report), finished)
    return restore_clip


def _closer(open_tabs):
    def close_tab(request: gr.Request):
        """A closed tab's files removed; its work under way stops at the next face or frame."""
        tab = open_tabs.pop(request.session_hash, None)
        if tab is not None:
            tab.cancel.set()
            tab.close()
    return close_tab


def cancel(tab):
    if tab is not None:
        tab.cancel.set()
    return "Cancelling: the work stops at the next face or frame…"


def photo_tab(work, session, options, open_tabs):
    uploads = gr.File(label="Photos, or a zip of photos", file_count="multiple",
                      file_types=list(PageSession.PARTS["photos"]), elem_id="gpen-photos")
    shown = gr.Dropdown(label="Photo shown", choices=[], elem_id="gpen-shown")
    faces = gr.Image(label="Faces found: click a face to choose it", interactive=False,
                     elem_id="gpen-faces")
    boxes = gr.State([])
    with gr.Row():
        restore = gr.Button("Restore", variant="primary", elem_id="gpen-restore")
        stop = gr.Button("Cancel", elem_id="gpen-cancel")
    words = gr.Markdown(elem_id="gpen-status")
    compare = gr.ImageSlider(label="Before | after: drag the line", elem_id="gpen-compare",
                             format="png", max_height=700)
    results = gr.File(label="Download", file_count="multiple", interactive=False,
                      elem_id="gpen-downloads")
    find = dict(fn=face_finder(work), inputs=[session, shown, *options],
                outputs=[faces, boxes, words])
    uploads.change(take_uploads("photos", open_tabs), [session, uploads],
                   [session, shown, words]).then(**find)
    shown.input(**find)
    for option in OPTIONS:
        if option.name in DETECTION:
            options[OPTIONS.index(option)].input(**find)
    numbers = options[OPTIONS.index(FACE_INDICES)]
    faces.select(choose_face, [boxes, numbers], numbers)
    restore.click(photo_restorer(work), [session, shown, *options], [words, compare, results])
    stop.click(cancel, [session], [words], queue=False)


def clip_tab(work, session, options, open_tabs):
    upload = gr.File(label="A clip", file_types=list(PageSession.PARTS["clip"]),
                     elem_id="gpen-clip")
    with gr.Row():
        restore = gr.Button("Restore the clip", variant="primary", elem_id="gpen-clip-restore")
        stop = gr.Button("Cancel", elem_id="gpen-clip-cancel")
    words = gr.Markdown(elem_id="gpen-clip-status")
    played = gr.Video(label="Restored clip", interactive=False, elem_id="gpen-played",
                      height=480)
    result = gr.File(label="Download", interactive=False, elem_id="gpen-clip-download")
    listed = gr.Dropdown(visible=False)
    upload.change(take_uploads("clip", open_tabs), [session, upload], [session, listed, words])
    restore.click(clip_restorer(work), [session, *options], [words, played, result])
    stop.click(cancel, [session], [words], queue=False)


def build_page(work):
    """The page: the options on the left, photos and a clip in tabs on the right; each
    browser tab with its own files (a PageSession, removed when the tab closes)."""
    with gr.Blocks(title="GPEN face restoration", delete_cache=(600, 3600)) as page:
        gr.Markdown("## GPEN face restoration\nDrop photos or a clip, choose faces, restore, "
                    "compare before and after, download. Nothing leaves this computer.")
        # a tab's files go when it closes (gradio keeps its state an hour more: a backstop)
        open_tabs = {}
        session = gr.State(None, delete_callback=lambda tab: tab is not None and tab.close())
        page.unload(_closer(open_tabs))
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                options = option_controls(work.models_dir)
            with gr.Column(scale=2):
                with gr.Tab("Photos", elem_id="gpen-photos-tab"):
                    photo_tab(work, session, options, open_tabs)
                with gr.Tab("Clip", elem_id="gpen-clip-tab"):
                    clip_tab(work, session, options, open_tabs)
    return page


def free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(work, host="127.0.0.1", port=None, auth=None):
    """Serve the page until interrupted; its address printed."""
    port = port or free_port(host)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests
    page = build_page(work)
    page.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, auth=auth, max_file_size=MOST_UPLOAD_BYTES,
        footer_links=[], ssr_mode=False, quiet=True, prevent_thread_lock=True,
        show_error=False)
    where = f"http://{host}:{port}" if host != "0.0.0.0" else \
        f"http://127.0.0.1:{port}  (and port {port} of every address of this computer)"
    print(f"GPEN page: {where}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        page.close()
