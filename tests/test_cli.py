import json
import os
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from gpen_ext import cli
from gpen_ext.registry import KNOWN_MODELS

from helpers import DATA, ROOT
from http_server import FileServer




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
    assert cv2.imread(str(target.with_name("result_face00.png"))).shape == (64, 192, 3)
    refused = run_cli(*args)
    assert refused.returncode == 2 and "exist already" in refused.stderr
    assert run_cli(*args, "--overwrite").returncode == 0
    onto_input = run_cli("restore", source, "-o", source, "--model", workspace / "tiny.pth",
                         "--overwrite")
    assert onto_input.returncode == 2 and "refusing to overwrite an input" in onto_input.stderr


def test_restore_files_is_the_command_line_from_python(workspace):
    import gpen_ext
    from gpen_ext import RestoreOptions, UsageError, restore_files
    out = workspace / "from_python"
    code = restore_files([workspace / "photos" / "webui.png"], out, RestoreOptions(mask="box"),
                         model=workspace / "tiny.pth", landmarks=workspace / "faces.json",
                         save_faces=True, precision="fp32")
    plain = workspace / "from_cli"  # the same in a process of its own (where auto may be bf16)
    assert run_cli("restore", workspace / "photos" / "webui.png", "-o", plain, "--model",
                   workspace / "tiny.pth", "--landmarks", workspace / "faces.json", "--mask",
                   "box", "--precision", "fp32").returncode == 0
    assert code == 0 and gpen_ext.restore_files is restore_files
    assert sorted(p.name for p in out.iterdir()) == ["webui.png", "webui_face00.png"]
    assert np.array_equal(cv2.imread(str(out / "webui.png")), cv2.imread(str(plain / "webui.png")))
    with pytest.raises(UsageError, match="exist already"):
        restore_files([workspace / "photos" / "webui.png"], out, model=workspace / "tiny.pth")
    with pytest.raises(TypeError, match="unknown flag.*colour"):
        restore_files([workspace / "photos"], out, colour=True)


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
    assert result.returncode == 1
    assert f"cannot write {blocker / 'out' / 'webui.png'}: {blocker} is a file, not a folder" \
        in result.stderr
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
        local = replace(KNOWN_MODELS["GPEN-BFR-256"], urls=(server.url("/GPEN-BFR-256.pth"),))
        monkeypatch.setitem(KNOWN_MODELS, "GPEN-BFR-256", local)
        assert cli.main(["download", "GPEN-BFR-256", "--models-dir", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "GPEN-BFR-256.pth").read_bytes() == path.read_bytes()
    assert cli.main(["download", "GPEN-9"]) == 2
    assert "unknown model 'GPEN-9'" in capsys.readouterr().err


def test_a_missing_input_is_a_usage_error_before_any_model_is_fetched(workspace, tmp_path):
    models = tmp_path / "models"
    result = run_cli("restore", workspace / "photos" / "nope.png", "-o", tmp_path / "out",
                     "--models-dir", models)  # GPEN-BFR-512 is not there: it would download
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    assert not models.exists() and "Traceback" not in result.stderr


def test_missing_facexlib_weights_are_reported_once_with_what_to_do(workspace, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "GPEN-BFR-512.pth").write_bytes((workspace / "tiny.pth").read_bytes())
    result = run_cli("restore", workspace / "photos" / "webui.png", workspace / "photos" /
                     "deep.png", "-o", tmp_path / "out", "--models-dir", models, "--no-download")
    assert result.returncode == 2
    assert result.stderr.count("detection_Resnet50_Final.pth is not in") == 1  # not per file
    assert "https://github.com/xinntao/facexlib/releases/download/" in result.stderr
    assert str(models) in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("landmarks,message", [
    ('[["a", "b"], [1, 2], [3, 4], [5, 6], [7, 8]]', "must be numbers"),
    ("[[[1, 2], [3, 4], [5, 6], [7, 8], [9]]]", "different lengths"),
    ("[[[1, 2], [3, 4], [5, 6], [7, 8], [NaN, 1]]]", "finite"),
    ("[[[1, 2], [3, 4], [5, 6], [7, 8], [Infinity, 1]]]", "finite"),
    ("[[[1, 2], [3, 4], [5, 6]]]", "shape (1, 3, 2)"),
    ('{"faces": []}', "under 'landmarks'"),
])
def test_bad_landmark_files_are_usage_errors(workspace, tmp_path, landmarks, message):
    path = tmp_path / "faces.json"
    path.write_text(landmarks)
    result = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "o.png",
                     "--model", workspace / "tiny.pth", "--landmarks", path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.png").exists()


def test_one_bare_face_and_no_faces_are_landmark_files_too(workspace, tmp_path):
    one = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "one.png",
                  "--model", workspace / "tiny.pth", "--mask", "box",
                  "--landmarks", DATA / "astronaut_landmarks.json")
    assert one.returncode == 0 and "1 face(s)" in one.stderr, one.stderr
    (tmp_path / "none.json").write_text("[]")
    none = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "none.png",
                   "--model", workspace / "tiny.pth", "--landmarks", tmp_path / "none.json")
    assert none.returncode == 0 and "0 face(s)" in none.stderr, none.stderr
    assert np.array_equal(cv2.imread(str(tmp_path / "none.png")),
                          cv2.imread(str(workspace / "photos" / "webui.png")))


