"""A restoration of files, described and planned: what the command line and `restore_files`
ask for, checked before any work, and one task per input with its output named.

`RestoreJob` is the typed description, built by the command line from its arguments (cli.py)
and by `restore_files` from Python (engine.py), its values checked by the options'
descriptions (options.py); `plan` expands the inputs (files, folders, globs, URIs on Ray) and
names each output; `read_landmarks` reads a landmarks file. Nothing here restores anything:
engine.py runs a job here, ray_jobs.py on a Ray cluster, tasks.py does one file of it.
"""

import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from PIL import Image

from .clips import ANIMATION_SUFFIXES, ClipError
from .files import IMAGE_SUFFIXES
from .landmarks import check_landmarks
from .options import (DEVICES, FACES_PER_IMAGE, MAX_MEGAPIXELS, MODEL, PIXEL_FORMAT,
                      PRECISION, VIDEO_CODEC, VIDEO_QUALITY, RestoreOptions, restore_option_list)
from .video import VIDEO_SUFFIXES, WRITTEN_SUFFIXES, open_source

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2  # the command line's, and restore_files'
IMAGE, VIDEO, ANIMATION, FRAMES = "image", "video", "animation", "frames"
CLIPS = (VIDEO, ANIMATION, FRAMES)
INPUT_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES + ANIMATION_SUFFIXES  # found in folders
# What each kind of input may be written as, when the output names one file.
WRITABLE = {IMAGE: IMAGE_SUFFIXES, VIDEO: WRITTEN_SUFFIXES,
            ANIMATION: ANIMATION_SUFFIXES + WRITTEN_SUFFIXES, FRAMES: WRITTEN_SUFFIXES}


log = logging.getLogger("gpen_ext")


class Terminated(BaseException):
    """SIGTERM, raised where the program is (the command line's handler), so that
    half-written files are cleaned up as on Ctrl-C."""


class UsageError(Exception):
    """Something about the job or the set-up, reported in one line (the command line's exit
    code 2), before any file is restored."""


@contextlib.contextmanager
def usage_errors(*kinds):
    """A block whose failures of `kinds` (default: ValueError, a value out of its range) are
    the user's to fix: each raised again as a UsageError in its own words. The one place
    where failures become usage errors (tasks.set_up names those of loading models)."""
    try:
        yield
    except kinds or (ValueError,) as error:
        raise UsageError(str(error)) from None


@dataclass(frozen=True)
class Task:
    """One input of a job and where it goes."""
    source: Path    # a file, a folder of frames, or a URI (on Ray)
    target: Path    # a file, or a folder of frames
    kind: str       # IMAGE or one of CLIPS


VIDEO_FLAGS, RAY_FLAGS = "video", "ray"  # the sections of the command line's help


@dataclass(frozen=True)
class Flag:
    """A job's setting as the command line takes it, described once: the command line's flag
    and the job's check both come from here. A setting an Option describes (options.py)
    takes its help, choices and range from it; the others say here what they are: a switch
    (no `value`), or a value of type `value`, whole from 1 to `most` or above 0 where
    `positive`, one of `choices`."""
    help: str = ""
    option: object = None          # an options.Option
    value: type = None             # None: a switch
    metavar: str = None
    choices: tuple = ()
    most: int = None
    positive: bool = False
    bare: object = None            # the value of the flag given without one (--ray alone)
    group: str = ""                # VIDEO_FLAGS, RAY_FLAGS or the main section
    hidden: bool = False           # accepted, not shown (the reference tool's spelling)

    def problem(self, name, value):
        """What is wrong with `value` for this setting, in words, or None."""
        if self.option is not None:
            try:
                self.option.check(value)
            except ValueError as error:
                return str(error)
        elif value is None or self.value is None:
            return None
        elif self.choices and value not in self.choices:
            return f"{name} must be one of {', '.join(self.choices)}"
        elif self.most is not None and not _count(value, self.most):
            return f"{name} must be a whole number from 1 to {self.most}"
        elif self.positive and not _positive(value):
            return f"{name} must be a positive number"
        return None


