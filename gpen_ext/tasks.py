"""One file of a job, restored: the restorer a job needs, an image task and a clip task, how a
failure is told, the report at the end, and the bars on the terminal. Used alike by a job run
here (engine.py) and by the workers of a Ray run (ray_jobs.py).
"""

import itertools
import logging
import sys
import time
from collections import Counter

from .checkpoints import CheckpointError
from .download import DownloadError
from .face_models import FaceModelError
from .files import AnimationError, ImageFile, ImageFileError, encode_image, read_image, write_file
from .images import ImageError, side_by_side
from .jobs import (ANIMATION_SUFFIXES, ClipLandmarks, Terminated, UsageError, faces_given,
                   usage_errors)
from .restorers import load_restorer
from .results import release_counts
from .sheets import face_strip
from .video import ClipError, open_sink, open_source, restore_clip

log = logging.getLogger("gpen_ext")

# what a file may fail with and be told in a line; anything else is "unexpected"
EXPECTED_FAILURES = (ImageFileError, ImageError, DownloadError, CheckpointError, FaceModelError,
                     ValueError)


def set_up():
    """A block that finds, downloads or loads what a job needs: its failures (a download, a
    checkpoint, facexlib, a bad value) are the user's to fix, so they are UsageErrors."""
    return usage_errors(DownloadError, CheckpointError, FaceModelError, ValueError)


def open_restorer(job, landmarks, download=None):
    """The restorer `job` needs, with the face models it will use loaded now (none where the
    landmarks file gives no face at all), so that a missing package or file is told once,
    before any face goes through the network; a set-up problem is a UsageError."""
    with set_up():
        restorer = load_restorer(job.model, job.models_dir, job.device, job.precision,
                                 download=not job.no_download if download is None else download)
        if not job.aligned and (landmarks is None or faces_given(landmarks)):
            restorer.prepare(job.options, detecting=landmarks is None)
    if job.size and restorer.size != job.size:
        raise UsageError(f"--size {job.size} does not match the checkpoint ({restorer.size})")
    return restorer


def restore_image_file(restorer, task, job, landmarks, progress=None):
    """Restore one image file into its target (and what --comparison and --save-faces ask
    for); returns the RestoreResult."""
    picture = read_image(task.source, job.max_megapixels)
    written, result = image_outputs(restorer, picture, task, job, landmarks, progress)
    for path, data in written:
        write_file(path, data)
    return result


def image_outputs(restorer, picture, task, job, landmarks, progress=None):
    """The files one image's restoration writes, as (path, bytes): the result in the target's
    type with the input's metadata, then what --comparison and --save-faces ask for; and the
    RestoreResult."""
    options, target = job.restore_options, task.target
    # a file's float samples are what they are: kept as such away from the faces
    if job.aligned:
        result = restorer.restore_aligned(picture.pixels, options, any_float_range=True)
    else:
        result = restorer.restore(picture.pixels, options, landmarks, any_float_range=True,
                                  progress=progress)
        if not result.faces:
            log.warning("%s: %s", task.source, result.message)
    written = [(target, encode_image(ImageFile(result.image, picture.text, picture.exif),
                                     target.suffix))]
    if job.comparison:
        written.append((target.with_name(f"{target.stem}_comparison{target.suffix}"),
                        encode_image(ImageFile(side_by_side([picture.pixels, result.image])),
                                     target.suffix)))
    if job.save_faces:
        written += [(target.with_name(f"{target.stem}_face{face.number:02d}.png"),  # 0: leftmost
                     encode_image(ImageFile(face_strip(face)), ".png")) for face in result.faces]
    return written, result


