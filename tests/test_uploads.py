"""What a page takes from an upload (gpen_ext/uploads.py): plain names, sizes checked before
reading, zips checked member by member before any is written."""

import os
import stat
import zipfile

import pytest

from gpen_ext import uploads
from gpen_ext.uploads import UploadError, safe_name, take_in, unpack_zip

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(64)


def test_names_lose_their_folders_and_odd_characters():
    assert safe_name("../../etc/passwd.png") == "passwd.png"
    assert safe_name("C:\\Users\\me\\photo 1.jpg") == "photo 1.jpg"
    assert safe_name("/abs/path/a;b|c.png") == "a_b_c.png"
    assert safe_name(".hidden.png") == "hidden.png"
    for name in ("..", ".", "", "/", " . "):
        with pytest.raises(UploadError, match="not a usable file name"):
            safe_name(name)


def test_files_are_copied_under_plain_names_and_numbered_apart(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.png").write_bytes(PHOTO)
    folder = tmp_path / "taken"
    folder.mkdir()
    taken = take_in([(source / "a.png", "../a.png"), (source / "a.png", "x/a.png")], folder)
    assert [path.name for path in taken] == ["a.png", "a-2.png"]
    assert all(path.parent == folder and path.read_bytes() == PHOTO for path in taken)


def test_too_large_other_kinds_and_links_are_refused_before_anything_is_copied(
        tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(PHOTO)
    (tmp_path / "notes.txt").write_text("hi")
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(UploadError, match="notes.txt: not a file this takes"):
        take_in([(tmp_path / "a.png", "a.png"), (tmp_path / "notes.txt", "notes.txt")], folder)
    with pytest.raises(UploadError, match="link.png: not a file"):
        take_in([(tmp_path / "link.png", "link.png")], folder)
    monkeypatch.setattr(uploads, "MOST_UPLOAD_BYTES", 10)
    with pytest.raises(UploadError, match="a.png: 0 MB, more than the 0 MB"):
        take_in([(tmp_path / "a.png", "a.png")], folder)
    assert list(folder.iterdir()) == []


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("member", ["../evil.png", "/etc/evil.png", "a/../../evil.png",
                                    "C:/evil.png", "..\\evil.png"])
def test_zip_slip_is_refused_with_nothing_unpacked(tmp_path, member):
    archive = _zip(tmp_path / "photos.zip", [("fine.png", PHOTO), (member, PHOTO)])
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(UploadError, match="points outside the archive; nothing was unpacked"):
        unpack_zip(archive, folder, "photos.zip")
    assert list(folder.iterdir()) == [] and not (tmp_path / "evil.png").exists()


def test_a_zip_with_a_link_inside_is_refused(tmp_path):
    link = zipfile.ZipInfo("face.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "links.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UploadError, match="'face.png' is a link"):
        unpack_zip(tmp_path / "links.zip", tmp_path, "links.zip")


def test_a_zip_bomb_is_refused_from_its_headers(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "bomb.zip", [(f"{i}.png", bytes(2**20)) for i in range(3)])
    assert archive.stat().st_size < 20_000  # 3 MB of zeros packed small
    monkeypatch.setattr(uploads, "MOST_UNPACKED_BYTES", 2**21)
    with pytest.raises(UploadError, match="unpacks to 0.0 GB, more than 0 GB"):
        unpack_zip(archive, tmp_path, "bomb.zip")
    monkeypatch.setattr(uploads, "MOST_ZIP_MEMBERS", 2)
    with pytest.raises(UploadError, match="3 files inside, more than 2"):
        unpack_zip(archive, tmp_path, "bomb.zip")


def test_a_member_larger_than_it_declares_is_cut_off_and_refused(tmp_path):
    archive = _zip(tmp_path / "liar.zip", [("face.png", PHOTO * 100)])
    data = bytearray(archive.read_bytes())
    size = len(PHOTO * 100).to_bytes(4, "little")
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # uncompressed size in both headers
        start = data.index(header)
        at = start + (22 if header == b"PK\x03\x04" else 24)
        assert data[at:at + 4] == size
        data[at:at + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(UploadError, match="holds more than it declares|not a zip"):
        unpack_zip(archive, folder, "liar.zip")
    assert list(folder.iterdir()) == []


def test_a_zip_takes_only_the_kinds_asked_for_and_says_when_none(tmp_path):
    archive = _zip(tmp_path / "mixed.zip", [("a/one.png", PHOTO), ("notes.txt", b"x"),
                                            ("b/one.png", PHOTO)])
    folder = tmp_path / "taken"
    folder.mkdir()
    taken = take_in([(archive, "mixed.zip")], folder, (".png", ".zip"))
    assert [path.name for path in taken] == ["one.png", "one-2.png"]
    with pytest.raises(UploadError, match="nothing inside to restore"):
        unpack_zip(archive, folder, "mixed.zip", (".mp4",))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UploadError, match="broken.zip: not a zip this page can read"):
        take_in([(tmp_path / "broken.zip", "broken.zip")], folder)
