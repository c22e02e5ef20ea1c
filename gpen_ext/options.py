"""Every setting a user can make, described once.

Each restoration option is a field of `RestoreOptions` carrying its kind, label, help text,
choices or range, and where it applies; `MODEL` and `PRECISION` say which network runs and how.
The command line, the HTTP request model, the WebUI's settings and Extras controls and the
ComfyUI nodes are all derived from these descriptions (`HOST_OPTIONS`), so a limit or a help
text is the same everywhere and adding an option is one edit here. Hosts lay what their users
chose over their defaults with `Settings.overlay`, where None keeps a setting.
"""

import math
import numbers
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .alignment import TEMPLATES
from .compositing import SMALL_FACE_PX
from .encoders import ENCODERS, HIGHEST_CRF, crf_ceilings
from .faces import DEFAULT_REGIONS, DETECTORS, FACE_REGIONS, PARSERS
from .registry import DEFAULT_MODEL, ENLARGEMENT

SELECTIONS = ("all", "largest", "center")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
MASKS = ("parsing", "box")

# What an option holds, which decides how every host shows and reads it.
NUMBER, INTEGER, FLAG = "number", "integer", "flag"
CHOICE, TEXT = "choice", "text"            # one of `choices`; a name (the model)
NAMES, FACE_NUMBERS = "names", "face numbers"  # several of `choices`; face numbers from 0
LIST_KINDS = (NAMES, FACE_NUMBERS)
VALUE_TYPES = {NUMBER: float, INTEGER: int, FLAG: bool, CHOICE: str, TEXT: str, NAMES: tuple,
               FACE_NUMBERS: tuple}


@dataclass(frozen=True)
class Option:
    """One setting: its name, kind, default, choices or inclusive range, what it does, and
    where it applies."""
    name: str
    kind: str
    default: object
    label: str
    help: str
    choices: tuple = ()
    minimum: float = None
    maximum: float = None
    step: float = None
    aligned: bool = False        # also applies to crops that are already aligned
    parsing_mask: bool = False   # takes effect with the parsing mask only
    advanced: bool = False       # rarely changed: hosts show it apart from the others
    frames_only: bool = False    # takes effect on a clip's frames only: single-image hosts omit it
    choice_labels: tuple = ()    # how to show `choices` to people, where ids would puzzle

    def choice_label(self, choice):
        """The name to show for one of `choices`."""
        return dict(zip(self.choices, self.choice_labels)).get(choice, choice)

    @property
    def type(self):
        """The Python type of its values (tuple for the list kinds)."""
        return VALUE_TYPES[self.kind]

    def check(self, value):
        """`value` in this option's type, or a ValueError that names the option."""
        checker = {NUMBER: self._number, INTEGER: self._number, FLAG: self._flag,
                   CHOICE: self._choice, TEXT: self._text, NAMES: self._items,
                   FACE_NUMBERS: self._items}[self.kind]
        return checker(value)

    def from_text(self, text):
        """A list option's items written as text ("0, 2" or "skin nose"), checked."""
        items = str(text or "").replace(",", " ").split()
        if self.kind == FACE_NUMBERS:
            if not all(item.isdigit() for item in items):
                raise ValueError(f"{self.name}: face numbers are whole numbers from 0, "
                                 f"got '{text}'")
            items = [int(item) for item in items]
        return self.check(items)

    def to_text(self, value):
        """A list option's items as text, as from_text reads them."""
        return ", ".join(map(str, value))

    def _number(self, value):
        integer = self.kind == INTEGER
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                (integer and not _whole(value)) or \
                (not isinstance(value, numbers.Integral) and not math.isfinite(value)):
            raise ValueError(f"{self.name} must be {'an integer' if integer else 'a number'}"
                             f", got {_shown(value)}")
        if not self.minimum <= value <= self.maximum:  # exact: no float holds some integers
            raise ValueError(f"{self.name} must be in [{self.minimum}, {self.maximum}], got "
                             f"{_shown(value)}")
        return self.type(value)

    def _flag(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{self.name} must be true or false, got {value!r}")
        return bool(value)

    def _choice(self, value):
        if value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def _text(self, value):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.name} must be a name, got {value!r}")
        return value

    def _items(self, value):
        names = self.kind == NAMES
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"{self.name} must be a list of {'names' if names else 'face numbers'}"
                             f", got {value!r}")
        items = list(value)
        for item in items:
            if names and item not in self.choices:
                raise ValueError(f"{self.name}: each must be one of {', '.join(self.choices)}, "
                                 f"got {item!r}")
            if not names and (isinstance(item, bool) or not isinstance(
                    item, numbers.Integral) or item < 0):
                raise ValueError(f"{self.name}: face numbers are whole numbers from 0, "
                                 f"got {item!r}")
        if names and not items:
            raise ValueError(f"{self.name} needs at least one of {', '.join(self.choices)}")
        return tuple(dict.fromkeys(item if names else int(item) for item in items))