def _flag(default, help="", **details):
    return field(default=default, metadata={"flag": Flag(help, **details)})


def _option_flag(option, group=""):
    return field(default=option.default, metadata={"flag": Flag(option=option, group=group)})


@dataclass(frozen=True)
class RestoreJob:
    """Files to restore and how: every flag of `python -m gpen_ext restore`, by its name."""
    inputs: tuple                  # files, folders, globs (URIs on Ray)
    output: Path                   # a file (one input) or a folder
    options: RestoreOptions = RestoreOptions(keep_crops=False)
    model: str = _option_flag(MODEL)
    models_dir: Path = _flag(None, "where models live (default: $GPEN_MODELS_DIR, else the "
                             "user's cache folder, e.g. ~/.cache/gpen)", value=Path)
    device: str = _flag("auto", "where the networks run", value=str, choices=DEVICES)
    precision: str = _option_flag(PRECISION)
    landmarks: Path = _flag(None, "faces given as five [x, y] points each, skipping detection: "
                            "a list of faces (for every frame of a clip), or {\"frames\": "
                            "[...]} with one list of faces per frame of a clip", value=Path,
                            metavar="FILE.json")
    aligned: bool = _flag(False, "inputs are aligned face crops: restore them directly")
    save_faces: bool = _flag(False, "also save each face's crop before/after, side by side")
    comparison: bool = _flag(False, "also save the original and the result side by side")
    video_codec: str = _option_flag(VIDEO_CODEC, VIDEO_FLAGS)
    video_quality: int = _option_flag(VIDEO_QUALITY, VIDEO_FLAGS)
    pixel_format: str = _option_flag(PIXEL_FORMAT, VIDEO_FLAGS)
    as_video: bool = _flag(False, "restore animated GIF and WebP inputs as clips, written back "
                           "animated (or as the video -o names)", group=VIDEO_FLAGS)
    sequence: bool = _flag(False, "each input folder is one clip's frames, in name order, "
                           "written as a folder of frames (or as the video -o names)",
                           group=VIDEO_FLAGS)
    fps: float = _flag(25.0, "frame rate of a --sequence written as a video (default 25)",
                       value=float, positive=True, group=VIDEO_FLAGS)
    ray: str = _flag(None, "restore on Ray: alone, a Ray of its own on this machine; 'auto' or "
                     "an address, an existing cluster. Inputs may also be URIs pyarrow reads "
                     "(s3://, gs://); the run can be stopped and started again", value=str,
                     metavar="ADDRESS", bare="local", group=RAY_FLAGS)
    ray_workers: int = _flag(None, "workers, each with a loaded model (default: one a GPU's "
                             "share, else one a thread budget of the CPUs)", value=int,
                             metavar="N", most=100_000, group=RAY_FLAGS)
    ray_gpus_per_worker: float = _flag(None, "GPUs per worker, fractions allowed (default: "
                                       "none, on CPUs)", value=float, metavar="F",
                                       positive=True, group=RAY_FLAGS)
    ray_threads_per_worker: int = _flag(None, "CPU threads per worker (default 1 on CPUs)",
                                        value=int, metavar="N", most=4096, group=RAY_FLAGS)
    manifest: Path = _flag(None, "what a Ray run has done, a line a file (default: "
                           "OUTPUT/gpen-manifest.jsonl)", value=Path, metavar="FILE.jsonl",
                           group=RAY_FLAGS)
    overwrite: bool = _flag(False, "replace existing outputs")
    fail_fast: bool = _flag(False, "stop at the first failure")
    no_download: bool = _flag(False, "never download models")
    max_megapixels: float = _option_flag(MAX_MEGAPIXELS)
    faces_per_image: int = _option_flag(FACES_PER_IMAGE)
    size: int = _flag(None, "the reference tool's --size: the checkpoint's, checked", value=int,
                      hidden=True)

    def __post_init__(self):
        if not isinstance(self.options, RestoreOptions):
            raise UsageError(f"options must be RestoreOptions, got {type(self.options).__name__}")
        for name, flag in job_flags().items():
            problem = flag.problem(name, getattr(self, name))
            if problem:
                raise UsageError(problem)
        ray_only = [name for name, flag in job_flags().items() if flag.group == RAY_FLAGS
                    and name != "ray" and getattr(self, name) is not None]
        if self.aligned and self.ray is not None:
            raise UsageError("--ray takes whole photos and clips, not --aligned crops")
        if ray_only and self.ray is None:
            raise UsageError(f"{', '.join(ray_only)}: for a run on Ray (--ray)")

    @classmethod
    def from_flags(cls, inputs, output, options=None, **flags):
        """A job from Python: `options` (RestoreOptions; default: the defaults) and any flag
        of the command line by its name, restoration options among them (weight=0.8), laid
        over `options`. An unknown flag is a TypeError; an option given both ways with two
        values, a UsageError."""
        settings = set(job_flags())
        option_names = {option.name for option in restore_option_list()}
        unknown = set(flags) - settings - option_names
        if unknown:
            raise TypeError(f"unknown flag(s): {', '.join(sorted(unknown))}")
        given = {name: flags.pop(name) for name in option_names & set(flags)}
        clashes = [name for name, value in given.items()
                   if options is not None and getattr(options, name) != value]
        if clashes:
            raise UsageError(f"{clashes[0]} given twice: {given[clashes[0]]!r} as a flag and "
                             f"{getattr(options, clashes[0])!r} in options")
        base = options if options is not None else cls.options
        with usage_errors():
            options = base.overlay(**given)
        if isinstance(flags.get("model"), os.PathLike):  # a checkpoint's path
            flags["model"] = os.fspath(flags["model"])
        for name in ("landmarks", "manifest"):
            if flags.get(name) is not None:
                flags[name] = Path(flags[name])
        return cls(tuple(map(str, inputs)), Path(output), options, **flags)

    @property
    def restore_options(self):
        """The options each image is restored with: crops kept where faces are saved, at
        most `faces_per_image` faces."""
        kept = self.options.overlay(keep_crops=self.options.keep_crops or self.save_faces)
        return kept.within(self.faces_per_image)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def job_flags():
    """A job's flags besides its inputs, output and options, by name: RestoreJob's other
    fields, each the command line's flag of that name, with its Flag."""
    return {item.name: item.metadata["flag"] for item in fields(RestoreJob)
            if "flag" in item.metadata}


