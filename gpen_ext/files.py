"""Image files: read as arrays (any bit depth, float too, alpha kept, EXIF orientation applied)
and written back in the same spirit, with the WebUI's PNG text chunks preserved, never half
written.

An image's size is read from its header and checked against a pixel limit before anything is
decoded, so a small file that declares an enormous image is refused without allocating it.
Metadata that cannot be carried over is dropped with a warning; the pixels never are.
"""

import contextlib
import functools
import glob
import io
import logging
import os
import struct
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .images import row_bands
from .options import MAX_MEGAPIXELS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
FLOAT_CAPABLE = (".tif", ".tiff")
EXIF_ORIENTATION = 0x0112
DEFAULT_MAX_MEGAPIXELS = MAX_MEGAPIXELS.default
# EXIF orientation -> the transposition that turns the stored pixels upright (Pillow's names)
UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
           6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


class ImageFileError(OSError):
    """A file that cannot be read or written as an image; says which and why."""


class AnimationError(ImageFileError):
    """An image file of several frames (an animation or a multi-page file)."""


@dataclass
class ImageFile:
    pixels: np.ndarray                         # RGB/RGBA/gray, uint8, uint16 or float32, upright
    text: dict = field(default_factory=dict)   # PNG text chunks (the WebUI's "parameters")
    exif: bytes = None                         # EXIF with the orientation reset, for JPEG/WebP


def read_image(path, max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"cannot read {path}: no such file")
    return decode_image(path.read_bytes(), name=str(path), max_megapixels=max_megapixels)


