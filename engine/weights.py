# SPDX-License-Identifier: GPL-3.0-or-later
"""Weights files on disk, checked before anything is loaded.

- A `.safetensors` file is checked by its header (no weights are read): a corrupt or
  truncated file is refused with a message before the engine lets go of the model it has.
- Pickle files (`.ckpt`, `.bin`, `.pt`, `.pth`) can run code when they are loaded: they are
  refused unless the request allows them (`allow_pickle`).
- A single-file checkpoint's family (SD 1.5 or SDXL) is read from its own tensor names and
  shapes, never from its file name; other kinds of files (a LoRA, a ControlNet, SD 2.x,
  an inpainting model) are named as such and refused with what to do instead.

Results are cached per file identity (path, size, modification time), so checking on
every generation costs nothing once a file has been seen.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from .errors import DiffusionError

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
WEIGHT_SUFFIXES = SAFE_SUFFIXES + PICKLE_SUFFIXES

PICKLE_WHY = "pickle files can run any code when they are loaded"
PICKLE_FIX = ("use a .safetensors version of it, or turn on 'Allow pickle files' in the preferences "
              "if you trust where it comes from")

# The component folders whose weights the engine loads from a diffusers pipeline folder
# (the safety checker and feature extractor are never loaded).
PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")

# Weights diffusers and transformers load without a variant: one file or numbered shards.
_SAFE_WEIGHTS = re.compile(r"^(diffusion_pytorch_model|model)(-\d+-of-\d+)?\.safetensors$")
_PICKLE_WEIGHTS = re.compile(r"^(diffusion_pytorch_model|pytorch_model)(-\d+-of-\d+)?\.bin$")

_UNET = "model.diffusion_model."


def is_weights_file(path: str) -> bool:
    return path.lower().endswith(WEIGHT_SUFFIXES)


def is_pickle(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def refuse_pickle(path: str, what: str) -> None:
    raise DiffusionError(f"The {what} {os.path.basename(path)} is a pickle file ({PICKLE_WHY})", PICKLE_FIX)


def check_safetensors(path: str, what: str) -> None:
    """Refuse a missing, unreadable, corrupt or truncated safetensors file."""
    _header(path, what)


def tensor_shapes(path: str, what: str) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape in a safetensors file, from its header alone."""
    return dict(_header(path, what))


