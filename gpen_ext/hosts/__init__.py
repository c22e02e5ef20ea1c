"""Adapters that put the pipeline inside other programs. `service` knows no host; `api` is a
FastAPI router over it; `webui` is the only module that imports the WebUI's `modules`."""
