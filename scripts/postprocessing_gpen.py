# The Extras tab's GPEN section; the WebUI finds the class by scanning this module.
from gpen_ext.hosts.webui import GPENPostprocessing  # noqa: F401