def _positive(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value > 0 and (isinstance(value, int) or math.isfinite(value))


def _count(value, most):
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and
                             1 <= value <= most)


def input_kind(path, job):
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir():
        return FRAMES
    if suffix in VIDEO_SUFFIXES:
        return VIDEO
    if suffix in ANIMATION_SUFFIXES and job.as_video:
        return ANIMATION
    return IMAGE


def expand_inputs(job, remote_files=None):
    """(input, path relative to the output folder, kind) for the job's files, folders and
    globs; a folder is a clip's frames with `sequence`, else the images, videos and
    animations in it. `remote_files(uri)`: (URI, relative path) of a URI's files (Ray)."""
    found = []
    for pattern in job.inputs:
        if is_remote(pattern):  # read by the workers of a Ray run
            if remote_files is None:
                raise UsageError(f"{pattern}: URIs are read on Ray (--ray)")
            try:
                found += [(uri, relative, input_kind(relative, job))
                          for uri, relative in remote_files(pattern)]
            except (OSError, ValueError) as error:
                raise UsageError(f"cannot list {pattern}: {error}") from None
            continue
        matches = [Path(p) for p in sorted(glob.glob(pattern))] if glob.has_magic(pattern) \
            else [Path(pattern)]
        if not matches:
            raise UsageError(f"no files match {pattern}")
        for match in matches:
            if match.is_dir() and job.sequence:
                found.append((match, Path(match.name), FRAMES))
            elif match.is_dir():
                found += [(p, p.relative_to(match), input_kind(p, job))
                          for p in sorted(match.rglob("*"))
                          if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES]
            elif match.is_file():
                found.append((match, Path(match.name), input_kind(match, job)))
            else:
                raise UsageError(f"no such file or folder: {match}")
    return found


