"""`python -m gpen_ext`: restore photos and folders, list and download models."""

import argparse
import glob
import itertools
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from . import __version__
from .allocator import keep_freed_memory
from .checkpoints import CheckpointError
from .download import DownloadError, ensure_model
from .face_models import FaceModelError
from .files import (IMAGE_SUFFIXES, AnimationError, ImageFile, ImageFileError, encode_image,
                    read_image, write_file)
from .images import ImageError, side_by_side
from .inference import DEVICES
from .options import (CHOICE, FACE_NUMBERS, FACES_PER_IMAGE, FLAG, INTEGER, LIST_KINDS,
                      MAX_MEGAPIXELS, MODEL, NAMES, PIXEL_FORMAT, PRECISION, VIDEO_CODEC,
                      VIDEO_QUALITY, RestoreOptions, restore_option_list)
from .pipeline import check_landmarks
from . import ray_jobs
from .ray_jobs import expand_remote, is_remote
from .registry import KNOWN_MODELS, default_models_dir, list_models, resolve_model
from .restorers import fetch_models, load_restorer
from .sheets import face_strip
from .video import (ANIMATION_SUFFIXES, VIDEO_SUFFIXES, ClipError, open_sink, open_source,
                    restore_clip)

log = logging.getLogger("gpen_ext")
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


EXPECTED_FAILURES = (ImageFileError, ImageError, DownloadError, CheckpointError, FaceModelError,
                     ValueError)


class UsageError(Exception):
    """Something about the command line or the set-up, reported in one line, exit code 2."""


# Spellings of earlier versions, still accepted beside the derived --option-name flags.
LEGACY_FLAGS = {"face_selection": ("--select",), "detection_model": ("--detector",),
                "detection_threshold": ("--threshold",)}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m gpen_ext",
                                     description="GPEN blind face restoration.")
    parser.add_argument("--version", action="version", version=f"gpen_ext {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    restore = commands.add_parser("restore", help="restore the faces in images and folders")
    restore.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image and video files, folders or globs")
    restore.add_argument("-o", "--output", required=True,
                         help="output file (one input) or folder")
    restore.add_argument("--model", default=MODEL.default,
                         help=f"{MODEL.help}; or a checkpoint path (default {MODEL.default})")
    restore.add_argument("--models-dir", type=Path, help="where models live (default: $GPEN_MODELS_DIR, "
                         f"else {default_models_dir()})")
    restore.add_argument("--landmarks", type=Path, metavar="FILE.json",
                         help="faces given as five [x, y] points each, skipping detection: a "
                              "list of faces (for every frame of a clip), or {\"frames\": "
                              "[...]} with one list of faces per frame of a clip")
    restore.add_argument("--aligned", action="store_true",
                         help="inputs are aligned face crops: restore them directly")
    restore.add_argument("--device", choices=DEVICES, default="auto")
    restore.add_argument("--precision", choices=PRECISION.choices, default=PRECISION.default,
                         help=PRECISION.help)
    add_option_arguments(restore.add_argument_group("restoration options"))
    restore.add_argument("--save-faces", action="store_true",
                         help="also save each face's crop before/after, side by side")
    restore.add_argument("--comparison", action="store_true",
                         help="also save the original and the result side by side")
    video = restore.add_argument_group("video (clips are streamed: memory does not grow with "
                                       "their length)")
    for option in (VIDEO_CODEC, VIDEO_QUALITY, PIXEL_FORMAT):
        video.add_argument(f"--{option.name.replace('_', '-')}", default=option.default,
                           choices=option.choices or None,
                           type=option.type if option.kind == INTEGER else None,
                           help=f"{option.help} (default {option.default})")
    video.add_argument("--as-video", action="store_true",
                       help="restore animated GIF and WebP inputs as clips, written back "
                            "animated (or as the video -o names)")
    video.add_argument("--sequence", action="store_true",
                       help="each input folder is one clip's frames, in name order, written "
                            "as a folder of frames (or as the video -o names)")
    video.add_argument("--fps", type=float, default=25.0,
                       help="frame rate of a --sequence written as a video (default 25)")
    scale = restore.add_argument_group("on a Ray cluster (pip install -r requirements-ray.txt)")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="restore on Ray: alone, a Ray of its own on this machine; 'auto' or "
                            "an address, an existing cluster. Inputs may also be URIs pyarrow "
                            "reads (s3://, gs://); the run can be stopped and started again")
    scale.add_argument("--ray-workers", type=int, metavar="N",
                       help="workers, each with a loaded model (default: one a GPU's share, "
                            "else one a thread budget of the CPUs)")
    scale.add_argument("--ray-gpus-per-worker", type=float, metavar="F",
                       help="GPUs per worker, fractions allowed (default: none, on CPUs)")
    scale.add_argument("--ray-threads-per-worker", type=int, metavar="N",
                       help="CPU threads per worker (default 1 on CPUs)")
    scale.add_argument("--manifest", type=Path, metavar="FILE.jsonl",
                       help="what a Ray run has done, a line a file (default: "
                            "OUTPUT/gpen-manifest.jsonl)")
    restore.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    restore.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    restore.add_argument("--no-download", action="store_true", help="never download models")
    restore.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS.default,
                         help=f"{MAX_MEGAPIXELS.help} (default {MAX_MEGAPIXELS.default})")
    restore.add_argument("--faces-per-image", type=int, default=FACES_PER_IMAGE.default,
                         help=f"{FACES_PER_IMAGE.help} (default {FACES_PER_IMAGE.default})")
    restore.add_argument("--size", type=int, help=argparse.SUPPRESS)
    restore.add_argument("--face_align", action="store_true", help=argparse.SUPPRESS)
    restore.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)

    models = commands.add_parser("models", help="list known and installed models")
    models.add_argument("--models-dir", type=Path)
    fetch = commands.add_parser("download", help="download a model with progress")
    fetch.add_argument("name", help=", ".join(KNOWN_MODELS))
    fetch.add_argument("--models-dir", type=Path)
    return parser


