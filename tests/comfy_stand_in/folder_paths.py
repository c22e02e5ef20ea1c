"""A stand-in for ComfyUI's `folder_paths` with its signatures (ComfyUI 0.3.x), so that the
ComfyUI adapter can be unit-tested in CI; tests/test_comfyui_real.py runs the real one."""

import os

models_dir = os.path.join(os.path.dirname(__file__), "models")  # tests point this elsewhere
supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {}


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    paths, extensions = folder_names_and_paths.setdefault(folder_name,
                                                          ([], set(supported_pt_extensions)))
    if full_folder_path not in paths:
        paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name):
    paths, extensions = folder_names_and_paths[folder_name]
    return sorted({name for path in paths if os.path.isdir(path) for name in os.listdir(path)
                   if os.path.splitext(name)[1] in extensions})


def get_full_path(folder_name, filename):
    for path in get_folder_paths(folder_name):
        candidate = os.path.join(path, filename)
        if os.path.isfile(candidate):
            return candidate
    return None