def decode_image(data, name="image", max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    """Pixels (RGB order, any bit depth, upright) and metadata of an encoded image; its header
    is checked first (checked_header)."""
    header = checked_header(data, name, max_megapixels)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageFileError(f"cannot decode {name}: {str(error).strip().splitlines()[-1]}") \
            from None
    if pixels is None:
        raise ImageFileError(f"cannot decode {name}: a format or variant OpenCV cannot read")
    if pixels.ndim == 3 and pixels.shape[2] >= 3:  # OpenCV's BGR(A) as RGB(A)
        swap_red_and_blue(pixels)
    if header.mode == "LA" and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = np.ascontiguousarray(pixels[:, :, [0, 3]])  # OpenCV widens grey + alpha
    if pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    turned = header.format == "TIFF" and opencv_turns_tiffs()  # already upright then
    return ImageFile(pixels if turned else apply_orientation(pixels, header.orientation),
                     header.text, header.exif)


def checked_header(data, name="image", max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    """The header of an image that can be restored: one frame, at most `max_megapixels`;
    else ImageFileError (AnimationError for several frames), nothing decoded."""
    header = read_header(data, name, max_megapixels)
    if header.frames > 1:
        raise AnimationError(f"cannot restore {name}: it has {header.frames} frames (an "
                             f"animation or a multi-page file); extract the frames first")
    check_pixels(header.width, header.height, max_megapixels, name)
    return header


def swap_red_and_blue(pixels):
    """BGR(A) to RGB(A) or back, in place and a band of rows at a time, so that a huge image
    takes no second copy (any sample type: float64 too, which cvtColor refuses)."""
    for rows in row_bands(*pixels.shape[:2]):
        band = pixels[rows]
        band[:, :, [0, 2]] = band[:, :, [2, 0]]


@functools.cache
def opencv_turns_tiffs():
    """Whether this OpenCV turns a TIFF upright by its orientation tag as it decodes it (4.12
    and 5.0 do): a two-pixel TIFF turned half round tells."""
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(buffer, format="TIFF",
                                                          tiffinfo={EXIF_ORIENTATION: 3})
    decoded = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    return decoded is not None and int(decoded.reshape(-1)[0]) == 255


@dataclass
class Header:
    """What an image file says about itself before any pixel is decoded."""
    width: int
    height: int
    frames: int = 1
    orientation: int = 1
    format: str = ""                          # Pillow's name: PNG, JPEG, TIFF, ...
    mode: str = ""                            # Pillow's: RGB, LA, I;16, ...
    text: dict = field(default_factory=dict)  # PNG text chunks
    exif: bytes = None                        # EXIF with the orientation reset, if any


TIFF_SIGNATURES = (b"II*\0", b"MM\0*")


def read_header(data, name="image", max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    """The header through Pillow; TIFF variants Pillow cannot open (float RGB) through their
    directories of tags."""
    try:
        with pillow_limit_at_least(max_megapixels), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # beyond the limit here: refused just below
        raise ImageFileError(f"refused {name}: more than {max_megapixels} megapixels, the "
                             f"limit here") from None
    except Exception:  # noqa: BLE001 (Pillow raises many kinds for a file it cannot read)
        if data[:4] in TIFF_SIGNATURES:
            return _tiff_header(data, name)
        raise ImageFileError(f"cannot read {name}: not an image, or a format that cannot be "
                             f"read") from None
    with image:
        header = Header(*image.size, getattr(image, "n_frames", 1), format=image.format,
                        mode=image.mode)
        try:
            header.text = {key: value for key, value in getattr(image, "text", {}).items()
                           if isinstance(value, str)}
            exif = image.getexif()
            header.orientation = int(exif.get(EXIF_ORIENTATION, 1))
        except Exception as error:  # noqa: BLE001 (truncated chunks, malformed tags, ...)
            log.warning("%s: metadata not readable, dropped (%s)", name, error)
            return header
    if exif:
        try:
            header.exif = portable_exif(exif).tobytes()
        except Exception as error:  # noqa: BLE001 (malformed tags)
            log.warning("%s: EXIF cannot be written back, dropped (%s)", name, error)
    return header


# A TIFF's own layout (size, samples, strips, tiles, compression): its file's, not the
# picture's, and what keeps Pillow from writing the EXIF of a multi-strip TIFF
TIFF_LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324,
                    325, 338, 339, 340, 341, 530, 532}
SUB_DIRECTORIES = (0x8769, 0x8825)  # the Exif and GPS directories


def portable_exif(exif):
    """A copy of an image's EXIF to write into another file: upright (orientation 1), without
    the TIFF layout tags, its Exif and GPS directories carried along."""
    copy = Image.Exif()
    for tag, value in exif.items():
        if tag in SUB_DIRECTORIES:
            value = dict(exif.get_ifd(tag))
        if tag not in TIFF_LAYOUT_TAGS:
            copy[tag] = value
    copy[EXIF_ORIENTATION] = 1
    return copy


_PILLOW_LIMIT = threading.Lock()


@contextlib.contextmanager
def pillow_limit_at_least(megapixels):
    """Pillow refuses images of more than twice its MAX_IMAGE_PIXELS (179 megapixels) as
    decompression bombs; the pixel limit here is the one that counts, so Pillow's is raised
    to it for the block (and set back: a host may rely on it)."""
    with _PILLOW_LIMIT:
        before = Image.MAX_IMAGE_PIXELS
        if before is not None:
            Image.MAX_IMAGE_PIXELS = max(before, int(megapixels * 1e6) // 2 + 1)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def _tiff_header(data, name):
    """Size, pages and orientation from a TIFF's directories of tags."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2
    order = "<" if data[:2] == b"II" else ">"
    stream, offset, directories = io.BytesIO(data), struct.unpack(order + "I", data[4:8])[0], []
    try:
        while offset and len(directories) < 10_000:
            directory = ImageFileDirectory_v2(ifh=data[:8])
            stream.seek(offset)
            directory.load(stream)
            directories.append(directory)
            offset = directory.next
        first = directories[0]
        width, height = int(first[256]), int(first[257])
    except Exception:  # noqa: BLE001
        raise ImageFileError(f"cannot read {name}: a damaged TIFF") from None
    log.warning("%s: TIFF tags are not carried over", name)
    return Header(width, height, len(directories), int(first.get(EXIF_ORIENTATION, 1)), "TIFF")


def apply_orientation(pixels, orientation):
    """Turn pixels stored with an EXIF orientation tag upright."""
    upright = UPRIGHT.get(orientation)
    if upright is None:
        return pixels
    turned = {"FLIP_LEFT_RIGHT": lambda p: p[:, ::-1], "FLIP_TOP_BOTTOM": lambda p: p[::-1],
              "ROTATE_180": lambda p: p[::-1, ::-1], "ROTATE_90": lambda p: np.rot90(p, 1),
              "ROTATE_270": lambda p: np.rot90(p, -1), "TRANSPOSE": lambda p: p.swapaxes(0, 1),
              "TRANSVERSE": lambda p: np.rot90(p, 2).swapaxes(0, 1)}[upright](pixels)
    return np.ascontiguousarray(turned)


def write_image(path, image):
    """Encode for the file's type and write atomically (write_file)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageFileError(f"cannot write {path}: unknown image type '{path.suffix}'")
    write_file(path, encode_image(image, path.suffix))


def check_pixels(width, height, max_megapixels, name, frames=False):
    """Refuse an image (or a clip's `frames`) of more than `max_megapixels`, before decoding."""
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        size = f"{width}x{height} frames are" if frames else f"{width}x{height} is"
        raise ImageFileError(f"refused {name}: {size} {megapixels:.1f} megapixels, over the "
                             f"limit of {max_megapixels}")


def write_file(path, data):
    """Write `data` atomically (AtomicFile)."""
    atomic = AtomicFile(path)
    try:
        atomic.write(data)
        atomic.commit()
    except OSError as error:
        atomic.discard()
        raise ImageFileError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        atomic.discard()
        raise


class AtomicFile:
    """A file written under a temporary name in its folder (hidden, its type's suffix kept),
    and put in place only when complete, with the mode any new file gets (the umask's); a
    file discarded leaves nothing behind. Errors name the file asked for, not the temporary."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent,
                                                 prefix=f".{self.path.stem}.",
                                                 suffix=f".part{self.path.suffix}")
        except OSError as error:
            raise ImageFileError(f"cannot write {self.path}: {_why_not(self.path, error)}") \
                from None
        os.close(handle)
        self.temporary = Path(temporary)

    def write(self, data):
        with os.fdopen(os.open(self.temporary, os.O_WRONLY | os.O_TRUNC), "wb") as stream:
            stream.write(data)

    def commit(self, target=None):
        """Put the file in place (at `target` instead of its path, if given)."""
        os.chmod(self.temporary, 0o666 & ~_umask())
        os.replace(self.temporary, target or self.path)

    def discard(self):
        self.temporary.unlink(missing_ok=True)


def _why_not(path, error):
    """Why a file's folder could not be made or written into, in the user's terms."""
    blocker = next((folder for folder in path.parents if folder.is_file()), None)
    if blocker is not None:  # mkdir says only "File exists" or "Not a directory"
        return f"{blocker} is a file, not a folder"
    return error.strerror or str(error)


def leftover_temporaries(path):
    """The temporary files an AtomicFile for `path` may have left behind when its process
    was killed (nothing else names its files so)."""
    path = Path(path)
    return list(path.parent.glob(f".{glob.escape(path.stem)}.*.part{glob.escape(path.suffix)}"))


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def encode_image(image, suffix=".png"):
    """The bytes of an image file of type `suffix`, converted to what that type can hold
    (float stays float in TIFF, grey with alpha stays so where the type has it)."""
    suffix = suffix.lower()
    pixels = image.pixels
    if pixels.dtype.kind == "f" and suffix in FLOAT_CAPABLE:
        pixels = pixels.astype(np.float64 if pixels.dtype == np.float64 else np.float32)
    elif pixels.dtype.kind == "f":
        pixels = (np.clip(pixels, 0, 1) * (255 if suffix in EIGHT_BIT_ONLY else 65535) + 0.5)
        pixels = pixels.astype(np.uint8 if suffix in EIGHT_BIT_ONLY else np.uint16)
    if suffix in EIGHT_BIT_ONLY and pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float64) / np.iinfo(pixels.dtype).max * 255 + 0.5).astype(np.uint8)
    if suffix in (".jpg", ".jpeg") and pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[:, :, :-1] if pixels.shape[2] == 4 else pixels[:, :, 0]  # no alpha
    grey_alpha = pixels.ndim == 3 and pixels.shape[2] == 2
    if grey_alpha and (suffix == ".webp" or pixels.dtype != np.uint8):  # no grey + alpha there
        pixels = np.dstack([pixels[:, :, :1]] * 3 + [pixels[:, :, 1:]])
        grey_alpha = False
    eight_bit_tiff_with_exif = suffix in FLOAT_CAPABLE and image.exif and \
        pixels.dtype == np.uint8
    if suffix in (".jpg", ".jpeg", ".webp") or grey_alpha or eight_bit_tiff_with_exif:
        # Pillow keeps EXIF (e.g. the WebUI's parameters in UserComment) for JPEG, WebP and
        # 8-bit TIFF, and writes grey with alpha, which OpenCV cannot
        mode = "L" if pixels.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
        picture = Image.fromarray(pixels, mode)
        buffer = io.BytesIO()
        form = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".png": "PNG", ".tif": "TIFF",
                ".tiff": "TIFF", ".bmp": "BMP"}[suffix]
        options = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95, "method": 4}}.get(form, {})
        if image.exif and form in ("JPEG", "WEBP", "TIFF"):
            options["exif"] = image.exif
        picture.save(buffer, format=form, **options)
        data = buffer.getvalue()
    else:
        if image.exif and suffix in FLOAT_CAPABLE:
            log.warning("EXIF is not written into %s TIFF files; dropped", pixels.dtype)
        bgr = np.ascontiguousarray(pixels)
        if bgr.ndim == 3 and bgr.shape[2] >= 3:  # one copy, in the order OpenCV writes
            bgr = bgr.copy() if bgr is pixels else bgr
            swap_red_and_blue(bgr)
        ok, encoded = cv2.imencode(suffix, bgr)
        del bgr
        if not ok:
            raise ImageFileError(f"OpenCV could not encode a {suffix} image")
        data = encoded.tobytes()
    return _with_png_text(data, image.text) if suffix == ".png" and image.text else data


def _with_png_text(png, text):
    """Insert iTXt chunks (UTF-8, uncompressed) right after the PNG header chunk."""
    header_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4  # signature + IHDR chunk
    chunks = b"".join(_png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode())
                      for key, value in text.items())
    return png[:header_end] + chunks + png[header_end:]


def _png_chunk(kind, payload):
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
