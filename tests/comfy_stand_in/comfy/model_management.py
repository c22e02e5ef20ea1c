"""A stand-in for ComfyUI's `comfy.model_management`: the CPU as its device, and a record of
the memory it was asked to free."""

import torch

OOM_EXCEPTION = torch.cuda.OutOfMemoryError
freed = []       # memory_required of each free_memory call
loaded = []      # (patcher, memory_required, force_full_load) of each load_models_gpu call
interrupted = False


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def should_use_fp16(device=None, model_params=0, prioritize_performance=True,
                    manual_cast=False):
    return False  # as ComfyUI answers for the CPU


def should_use_bf16(device=None, model_params=0, prioritize_performance=True,
                    manual_cast=False):
    return False


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def free_memory(memory_required, device, keep_loaded=[]):
    freed.append(memory_required)


def load_models_gpu(models, memory_required=0, force_patch_weights=False,
                    minimum_memory_required=None, force_full_load=False):
    for patcher in models:
        free_memory(patcher.model_size() + memory_required, patcher.load_device)
        patcher.model.to(patcher.load_device)
        loaded.append((patcher, memory_required, force_full_load))


def soft_empty_cache(force=False):
    pass


def throw_exception_if_processing_interrupted():
    global interrupted
    if interrupted:
        interrupted = False
        raise InterruptProcessingException()