def plan_tasks(job, remote_files=None, finished=()):
    """A Task for every input of `job`, its output named; inputs as outputs and, unless the
    job overwrites, outputs that exist are refused before any work (but those of `finished`
    inputs: restored by an earlier run that this one resumes)."""
    inputs = expand_inputs(job, remote_files)
    if not inputs:
        raise UsageError("no images or videos found in the given inputs")
    output = Path(job.output)
    suffix = output.suffix.lower()
    if suffix in Image.registered_extensions() and suffix not in INPUT_SUFFIXES:
        raise UsageError(f"cannot write {suffix} images: name the output .png, .jpg, .webp, "
                         f".bmp or .tif, or give a folder")
    single_file = len(inputs) == 1 and suffix in INPUT_SUFFIXES
    if not single_file and suffix in INPUT_SUFFIXES:
        raise UsageError(f"{len(inputs)} inputs need an output folder, not the file {output}")
    tasks = [Task(source, _target(output, single_file, relative, kind, job.video_codec), kind)
             for source, relative, kind in inputs]
    _refuse_clashes(tasks, job, finished)
    return tasks


def _target(output, single_file, relative, kind, codec):
    if single_file:
        suffix = output.suffix.lower()
        if suffix not in WRITABLE[kind] and kind == IMAGE:
            raise UsageError(f"cannot write {suffix} images: name the output .png, .jpg, "
                             f".webp, .bmp or .tif, or give a folder")
        if suffix not in WRITABLE[kind]:
            what = {VIDEO: "a video", ANIMATION: "an animation", FRAMES: "a folder of frames"}
            why = " (its frames' timing would not survive)" if suffix in VIDEO_SUFFIXES else ""
            raise UsageError(f"cannot write {what[kind]} as {suffix}{why}: name the output "
                             f"{', '.join(WRITABLE[kind][:4])}, ... or give a folder")
    target = output if single_file else output / (
        writable_name(relative) if kind == IMAGE else writable_clip_name(relative, kind))
    if kind in CLIPS and codec == "png" and target.suffix.lower() in VIDEO_SUFFIXES:
        target = target.with_suffix("")  # a PNG sequence: a folder of frames
    return target


def is_remote(source):
    """A URI that pyarrow reads (s3://, gs://, hdfs://, file://, ...), not a local path."""
    return "://" in str(source)


def _refuse_clashes(tasks, job, finished):
    sources = {Path(task.source).resolve() for task in tasks if not is_remote(task.source)}
    clashes = [str(task.target) for task in tasks if task.target.resolve() in sources]
    if clashes:
        raise UsageError(f"refusing to overwrite an input: {clashes[0]}")
    targets = [task.target.resolve() for task in tasks]
    if len(set(targets)) != len(targets):
        raise UsageError("two inputs would be written to the same output name; use one "
                         "input folder per output folder")
    existing = [str(task.target) for task in tasks if str(task.source) not in finished and (
        task.target.is_file() or (task.target.is_dir() and any(task.target.iterdir())))]
    if existing and not job.overwrite:
        raise UsageError(f"{len(existing)} output(s) exist already, e.g. {existing[0]}; "
                         "use --overwrite to replace them")


def writable_name(relative):
    """The output name for an input: its own, or as PNG where its type cannot be written."""
    return relative if relative.suffix.lower() in IMAGE_SUFFIXES else relative.with_suffix(".png")


