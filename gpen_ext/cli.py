"""`python -m gpen_ext`: restore photos, folders and clips, list and download models.

The command line only turns its arguments into a job (jobs.RestoreJob) and runs it
(engine.py); what a job does lives there and below, the same for `restore_files` from Python.
"""

import argparse
import logging
import signal
import sys
from dataclasses import fields
from pathlib import Path

from . import __version__
from .allocator import keep_freed_memory
from .jobs import (EXIT_OK, EXIT_USAGE, RAY_FLAGS, VIDEO_FLAGS, RestoreJob, Terminated,
                   UsageError, job_flags, usage_errors)
from .options import (CHOICE, FACE_NUMBERS, FLAG, INTEGER, LIST_KINDS, MODEL, NAMES, NUMBER,
                      RestoreOptions, restore_option_list)
from .registry import AUTO_MODEL, KNOWN_MODELS, default_models_dir, list_models, resolve_model

log = logging.getLogger("gpen_ext")


# Spellings of earlier versions, still accepted beside the derived --option-name flags.
LEGACY_FLAGS = {"face_selection": ("--select",), "detection_model": ("--detector",),
                "detection_threshold": ("--threshold",)}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m gpen_ext",
                                     description="GPEN blind face restoration.")
    parser.add_argument("--version", action="version", version=f"gpen_ext {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_restore_arguments(commands.add_parser("restore", help="restore the faces in images "
                                                              "and folders"))
    models = commands.add_parser("models", help="list known and installed models")
    models.add_argument("--models-dir", type=Path)
    fetch = commands.add_parser("download", help="download a model with progress")
    fetch.add_argument("name", help=", ".join(KNOWN_MODELS))
    fetch.add_argument("--models-dir", type=Path)
    add_app_arguments(commands.add_parser("app", help="restore photos and clips in a page in "
                                          "your browser (pip install -r requirements-app.txt)"))
    return parser


def add_app_arguments(app):
    """The page's own flags; where its models live and which device, as for `restore`."""
    flags = {item.name: item for item in fields(RestoreJob)}
    for name in ("models_dir", "device"):
        add_job_flag(app, name, job_flags()[name], flags[name].default)
    app.add_argument("--listen", action="store_true",
                     help="serve on every network address (0.0.0.0), not only this computer: "
                          "needs --auth, or --no-auth typed out")
    app.add_argument("--port", type=int, help="default: a free one")
    app.add_argument("--auth", metavar="USER:PASSWORD", help="ask for this name and password")
    app.add_argument("--no-auth", action="store_true",
                     help="with --listen, let anyone who reaches this computer in")


def add_restore_arguments(restore):
    """The inputs and output, then each of the job's flags (jobs.RestoreJob, described there
    or by its option) in the job's order, the restoration options where the job holds them."""
    restore.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image and video files, folders or globs")
    restore.add_argument("-o", "--output", required=True,
                         help="output file (one input) or folder")
    sections = {"": restore,
                VIDEO_FLAGS: restore.add_argument_group(
                    "video (clips are streamed: memory does not grow with their length)"),
                RAY_FLAGS: restore.add_argument_group(
                    "on a Ray cluster (pip install -r requirements-ray.txt)")}
    flags = job_flags()
    for item in fields(RestoreJob):
        if item.name == "options":
            add_option_arguments(restore.add_argument_group("restoration options"))
        elif item.name in flags:
            add_job_flag(sections[flags[item.name].group], item.name, flags[item.name],
                         item.default)
    restore.add_argument("--face_align", action="store_true", help=argparse.SUPPRESS)
    restore.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)


def add_job_flag(section, name, flag, default):
    """One of the job's flags, from its description (jobs.Flag), unset meaning `default`."""
    spelled = f"--{name.replace('_', '-')}"
    option = flag.option
    if option is not None:
        section.add_argument(spelled, default=option.default, choices=option.choices or None,
                             type=option.type if option.kind in (INTEGER, NUMBER) else None,
                             help=_escaped(f"{option.help} (default {option.default})"))
    elif flag.value is None:
        section.add_argument(spelled, action="store_true", help=_escaped(flag.help))
    else:
        section.add_argument(spelled, type=flag.value, metavar=flag.metavar, default=default,
                             choices=flag.choices or None, help=argparse.SUPPRESS if
                             flag.hidden else _escaped(flag.help),
                             **({"nargs": "?", "const": flag.bare} if flag.bare else {}))


