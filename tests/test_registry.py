"""One model resolver and one listing for every host."""

import pytest

from gpen_ext.registry import UnknownModelError, list_models, resolve_model


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(b"x")
    (tmp_path / "finetuned.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    return tmp_path


@pytest.mark.parametrize("name", ["GPEN-BFR-512", "gpen-bfr-512", "512", "GPEN-512",
                                  "GPEN_BFR_512", " GPEN-BFR-512.pth "])
def test_a_release_resolves_by_any_of_its_names(folder, name):
    model = resolve_model(name, folder)
    assert model.name == "GPEN-BFR-512" and model.release.size == 512
    assert model.path == folder / "GPEN-BFR-512.pth"  # where it is, or will be downloaded to


def test_files_in_the_folder_resolve_and_paths_only_for_local_users(folder, tmp_path_factory):
    assert resolve_model("finetuned.safetensors", folder).path == folder / "finetuned.safetensors"
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "mine.pth"
    elsewhere.write_bytes(b"x")
    assert resolve_model(str(elsewhere), folder, allow_paths=True).path == elsewhere
    for name in (str(elsewhere), "../" + folder.name + "/finetuned.safetensors", "notes.txt",
                 "missing.pth", "/etc/passwd"):
        with pytest.raises(UnknownModelError, match="unknown model"):
            resolve_model(name, folder)


def test_names_that_no_file_system_takes_are_refused_plainly(folder, tmp_path):
    for name in ("", "   ", "x" * 5000 + ".pth"):
        with pytest.raises(UnknownModelError, match="1 to 255 characters"):
            resolve_model(name, folder)
    deep = tmp_path.joinpath(*["d" * 50] * 6)  # a local path may be longer than a file name
    deep.mkdir(parents=True)
    (deep / "m.pth").write_bytes(b"x")
    assert resolve_model(str(deep / "m.pth"), folder, allow_paths=True).path == deep / "m.pth"


def test_the_listing_names_files_relative_to_the_folder(folder):
    listings = {item.name: item for item in list_models(folder)}
    assert list(listings)[:4] == ["GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024",
                                  "GPEN-BFR-2048"]
    assert listings["GPEN-BFR-256"].installed and not listings["GPEN-BFR-512"].installed
    assert listings["finetuned.safetensors"].file == "finetuned.safetensors"
    assert "notes.txt" not in listings
    assert all("/" not in item.file for item in listings.values())


def test_several_folders_are_searched_in_order(folder, tmp_path_factory):
    first = tmp_path_factory.mktemp("first")
    (first / "mine.pth").write_bytes(b"x")
    folders = [first, folder]
    assert resolve_model("256", folders).path == folder / "GPEN-BFR-256.pth"  # where it is
    assert resolve_model("512", folders).path == first / "GPEN-BFR-512.pth"  # to download
    assert resolve_model("finetuned.safetensors", folders).path == folder / "finetuned.safetensors"
    assert resolve_model("mine.pth", folders).path == first / "mine.pth"
    with pytest.raises(UnknownModelError, match="mine.pth, finetuned.safetensors|"
                       "finetuned.safetensors, mine.pth"):
        resolve_model("missing.pth", folders)
