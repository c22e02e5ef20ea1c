"""Image files: every orientation, header checks before decoding, odd formats, metadata."""

import io
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from gpen_ext.files import (ImageFile, ImageFileError, decode_image, encode_image, read_image,
                            write_image)


def png_with_orientation(pixels, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)  # lossless, with EXIF
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_as_pillow_does(orientation):
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (5, 8, 3), dtype=np.uint8)  # not square: turns show
    data = png_with_orientation(stored, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    picture = decode_image(data)
    assert np.array_equal(picture.pixels, expected)
    if orientation != 1:  # written back upright, so the tag must no longer turn it
        kept = Image.Exif()
        kept.load(picture.exif)
        assert kept[0x0112] == 1


def png_header_only(width, height):
    """A PNG whose header declares width x height; its pixel data is a small zlib bomb."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 << 22), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [20000, 60000])
def test_a_file_declaring_an_enormous_image_is_refused_before_decoding(side):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageFileError, match="megapixels, over the limit of 150|refused"):
        decode_image(png_header_only(side, side), "bomb.png")
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000  # nothing near the 1.2 GB and more it declares was allocated


def test_the_limit_is_the_callers(tmp_path):
    small = encode_image(ImageFile(np.zeros((100, 200, 3), np.uint8)), ".png")
    with pytest.raises(ImageFileError, match="over the limit of 0.01"):
        decode_image(small, max_megapixels=0.01)
    assert decode_image(small, max_megapixels=1).pixels.shape == (100, 200, 3)


@pytest.mark.parametrize("data,message", [
    (b"", "not an image"), (b"GIF89a not really", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),
])
def test_undecodable_data_is_a_clear_error(data, message):
    with pytest.raises(ImageFileError, match=message):
        decode_image(data)


@pytest.mark.parametrize("format_", ["GIF", "WEBP"])
def test_animations_are_refused_not_cut_to_one_frame(format_):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=format_, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageFileError, match="3 frames"):
        decode_image(buffer.getvalue(), "anim")


def test_float_tiff_stays_float_whatever_its_range(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 50, 3)) * 3 - 1).astype(np.float32)  # beyond [0, 1] both ways
    write_image(tmp_path / "hdr.tif", ImageFile(pixels))
    back = read_image(tmp_path / "hdr.tif").pixels
    assert back.dtype == np.float32 and np.array_equal(back, pixels)


def test_outputs_get_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        write_image(tmp_path / "out.png", ImageFile(np.zeros((8, 8, 3), np.uint8)))
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_multi_strip_tiff_reads_and_writes(tmp_path):
    """A TIFF of many strips, as OpenCV writes them, read and written as JPEG (.ci/run runs
    this file on the WebUI's Pillow 9.5 too)."""
    pixels = np.random.default_rng(1).integers(0, 256, (300, 40, 3), dtype=np.uint8)
    data = encode_image(ImageFile(pixels), ".tif")  # OpenCV writes rows in many strips
    assert len(Image.open(io.BytesIO(data)).tag_v2[273]) > 1
    picture = decode_image(data, "strips.tif")
    assert np.array_equal(picture.pixels, pixels)
    write_image(tmp_path / "out.jpg", picture)
    assert np.asarray(Image.open(tmp_path / "out.jpg")).shape == (300, 40, 3)


def test_a_multi_strip_tiff_turned_upright_keeps_its_exif(tmp_path):
    """Its layout tags (strips, size) are the file's, not the picture's: left out, the rest
    of the EXIF goes with the upright pixels, orientation 1."""
    tifffile = pytest.importorskip("tifffile")
    stored = np.random.default_rng(5).integers(0, 256, (30, 8, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", stored, photometric="rgb", rowsperstrip=4,
                     extratags=[(0x0112, "H", 1, 5, True), (0x013B, "s", 0, "Ada", True)])
    picture = read_image(tmp_path / "in.tif")
    assert picture.pixels.shape == (8, 30, 3)  # orientation 5 turns it on its side
    for name in ("out.jpg", "out.tif"):
        write_image(tmp_path / name, picture)
        exif = Image.open(tmp_path / name).getexif()
        assert (exif.get(0x013B), exif.get(0x0112)) == ("Ada", 1), name


def test_pillows_own_limit_gives_way_to_a_higher_one_asked_for(monkeypatch):
    """Pillow refuses more than twice its MAX_IMAGE_PIXELS whatever the caller allows: raised
    for the read to the limit asked for (here Pillow's made small), then set back."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode_image(ImageFile(np.zeros((100, 200, 3), np.uint8)), ".png")
    assert decode_image(data, max_megapixels=1).pixels.shape == (100, 200, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


OLD_PILLOW = Path(__file__).resolve().parent.parent / ".ci" / "pillow-9.5"


@pytest.mark.skipif(not OLD_PILLOW.is_dir(), reason="A1111's Pillow 9.5 is installed by .ci/run")
def test_this_file_passes_on_the_webuis_pillow():
    """A1111 1.10 and Forge ship Pillow 9.5; file handling must hold there too."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(OLD_PILLOW), str(OLD_PILLOW.parents[1])]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             __file__, "-k", "not webuis_pillow"], capture_output=True,
                            text=True, env=env, cwd=OLD_PILLOW.parents[1])
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout


@pytest.mark.parametrize("rows_per_strip", [2, 5])  # several strips, and one
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_tiff_orientation_is_turned_upright_once(orientation, rows_per_strip):
    """OpenCV turns TIFFs by their orientation tag as it decodes them (some versions): then
    the file is upright already and must not be turned again."""
    tifffile = pytest.importorskip("tifffile")
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, stored, photometric="rgb", rowsperstrip=rows_per_strip,
                     extratags=[(0x0112, "H", 1, orientation, True)])
    # Pillow's turn of the same pixels in a PNG: Pillow 9.5 turns a TIFF twice itself
    png = Image.open(io.BytesIO(png_with_orientation(stored, orientation)))
    expected = np.asarray(ImageOps.exif_transpose(png))
    assert np.array_equal(decode_image(buffer.getvalue()).pixels, expected)


def test_grey_with_alpha_stays_grey_with_alpha():
    grey_alpha = np.dstack([np.arange(60, dtype=np.uint8).reshape(6, 10),
                            np.full((6, 10), 200, np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(grey_alpha, "LA").save(buffer, format="PNG")
    pixels = decode_image(buffer.getvalue()).pixels
    assert pixels.shape == (6, 10, 2) and np.array_equal(pixels, grey_alpha)
    for suffix, mode in ((".png", "LA"), (".tif", "LA"), (".webp", "RGBA"), (".jpg", "L")):
        assert Image.open(io.BytesIO(encode_image(ImageFile(pixels), suffix))).mode == mode


def test_float64_tiff_stays_float64():
    tifffile = pytest.importorskip("tifffile")
    samples = np.random.default_rng(0).random((6, 10, 3))
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, samples)
    pixels = decode_image(buffer.getvalue()).pixels
    assert pixels.dtype == np.float64 and np.array_equal(pixels, samples)
    again = decode_image(encode_image(ImageFile(pixels), ".tif")).pixels
    assert again.dtype == np.float64 and np.array_equal(again, samples)