def _escaped(text):
    return text.replace("%", "%%")  # argparse formats help texts with %


def add_option_arguments(group):
    """One flag per restoration option (options.py), named after it; unset flags are None,
    which leaves the option at its default."""
    for option in restore_option_list():
        flags = (f"--{option.name.replace('_', '-')}", *LEGACY_FLAGS.get(option.name, ()))
        limits = f"{option.minimum} to {option.maximum}, " if option.minimum is not None else ""
        default = " ".join(map(str, option.default)) or "none" if option.kind in LIST_KINDS \
            else str(option.default).lower()
        text = _escaped(f"{option.help} ({limits}default {default})")
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


def options_from(args):
    """The restoration options the flags set (unset flags keep their defaults); crops are
    kept only where faces are saved."""
    values = {option.name: getattr(args, option.name) for option in restore_option_list()}
    with usage_errors():
        return RestoreOptions().overlay(**values, keep_crops=args.save_faces)


def job_from(args):
    """The job the `restore` arguments describe; the reference tool's spelling (--legacy)
    turned into ours: without --face_align its inputs were aligned crops, --size names the
    release."""
    settings = {name: getattr(args, name) for name in job_flags()}
    if args.legacy:
        settings["aligned"] = not args.face_align
        if args.size and args.model == MODEL.default:
            settings["model"] = f"GPEN-BFR-{args.size}"
    return RestoreJob(tuple(args.inputs), Path(args.output), options_from(args), **settings)


def run_restore(args):
    from .engine import run  # here, as below: the help and `models` need no torch
    return run(job_from(args))


def run_models(args):
    folder = args.models_dir or default_models_dir()
    print(f"models folder: {folder}")
    for listing in list_models(folder):
        if listing.name == AUTO_MODEL:
            print(f"  {listing.name:<22} {'':>7}  each face through the release its size "
                  "calls for")
            continue
        state = "installed" if listing.installed else "not installed"
        size = f"{listing.size:>5}px" if listing.size else f"{'?':>5}  "
        print(f"  {listing.name:<22} {size}  {state:<13} {folder / listing.file}")
    return EXIT_OK


def run_download(args):
    from .download import ensure_model
    from .tasks import set_up
    folder = args.models_dir or default_models_dir()
    with set_up():
        model = resolve_model(args.name, folder)
        if model.release is None:
            raise UsageError(f"'{args.name}' is not a release: choose one of "
                             f"{', '.join(KNOWN_MODELS)}")
        path = ensure_model(model)
    print(f"{path}")
    return EXIT_OK


def run_app(args):
    """Serve the page; with --listen, only behind a password or an explicit --no-auth."""
    if args.auth is not None and ":" not in args.auth.strip(":"):
        raise UsageError("--auth takes USER:PASSWORD")
    if args.listen and args.auth is None and not args.no_auth:
        raise UsageError("--listen lets others reach the page: add --auth USER:PASSWORD, or "
                         "--no-auth to let anyone in")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError("--port must be from 1 to 65535")
    try:
        from .hosts.page import serve
    except ImportError as error:
        raise UsageError(f"the page needs gradio 6 ({error}): pip install -r "
                         "requirements-app.txt") from None
    from .hosts.page_session import PageWork
    from .inference import resolve_device
    from .tasks import set_up
    with set_up():
        work = PageWork(args.models_dir or default_models_dir(), resolve_device(args.device))
    work.warm_up()
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    serve(work, "0.0.0.0" if args.listen else "127.0.0.1", args.port, auth)
    return EXIT_OK


def _terminate(signum, frame):
    raise Terminated()  # where the program is: half-written files are cleaned up as on Ctrl-C


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    keep_freed_memory()  # large tensors reused instead of faulted in afresh (allocator.py)
    argv = translate_legacy(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    handler = {"restore": run_restore, "models": run_models, "download": run_download,
               "app": run_app}[args.command]
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
