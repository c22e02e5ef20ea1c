"""What several test modules share: paths, the parity vectors, stand-in networks, measures."""

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gpen_ext.arch.gpen.fast import FastGPEN
from gpen_ext.arch.gpen.network import GPEN
from gpen_ext.registry import RELEASE_CONFIGS

HERE = Path(__file__).parent
ROOT = HERE.parent
TEMPLATE = ROOT / "example_workflows" / "Restore faces with GPEN.json"  # ComfyUI titles its card so
DATA = HERE / "data"
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
SOLVAY = SHARED / "faces" / "Solvay_conference_1927.png"

RELEASES = RELEASE_CONFIGS  # size -> the release's GPENConfig
PARITY_FILES = sorted({p.name: p for p in [*DATA.glob("gpen_parity_*.pt"),
                                           *REFERENCE.glob("gpen_parity_*.pt")]}.values())


def reference_manifest(size):
    """Released checkpoint layout: key -> shape list."""
    lines = (DATA / f"keys_GPEN-BFR-{size}.txt").read_text().splitlines()
    return {key: json.loads(shape) for key, shape in (line.split("\t") for line in lines)}


def network_for(vector):
    """The straightforward network of a parity vector's configuration, with its weights."""
    config = vector["config"]
    network = GPEN(config["size"], config["style_dim"], config["n_mlp"],
                   config["channel_multiplier"], config["narrow"]).eval()
    network.load_state_dict(vector["state_dict"], strict=True)
    return network


def fast_path_for(path):
    """A parity vector and the fast path built from its network."""
    vector = torch.load(path, weights_only=True)
    return vector, FastGPEN(network_for(vector)).eval()


class IdentityNetwork(torch.nn.Module):
    """Returns its input: what the pipeline does around the network must then change nothing."""

    def __init__(self, size=512):
        super().__init__()
        self.size = size

    def forward(self, x):
        return x.clone()


class CountingNetwork(IdentityNetwork):
    """Identity (or `transform`) that records the batch sizes it was called with."""

    def __init__(self, size=512, transform=None):
        super().__init__(size)
        self.batches = []
        self.transform = transform

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.transform(x) if self.transform else x.clone()


def psnr(a, b, peak=255.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def solvay():
    """The 29-face photo (RGBA) and its landmarks."""
    import cv2
    rgba = cv2.cvtColor(cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    landmarks = json.loads((SOLVAY.parent / "solvay_landmarks.json").read_text())["landmarks"]
    return rgba, np.array(landmarks, float)


def randomise_batch_norms(network):
    """Batch-norm statistics and affine values far from the defaults, so that folding them is
    exercised."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return network


def random_bisenet(seed=0):
    """facexlib's BiSeNet with random weights (batch norms as random_parsenet's)."""
    from gpen_ext.face_models import build_parser_network
    torch.manual_seed(seed)
    return randomise_batch_norms(build_parser_network("bisenet").eval())


def random_parsenet(size=512, seed=0):
    """facexlib's ParseNet with random weights and batch-norm statistics far from the
    defaults, so that folding them is exercised."""
    from gpen_ext.face_models import build_parser_network
    torch.manual_seed(seed)
    return randomise_batch_norms(build_parser_network(size=size).eval())


WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def widget_names(input_types):
    """The widget inputs of a node, in the order ComfyUI lays out their values: required,
    then optional; a list of choices is a widget too, a socket type is not."""
    return [name for group in ("required", "optional")
            for name, (kind, *_) in input_types.get(group, {}).items()
            if isinstance(kind, list) or kind in WIDGET_TYPES]


def graph_to_api(graph, input_types_of):
    """A workflow saved by ComfyUI's editor (nodes and links) as the API format its /prompt
    takes; `input_types_of(node type)` gives a node's INPUT_TYPES."""
    links = {link[0]: link for link in graph["links"]}
    prompt = {}
    for node in graph["nodes"]:
        inputs = dict(zip(widget_names(input_types_of(node["type"])), node["widgets_values"]))
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                _, origin, slot, *_ = links[socket["link"]]
                inputs[socket["name"]] = [str(origin), slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def write_clip(path, frames, rate=25, audio_seconds=0.0):
    """An H.264 clip of RGB uint8 `frames` (even sides), with a tone of `audio_seconds`."""
    import av
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=rate)
    video.height, video.width = frames[0].shape[:2]
    video.pix_fmt = "yuv420p"
    sound = out.add_stream("aac", rate=8000) if audio_seconds else None  # streams come first
    if sound is not None:
        sound.layout = "mono"
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if sound is not None:
        mux_tone(out, sound, audio_seconds)
    out.close()
    return path


def mux_tone(out, sound, seconds):
    """A 440 Hz tone of `seconds` into the 8 kHz mono AAC stream `sound` of container `out`."""
    import av
    tone = 0.2 * np.sin(np.arange(int(8000 * seconds)) / 8000 * 2 * np.pi * 440)
    for start in range(0, len(tone), 1024):
        chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024].astype(np.float32),
                                           format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 8000, start
        out.mux(sound.encode(chunk))
    out.mux(sound.encode(None))


def clip_frames(path):
    """The decoded RGB frames of a clip, and its audio packets' count."""
    import av
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = sum(1 for packet in container.demux(audio=0) if packet.size) \
            if container.streams.audio else 0
    return frames, audio


@contextlib.contextmanager
def stand_in(folder):
    """Import a host's stand-in modules from tests/`folder` without leaving it on sys.path
    (their packages find their own submodules later through their __path__)."""
    sys.path.insert(0, str(HERE / folder))
    try:
        yield
    finally:
        sys.path.remove(str(HERE / folder))


def forget_modules(*names):
    """Drop `names` and their submodules from sys.modules: a test module's stand-ins do not
    outlive its tests."""
    for name in [name for name in sys.modules if name.split(".")[0] in names or
                 any(name == prefix or name.startswith(prefix + ".") for prefix in names)]:
        del sys.modules[name]