def add_option_arguments(group):
    """One flag per restoration option (options.py), named after it; unset flags are None,
    which leaves the option at its default."""
    for option in restore_option_list():
        flags = (f"--{option.name.replace('_', '-')}", *LEGACY_FLAGS.get(option.name, ()))
        limits = f"{option.minimum} to {option.maximum}, " if option.minimum is not None else ""
        default = " ".join(map(str, option.default)) or "none" if option.kind in LIST_KINDS \
            else str(option.default).lower()
        text = f"{option.help} ({limits}default {default})"
        if option.kind == FLAG:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, help=text)
        elif option.kind == NAMES:
            group.add_argument(*flags, nargs="+", choices=option.choices, metavar="NAME",
                               help=f"{text[:-1]}; any of {', '.join(option.choices)})")
        elif option.kind == FACE_NUMBERS:
            group.add_argument(*flags, type=int, nargs="+", metavar="N", help=text)
        elif option.kind == CHOICE:
            group.add_argument(*flags, choices=option.choices, help=text)
        else:
            group.add_argument(*flags, type=option.type, metavar=option.type.__name__.upper(),
                               help=text)
    group.add_argument("--face-index", dest="face_indices", type=int, action="append",
                       help=argparse.SUPPRESS)
    group.add_argument("--no-smoothing", dest="small_face_smoothing", action="store_false",
                       help=argparse.SUPPRESS)


def translate_legacy(argv):
    """The reference tool's `--input X --output Y --model_path P --size S --face_align` as a
    `restore` command; without --face_align its inputs were aligned crops."""
    if not argv or argv[0] in ("restore", "models", "download") or "--input" not in argv:
        return argv
    rest, inputs, index = [], [], 0
    while index < len(argv):
        flag = argv[index]
        if flag == "--input" and index + 1 < len(argv):
            inputs.append(argv[index + 1])
            index += 2
            continue
        rest.append({"--model_path": "--model"}.get(flag, flag))
        index += 1
    return ["restore", *inputs, "--legacy", *rest]


