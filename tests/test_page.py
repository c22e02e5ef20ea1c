"""The page of `python -m gpen_ext app`: its work without gradio (page_session.py), its command
line, and the page itself served by gradio 6 and driven in headless Chromium (Playwright):
upload the sample photo, see the faces numbered, choose face 1 by clicking it, restore,
compare, download, and a bad upload told without breaking the page."""

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from gpen_ext.cli import main
from gpen_ext.face_models import FaceModels
from gpen_ext.files import read_image
from gpen_ext.hosts.page_session import PageSession, PageWork
from gpen_ext.options import RestoreOptions, Settings
from gpen_ext.pipeline import detect_faces
from helpers import ROOT, SOLVAY, write_clip

APP_PYTHON = os.environ.get("GPEN_APP_PYTHON", str(ROOT / ".ci" / "app-venv" / "bin" / "python"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DETECTOR = "retinaface_mobile0.25"  # the rigged one of face_weights.py
PAGE_TEMP = {}  # a served page's address -> its server's temporary folder
SETTINGS = Settings("GPEN-BFR-256", RestoreOptions(detection_model=DETECTOR, parser="bisenet"))


@pytest.fixture(scope="module")
def models(tmp_path_factory, face_weights, tiny_state_dict):
    """The rigged detector, random parsers, and the tiny network as GPEN-BFR-256."""
    folder = tmp_path_factory.mktemp("page-models")
    for path in face_weights.iterdir():
        shutil.copy(path, folder / path.name)
    torch.save(tiny_state_dict, folder / "GPEN-BFR-256.pth")
    return folder


def _face_one(models):
    faces = detect_faces(FaceModels(models, download=False), read_image(SOLVAY).pixels,
                         SETTINGS.options)
    return np.array(faces[1].box)


def _changed_only_around(before, after, box):
    """The pixels that changed all lie within the face's box grown by its own size."""
    changed = np.argwhere((before != after).any(axis=2))
    assert len(changed), "nothing was restored"
    size = box[2:] - box[:2]
    low, high = box[:2] - size, box[2:] + size
    assert (changed[:, ::-1] >= low).all() and (changed[:, ::-1] <= high).all()


def test_the_work_restores_the_chosen_face_in_the_files_format(models, tmp_path):
    work, tab = PageWork(models, torch.device("cpu")), PageSession()
    try:
        tab.take([(SOLVAY, SOLVAY.name)], "photos")
        shown, boxes = work.numbered(tab.files["photos"][0], SETTINGS)
        assert shown.dtype == np.uint8 and shown.shape == (568, 1328, 3) and len(boxes) > 1
        settings = SETTINGS.overlay(face_indices=(1,))
        lines = work.restore_photos(tab, settings, lambda fraction, words: None)
        assert lines == ["Solvay_conference_1927.png: 1 of 1 face(s) restored (86 found)"]
        result = cv2.imread(str(tab.results[tab.files["photos"][0]]), cv2.IMREAD_UNCHANGED)
        original = cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED)
        assert result.shape == original.shape == (568, 1328, 4)  # alpha kept
        _changed_only_around(original, result, _face_one(models))
        assert zipfile.ZipFile(tab.archive()).namelist() == ["Solvay_conference_1927.png"]
    finally:
        tab.close()
    assert not tab.folder.exists()


def test_cancel_keeps_the_faces_done_and_a_clips_frames_so_far(models, tmp_path):
    work, tab = PageWork(models, torch.device("cpu")), PageSession()
    try:
        tab.take([(SOLVAY, SOLVAY.name)], "photos")
        said = []

        def cancel_at_first_face(fraction, words):
            said.append(words)
            if "1 of" in words or "restored" in words:
                tab.cancel.set()
        lines = work.restore_photos(tab, SETTINGS.overlay(max_faces=12), cancel_at_first_face)
        assert lines[0].startswith("Solvay_conference_1927.png: stopped:"), lines
        frames = [np.full((64, 96, 3), 40 * index, np.uint8) for index in range(6)]
        write_clip(tmp_path / "clip.mkv", frames)
        tab.take([(tmp_path / "clip.mkv", "clip.mkv")], "clip")
        tab.cancel.clear()

        def cancel_at_frame_two(fraction, words):
            if "frame 2" in words:
                tab.cancel.set()
        played, words = work.restore_clip(tab, tab.files["clip"][0], SETTINGS,
                                          cancel_at_frame_two)
        assert words.startswith("cancelled") and played.name == "clip.partial.mp4"
        assert played.is_file() and tab.files["photos"]  # the photos are still there
    finally:
        tab.close()


def test_listening_on_the_network_needs_a_password_or_no_auth_typed_out(capsys):
    assert main(["app", "--listen"]) == 2
    assert "--listen lets others reach the page: add --auth" in capsys.readouterr().err
    assert main(["app", "--auth", "nopassword"]) == 2
    assert "--auth takes USER:PASSWORD" in capsys.readouterr().err


def _page_can_run():
    if not os.path.exists(APP_PYTHON) or not os.path.exists(CHROMIUM):
        return f"needs {APP_PYTHON} (pip install -r requirements-app.txt) and {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs playwright (requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def page_url(models, tmp_path_factory):
    reason = _page_can_run()
    if reason:
        pytest.skip(reason)
    temporary = tmp_path_factory.mktemp("page-tmp")
    server = subprocess.Popen(
        [APP_PYTHON, "-m", "gpen_ext", "app", "--models-dir", str(models)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False",
             "TMPDIR": str(temporary)})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        for _ in range(600):
            address = next((line.split()[2] for line in lines if line.startswith("GPEN page:")),
                           None)
            if address or server.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert address, "".join(lines)
        PAGE_TEMP[address] = temporary
        yield address
    finally:
        server.terminate()
        server.wait(30)
    print("".join(lines[-20:]), file=sys.stderr)


def test_the_pages_controls_are_the_options_descriptions(page_url):
    from gpen_ext.hosts.controls import stored
    from gpen_ext.options import MODEL, PRECISION, RESTORE_OPTIONS
    with urllib.request.urlopen(f"{page_url}/config") as answer:
        config = json.load(answer)
    shown = {component["props"].get("elem_id"): component["props"]
             for component in config["components"]}
    for option in (MODEL, *RESTORE_OPTIONS, PRECISION):
        props = shown[f"gpen-{option.name}"]
        assert (props["label"], props["info"]) == (option.label.capitalize(), option.help)
        if option.minimum is not None:
            assert (props["minimum"], props["maximum"]) == (option.minimum, option.maximum)
        if option.choices:
            assert [choice[1] for choice in props["choices"]] == \
                [option.choice_label(choice) for choice in option.choices]
        if option is not MODEL:
            assert props["value"] == stored(option, option.default)


@pytest.mark.slow
def test_a_photo_restored_in_the_browser(page_url, models, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        shots = Path(os.environ.get("GPEN_PAGE_SHOTS", tmp_path))  # to look at them
        shots.mkdir(parents=True, exist_ok=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page.goto(page_url)
        _choose_settings(page)
        _upload(page, SOLVAY)
        expect(page.locator("#gpen-status")).to_contain_text("86 face(s) found", timeout=60_000)
        page.screenshot(path=shots / "1-faces.png", full_page=True)
        _click_face(page, _face_one(models))
        expect(page.locator("#gpen-face_indices input")).to_have_value("1")
        page.click("#gpen-restore")
        expect(page.locator("#gpen-status")).to_contain_text("1 of 1 face(s) restored",
                                                             timeout=120_000)
        expect(page.locator("#gpen-compare img")).to_have_count(2)
        page.screenshot(path=shots / "2-restored.png", full_page=True)
        with page.expect_download() as download:
            page.click('#gpen-downloads a[download="Solvay_conference_1927.png"]')
        download.value.save_as(tmp_path / "downloaded.png")
        _bad_uploads(page, tmp_path, shots)
        _another_tab_has_its_own_files(browser, page_url)
        browser.close()
    _tab_folders_are_removed(page_url)
    result = cv2.imread(str(tmp_path / "downloaded.png"), cv2.IMREAD_UNCHANGED)
    _changed_only_around(cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED), result, _face_one(models))


def _choose_settings(page):
    page.click("#gpen-model input")
    page.get_by_role("option", name="GPEN-BFR-256").click()
    page.locator("#gpen-parser").get_by_text("BiSeNet", exact=True).click()
    page.locator("#gpen-advanced").get_by_text("Advanced", exact=True).click()
    page.locator("#gpen-detection_model").get_by_text("RetinaFace MobileNet-0.25",
                                                      exact=True).click()


def _upload(page, path):
    page.locator("#gpen-photos input[type=file]").set_input_files(str(path))


def _click_face(page, box):
    """Click the middle of `box` (image pixels) on the numbered photo as it is drawn."""
    image = page.locator("#gpen-faces img")
    image.scroll_into_view_if_needed()
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    frame = image.bounding_box()
    scale = min(frame["width"] / natural[0], frame["height"] / natural[1])
    left = frame["x"] + (frame["width"] - natural[0] * scale) / 2
    top = frame["y"] + (frame["height"] - natural[1] * scale) / 2
    middle = (np.clip(box[:2], 0, None) + np.minimum(box[2:], natural)) / 2
    page.mouse.click(left + middle[0] * scale, top + middle[1] * scale)


def _another_tab_has_its_own_files(browser, page_url):
    from playwright.sync_api import expect
    other = browser.new_page()
    other.goto(page_url)
    other.click("#gpen-restore")
    expect(other.locator("#gpen-status")).to_contain_text("drop photos first")
    other.close()


def _tab_folders_are_removed(page_url):
    """Each tab's folder (in the server's TMPDIR) goes when its tab is closed."""
    folders = PAGE_TEMP[page_url]
    for _ in range(300):
        if not list(folders.glob("gpen-page-*")):
            return
        threading.Event().wait(0.2)
    raise AssertionError(f"left behind: {list(folders.glob('gpen-page-*'))}")


def _bad_uploads(page, tmp_path, shots):
    """Not a photo, and a zip reaching outside itself: each told in words; the page goes on."""
    from playwright.sync_api import expect
    (tmp_path / "broken.png").write_bytes(b"not a photo at all")
    _upload(page, tmp_path / "broken.png")
    expect(page.locator("#gpen-status")).to_contain_text("cannot", timeout=30_000)
    with zipfile.ZipFile(tmp_path / "slip.zip", "w") as archive:
        archive.writestr("../../evil.png", b"x")
    _upload(page, tmp_path / "slip.zip")
    expect(page.locator("#gpen-status")).to_contain_text("points outside the archive",
                                                         timeout=30_000)
    page.screenshot(path=shots / "3-bad-upload.png", full_page=True)
    _upload(page, SOLVAY)
    expect(page.locator("#gpen-status")).to_contain_text("86 face(s) found", timeout=60_000)