def test_outputs_in_a_type_that_cannot_be_written_are_refused(workspace, tmp_path):
    result = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "x.gif",
                     "--model", workspace / "tiny.pth")
    assert result.returncode == 2 and "cannot write .gif" in result.stderr
    assert not (tmp_path / "x.gif").exists()


def test_an_image_over_the_pixel_limit_fails_alone(workspace, tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((1000, 1100, 3), np.uint8))
    result = run_cli("restore", tmp_path / "big.png", workspace / "photos" / "webui.png", "-o",
                     tmp_path / "out", "--model", workspace / "tiny.pth", "--max-megapixels", "1",
                     "--landmarks", workspace / "faces.json", "--mask", "box")
    assert result.returncode == 1 and "1100x1000 is 1.1 megapixels, over the limit of 1" in \
        result.stderr and (tmp_path / "out" / "webui.png").exists()
    refused = run_cli("restore", tmp_path / "big.png", "-o", tmp_path / "o.png", "--model",
                      workspace / "tiny.pth", "--max-megapixels", "0")
    assert refused.returncode == 2 and "max_megapixels must be in" in refused.stderr


def test_float_tiff_in_float_out_with_everything_away_from_the_face_kept(
        workspace, tmp_path, astronaut):
    hdr = astronaut.astype(np.float32) / 255 * 3 - 1  # values from -1 to 2
    cv2.imwrite(str(tmp_path / "hdr.tif"), hdr[..., ::-1])
    result = run_cli("restore", tmp_path / "hdr.tif", "-o", tmp_path / "out.tif", "--model",
                     workspace / "tiny.pth", "--landmarks", workspace / "faces.json",
                     "--mask", "box")
    assert result.returncode == 0, result.stderr
    out = cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert out.dtype == np.float32 and not np.array_equal(out, hdr)
    assert np.array_equal(out[400:], hdr[400:]) and out.min() < -0.5 and out.max() > 1.5


