"""Run inside a real WebUI's Python (see test_webui_real.py): start the WebUI in-process the
way its server does, exercise the extension through the host's own entry points, and print
a JSON report. Arguments: WEBUI_DIR MODEL_NAME RELEASE_MODEL_NAME DATA_DIR (the WebUI's
--data-dir: extensions, models and settings there, the checkout only read)."""

import json
import os
import sys

webui_dir, model_name, release_model_name, data_dir = sys.argv[1:5]
os.chdir(webui_dir)
sys.path.insert(0, webui_dir)
sys.argv = ["launch.py", "--skip-torch-cuda-test", "--use-cpu", "all", "--no-half",
            "--precision", "full", "--skip-load-model-at-start", "--no-download-sd-model",
            "--skip-version-check", "--api", "--data-dir", data_dir]

import numpy as np  # noqa: E402

try:  # Forge starts its own memory management and patches before the WebUI's start-up
    from modules_forge.initialization import initialize_forge
    sys.argv += ["--always-cpu", "--skip-install"]
    initialize_forge()
except ImportError:
    pass
from modules import initialize  # noqa: E402

initialize.imports()
initialize.initialize()

import base64  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from modules import (errors, face_restoration, script_callbacks, scripts,  # noqa: E402
                     scripts_postprocessing, shared)
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

report = {"restorers": [restorer.name() for restorer in shared.face_restorers]}
script_callbacks.ui_settings_callback()  # what building the UI does
report["options"] = sorted(key for key in shared.opts.data_labels if key.startswith("gpen_"))
shared.opts.face_restoration_model = "GPEN"
shared.opts.gpen_model = model_name
shared.opts.gpen_mask = "box"
image = data.astronaut()
restored = face_restoration.restore_faces(image)
report["restore_faces_change"] = float(np.abs(restored.astype(float) - image).mean())

script = next(s for s in scripts.scripts_postproc.scripts_in_preferred_order() if s.name == "GPEN")
with gr.Blocks():
    controls = script.ui()
report["extras_controls"] = list(controls)
pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(image))
script.process(pp, enable=True, visibility=1.0, weight=0.5, model=model_name)
report["extras_info"] = pp.info
report["extras_change"] = float(np.abs(np.asarray(pp.image, float) - image).mean())
pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(image))
script.process(pp, enable=True, visibility=1.0, weight=1.0, model=model_name,
               face_selection="largest", face_regions=["skin", "nose"], show_faces=True)
report["extras_faces_info"] = pp.info
report["extras_faces"] = [[extra.nametags, list(np.asarray(extra.image).shape),
                           extra.disable_processing] for extra in pp.extra_images]
pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(image))
script.process(pp, enable=True, visibility=1.0, weight=1.0, model=model_name, show_numbers=True)
report["numbers_changed"] = float(np.abs(np.asarray(pp.image, float) - image).mean())
report["numbers_extra_unchanged"] = [bool(np.array_equal(np.asarray(extra.image), image))
                                     for extra in pp.extra_images]
report["numbers_info"] = pp.info

# the host's progress state, as Extras leaves it for an image, and its Interrupt
shared.state.begin(job="extras")
shared.state.job_count = 1
shared.state.nextjob()
seen = []
shared.opts.gpen_batch_size = 1
original_textinfo = type(shared.state).__setattr__


class Watched(type(shared.state)):
    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "textinfo" and value and value.startswith("GPEN:"):
            seen.append([self.job_no, self.sampling_step, self.sampling_steps, value])
            if value.startswith("GPEN: 2 of"):
                self.interrupted = True  # Interrupt pressed as the second face is done


shared.state.__class__ = Watched
pp = scripts_postprocessing.PostprocessedImage(Image.fromarray(image))
script.process(pp, enable=True, visibility=1.0, weight=1.0, model=model_name)
shared.state.__class__ = Watched.__mro__[1]
report["progress_seen"] = seen
report["stopped_info"] = pp.info.get("GPEN stopped")
report["job_no_after"] = shared.state.job_no
shared.state.end()
shared.opts.gpen_batch_size = 4

