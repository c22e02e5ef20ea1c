"""Files a person hands over through a page, taken into a folder of their own: each checked for
its size before anything reads it, named anew from its own name (no folder, no `..`, no link
followed), and a zip's members checked for their names, kinds and total size before any of them
is read. What is taken is left to the job (jobs.py) to restore as the command line would.
"""

import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from .jobs import INPUT_SUFFIXES

MOST_UPLOAD_BYTES = 500 * 2**20       # one file as uploaded, a zip included
MOST_UNPACKED_BYTES = 2 * 2**30      # a zip's members together, as their headers declare
MOST_ZIP_MEMBERS = 2000
ZIP_SUFFIX = ".zip"
_UNSAFE = re.compile(r"[^\w.\- ]+")


class UploadError(ValueError):
    """An upload refused, in words for the person who made it."""


def safe_name(name):
    """A plain file name from whatever name an upload came with: its last part only, the
    characters outside letters, digits, `._- ` replaced; refused where nothing is left."""
    last = PureWindowsPath(PurePosixPath(str(name)).name).name
    cleaned = _UNSAFE.sub("_", last).strip(" .")[-120:]
    if not cleaned:
        raise UploadError(f"'{name}': not a usable file name")
    return cleaned


def take_in(uploads, folder, kinds=(*INPUT_SUFFIXES, ZIP_SUFFIX)):
    """Copy `uploads` ((path on disk, name it came with) pairs) into `folder`: the files of
    `kinds` (name endings) as they are, a zip's unpacked where `kinds` has ZIP_SUFFIX. Returns
    the files taken, in order; refuses (UploadError) before copying anything if one upload is
    too large or of another kind."""
    folder = Path(folder)
    checked = [_checked(Path(path), safe_name(name), kinds) for path, name in uploads]
    taken = []
    for path, name in checked:
        if name.lower().endswith(ZIP_SUFFIX):
            taken += unpack_zip(path, folder, name, kinds)
        else:
            taken.append(_copy(path, _free_name(folder, name)))
    return taken


def _checked(path, name, kinds):
    if path.is_symlink() or not path.is_file():
        raise UploadError(f"{name}: not a file")
    size = path.stat().st_size
    if size > MOST_UPLOAD_BYTES:
        raise UploadError(f"{name}: {size / 2**20:.0f} MB, more than the "
                          f"{MOST_UPLOAD_BYTES // 2**20} MB a file may be")
    if not name.lower().endswith(tuple(kinds)):
        raise UploadError(f"{name}: not a file this takes "
                          f"({', '.join(kind.lstrip('.') for kind in kinds)})")
    return path, name


def unpack_zip(path, folder, name="archive.zip", kinds=INPUT_SUFFIXES):
    """The files of `kinds` (name endings) in a zip, written into `folder` under plain names;
    every member's name, kind and declared size are checked first (zip slip, links, bombs),
    and no member may turn out larger than it declared."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            _check_members(members, name)
            wanted = [info for info in members if
                      info.filename.lower().endswith(tuple(set(kinds) - {ZIP_SUFFIX}))]
            if not wanted:
                raise UploadError(f"{name}: nothing inside to restore (no "
                                  f"{', '.join(sorted(set(kinds) - {ZIP_SUFFIX}))} file)")
            written = []
            try:
                for info in wanted:
                    target = _free_name(folder, safe_name(info.filename))
                    written.append(target)
                    _extract(archive, info, target, name)
            except BaseException:
                for target in written:  # all or nothing
                    target.unlink(missing_ok=True)
                raise
            return written
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise UploadError(f"{name}: not a zip this page can read ({error})") from None


def _check_members(members, name):
    if len(members) > MOST_ZIP_MEMBERS:
        raise UploadError(f"{name}: {len(members)} files inside, more than {MOST_ZIP_MEMBERS}")
    for info in members:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if not parts or info.filename.startswith(("/", "\\")) or ".." in parts or \
                ":" in parts[0]:
            raise UploadError(f"{name}: '{info.filename}' points outside the archive; "
                              "nothing was unpacked")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"{name}: '{info.filename}' is a link; nothing was unpacked")
    declared = sum(info.file_size for info in members)
    if declared > MOST_UNPACKED_BYTES:
        raise UploadError(f"{name}: unpacks to {declared / 2**30:.1f} GB, more than "
                          f"{MOST_UNPACKED_BYTES // 2**30} GB; nothing was unpacked")


def _extract(archive, info, target, name):
    with archive.open(info) as source, open(target, "xb") as sink:
        copied = _copy_at_most(source, sink, info.file_size)
    if copied > info.file_size:
        raise UploadError(f"{name}: '{info.filename}' holds more than it declares")
    return target


def _copy_at_most(source, sink, most, chunk=2**20):
    copied = 0
    while copied <= most and (block := source.read(min(chunk, most + 1 - copied))):
        sink.write(block)
        copied += len(block)
    return copied


def _copy(path, target):
    with open(path, "rb") as source, open(target, "xb") as sink:
        shutil.copyfileobj(source, sink)
    return target


def _free_name(folder, name):
    """`name` in `folder`, numbered where a file of that name was already taken."""
    stem, suffix = Path(name).stem, Path(name).suffix
    target, number = folder / name, 1
    while target.exists():
        number += 1
        target = folder / f"{stem}-{number}{suffix}"
    return target