IMAGE, VIDEO, ANIMATION, FRAMES = "image", "video", "animation", "frames"
CLIPS = (VIDEO, ANIMATION, FRAMES)


@dataclass(frozen=True)
class Job:
    source: Path    # a file, or a folder of frames
    target: Path    # a file, or a folder of frames
    kind: str       # IMAGE or one of CLIPS


def input_kind(path, args):
    suffix = path.suffix.lower()
    if path.is_dir():
        return FRAMES
    if suffix in VIDEO_SUFFIXES:
        return VIDEO
    if suffix in ANIMATION_SUFFIXES and args.as_video:
        return ANIMATION
    return IMAGE


def expand_inputs(patterns, args):
    """(input, path relative to the output folder, kind) for files, folders and globs; a
    folder is a clip's frames with --sequence, else the images and videos in it."""
    found = []
    for pattern in patterns:
        matches = [Path(p) for p in sorted(glob.glob(pattern))] if glob.has_magic(pattern) \
            else [Path(pattern)]
        if is_remote(pattern):  # read by the workers of a --ray run
            if not args.ray:
                raise UsageError(f"{pattern}: URIs are read on Ray (--ray)")
            try:
                found += [(uri, relative, input_kind(relative, args))
                          for uri, relative in expand_remote(pattern)]
            except (OSError, ValueError) as error:
                raise UsageError(f"cannot list {pattern}: {error}") from None
            continue
        if not matches:
            raise UsageError(f"no files match {pattern}")
        for match in matches:
            if match.is_dir() and args.sequence:
                found.append((match, Path(match.name), FRAMES))
            elif match.is_dir():
                found += [(p, p.relative_to(match), input_kind(p, args))
                          for p in sorted(match.rglob("*")) if p.is_file() and
                          p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES + ANIMATION_SUFFIXES]
            elif match.is_file():
                found.append((match, Path(match.name), input_kind(match, args)))
            else:
                raise UsageError(f"no such file or folder: {match}")
    return found


def writable_name(relative):
    """The output name for an input: its own, or as PNG where its type cannot be written."""
    return relative if relative.suffix.lower() in IMAGE_SUFFIXES else relative.with_suffix(".png")


# What each kind of input may be written as, when -o names one file.
WRITABLE = {IMAGE: IMAGE_SUFFIXES, VIDEO: VIDEO_SUFFIXES,
            ANIMATION: ANIMATION_SUFFIXES + VIDEO_SUFFIXES, FRAMES: VIDEO_SUFFIXES}


def plan_outputs(inputs, output, overwrite, codec="auto", finished=()):
    """A Job for every input, its output named; refuse inputs as outputs and, unless asked,
    outputs that exist, before any work is done (but those of `finished` inputs: restored by
    an earlier run that this one resumes)."""
    output = Path(output)
    suffix = output.suffix.lower()
    known = IMAGE_SUFFIXES + VIDEO_SUFFIXES + ANIMATION_SUFFIXES
    if suffix in Image.registered_extensions() and suffix not in known:
        raise UsageError(f"cannot write {suffix} images: name the output .png, .jpg, .webp, "
                         f".bmp or .tif, or give a folder")
    single_file = len(inputs) == 1 and suffix in known
    if not single_file and suffix in known:
        raise UsageError(f"{len(inputs)} inputs need an output folder, not the file {output}")
    plan = []
    for source, relative, kind in inputs:
        if single_file and suffix not in WRITABLE[kind] and kind == IMAGE:
            raise UsageError(f"cannot write {suffix} images: name the output .png, .jpg, "
                             f".webp, .bmp or .tif, or give a folder")
        if single_file and suffix not in WRITABLE[kind]:
            what = {VIDEO: "a video", ANIMATION: "an animation", FRAMES: "a folder of frames"}
            raise UsageError(f"cannot write {what[kind]} as {suffix}: name the output "
                             f"{', '.join(WRITABLE[kind][:4])}, ... or give a folder")
        target = output if single_file else output / (
            writable_name(relative) if kind == IMAGE else relative)
        if kind in CLIPS and codec == "png" and target.suffix.lower() in VIDEO_SUFFIXES:
            target = target.with_suffix("")  # a PNG sequence: a folder of frames
        plan.append(Job(source, target, kind))
    sources = {job.source.resolve() for job in plan if not is_remote(job.source)}
    clashes = [str(job.target) for job in plan if job.target.resolve() in sources]
    if clashes:
        raise UsageError(f"refusing to overwrite an input: {clashes[0]}")
    targets = [job.target.resolve() for job in plan]
    if len(set(targets)) != len(targets):
        raise UsageError("two inputs would be written to the same output name; use one "
                         "input folder per output folder")
    existing = [str(job.target) for job in plan if str(job.source) not in finished and (
        job.target.is_file() or (job.target.is_dir() and any(job.target.iterdir())))]
    if existing and not overwrite:
        raise UsageError(f"{len(existing)} output(s) exist already, e.g. {existing[0]}; "
                         "use --overwrite to replace them")
    return plan


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


