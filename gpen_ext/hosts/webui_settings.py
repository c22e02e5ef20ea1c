"""What the WebUI adapter knows without the WebUI: the names of its settings, its Extras
section's layout, and the infotext it writes. Imports no host, so that it is tested on its
own (hosts/webui.py does the rest)."""

from ..options import FACES_PER_IMAGE, HOST_OPTIONS, LIST_KINDS, MAX_MEGAPIXELS, NUMBER
from ..results import counted, release_counts

NAME = "GPEN"
# The Extras section, group by group (the first always open), row by row; the rest of the
# options come from Settings, in the same order.
EXTRAS_GROUPS = ((None, (("model",), ("weight", "visibility"))),
                 ("Which faces", (("face_selection", "face_indices"),
                                  ("min_face_size", "min_face_ratio", "max_faces"))),
                 ("Which parts of the face", (("face_regions",),)))
SETTING_OPTIONS = (*HOST_OPTIONS, MAX_MEGAPIXELS, FACES_PER_IMAGE)
OPTIONS_BY_NAME = {option.name: option for option in SETTING_OPTIONS}


def setting_key(option):
    return f"gpen_{option.name}"


def label(option):
    """An option's label in GPEN's own sections, which need not repeat the name."""
    return option.label[:1].upper() + option.label[1:]


def infotext_key(option):
    """An option's name in an image's infotext, which other scripts share: with the name."""
    return f"{NAME} {option.label}"


def infotext(settings, result):
    """What GPEN did, for the image's infotext: visibility, weight and model, every other
    option of the Extras section that is not at its default, the faces by release under
    auto, and a stop part way."""
    entries = {}
    for name in (name for _, rows in EXTRAS_GROUPS for row in rows for name in row):
        option = OPTIONS_BY_NAME[name]
        value = settings.value(option)
        if name in ("model", "weight", "visibility") or value != option.default:
            entries[infotext_key(option)] = round(value, 3) if option.kind == NUMBER else \
                option.to_text(value) if option.kind in LIST_KINDS else value
    entries[f"{NAME} faces"] = counted(len(result.faces), result.to_restore, result.found)
    if result.releases:
        entries[f"{NAME} releases"] = release_counts(result.releases)
    if result.interrupted:
        entries[f"{NAME} stopped"] = f"after {len(result.faces)} of {result.to_restore} faces"
    return entries
