"""A stand-in for ComfyUI's `comfy.model_patcher.ModelPatcher`: what the memory manager needs
of a model (its devices and size)."""

from . import model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.size = model, size
        self.load_device, self.offload_device = load_device, offload_device
        self.model_size()

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = model_management.module_size(self.model)
        return self.size

    def detach(self, unpatch_all=True):
        self.model.to(self.offload_device)
        return self.model