def options_from(args):
    values = {option.name: getattr(args, option.name) for option in restore_option_list()}
    try:
        MAX_MEGAPIXELS.check(args.max_megapixels)
        VIDEO_QUALITY.check(args.video_quality)
        FACES_PER_IMAGE.check(args.faces_per_image)
        return RestoreOptions().overlay(**values, keep_crops=args.save_faces)
    except ValueError as error:
        raise UsageError(str(error)) from None


def restore_files(inputs, output, options=None, **flags):
    """The command line's restore from Python: `inputs` (files, folders, globs; URIs on Ray)
    into `output` (a file or a folder), with `options` (RestoreOptions; default: the
    defaults) and any other flag of `python -m gpen_ext restore` by its name (model="1024",
    overwrite=True, landmarks="faces.json", ray="local" or "auto", ray_workers=4, ...).
    Returns the exit code (0 all restored, 1 some failed); a usage error raises UsageError."""
    args = build_parser().parse_args(["restore", *map(str, inputs), "-o", str(output)])
    unknown = set(flags) - set(vars(args))
    if unknown:
        raise TypeError(f"unknown flag(s): {', '.join(sorted(unknown))}")
    vars(args).update(flags)
    return run_restore(args, options)


def run_restore(args, options=None):
    if args.legacy:
        args.aligned = not args.face_align
        if args.size and args.model == MODEL.default:
            args.model = f"GPEN-BFR-{args.size}"
    options = options_from(args) if options is None else \
        options.overlay(keep_crops=options.keep_crops or args.save_faces)
    landmarks = read_landmarks(args.landmarks, args.faces_per_image) if args.landmarks else None
    finished = ray_jobs.finished_inputs(args) if args.ray else ()
    plan = plan_outputs(expand_inputs(args.inputs, args), args.output, args.overwrite,
                        args.video_codec, finished)
    if not plan:
        raise UsageError("no images or videos found in the given inputs")
    check_jobs(plan, landmarks, args)
    if args.ray:
        return run_on_ray(plan, args, options, landmarks)
    try:
        restorer = load_restorer(args.model, args.models_dir, args.device, args.precision,
                                 download=not args.no_download)
        supplied_faces = landmarks is not None and any(len(faces) for faces in (
            landmarks if isinstance(landmarks, ClipLandmarks) else [landmarks]))
        if not args.aligned and (landmarks is None or supplied_faces):
            restorer.prepare(options, detecting=landmarks is None)  # now, not at the first face
    except (DownloadError, CheckpointError, FaceModelError, ValueError) as error:
        raise UsageError(str(error)) from None
    if args.size and restorer.size != args.size:
        raise UsageError(f"--size {args.size} does not match the checkpoint ({restorer.size})")

    options = options.within(args.faces_per_image)
    started, restored, faces, failed = time.monotonic(), 0, 0, []
    progress = Progress(len(plan))
    for job in plan:
        source = job.source
        try:
            if job.kind == IMAGE:
                faces += restore_file(restorer, source, job.target, options, landmarks, args,
                                      progress.faces(source.name))
            else:
                faces += restore_clip_file(restorer, job, options, landmarks, args, progress)
            restored += 1
        except AnimationError as error:
            failed.append((source, f"{error}" + (" (or restore it as a clip: --as-video)" if
                                                  source.suffix.lower() in ANIMATION_SUFFIXES
                                                  else "")))
        except EXPECTED_FAILURES as error:
            failed.append((source, str(error)))
        except Exception as error:  # keep going with the other files, say what broke
            failed.append((source, f"unexpected {type(error).__name__}: {error}"))
        if failed and failed[-1][0] is source:
            log.error("%s: %s", *failed[-1])
        progress.file_done()
        if failed and args.fail_fast:
            break
    progress.close()
    summary = f"{restored} file(s) restored, {faces} face(s), in {time.monotonic() - started:.1f} s"
    if failed:
        summary += f"; {len(failed)} failed:" + "".join(f"\n  {source}: {reason}"
                                                         for source, reason in failed)
    print(summary, file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def restore_file(restorer, source, target, options, landmarks, args, progress=None):
    """Restore one image file into its target (and, if asked, its comparison and faces)."""
    picture = read_image(source, args.max_megapixels)
    written, faces = restored_files(restorer, picture, source, target, options, landmarks, args,
                                    progress)
    for path, data in written:
        write_file(path, data)
    return faces


def restored_files(restorer, picture, source, target, options, landmarks, args, progress=None):
    """The files one image's restoration writes, as (path, bytes): the result in the target's
    type with the input's metadata, then what --comparison and --save-faces ask for; and the
    faces restored."""
    # a file's float samples are what they are: kept as such away from the faces
    if args.aligned:
        result = restorer.restore_aligned(picture.pixels, options, any_float_range=True)
    else:
        result = restorer.restore(picture.pixels, options, landmarks, any_float_range=True,
                                  progress=progress)
        if not result.faces:
            log.warning("%s: %s", source, result.message)
    written = [(target, encode_image(ImageFile(result.image, picture.text, picture.exif),
                                     target.suffix))]
    if args.comparison:
        written.append((target.with_name(f"{target.stem}_comparison{target.suffix}"),
                        encode_image(ImageFile(side_by_side([picture.pixels, result.image])),
                                     target.suffix)))
    if args.save_faces:
        written += [(target.with_name(f"{target.stem}_face{face.number:02d}.png"),  # 0: leftmost
                     encode_image(ImageFile(face_strip(face)), ".png")) for face in result.faces]
    return written, len(result.faces)


def run_on_ray(plan, args, options, landmarks):
    """The jobs on Ray (ray_jobs.py), once what every worker needs is in the models folder."""
    if args.aligned:
        raise UsageError("--ray takes whole photos and clips, not --aligned crops")
    try:
        fetch_models(args.model, args.models_dir, options, detecting=landmarks is None,
                     download=not args.no_download)
        return ray_jobs.run(plan, args, options.within(args.faces_per_image), landmarks)
    except (DownloadError, CheckpointError, FaceModelError, ValueError,
            ray_jobs.RayUnavailable) as error:
        raise UsageError(str(error)) from None


def check_jobs(plan, landmarks, args):
    """What can be told about the inputs before any model is loaded."""
    clips = [job for job in plan if job.kind in CLIPS]
    if clips and args.aligned:
        raise UsageError("--aligned takes face crops, not clips")
    if isinstance(landmarks, ClipLandmarks):
        if len(clips) != 1 or len(plan) != 1:
            raise UsageError("landmarks given per frame are for one clip at a time")
        try:
            source = open_source(clips[0].source, clips[0].kind, args.max_megapixels, args.fps)
        except ClipError as error:
            raise UsageError(str(error)) from None
        source.close()
        if source.info.frames > len(landmarks):
            raise UsageError(f"the landmarks file has {len(landmarks)} frame(s); "
                             f"{clips[0].source} has {source.info.frames}")
    if clips and (args.save_faces or args.comparison):
        log.warning("--save-faces and --comparison are for images; clips are written as they "
                    "are restored")


def restore_clip_file(restorer, job, options, landmarks, args, progress):
    """Restore one clip into its target; returns the faces restored. A clip that cannot be
    read to its end is written as far as it goes and reported as failed."""
    source = open_source(job.source, job.kind, args.max_megapixels, args.fps)
    try:
        sink = open_sink(job.target, source, args.video_codec, args.video_quality,
                         args.pixel_format)
    except BaseException:
        source.close()
        raise
    supplied = None if landmarks is None else landmarks if \
        isinstance(landmarks, ClipLandmarks) else itertools.repeat(landmarks)
    bar = progress.frames(job.source.name, source.info.frames)
    try:
        frames, faces = restore_clip(restorer, source, sink, options, supplied, bar)
    except (KeyboardInterrupt, Terminated) as error:
        where = f"; the frames so far are in {error.partial}" if error.partial else ""
        print(f"{job.source}: stopped at frame {sink.written}{where}", file=sys.stderr)
        raise
    if source.stopped:
        raise ClipError(f"{source.stopped}; the {frames} frame(s) before it were restored "
                        f"into {job.target}")
    if source.info.frames and frames < source.info.frames:
        log.warning("%s: the file ends after %d of the %d frames it declares; all were "
                    "restored", job.source, frames, source.info.frames)
    return faces


class Progress:
    """Bars on the terminal: files done (where there are several) and the faces of the file
    at hand, so that a single large photo shows how far it is too."""

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
        """A progress(done, total) callback for one file's faces."""
        def report(done, total):
            if self.tqdm is None:
                return
            if self.bar is None:
                self.bar = self.tqdm(total=total, unit="face", desc=name, leave=False,
                                     position=1 if self.files is not None else 0)
            self.bar.update(done - self.bar.n)
        return report

    def frames(self, name, total):
        """An on_frame(done, faces) callback for a clip's frames, with frames per second and
        time left."""
        def report(done, faces):
            if self.tqdm is None:
                return
            if self.bar is None:
                self.bar = self.tqdm(total=total or None, unit="frame", desc=name, leave=False,
                                     position=1 if self.files is not None else 0)
            self.bar.update(done - self.bar.n)
        return report

    def file_done(self, failures=0):
        self._close_faces()
        if self.files is not None:
            if failures:
                self.files.set_postfix(failed=failures, refresh=False)
            self.files.update(1)

    def close(self):
        self._close_faces()
        if self.files is not None:
            self.files.close()

    def _close_faces(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_models(args):
    folder = args.models_dir or default_models_dir()
    print(f"models folder: {folder}")
    for listing in list_models(folder):
        state = "installed" if listing.installed else "not installed"
        size = f"{listing.size:>5}px" if listing.size else f"{'?':>5}  "
        print(f"  {listing.name:<22} {size}  {state:<13} {folder / listing.file}")
    return EXIT_OK


def run_download(args):
    folder = args.models_dir or default_models_dir()
    try:
        model = resolve_model(args.name, folder)
        if model.release is None:
            raise UsageError(f"'{args.name}' is not a release: choose one of "
                             f"{', '.join(KNOWN_MODELS)}")
        path = ensure_model(model)
    except (DownloadError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"{path}")
    return EXIT_OK


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that half-written files are cleaned up as on
    Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    keep_freed_memory()  # large tensors reused instead of faulted in afresh (allocator.py)
    argv = translate_legacy(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    handler = {"restore": run_restore, "models": run_models, "download": run_download}[args.command]
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
