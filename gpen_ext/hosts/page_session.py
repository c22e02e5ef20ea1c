"""The page of `python -m gpen_ext app`, without its gradio: what one browser tab has uploaded and
restored (a `PageSession`, in a temporary folder of its own), and the work behind its buttons
(a `PageWork`, one for the server), done as the command line does it: a job (jobs.py) planned
and each file restored by tasks.py, with the service's one cached restorer."""

import logging
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from ..files import IMAGE_SUFFIXES, ImageFileError, checked_header, read_image
from ..images import split_image, to_dtype
from ..jobs import RestoreJob, check_tasks, plan_tasks
from ..options import MAX_MEGAPIXELS, Settings
from ..progress import RestorationInterrupted
from ..registry import resolve_model
from ..sheets import numbered_faces
from ..tasks import failure, restore_clip_file, restore_image_file, set_up
from ..uploads import ZIP_SUFFIX, UploadError, take_in
from ..video import VIDEO_SUFFIXES
from .service import HostEnvironment, RestorationService

log = logging.getLogger("gpen_ext")

PLAYABLE_SUFFIXES = (".mp4", ".webm")  # what a browser plays: other clips are written as .mp4


class Cancelled(BaseException):
    """The page's Cancel during a clip: not an Exception, so that the frames so far are kept
    as a partial file, as on Ctrl-C (video.restore_clip)."""


class PageSession:
    """One browser tab's files: its uploads and results, photos and clip apart, and its
    Cancel."""
    PARTS = {"photos": (*IMAGE_SUFFIXES, ZIP_SUFFIX), "clip": VIDEO_SUFFIXES}  # what each takes

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="gpen-page-"))
        self.files = {part: [] for part in self.PARTS}  # uploaded inputs
        self.results = {}  # an input -> its restored file
        self.refused = []  # why each upload of the last that was left out was
        self.cancel = threading.Event()

    def take(self, uploads, part):
        """Replace the tab's photos or clip (`part`) by `uploads` ((path, name) pairs);
        returns the files taken; `refused` says why each upload left out was (too large,
        unreadable, a zip refused)."""
        for folder in (self.inputs(part), self.outputs(part)):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.results = {source: target for source, target in self.results.items()
                        if source not in self.files[part]}
        self.files[part], self.refused = [], []
        for upload in uploads:  # each upload taken or left out, with the reason, on its own
            try:
                self.files[part] += take_in([upload], self.inputs(part), self.PARTS[part])
            except UploadError as error:
                self.refused.append(str(error))
        if part == "photos":
            self.files[part], unreadable = _readable(self.files[part])
            self.refused += unreadable
        return self.files[part]

    def inputs(self, part):
        return self.folder / "inputs" / part

    def outputs(self, part):
        return self.folder / "outputs" / part

    def archive(self):
        """Every photo restored in the tab, in one zip beside them."""
        path = self.folder / "gpen-restored.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for source in self.files["photos"]:
                if source in self.results:
                    archive.write(self.results[source], self.results[source].name)
        return path

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def _readable(photos):
    """(the photos whose headers read as one picture within the size limit, the words for
    each of the others, which are removed): told at upload, not when restored."""
    kept, refused = [], []
    for path in photos:
        try:
            checked_header(path.read_bytes(), path.name, MAX_MEGAPIXELS.default)
            kept.append(path)
        except ImageFileError as error:
            refused.append(str(error))
            path.unlink()
    return kept, refused


class TabProgress:
    """tasks.Progress as a page wants it: each face and frame told to `report(fraction,
    words)`, and the tab's Cancel honoured there."""

    def __init__(self, session, report, files):
        self.session, self.report, self.files, self.done = session, report, files, 0

    def faces(self, name):
        def report(progress):
            if self.session.cancel.is_set():
                raise RestorationInterrupted()
            share = progress.work / progress.chosen if progress.chosen else 0.0
            self.report((self.done + share) / self.files, f"{name}: {progress.text}")
        return report

    def frames(self, name, total):
        def report(done, faces):
            if self.session.cancel.is_set():
                raise Cancelled()
            of = f" of {total}" if total else ""
            self.report(done / total if total else 0.0,
                        f"{name}: frame {done}{of}, {faces} face(s) in it")
        return report