from modules.api.api import Api  # noqa: E402
from modules.call_queue import queue_lock  # noqa: E402

app = FastAPI()
Api(app, queue_lock)  # the host's own API, as --api starts it: our routes go beside it
script_callbacks.app_started_callback(None, app)
client = TestClient(app)
png = base64.b64encode(cv2.imencode(".png", image[..., ::-1])[1].tobytes()).decode()
response = client.post("/gpen/v1/restore", json={"image": png, "face_selection": "largest"})
report["route_status"] = response.status_code
report["route_faces"] = len(response.json().get("faces", []))
report["models_status"] = client.get("/gpen/v1/models").status_code
hostile = {"face_indices": [1.0], "batch_size": True, "model": "é" * 255,
           "landmarks": [[[1, 2]] * 5] * 2000}
report["hostile_status"] = {name: client.post("/gpen/v1/restore", json={
    "image": png, name: value}).status_code for name, value in hostile.items()}
deep = '{"image": "%s", "landmarks": %s}' % (png, "[" * 950 + "]" * 950)
report["hostile_status"]["deep"] = client.post(
    "/gpen/v1/restore", content=deep, headers={"content-type": "application/json"}).status_code

# Issue 32's stop, timed through the host's own Extras API: a release-sized network with the
# parsing mask costs seconds a face on a CPU; Interrupt pressed 3 s into the second step, with
# a busy process beside (issue 44), must end the call within 2 s, keeping the faces done
shared.opts.gpen_model, shared.opts.gpen_mask = release_model_name, "parsing"
shared.opts.gpen_extras_enabled = True  # the extras API runs extension scripts from Settings
reply, texts = {}, []
shared.state.textinfo = None  # not the text an earlier run left
handed_over = []  # when the host calls GPEN's section: Forge reads infotext for seconds first
untimed_process = script.process
script.process = lambda *args, **kwargs: (handed_over.append(time.monotonic() - started),
                                          untimed_process(*args, **kwargs))[1]
busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
started = time.monotonic()
worker = threading.Thread(target=lambda: reply.update(client.post(
    "/sdapi/v1/extra-single-image", json={"image": png, "upscaling_resize": 1}).json()))
worker.start()
pressed = None
while worker.is_alive():
    now, text = time.monotonic(), shared.state.textinfo or ""
    if not texts or texts[-1][1] != text:
        texts.append([round(now - started, 2), text])
    second_step = next((at for at, seen_text in texts if " of " in seen_text
                        and not seen_text.startswith("GPEN: 0 of")), None)
    if pressed is None and second_step is not None and now - started > second_step + 3:
        client.post("/sdapi/v1/interrupt")
        pressed = now
    time.sleep(0.05)
script.process = untimed_process
busy.kill()
report["stop_texts"], report["stop_handed_over"] = texts, handed_over
report["stop_seconds"] = None if pressed is None else time.monotonic() - pressed
report["stop_info"] = reply.get("html_info", "")
shared.opts.gpen_model, shared.opts.gpen_mask = model_name, "box"

shared.cmd_opts.api_auth = "alice:secret"  # as started with --api-auth alice:secret
guarded = FastAPI()
Api(guarded, queue_lock)
script_callbacks.app_started_callback(None, guarded)
guarded_client = TestClient(guarded)
report["auth_status"] = {path: [guarded_client.get(path).status_code,
                                guarded_client.get(path, auth=("alice", "secret")).status_code]
                         for path in ("/sdapi/v1/face-restorers", "/gpen/v1/models",
                                      "/gpen/v1/options")}
report["errors"] = [record for record in errors.exception_records if "gpen" in str(record).lower()]
print("REPORT " + json.dumps(report))
