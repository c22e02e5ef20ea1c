import torch

from modules import shared

cpu = torch.device("cpu")
device_codeformer = None
gc_calls = []


def get_optimal_device():
    return torch.device("cuda") if torch.cuda.is_available() else cpu


def get_device_for(task):
    if task in shared.cmd_opts.use_cpu or "all" in shared.cmd_opts.use_cpu:
        return cpu
    return get_optimal_device()


def torch_gc():
    gc_calls.append(True)
