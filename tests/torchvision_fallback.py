"""Makes facexlib importable on a CPU-only torch whose torchvision wheel was built for CUDA.

The compiled `torchvision::nms` is then missing, and importing torchvision fails. Only in
that case, this declares the ops torchvision registers fake kernels for at import, gives
`nms` a pure-PyTorch CPU kernel, and tells torchvision its ops are available. A real WebUI
has a matching torchvision and never needs this; tests and the harness here do.
"""

import sys

import torch

def _nms(boxes, scores, iou_threshold):
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


def _torchvision_ops_work():
    try:
        return torch.ops.torchvision.nms is not None
    except (AttributeError, RuntimeError):
        return False


def _provide_cpu_nms():
    """Declare the ops torchvision registers fake kernels for at import, give `nms` a CPU
    kernel, and tell torchvision that its ops are available."""
    library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.impl("nms", _nms, "CPU")
    import torchvision.extension
    torchvision.extension._has_ops = lambda: True
    return library


def _import_torchvision():
    try:
        import torchvision  # noqa: F401  (loads the compiled ops when they match torch)
    except RuntimeError:
        pass  # a wheel built against another torch: fall back to the CPU nms below
    if not _torchvision_ops_work():
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        return _provide_cpu_nms()
    return None


LIBRARY = _import_torchvision()  # kept alive: dropping it unregisters the ops
