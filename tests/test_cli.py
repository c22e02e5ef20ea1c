import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from gpen_ext import cli
from gpen_ext.files import read_image
from gpen_ext.registry import KNOWN_MODELS, ModelInfo

from helpers import HERE
from http_server import FileServer

ROOT = HERE.parent


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gpen_ext", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_state_dict, astronaut, astronaut_landmarks):
    folder = tmp_path_factory.mktemp("cli")
    torch.save(tiny_state_dict, folder / "tiny.pth")
    photos = folder / "photos"
    photos.mkdir()
    rgba16 = np.dstack([astronaut.astype(np.uint16) * 257,
                        np.full(astronaut.shape[:2], 40000, np.uint16)])
    cv2.imwrite(str(photos / "deep.png"), cv2.cvtColor(rgba16, cv2.COLOR_RGBA2BGRA))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a photo of an astronaut\nSteps: 20, Sampler: Euler")
    Image.fromarray(astronaut).save(photos / "webui.png", pnginfo=info)
    (photos / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "faces.json").write_text(json.dumps({"landmarks": [astronaut_landmarks.tolist()]}))
    return folder


def test_restores_a_folder_keeping_depth_alpha_and_parameters(workspace):
    out = workspace / "out_folder"
    result = run_cli("restore", workspace / "photos", "-o", out, "--model", workspace / "tiny.pth",
                     "--landmarks", workspace / "faces.json", "--mask", "box")
    assert result.returncode == 1, result.stderr  # broken.jpg failed, the rest went on
    assert "broken.jpg" in result.stderr and "2 file(s) restored, 2 face(s)" in result.stderr
    assert "1 failed" in result.stderr and not (out / "broken.jpg").exists()
    deep = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(workspace / "photos" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (512, 512, 4)
    assert (deep[..., 3] == 40000).all() and not np.array_equal(deep, original)
    assert Image.open(out / "webui.png").text["parameters"].startswith("a photo of an astronaut")
    assert sorted(p.name for p in out.iterdir()) == ["deep.png", "webui.png"]


def test_single_file_with_extras_and_the_overwrite_rules(workspace):
    source = workspace / "photos" / "webui.png"
    target = workspace / "single" / "result.png"
    args = ["restore", source, "-o", target, "--model", workspace / "tiny.pth", "--landmarks",
            workspace / "faces.json", "--mask", "box", "--save-faces", "--comparison"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "1 file(s) restored, 1 face(s)" in first.stderr
    assert cv2.imread(str(target.with_name("result_comparison.png"))).shape == (512, 1024, 3)
    assert cv2.imread(str(target.with_name("result_face00.png"))).shape == (64, 128, 3)
    refused = run_cli(*args)
    assert refused.returncode == 2 and "exist already" in refused.stderr
    assert run_cli(*args, "--overwrite").returncode == 0
    onto_input = run_cli("restore", source, "-o", source, "--model", workspace / "tiny.pth",
                         "--overwrite")
    assert onto_input.returncode == 2 and "refusing to overwrite an input" in onto_input.stderr


def test_fail_fast_stops_at_the_first_failure(workspace):
    out = workspace / "fast"
    result = run_cli("restore", workspace / "photos" / "broken.jpg", workspace / "photos" / "webui.png",
                     "-o", out, "--model", workspace / "tiny.pth", "--fail-fast", "--mask", "box",
                     "--landmarks", workspace / "faces.json")
    assert result.returncode == 1 and not out.joinpath("webui.png").exists()


def test_reference_tool_spelling_restores_aligned_crops(workspace):
    crop = cv2.resize(cv2.imread(str(workspace / "photos" / "webui.png")), (100, 100))
    cv2.imwrite(str(workspace / "crop.png"), crop)
    result = run_cli("--input", workspace / "crop.png", "--output", workspace / "crop_out.png",
                     "--model_path", workspace / "tiny.pth", "--size", "64")
    assert result.returncode == 0, result.stderr
    restored = cv2.imread(str(workspace / "crop_out.png"))
    assert restored.shape == (100, 100, 3) and not np.array_equal(restored, crop)
    wrong_size = run_cli("--input", workspace / "crop.png", "--output", workspace / "x.png",
                         "--model_path", workspace / "tiny.pth", "--size", "512")
    assert wrong_size.returncode == 2 and "does not match the checkpoint (64)" in wrong_size.stderr


def test_unknown_and_missing_models_fail_cleanly(workspace):
    unknown = run_cli("restore", workspace / "photos" / "webui.png", "-o", workspace / "u.png",
                      "--model", "GPEN-BFR-4096")
    assert unknown.returncode == 2 and "unknown model 'GPEN-BFR-4096'" in unknown.stderr
    empty = workspace / "no_models"
    offline = run_cli("restore", workspace / "photos" / "webui.png", "-o", workspace / "m.png",
                      "--models-dir", empty, "--no-download")
    assert offline.returncode == 2 and f"place it in {empty}" in offline.stderr
    assert "Traceback" not in unknown.stderr + offline.stderr
    assert not (workspace / "u.png").exists() and not (workspace / "m.png").exists()


def test_unwritable_output_leaves_nothing_behind(workspace):
    blocker = workspace / "blocker"
    blocker.write_text("a file where a folder should be")
    result = run_cli("restore", workspace / "photos" / "webui.png", "-o", blocker / "out",
                     "--model", workspace / "tiny.pth", "--landmarks", workspace / "faces.json",
                     "--mask", "box")
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert blocker.read_text() == "a file where a folder should be"


def test_models_lists_installed_checkpoints(workspace, tmp_path, tiny_state_dict):
    torch.save(tiny_state_dict, tmp_path / "GPEN-BFR-256.pth")
    torch.save(tiny_state_dict, tmp_path / "my-finetune.pth")
    result = run_cli("models", "--models-dir", tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert any("GPEN-BFR-256" in line and " installed" in line for line in lines)
    assert any("GPEN-BFR-512" in line and "not installed" in line for line in lines)
    assert any("my-finetune" in line for line in lines)


def test_download_command_fetches_and_verifies(monkeypatch, tmp_path, capsys, tiny_state_dict):
    path = tmp_path / "payload.pth"
    torch.save(tiny_state_dict, path)
    with FileServer({"/GPEN-BFR-256.pth": path.read_bytes()}) as server:
        local = ModelInfo("GPEN-BFR-256", 256, (server.url("/GPEN-BFR-256.pth"),))
        monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-256", local)
        assert cli.main(["download", "GPEN-BFR-256", "--models-dir", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "GPEN-BFR-256.pth").read_bytes() == path.read_bytes()
    assert cli.main(["download", "GPEN-9"]) == 2
    assert "unknown model 'GPEN-9'" in capsys.readouterr().err


def test_exif_orientation_is_applied(tmp_path, astronaut):
    tall = np.ascontiguousarray(astronaut[:, :300])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(tall).save(tmp_path / "sideways.jpg", exif=exif, quality=98)
    picture = read_image(tmp_path / "sideways.jpg")
    assert picture.pixels.shape == (300, 512, 3)
    expected = np.rot90(tall, -1)
    assert np.abs(picture.pixels.astype(float) - expected).mean() < 3
    kept = Image.Exif()
    kept.load(picture.exif)
    assert kept[0x0112] == 1  # written back upright, so the tag must no longer rotate it