def writable_clip_name(relative, kind):
    """A clip's output name in a folder: its own, or as Matroska (which holds any codec and
    stream) where its container is read but not written."""
    if kind == FRAMES or relative.suffix.lower() in WRITABLE[kind]:
        return relative
    return relative.with_suffix(".mkv")


def read_landmarks(path, most=None):
    """Faces from a landmarks file: one list of faces (check_landmarks), or a clip's, one
    list per frame ({"frames": [...]}, or a list of such lists that is not one image's); at
    most `most` faces an image."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as error:
        raise UsageError(f"cannot read landmarks from {path}: {error}") from None
    if isinstance(data, dict) and "frames" in data:
        return read_clip_landmarks(path, data["frames"], most)
    faces = data.get("landmarks") if isinstance(data, dict) else data
    if faces is None:
        raise UsageError(f"{path}: expected a list of faces with five [x, y] points each, an "
                         "object with that list under 'landmarks', or one list of faces per "
                         "frame under 'frames'")
    if _nesting(faces) == 4:  # frames of faces of points of x and y
        return read_clip_landmarks(path, faces, most)
    try:
        return check_landmarks(faces, most)
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None


def _nesting(value, limit=5):
    """How deeply lists nest in `value` (at most `limit`): 0 for a number, 1 for a list..."""
    if not isinstance(value, list) or limit == 0:
        return 0
    return 1 + max((_nesting(item, limit - 1) for item in value), default=0)


class ClipLandmarks(list):
    """A clip's landmarks: one (faces, 5, 2) array per frame."""


def read_clip_landmarks(path, frames, most=None):
    if not isinstance(frames, list):
        raise UsageError(f"{path}: 'frames' must be a list with one list of faces per frame")
    try:
        return ClipLandmarks(check_landmarks(faces, most) for faces in frames)
    except ValueError as error:
        raise UsageError(f"{path}: a frame's faces: {error}") from None


def _refuse_frames_of_two_sizes(task, job):
    """A folder of frames written as a video must have one size; as a folder, each keeps its
    own."""
    with usage_errors(ClipError):
        source = open_source(task.source, FRAMES, job.max_megapixels, job.fps)
    source.close()
    if source.other_size:
        name, (width, height) = source.other_size
        raise UsageError(f"{task.source}: frame {name} is {width}x{height}, the first frame "
                         f"{source.info.width}x{source.info.height}; a video's frames are all "
                         f"one size: write them to a folder of frames, or resize them first")


def faces_given(landmarks):
    """Whether landmarks (read_landmarks) give any face at all: none means no face model is
    needed."""
    return any(len(faces) for faces in (
        landmarks if isinstance(landmarks, ClipLandmarks) else [landmarks]))


def check_tasks(tasks, landmarks, job):
    """What can be told about the inputs before any model is loaded."""
    clips = [task for task in tasks if task.kind in CLIPS]
    if clips and job.aligned:
        raise UsageError("--aligned takes face crops, not clips")
    if isinstance(landmarks, ClipLandmarks):
        if len(clips) != 1 or len(tasks) != 1:
            raise UsageError("landmarks given per frame are for one clip at a time")
        with usage_errors(ClipError):
            source = open_source(clips[0].source, clips[0].kind, job.max_megapixels, job.fps)
        source.close()
        if source.info.frames > len(landmarks):
            raise UsageError(f"the landmarks file has {len(landmarks)} frame(s); "
                             f"{clips[0].source} has {source.info.frames}")
    for task in clips:
        if task.kind == FRAMES and task.target.suffix.lower() in WRITABLE[FRAMES]:
            _refuse_frames_of_two_sizes(task, job)
    if clips and (job.save_faces or job.comparison):
        log.warning("--save-faces and --comparison are for images; clips are written as they "
                    "are restored")
