"""From `python -m gpen_ext app` to a restored photo on screen, against the command line on the
same photo with the same settings (issue 43's target: at most 10 s more).

The sample photo (Solvay, 1927), GPEN-BFR-512 (random weights, the real shapes), the rigged
MobileNet detector of the tests (faces where a real one would find them is not the point
here), BiSeNet, face 1 only. The page: the server started, the page opened in headless
Chromium (started before the clock, as a user's browser is), settings chosen, the photo
uploaded, the faces shown, Restore, until the before/after view holds both images.

    python benchmarks/page_latency.py [--app-python .ci/app-venv/bin/python]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import release_network  # noqa: E402
from face_weights import write_face_weights  # noqa: E402
from test_page import CHROMIUM, _upload  # noqa: E402

SOLVAY = ROOT.parent / "shared" / "faces" / "Solvay_conference_1927.png"
FLAGS = ["--detection-model", "retinaface_mobile0.25", "--parser", "bisenet",
         "--face-indices", "1"]


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def command_line_seconds(models, output):
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "gpen_ext", "restore", str(SOLVAY), "-o", str(output),
                    "--models-dir", str(models), "--no-download", *FLAGS], check=True,
                   cwd=ROOT, capture_output=True)
    return time.monotonic() - started


def page_seconds(app_python, models):
    from playwright.sync_api import expect, sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        started = time.monotonic()
        server = subprocess.Popen([app_python, "-m", "gpen_ext", "app", "--models-dir",
                                   str(models)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                  stderr=subprocess.STDOUT, env={**os.environ,
                                                                 "PYTHONPATH": str(ROOT)})
        lines = []
        threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True).start()
        try:
            while not any(line.startswith("GPEN page:") for line in lines):
                time.sleep(0.05)
            served = time.monotonic() - started
            page.goto(next(line for line in lines if line.startswith("GPEN page:")).split()[2])
            page.fill("#gpen-face_indices input", "1")
            page.locator("#gpen-model input").click()
            page.get_by_role("option", name="GPEN-BFR-512").click()
            _choose_settings_but_model(page)
            _upload(page, SOLVAY)
            expect(page.locator("#gpen-faces img")).to_be_visible(timeout=120_000)
            page.click("#gpen-restore")
            expect(page.locator("#gpen-compare img")).to_have_count(2, timeout=300_000)
            return served, time.monotonic() - started
        finally:
            server.terminate()
            server.wait(30)
            browser.close()


def _choose_settings_but_model(page):
    page.locator("#gpen-parser").get_by_text("BiSeNet", exact=True).click()
    page.locator("#gpen-advanced").get_by_text("Advanced", exact=True).click()
    page.locator("#gpen-detection_model").get_by_text("RetinaFace MobileNet-0.25",
                                                      exact=True).click()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-python", default=str(ROOT / ".ci" / "app-venv" / "bin" / "python"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = write_face_weights(Path(folder) / "models")
        torch.save(release_network(512).state_dict(), models / "GPEN-BFR-512.pth")
        command_line = command_line_seconds(models, Path(folder) / "restored.png")
        served, on_screen = page_seconds(args.app_python, models)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"command line, start to restored file:       {command_line:6.1f} s")
    print(f"page, start to served:                      {served:6.1f} s")
    print(f"page, start to restored photo on screen:    {on_screen:6.1f} s "
          f"({on_screen - command_line:+.1f} s, {on_screen / command_line:.2f}x)")


if __name__ == "__main__":
    main()
