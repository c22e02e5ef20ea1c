"""Lets facexlib import where torchvision's compiled operators do not match torch.

facexlib imports torchvision, and a torchvision wheel built for another torch (the usual case
beside a CPU-only torch: a CUDA wheel) fails to import with "operator torchvision::nms does
not exist". Of those operators facexlib's detector uses only `nms`. Only when they are
missing, `provide_cpu_nms` declares the operators torchvision registers fake kernels for at
import, gives `nms` a pure-PyTorch CPU kernel and tells torchvision its operators are there.
A WebUI or ComfyUI with a matching pair never needs it.
"""

import sys

import torch

_library = None  # kept alive: dropping it would unregister the operators


def nms(boxes, scores, iou_threshold):
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep, suppressed = [], torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[:, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def operators_work():
    try:
        return torch.ops.torchvision.nms is not None
    except (AttributeError, RuntimeError):
        return False


def provide_cpu_nms():
    """Make `import torchvision` work without its compiled operators; True if it now does."""
    global _library
    try:
        import torchvision  # noqa: F401  (loads the compiled operators when they match)
    except RuntimeError:
        pass  # built against another torch: fall back below
    if operators_work():
        return True
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        del sys.modules[name]  # the half-imported package, to import again
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _library.impl("nms", nms, "CPU")
    try:
        import torchvision.extension
    except Exception:  # noqa: BLE001 (any failure means: not usable)
        return False
    torchvision.extension._has_ops = lambda: True
    return True