def restore_clip_file(restorer, task, job, landmarks, progress):
    """Restore one clip into its target; returns the faces restored. A clip that cannot be
    read to its end is written as far as it goes and reported as failed."""
    source = open_source(task.source, task.kind, job.max_megapixels, job.fps)
    try:
        sink = open_sink(task.target, source, job.video_codec, job.video_quality,
                         job.pixel_format)
    except BaseException:
        source.close()
        raise
    supplied = None if landmarks is None else landmarks if \
        isinstance(landmarks, ClipLandmarks) else itertools.repeat(landmarks)
    bar = progress.frames(task.source.name, source.info.frames)
    try:
        frames, faces = restore_clip(restorer, source, sink, job.restore_options, supplied, bar)
    except (KeyboardInterrupt, Terminated) as error:
        where = f"; the frames so far are in {error.partial}" if error.partial else ""
        print(f"{task.source}: stopped at frame {sink.written}{where}", file=sys.stderr)
        raise
    if source.stopped:
        raise ClipError(f"{source.stopped}; the {frames} frame(s) before it were restored "
                        f"into {task.target}")
    return faces


def failure(source, error):
    """How a file's failure is told: the error's own words, a hint where one helps, and the
    kind of error where it was not expected."""
    if isinstance(error, AnimationError):
        hint = " (or restore it as a clip: --as-video)" \
            if str(source).lower().endswith(ANIMATION_SUFFIXES) else ""
        return f"{error}{hint}"
    if isinstance(error, EXPECTED_FAILURES):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


class Report:
    """Files restored and failed, and the line that sums a run up."""

    def __init__(self, where=""):
        self.where, self.started = where, time.monotonic()
        self.restored = 0
        self.faces = Counter()  # by the release that restored them (results.face_tally)
        self.failed = []  # (source, reason)

    def done(self, faces):
        self.restored += 1
        self.faces.update(faces)

    def fail(self, source, reason):
        self.failed.append((source, reason))
        log.error("%s: %s", source, reason)

    def summary(self, substitutes=None):
        """Printed at the end: files and faces restored (under auto, by release, and the
        releases that could not be had: `substitutes`), time, and each failure."""
        releases = Counter({size: count for size, count in self.faces.items() if size})
        line = f"{self.restored} file(s) restored{self.where}, {self.faces.total()} face(s)" + \
            (f" ({release_counts(releases)})" if releases else "") + \
            "".join(f"; GPEN-BFR-{size} could not be had, its faces went through "
                    f"GPEN-BFR-{instead}" for size, instead in (substitutes or {}).items()) + \
            f", in {time.monotonic() - self.started:.1f} s"
        if self.failed:
            line += f"; {len(self.failed)} failed:" + "".join(
                f"\n  {source}: {reason}" for source, reason in self.failed)
        return line


class Progress:
    """Bars on the terminal: files done (where there are several) and the faces or frames of
    the file at hand, so that a single large photo or clip shows how far it is too."""

    def __init__(self, files):
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm
        self.files = tqdm(total=files, unit="file", desc="Restoring") \
            if tqdm is not None and files > 1 else None
        self.bar = None

    def faces(self, name):
        """A progress(FaceProgress) callback for one file's faces: its bar moves face by face
        through each stage, the stage at its end."""
        def report(progress):
            bar = self._bar(name, "face", progress.chosen)
            if bar is not None:
                bar.total = progress.chosen
                bar.set_postfix_str(progress.stage, refresh=False)
                bar.update(round(progress.work, 1) - bar.n)
        return report

    def frames(self, name, total):
        """An on_frame(done, faces) callback for a clip's frames, with frames per second and
        time left."""
        def report(done, faces):
            bar = self._bar(name, "frame", total or None)
            if bar is not None:
                bar.update(done - bar.n)
        return report

    def _bar(self, name, unit, total):
        if self.tqdm is not None and self.bar is None:
            self.bar = self.tqdm(total=total, unit=unit, desc=name, leave=False,
                                 position=1 if self.files is not None else 0)
        return self.bar

    def file_done(self, failures=0):
        self._close_bar()
        if self.files is not None:
            if failures:
                self.files.set_postfix(failed=failures, refresh=False)
            self.files.update(1)

    def close(self):
        self._close_bar()
        if self.files is not None:
            self.files.close()

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
