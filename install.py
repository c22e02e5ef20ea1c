"""Run by the WebUI's launcher: installs what requirements.txt asks for and the host lacks.

Never installs or upgrades torch, torchvision or gradio (the host's own), nor basicsr, nor
what only the command line uses (PyAV, for video)."""

import os
import re

import launch

HOST_OWNED = {"torch", "torchvision", "gradio", "basicsr"}
STANDALONE_ONLY = {"av"}  # video is the command line's; the WebUI never loads it
REQUIREMENTS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "requirements.txt")


def wanted_packages(path=REQUIREMENTS):
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            requirement = line.split("#", 1)[0].strip()
            if not requirement:
                continue
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
            if name.lower() not in HOST_OWNED | STANDALONE_ONLY:
                yield name, requirement


# A package may be present under another distribution (opencv-python-headless): also
# look for the module it provides before installing a second copy.
PROVIDES = {"opencv-python": "cv2", "Pillow": "PIL"}

for package, requirement in wanted_packages():
    if not (launch.is_installed(package) or launch.is_installed(PROVIDES.get(package, package))):
        launch.run_pip(f'install "{requirement}"', f"{requirement} for sd-webui-gpen")
