import hashlib
import io

import pytest
import torch

from gpen_ext import download as downloads
from gpen_ext.checkpoints import verify_checkpoint
from gpen_ext.download import DownloadError, download_file, ensure_model
from gpen_ext.registry import KNOWN_MODELS, default_models_dir, installed_checkpoints, resolve_model

from http_server import FileServer


@pytest.fixture(scope="module")
def checkpoint_bytes(tiny_state_dict):
    buffer = io.BytesIO()
    torch.save(tiny_state_dict, buffer)
    return buffer.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_downloads_verifies_and_records_hash(tmp_path, checkpoint_bytes):
    with FileServer({"/m.pth": checkpoint_bytes}) as server:
        path = download_file([server.url("/m.pth")], tmp_path / "m.pth",
                             sha256=sha(checkpoint_bytes), verify=verify_checkpoint, progress=False)
    assert path.read_bytes() == checkpoint_bytes
    assert (tmp_path / "m.pth.sha256").read_text().split()[0] == sha(checkpoint_bytes)
    assert installed_checkpoints(tmp_path) == [path]


def test_interrupted_transfer_resumes_with_a_range_request(tmp_path, checkpoint_bytes):
    with FileServer({"/m.pth": checkpoint_bytes}, cut_after={"/m.pth": 4000}) as server:
        download_file([server.url("/m.pth")], tmp_path / "m.pth", sha256=sha(checkpoint_bytes),
                      verify=verify_checkpoint, progress=False)
        assert server.requests == [("/m.pth", None), ("/m.pth", "bytes=4000-")]
    assert (tmp_path / "m.pth").read_bytes() == checkpoint_bytes
    assert not (tmp_path / "m.pth.part").exists()


def test_partial_file_is_never_where_the_loader_looks(tmp_path, checkpoint_bytes, monkeypatch):
    monkeypatch.setattr(downloads, "TIMEOUT_S", 5)
    with FileServer({"/m.pth": checkpoint_bytes}, cut_after={"/m.pth": 4000}) as server:
        with pytest.raises(DownloadError):
            download_file([server.url("/m.pth")], tmp_path / "m.pth", attempts=1, progress=False)
        assert not (tmp_path / "m.pth").exists()
        assert installed_checkpoints(tmp_path) == []
        assert (tmp_path / "m.pth.part").stat().st_size == 4000
        # the next call resumes from the kept part
        download_file([server.url("/m.pth")], tmp_path / "m.pth", verify=verify_checkpoint,
                      progress=False)
        assert server.requests[-1] == ("/m.pth", "bytes=4000-")
    assert (tmp_path / "m.pth").read_bytes() == checkpoint_bytes


def test_wrong_bytes_are_rejected_and_the_next_source_used(tmp_path, checkpoint_bytes):
    files = {"/bad.pth": b"<html>not a model</html>", "/good.pth": checkpoint_bytes}
    with FileServer(files) as server:
        path = download_file([server.url("/bad.pth"), server.url("/good.pth")],
                             tmp_path / "m.pth", verify=verify_checkpoint, progress=False)
    assert path.read_bytes() == checkpoint_bytes


def test_hash_mismatch_and_404_fail_with_urls_and_folder(tmp_path, checkpoint_bytes):
    with FileServer({"/m.pth": checkpoint_bytes}) as server:
        urls = [server.url("/m.pth"), server.url("/missing.pth")]
        with pytest.raises(DownloadError) as error:
            download_file(urls, tmp_path / "m.pth", sha256="0" * 64, progress=False)
    message = str(error.value)
    assert "SHA-256 mismatch" in message and "404" in message
    assert urls[0] in message and urls[1] in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []


def test_structure_is_verified_even_without_a_known_hash(tmp_path):
    not_gpen = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3)}, not_gpen)
    with FileServer({"/m.pth": not_gpen.getvalue()}) as server:
        with pytest.raises(DownloadError, match="not a valid checkpoint"):
            download_file([server.url("/m.pth")], tmp_path / "m.pth", verify=verify_checkpoint,
                          progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_message_names_urls_and_folder(tmp_path):
    with pytest.raises(DownloadError) as error:
        download_file(["http://127.0.0.1:9/GPEN-BFR-512.pth"], tmp_path / "GPEN-BFR-512.pth",
                      attempts=1, progress=False)
    assert "http://127.0.0.1:9/GPEN-BFR-512.pth" in str(error.value)
    assert f"place it in {tmp_path}" in str(error.value)


def test_an_unusable_models_folder_is_named(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(DownloadError, match="cannot create the models folder"):
        download_file(["http://127.0.0.1:9/m.pth"], blocker / "GPEN" / "m.pth", progress=False)


def test_ensure_model_finds_installed_files_and_downloads_only_releases(tmp_path,
                                                                       checkpoint_bytes):
    (tmp_path / "GPEN-BFR-256.pth").write_bytes(checkpoint_bytes)
    assert ensure_model(resolve_model("256", tmp_path)) == tmp_path / "GPEN-BFR-256.pth"
    with pytest.raises(DownloadError, match="GPEN-BFR-512.pth is not installed"):
        ensure_model(resolve_model("GPEN-BFR-512", tmp_path), download=False)


def test_registry_and_models_folder(monkeypatch, tmp_path):
    assert sorted(KNOWN_MODELS) == ["GPEN-BFR-1024", "GPEN-BFR-2048", "GPEN-BFR-256",
                                    "GPEN-BFR-512"]
    assert KNOWN_MODELS["GPEN-BFR-512"].sha256.startswith("f1002c41")
    assert all(info.urls for info in KNOWN_MODELS.values())
    monkeypatch.setenv("GPEN_MODELS_DIR", str(tmp_path))
    assert default_models_dir() == tmp_path
    monkeypatch.delenv("GPEN_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_models_dir() == tmp_path / "cache" / "gpen"
