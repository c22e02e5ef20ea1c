"""Run inside a real WebUI's Python (see test_webui_real.py): start the WebUI in-process the
way its server does, exercise the extension through the host's own entry points, and print
a JSON report. Arguments: WEBUI_DIR MODEL_NAME."""

import json
import os
import sys

webui_dir, model_name = sys.argv[1:3]
os.chdir(webui_dir)
sys.path.insert(0, webui_dir)
sys.argv = ["launch.py", "--skip-torch-cuda-test", "--use-cpu", "all", "--no-half",
            "--precision", "full", "--skip-load-model-at-start", "--no-download-sd-model",
            "--skip-version-check", "--api"]

import numpy as np  # noqa: E402
from modules import initialize  # noqa: E402

initialize.imports()
initialize.initialize()

import base64  # noqa: E402

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

app = FastAPI()
script_callbacks.app_started_callback(None, app)
client = TestClient(app)
png = base64.b64encode(cv2.imencode(".png", image[..., ::-1])[1].tobytes()).decode()
response = client.post("/gpen/v1/restore", json={"image": png, "face_selection": "largest"})
report["route_status"] = response.status_code
report["route_faces"] = len(response.json().get("faces", []))
report["models_status"] = client.get("/gpen/v1/models").status_code
report["errors"] = [record for record in errors.exception_records if "gpen" in str(record).lower()]
print("REPORT " + json.dumps(report))