def _header(path: str, what: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise DiffusionError(f"The {what} file {path} does not exist", "check the path") from None
    except OSError as error:
        raise DiffusionError(f"Cannot read the {what} file {path}: {error.strerror}",
                             "check the file's permissions") from None
    return _cached_header(os.path.abspath(path), stat.st_size, stat.st_mtime_ns, what)


@functools.lru_cache(maxsize=256)
def _cached_header(path: str, size: int, mtime_ns: int, what: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from safetensors import SafetensorError, safe_open

    try:
        # safetensors checks at open that the header parses and that the data it describes
        # fills the file exactly: a truncated file or one with bytes missing fails here.
        with safe_open(path, framework="np") as f:
            return tuple((key, tuple(f.get_slice(key).get_shape())) for key in f.keys())
    except SafetensorError as error:
        raise DiffusionError(f"The {what} file {path} is damaged: {_explain(str(error), size)}",
                             "download it again, or pick another file") from None
    except OSError as error:
        raise DiffusionError(f"Cannot read the {what} file {path}: {error.strerror or error}",
                             "check the file's permissions, or download it again") from None


def _explain(reason: str, size: int) -> str:
    if "not fully covered" in reason or "incomplete metadata" in reason:
        return (f"its {size:,} bytes do not match the tensors its header lists, so it is truncated or has "
                "bytes missing (an interrupted download or copy?)")
    if "header too large" in reason or "invalid JSON" in reason or "header too small" in reason \
            or "invalid header length" in reason:
        return f"it is not a safetensors file, or its start is corrupt ({reason}; a web page saved under that name?)"
    return reason


def check_model_folder(folder: str, components: tuple[str, ...], allow_pickle: bool, what: str) -> bool:
    """Check the weights of a diffusers model folder's `components` ("" = the folder itself).

    Returns whether they are pickle files (allowed by `allow_pickle`); refuses a folder with
    missing, damaged or (not allowed) pickle weights.
    """
    pickle = False
    for component in components:
        place = os.path.join(folder, component) if component else folder
        if not os.path.isfile(os.path.join(place, "config.json")):
            continue  # this model has no such component (SD 1.5 has no text_encoder_2)
        names = sorted(os.listdir(place))
        safe = [name for name in names if _SAFE_WEIGHTS.match(name)]
        for name in safe:
            check_safetensors(os.path.join(place, name), what)
        if safe:
            continue
        if any(_PICKLE_WEIGHTS.match(name) for name in names):
            if not allow_pickle:
                raise DiffusionError(f"The {what} {folder} has only pickle weights in {component or 'its folder'} "
                                     f"({PICKLE_WHY})", PICKLE_FIX)
            pickle = True
            continue
        raise DiffusionError(f"The {what} {folder} has no weights in {component or 'its folder'}",
                             "download it again (it looks incomplete), or pick another")
    return pickle


@dataclass(frozen=True)
class Checkpoint:
    """What a single-file checkpoint holds, read from its tensor names and shapes.

    unet_width: channels of the UNet's first block (320 in SD 1.5 and SDXL).
    context_width: width of the text features the UNet attends to (768 SD 1.5, 2048 SDXL).
    """
    path: str
    family: str
    unet_width: int
    context_width: int
    pickle: bool = False


def inspect_checkpoint(path: str, allow_pickle: bool) -> Checkpoint:
    """The family and sizes of a single-file SD 1.5 or SDXL checkpoint; refuses anything else."""
    name = os.path.basename(path)
    if is_pickle(path):
        if not allow_pickle:
            refuse_pickle(path, "model")
        shapes = _pickle_shapes(path)
    else:
        shapes = tensor_shapes(path, "model")
    keys = shapes.keys()
    if not any(key.startswith(_UNET) for key in keys):
        raise DiffusionError(f"{name} is not a Stable Diffusion checkpoint: it looks like {_looks_like(keys)}",
                             _fix_for(keys))
    conv_in = shapes.get(_UNET + "input_blocks.0.0.weight")
    if conv_in is None or len(conv_in) != 4:
        raise DiffusionError(f"{name} has no UNet input layer where SD 1.5 and SDXL checkpoints have one",
                             "pick an SD 1.5 or SDXL checkpoint")
    if conv_in[1] != 4:
        kind = "an inpainting model" if conv_in[1] == 9 else f"a model with {conv_in[1]} input channels"
        raise DiffusionError(f"{name} is {kind}; only standard SD 1.5 and SDXL checkpoints are supported",
                             "use the base model it was made from: inpainting works with any model here")
    context = [shape[1] for key, shape in shapes.items()
               if key.startswith(_UNET) and key.endswith("attn2.to_k.weight") and len(shape) == 2]
    family = _family(name, keys)
    return Checkpoint(path=path, family=family, unet_width=conv_in[0], context_width=context[0] if context else 0,
                      pickle=is_pickle(path))


def _family(name: str, keys) -> str:
    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    # SDXL's UNet embeds the pooled text and image sizes ("label_emb"); SD 1.x has no such layer.
    if _UNET + "label_emb.0.0.weight" in keys:
        if has("conditioner.embedders.1.model."):
            return "sdxl"  # CLIP ViT-L (embedders.0) and OpenCLIP bigG (embedders.1)
        if has("conditioner.embedders.0.model."):
            raise DiffusionError(f"{name} is an SDXL refiner; only base models are supported",
                                 "pick an SDXL base checkpoint")
        raise DiffusionError(f"{name} is an SDXL UNet without its text encoders",
                             "pick a full SDXL checkpoint (with text encoders and VAE)")
    if has("cond_stage_model.transformer."):
        return "sd15"
    if has("cond_stage_model.model."):
        raise DiffusionError(f"{name} is a Stable Diffusion 2.x checkpoint; only SD 1.5 and SDXL are supported",
                             "pick an SD 1.5 or SDXL checkpoint")
    raise DiffusionError(f"{name} is a UNet without its text encoder",
                         "pick a full SD 1.5 or SDXL checkpoint (with text encoder and VAE)")


def _looks_like(keys) -> str:
    keys = list(keys)
    if any("lora" in key.lower() for key in keys):
        return "a LoRA"
    if any(key.startswith(("control_model.", "controlnet_", "input_hint_block.")) for key in keys):
        return "a ControlNet"
    if any(key.startswith(("encoder.down.", "first_stage_model.", "decoder.up_blocks.")) for key in keys):
        return "a VAE"
    if any(key.startswith(("double_blocks.", "joint_blocks.", "transformer_blocks.")) or ".joint_blocks." in key
           for key in keys):
        return "a transformer model (Flux, SD3, ...), which is not supported"
    return "something else (no UNet weights under 'model.diffusion_model.')"


def _fix_for(keys) -> str:
    what = _looks_like(keys)
    if what == "a LoRA":
        return "add it to the LoRA list, and pick an SD 1.5 or SDXL model as the model"
    if what == "a ControlNet":
        return "set it as the ControlNet for its condition kind in the preferences"
    return "pick an SD 1.5 or SDXL checkpoint"


def _pickle_shapes(path: str) -> dict[str, tuple[int, ...]]:
    try:
        stat = os.stat(path)
    except OSError:
        raise DiffusionError(f"The model file {path} does not exist", "check the path") from None
    return dict(_cached_pickle_shapes(os.path.abspath(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _cached_pickle_shapes(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    import pickle

    import torch

    try:
        # weights_only: the restricted unpickler (tensors and plain containers only); mmap
        # avoids reading the weights just to look at their names.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the old (non-zip) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise DiffusionError(f"Cannot read the pickle file {path} safely: {error}",
                             "use a .safetensors version of it, or download it again") from None
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DiffusionError(f"{path} holds no weights ({type(state).__name__})", "pick an SD 1.5 or SDXL checkpoint")
    return tuple((key, tuple(value.shape)) for key, value in state.items() if hasattr(value, "shape"))
