"""ComfyUI's entry point: this repository cloned into ComfyUI/custom_nodes registers GPEN's
nodes (gpen_ext/hosts/comfyui.py). Importing it loads no model and touches no network. The
WebUI never imports this file (it loads scripts/); other importers, such as a test runner
collecting this folder, get no nodes."""

import sys

if "folder_paths" in sys.modules:  # ComfyUI imports it before any node pack
    from .gpen_ext.hosts.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    WEB_DIRECTORY = "./javascript/comfyui"  # the nodes' labels as options.py words them
else:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, WEB_DIRECTORY = {}, {}, None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
