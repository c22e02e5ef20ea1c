import torch

from modules import shared

cpu = torch.device("cpu")
device_codeformer = None
gc_calls = []


def get_optimal_device():
    return torch.device("cuda") if torch.cuda.is_available() else cpu


def get_device_for(task):
    """The CPU when --use-cpu names this task or "all", else the best device."""
    forced_to_cpu = {task, "all"} & set(shared.cmd_opts.use_cpu)
    return cpu if forced_to_cpu else get_optimal_device()


def torch_gc():
    gc_calls.append(True)
