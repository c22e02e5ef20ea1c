"""Image files: read as arrays (any bit depth, alpha kept, EXIF orientation applied) and written
back in the same spirit, with the WebUI's PNG text chunks preserved, never half-written."""

import io
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
EXIF_ORIENTATION = 0x0112


class ImageFileError(OSError):
    """A file that cannot be read or written as an image; says which and why."""


@dataclass
class ImageFile:
    pixels: np.ndarray                         # RGB/RGBA/gray, uint8 or uint16, upright
    text: dict = field(default_factory=dict)   # PNG text chunks (the WebUI's "parameters")
    exif: bytes = None                         # EXIF with the orientation reset, for JPEG/WebP


def read_image(path):
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"cannot read {path}: no such file")
    return decode_image(path.read_bytes(), name=str(path))


def decode_image(data, name="image"):
    """Pixels (RGB order, any bit depth, upright) and metadata of an encoded image."""
    raw = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if pixels is None:
        raise ImageFileError(f"cannot read {name}: not an image, or a format OpenCV cannot decode")
    if pixels.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
        pixels = cv2.cvtColor(pixels, code)
    text, exif = {}, None
    try:
        with Image.open(io.BytesIO(data)) as image:
            text = {k: v for k, v in getattr(image, "text", {}).items() if isinstance(v, str)}
            exif_data = image.getexif()
            pixels = apply_orientation(pixels, exif_data.get(EXIF_ORIENTATION, 1))
            if exif_data:
                exif_data[EXIF_ORIENTATION] = 1
                exif = exif_data.tobytes()
    except (OSError, SyntaxError, ValueError):
        pass  # a file Pillow cannot parse still has its pixels; it just carries no metadata
    return ImageFile(pixels, text, exif)


def apply_orientation(pixels, orientation):
    """Turn pixels stored with an EXIF orientation tag upright."""
    steps = {2: (0, True), 3: (2, False), 4: (2, True), 5: (3, True), 6: (3, False),
             7: (1, True), 8: (1, False)}
    turns, mirror = steps.get(int(orientation), (0, False))
    if mirror:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(np.rot90(pixels, turns))


def write_image(path, image):
    """Write atomically: a temporary file in the same folder, renamed when complete."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageFileError(f"cannot write {path}: unknown image type '{path.suffix}'")
    encoded = encode_image(image, path.suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(encoded)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ImageFileError(f"cannot write {path}: {error.strerror or error}") from None


def encode_image(image, suffix=".png"):
    """The bytes of an image file of type `suffix`, converted to what that type can hold."""
    suffix = suffix.lower()
    pixels = image.pixels
    if pixels.dtype.kind == "f":
        pixels = (np.clip(pixels, 0, 1) * (255 if suffix in EIGHT_BIT_ONLY else 65535) + 0.5)
        pixels = pixels.astype(np.uint8 if suffix in EIGHT_BIT_ONLY else np.uint16)
    if suffix in EIGHT_BIT_ONLY and pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float64) / np.iinfo(pixels.dtype).max * 255 + 0.5).astype(np.uint8)
    if suffix in (".jpg", ".jpeg") and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # JPEG has no alpha
    if suffix in (".jpg", ".jpeg", ".webp"):
        # Pillow keeps EXIF (e.g. the WebUI's parameters in UserComment) for these formats.
        mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
        picture = Image.fromarray(pixels, mode)
        buffer = io.BytesIO()
        options = {"quality": 95} if suffix != ".webp" else {"quality": 95, "method": 4}
        if image.exif:
            options["exif"] = image.exif
        picture.save(buffer, format="JPEG" if suffix != ".webp" else "WEBP", **options)
        return buffer.getvalue()
    bgr = pixels
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(suffix, bgr)
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