def _whole(value):
    """Whether a number is a whole one (an integer of any size, or a float without fraction)."""
    return isinstance(value, numbers.Integral) or (math.isfinite(value) and value == int(value))


def _shown(value, most=40):
    """A value as an error message shows it: numbers of hundreds of digits cut short."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:12]}...({len(text)} digits)"


def _option(kind, default, label, help, **details):
    return field(default=default, metadata={"option": dict(kind=kind, label=label, help=help,
                                                           **details)})


@dataclass(frozen=True)
class RestoreOptions:
    weight: float = _option(
        NUMBER, 1.0, "weight", "How much of the restored face to keep: 0 = the original face, "
        "1 = fully restored", minimum=0.0, maximum=1.0, step=0.01, aligned=True)
    visibility: float = _option(
        NUMBER, 1.0, "visibility", "How much of the result to show over the whole image: 0 = "
        "the image as it was, 1 = only the result", minimum=0.0, maximum=1.0, step=0.01)
    face_selection: str = _option(
        CHOICE, "all", "face selection", "Which faces to restore: all, only the largest, or "
        "only the one nearest the centre", choices=SELECTIONS)
    face_indices: tuple = _option(
        FACE_NUMBERS, (), "face numbers", "Only these faces, by number: 0 is the leftmost "
        "face found, and \"show face numbers\" draws them; leave empty for every face")
    min_face_size: int = _option(
        INTEGER, 0, "minimum face size", "Leave faces smaller than this alone: pixels, shorter "
        "side of the face box; 0 = no limit", minimum=0, maximum=8192, step=1)
    min_face_ratio: float = _option(
        NUMBER, 0.0, "share of largest", "Leave faces smaller than this share of "
        "the largest face found alone (shorter sides of the face boxes): 0.3 restores the "
        "faces at least 30% of the largest's size, leaving small background faces as they "
        "are; 0 = no limit", minimum=0.0, maximum=1.0, step=0.05)
    max_faces: int = _option(
        INTEGER, 0, "maximum faces", "Restore at most this many faces, the largest first; 0 = "
        "no limit", minimum=0, maximum=1000, step=1)
    detection_model: str = _option(
        CHOICE, "retinaface_resnet50", "face detector", "RetinaFace ResNet-50 finds more "
        "faces; MobileNet-0.25 is lighter and faster", choices=tuple(DETECTORS),
        choice_labels=("RetinaFace ResNet-50", "RetinaFace MobileNet-0.25"), advanced=True)
    detection_threshold: float = _option(
        NUMBER, 0.9, "detection confidence", "Faces detected with a lower confidence than "
        "this are left alone", minimum=0.05, maximum=0.99, step=0.01, advanced=True)
    mask: str = _option(
        CHOICE, "parsing", "paste mask", "parsing: paste only the face itself (not hair, neck "
        "or clothes); box: a feathered square around the face", choices=MASKS)
    parser: str = _option(
        CHOICE, "parsenet", "face parser", "Which network finds the parts of each face for "
        "the parsing mask: ParseNet, the official GPEN pipeline's; BiSeNet (ResNet-18), "
        "facexlib's own default, over ten times faster on a CPU", choices=tuple(PARSERS),
        choice_labels=("ParseNet", "BiSeNet"),
        parsing_mask=True)
    face_regions: tuple = _option(
        NAMES, DEFAULT_REGIONS, "face regions", "Which parts of each face take the restored "
        "pixels; leave out eyes or mouth to keep the original ones. Needs the parsing mask",
        choices=tuple(FACE_REGIONS), parsing_mask=True)
    color_correction: bool = _option(
        FLAG, False, "colour correction", "Give the restored face the original's overall "
        "colour, keeping the restored detail", aligned=True)
    small_face_smoothing: bool = _option(
        FLAG, True, "small-face smoothing", f"Slightly smooth faces under {SMALL_FACE_PX} px, "
        "as the official pipeline does, to hide artefacts", advanced=True)
    template: str = _option(
        CHOICE, "gpen", "alignment template", "gpen: GPEN's own face framing (as trained); "
        "ffhq: the tighter FFHQ framing other restorers use", choices=TEMPLATES,
        advanced=True)
    batch_size: int = _option(
        INTEGER, 4, "batch size", "Faces per network and parsing call: higher is faster on a "
        "GPU with enough memory; memory grows with it", minimum=1, maximum=64, step=1,
        aligned=True, advanced=True)
    temporal_smoothing: int = _option(
        INTEGER, 15, "temporal smoothing", "Steadies faces across a video's frames: how each "
        "face moves is measured from its pixels, and the detector's points of this many frames "
        "before and after are combined where the face is still, so a still face stays still "
        "and a moving one is followed exactly; 0 = every frame on its own. Frames of unrelated "
        "pictures are told apart by how they look", minimum=0, maximum=30, step=1,
        advanced=True, frames_only=True)
    detection_max_side: int = 1280  # detection runs on a copy no larger than this
    keep_crops: bool = True         # put aligned/restored crops and masks in the face records
    keep_paste_mask: bool = False   # give the result an image-sized mask of what was pasted

    def __post_init__(self):
        problems = []
        for option in RESTORE_OPTIONS:
            try:
                object.__setattr__(self, option.name, option.check(getattr(self, option.name)))
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))

    def overlay(self, **values):
        """These options with `values` laid over them; None keeps an option as it is."""
        return replace(self, **{name: value for name, value in values.items()
                                if value is not None})

    def within(self, faces):
        """These options restoring at most `faces` faces an image (FACES_PER_IMAGE)."""
        limited = min(self.max_faces, faces) if self.max_faces else faces
        return replace(self, max_faces=limited)

    def unused_with_box_mask(self):
        """The options set away from their defaults that only the parsing mask honours."""
        return [option for option in RESTORE_OPTIONS if option.parsing_mask
                and getattr(self, option.name) != option.default]


RESTORE_OPTIONS = tuple(Option(item.name, **item.metadata["option"], default=item.default)
                        for item in fields(RestoreOptions) if "option" in item.metadata)


FACE_INDICES = next(option for option in RESTORE_OPTIONS if option.name == "face_indices")


def restore_option_list():
    """The user-facing options of RestoreOptions, in their order."""
    return list(RESTORE_OPTIONS)


MODEL = Option("model", TEXT, DEFAULT_MODEL, "model",
               "GPEN checkpoint: a release (GPEN-BFR-512 suits most photos; 1024 and 2048 for "
               "large faces); auto: each face through the smallest release whose output, "
               f"enlarged at most {ENLARGEMENT}x, covers the face where it is pasted (256 for "
               "small faces, 1024 or 2048 for portraits), each downloaded when first needed; or a "
               "checkpoint file in the models folder. A missing release is downloaded on "
               "first use")
MAX_MEGAPIXELS = Option("max_megapixels", NUMBER, 150, "largest image, in megapixels",
                        "Images larger than this (in millions of pixels: 150 takes a 12000 x "
                        "12000 photo) are refused before they are decoded", minimum=1.0,
                        maximum=1100.0, step=1.0)
FACES_PER_IMAGE = Option("faces_per_image", INTEGER, 100, "most faces in one image",
                         "Bounds the work one image may ask for: landmarks for more faces are "
                         "refused before any work, and of more faces found, the largest this "
                         "many are restored", minimum=1, maximum=10000, step=1)
PRECISION = Option("precision", CHOICE, "auto", "precision",
                   "auto: fp16 on CUDA (retried in fp32 if it fails), bf16 on an x86 CPU with "
                   "AMX or on an AMD CPU with AVX-512 BF16, else fp32; in a host, the host's "
                   "choice where it makes one. bf16 is slow on CPUs without native bf16",
                   choices=PRECISIONS)
# How a restored video is written (the command line and the Python API read and write video).
VIDEO_CODEC = Option("video_codec", CHOICE, "auto", "video codec",
                     "auto: h264, which plays everywhere (vp9 in .webm, which takes no h264); "
                     "h265, vp9 and av1 are smaller at the same quality (av1 is slow to "
                     "write); ffv1 is lossless; png writes the frames as PNG files in a folder",
                     choices=("auto", *ENCODERS))
VIDEO_QUALITY = Option("video_quality", INTEGER, 18, "video quality",
                       f"Constant rate factor ({crf_ceilings()}): lower is better and larger; "
                       f"18 looks like the input, 0 is lossless in h264 and h265", minimum=0,
                       maximum=HIGHEST_CRF, step=1)
PIXEL_FORMAT = Option("pixel_format", TEXT, "auto", "pixel format",
                      "FFmpeg's name, e.g. yuv420p or yuv444p10le; auto: the input's where the "
                      "codec takes it, else the codec's usual one")

# What a host of single images (the WebUI, its HTTP routes) lets its users set, in the order
# hosts show them; ComfyUI's frame batches and the command line take every restoration option.
HOST_OPTIONS = (MODEL, *(option for option in RESTORE_OPTIONS if not option.frames_only),
                PRECISION)


@dataclass(frozen=True)
class Settings:
    """A restoration as a host's user sets it up: which model, the options, the precision."""
    model: str = MODEL.default
    options: RestoreOptions = RestoreOptions()
    precision: str = PRECISION.default

    def overlay(self, **values):
        """These settings with `values` (HOST_OPTIONS and RestoreOptions' other fields, by
        name) laid over them; None keeps a setting as it is."""
        given = {name: value for name, value in values.items() if value is not None}
        model = MODEL.check(given.pop(MODEL.name, self.model))
        precision = PRECISION.check(given.pop(PRECISION.name, self.precision))
        return Settings(model, self.options.overlay(**given), precision)

    def value(self, option):
        """The value of one of HOST_OPTIONS."""
        return getattr(self if option in (MODEL, PRECISION) else self.options, option.name)