def test_sigterm_while_writing_leaves_no_temporary_file(workspace, tmp_path, monkeypatch):
    import signal
    from gpen_ext import files
    real_fdopen = files.os.fdopen

    class TerminatedMidWrite:
        def __init__(self, *args, **kwargs):
            self.stream = real_fdopen(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def write(self, data):
            self.stream.write(data[:100])
            os.kill(os.getpid(), signal.SIGTERM)  # arrives as the file is being written

    monkeypatch.setattr(files.os, "fdopen", TerminatedMidWrite)
    out = tmp_path / "out"
    code = cli.main(["restore", str(workspace / "photos" / "webui.png"), "-o", str(out),
                     "--model", str(workspace / "tiny.pth"), "--mask", "box",
                     "--landmarks", str(workspace / "faces.json")])
    assert code == 143 and list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is not cli._terminate  # the handler is put back


def test_a_folder_run_names_each_failed_file_and_why_at_the_end(workspace, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = (workspace / "photos" / "webui.png").read_bytes()
    (folder / "good.png").write_bytes(good)
    (folder / "cut.png").write_bytes(good[:len(good) // 3])
    frames = [Image.new("RGB", (32, 32), (index * 40, 0, 0)) for index in range(3)]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:])
    result = run_cli("restore", folder, "-o", tmp_path / "out", "--model", workspace / "tiny.pth",
                     "--landmarks", workspace / "faces.json", "--mask", "box")
    assert result.returncode == 1
    summary = result.stderr[result.stderr.index("file(s) restored"):]
    assert "2 failed:" in summary
    assert f"{folder / 'cut.png'}: cannot decode" in summary
    assert f"{folder / 'moving.gif'}: cannot restore" in summary and "--as-video" in summary


@pytest.mark.parametrize("landmarks,message", [
    ("[" * 950 + "]" * 950, "nested deeper"),
    ("[[[" + "1" + "0" * 400 + ", 1]," + "[1, 2]," * 3 + "[1, 2]]]", "too large"),
    (json.dumps([[[1, 2]] * 5] * 101), "at most 100"),
])
def test_hostile_landmark_files_are_usage_errors(workspace, tmp_path, landmarks, message):
    (tmp_path / "faces.json").write_text(landmarks)
    result = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "x.png",
                     "--model", workspace / "tiny.pth", "--landmarks", tmp_path / "faces.json")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_sliver_of_an_image_is_restored_without_an_error(workspace, tmp_path, face_weights):
    cv2.imwrite(str(tmp_path / "sliver.png"), np.full((8, 32000, 3), 120, np.uint8))
    result = run_cli("restore", tmp_path / "sliver.png", "-o", tmp_path / "out.png", "--model",
                     workspace / "tiny.pth", "--mask", "box", "--detection-model",
                     "retinaface_mobile0.25", "--models-dir", face_weights)
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (8, 32000, 3)


def test_grey_with_alpha_and_float64_files_keep_their_kind(workspace, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    grey_alpha = np.dstack([np.full((64, 64), 90, np.uint8), np.full((64, 64), 200, np.uint8)])
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "ga.png")
    tifffile.imwrite(tmp_path / "deep.tif", np.random.default_rng(0).random((64, 64, 3)))
    for name in ("ga.png", "deep.tif"):
        result = run_cli("restore", tmp_path / name, "-o", tmp_path / f"out_{name}", "--model",
                         workspace / "tiny.pth", "--landmarks", workspace / "faces.json",
                         "--mask", "box")
        assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out_ga.png").mode == "LA"
    assert tifffile.imread(tmp_path / "out_deep.tif").dtype == np.float64


@pytest.mark.parametrize("flag", ["--min-face-size", "--max-faces", "--batch-size",
                                  "--faces-per-image", "--video-quality", "--ray-workers"])
def test_absurd_numbers_are_usage_errors_not_tracebacks(workspace, tmp_path, flag):
    result = run_cli("restore", workspace / "photos" / "webui.png", "-o", tmp_path / "o.png",
                     "--model", workspace / "tiny.pth", flag, "9" * 400)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert flag.lstrip("-").replace("-", "_") in result.stderr and not (tmp_path / "o.png").exists()


def test_absurd_numbers_from_python_are_usage_errors(workspace, tmp_path):
    from gpen_ext import UsageError, restore_files
    for flags in ({"min_face_size": 10 ** 400}, {"faces_per_image": 10 ** 400},
                  {"video_quality": -10 ** 400}):
        with pytest.raises(UsageError, match="must be in"):
            restore_files([workspace / "photos" / "webui.png"], tmp_path / "o.png",
                          model=workspace / "tiny.pth", **flags)


def test_a_ray_manifest_that_is_a_folder_is_refused_before_any_work(workspace, tmp_path,
                                                                   face_weights):
    (tmp_path / "taken").mkdir()
    code = cli.main(["restore", str(workspace / "photos"), "-o", str(tmp_path / "out"),
                     "--model", str(workspace / "tiny.pth"), "--models-dir",
                     str(face_weights), "--no-download", "--landmarks",
                     str(workspace / "faces.json"), "--ray", "local", "--manifest",
                     str(tmp_path / "taken")])
    assert code == cli.EXIT_USAGE
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (3, np.uint8), (3, np.uint16)])
def test_a_huge_image_is_restored_in_memory_near_its_own_size(workspace, tmp_path, channels,
                                                              dtype):
    """Only the regions around faces change: the rest of a 20-megapixel scan is copied, never
    worked on in float (grey once took 40 bytes a pixel). Arrays' memory at its peak, from
    decoding to the written file, at most 12 bytes a pixel for 8-bit samples (twice for 16)."""
    import tracemalloc
    height, width = 4000, 5000
    ramp = (np.arange(height)[:, None] * 7 + np.arange(width)[None] * 3) % 251
    pixels = (ramp * (257 if dtype == np.uint16 else 1)).astype(dtype)
    if channels == 3:
        pixels = np.dstack([pixels, pixels[::-1], pixels[:, ::-1]])
    cv2.imwrite(str(tmp_path / "scan.png"), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del pixels, ramp
    cx, cy, side = width / 2, height / 2, 300
    face = [[cx - side / 2, cy - side / 3], [cx + side / 2, cy - side / 3], [cx, cy],
            [cx - side / 3, cy + side / 2], [cx + side / 3, cy + side / 2]]
    (tmp_path / "face.json").write_text(json.dumps([face]))
    tracemalloc.start()
    try:
        code = cli.main(["restore", str(tmp_path / "scan.png"), "-o", str(tmp_path / "out"),
                         "--model", str(workspace / "tiny.pth"), "--landmarks",
                         str(tmp_path / "face.json"), "--mask", "box"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0 and (tmp_path / "out" / "scan.png").is_file()
    per_pixel = peak / (height * width) / np.dtype(dtype).itemsize
    assert per_pixel <= 12, f"{per_pixel:.1f} bytes a pixel"


def test_ray_asked_for_but_not_installed_is_a_usage_error_before_any_work(workspace, tmp_path):
    """Where `import ray` fails (a stand-in package that says so), --ray says what to install
    and exits 2 before any model is fetched or file written, with no traceback."""
    fake = tmp_path / "no_ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray (stand-in)')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(ROOT)]))
    result = subprocess.run(
        [sys.executable, "-m", "gpen_ext", "restore", str(workspace / "photos" / "webui.png"),
         "-o", str(tmp_path / "out"), "--model", "GPEN-BFR-2048", "--models-dir",
         str(tmp_path / "models"), "--ray"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "--ray needs Ray" in result.stderr and "requirements-ray.txt" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "models").exists()


def test_the_help_the_settings_and_the_tracker_load_without_torch():
    """The layers that handle settings, files and faces (issue 42): `--help`, `models`, the
    options every host reads and the tracker import no torch, so they answer at once."""
    code = ("import sys, gpen_ext, gpen_ext.cli, gpen_ext.options, gpen_ext.tracking, "
            "gpen_ext.scheduling, gpen_ext.faces\n"
            "gpen_ext.cli.build_parser().format_help()\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    checked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("command", ["restore", "models", "download", "app"])
def test_every_commands_help_prints(command, capsys):
    """Help texts come from the descriptions, which may hold a per cent sign (argparse's
    format character)."""
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out
