# GPEN as a WebUI face restorer, with its settings and HTTP routes; the work is in gpen_ext.
from gpen_ext.hosts import webui

webui.install()