class PageWork:
    """The work of every tab, one restoration at a time, on one cached restorer (the
    service's) and its face models."""

    def __init__(self, models_dir, device):
        self.models_dir = Path(models_dir)
        self.service = RestorationService(HostEnvironment(
            models_dir=lambda: self.models_dir, face_models_dir=lambda: self.models_dir,
            device=lambda: device))
        self.lock = threading.Lock()

    def warm_up(self, settings=Settings()):
        """Load in the background what `settings` need and is already in the models folder
        (nothing is downloaded here), so that the first photo does not wait for it."""
        options = settings.options

        def load():
            try:
                with self.lock:
                    self.service.face_models().load_installed(options)
                    if resolve_model(settings.model, self.models_dir).path.is_file():
                        self.service.restorer(settings.model, settings.precision)
            except Exception as error:  # told when a photo needs it; here only noted
                log.warning("GPEN page: could not load ahead: %s", error)
        threading.Thread(target=load, daemon=True, name="gpen-page-warm-up").start()

    def numbered(self, path, settings):
        """(the photo at `path` as a page shows it, each face found boxed and numbered; the
        boxes, in number order)."""
        picture = read_image(path, MAX_MEGAPIXELS.default)
        with self.lock, set_up():
            faces = self.service.detect(picture.pixels, settings)
        boxes = [tuple(float(value) for value in face.box) for face in faces]
        return numbered_faces(viewable(picture.pixels), boxes), boxes

    def restore_photos(self, session, settings, report):
        """Each photo of `session` restored into its outputs; (lines saying how each went)."""
        job = self._job(session.files["photos"], session.outputs("photos"), settings)
        tasks = plan_tasks(job)
        check_tasks(tasks, None, job)
        progress, lines = TabProgress(session, report, len(tasks)), []
        for task in tasks:
            try:
                with self.lock:
                    restorer = self._restorer(settings)
                    result = restore_image_file(restorer, task, job, None,
                                                progress.faces(task.source.name))
                session.results[task.source] = task.target
                lines.append(f"{task.source.name}: {result.message}")
            except Exception as error:  # the other photos go on; the page says what broke
                lines.append(f"{task.source.name}: {failure(task.source, error)}")
            progress.done += 1
            if session.cancel.is_set():
                break
        return lines

    def restore_clip(self, session, clip, settings, report):
        """One clip of `session` restored into a clip a browser plays; (its path, or the
        partial file's where Cancel stopped it, or None; the line saying how it went)."""
        playable = clip.suffix.lower() in PLAYABLE_SUFFIXES
        target = session.outputs("clip") / (clip.name if playable else f"{clip.stem}.mp4")
        job = self._job([clip], target, settings)
        tasks = plan_tasks(job)
        check_tasks(tasks, None, job)
        with self.lock:
            restorer = self._restorer(settings)
            try:
                faces = restore_clip_file(restorer, tasks[0], job, None,
                                          TabProgress(session, report, 1))
            except Cancelled as stop:
                return stop.partial, "cancelled: the frames restored so far are kept"
        session.results[clip] = tasks[0].target
        return tasks[0].target, f"{clip.name}: {sum(faces.values())} face(s) restored"

    def _restorer(self, settings):
        with set_up():
            return self.service.restorer(settings.model, settings.precision)

    def _job(self, inputs, output, settings):
        return RestoreJob(tuple(map(str, inputs)), output, settings.options,
                          model=settings.model, models_dir=self.models_dir,
                          precision=settings.precision, overwrite=True)


def viewable(pixels):
    """An image file's pixels (any bit depth, grey, alpha) as 8-bit RGB for the screen."""
    rgb, layout = split_image(pixels, any_float_range=True)
    return to_dtype(np.clip(rgb, 0, layout.full_scale) * (255.0 / layout.full_scale),
                    np.uint8, 255.0)
