# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference images through IP-Adapter: pictures that steer style or content, each with a weight.

An IP-Adapter is a weights file (an image projection, and a key and value projection for
each cross-attention layer of the UNet) plus the CLIP image encoder it was trained with.
The spec of one is, first found of:

- "" : the family's default (DEFAULT_ADAPTERS; the smoke models have a smoke adapter);
- a local file (`ip-adapter_sd15.safetensors`; `.bin` only when pickle files are allowed),
  with its image encoder in an `image_encoder` folder beside it (h94's layout);
- a file on the hub, "owner/name/path/in/repo.safetensors", downloaded with its image
  encoder (`image_encoder` beside it in the repository; `models/image_encoder` for h94's
  "vit-h" SDXL adapters, which use the SD 1.5 encoder), under the same cache and offline
  rules as models.

Several references load the adapter once per reference, as diffusers runs several
adapters, and each gets its weight with `set_ip_adapter_scale`: the call is exactly
diffusers' `load_ip_adapter` + `set_ip_adapter_scale` + `ip_adapter_image`. Files are
checked before anything is loaded: an adapter for another family (its layers take text of
another width) or an image encoder that does not fit it is refused, saying which fits.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np

from . import smoke_model, weights
from .errors import DiffusionError

__all__ = ["AdapterSource", "DEFAULT_ADAPTERS", "ReferenceImage", "check_references", "resolve_adapter"]

HUB_REPO = "h94/IP-Adapter"
# Per family: (file in HUB_REPO, its image encoder folder in HUB_REPO).
DEFAULT_ADAPTERS = {
    "sd15": ("models/ip-adapter_sd15.safetensors", "models/image_encoder"),
    "sdxl": ("sdxl_models/ip-adapter_sdxl.safetensors", "sdxl_models/image_encoder"),
}
_TEXT_WIDTH = {768: "sd15", 2048: "sdxl"}  # the text width each family's cross-attention takes
_HUB_FILE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+/(.+\.(safetensors|bin))$")
_ENCODER_FILES = ["config.json", "model.safetensors"]


@dataclass(frozen=True, eq=False)
class ReferenceImage:
    """A reference picture (HxWx3 float32 0..1, any size: the image encoder resizes it) and how
    strongly it steers (the adapter's scale: 0 off, about 0.5 a hint, 1 strong)."""
    image: np.ndarray
    weight: float = 0.6
    name: str = ""


@dataclass(frozen=True)
class AdapterSource:
    """An adapter weights file and its image encoder folder, checked on disk."""
    spec: str
    path: str
    encoder: str
    family: str
    pickle: bool = False


def check_references(references: tuple[ReferenceImage, ...]) -> None:
    """Refuse references that cannot work, before anything is loaded."""
    for index, reference in enumerate(references):
        label = f"The reference image '{reference.name}'" if reference.name else f"Reference image {index + 1}"
        image = reference.image
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
                or not np.issubdtype(image.dtype, np.floating):
            found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise DiffusionError(f"{label} must be an HxWx3 float image, not {found}", "pick an RGB image")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise DiffusionError(f"{label} has no pixels", "pick an image that has some (its file may be missing)")
        if not 0.0 <= reference.weight <= 2.0:
            raise DiffusionError(f"{label} has the weight {reference.weight:g}, outside 0..2",
                                 "set a weight from 0 (off) to about 1 (strong)")


def resolve_adapter(spec: str, family: str, context_width: int | None, cache_dir: str, allow_online: bool,
                    allow_pickle: bool, smoke: bool, on_progress=None, cancel=None) -> AdapterSource:
    """The adapter `spec` names for a base of `family` whose cross-attention takes text
    `context_width` wide (None: unknown), found, fetched if allowed, and checked."""
    from .models import FAMILY_NAMES, fetch_from_hub

    spec = spec.strip()
    if not spec and smoke:
        folder = smoke_model.ensure_smoke_ip_adapter(cache_dir, family)
        path, encoder = os.path.join(folder, smoke_model.SMOKE_ADAPTER_FILE), os.path.join(folder, "image_encoder")
    elif not spec or _HUB_FILE.match(spec) and not os.path.exists(os.path.expanduser(spec)):
        if spec:
            repo = "/".join(spec.split("/")[:2])
            inside = spec[len(repo) + 1:]
            folder_in_repo = "models/image_encoder" if "vit-h" in inside.lower() else \
                os.path.dirname(inside) + "/image_encoder" if os.path.dirname(inside) else "image_encoder"
        else:
            repo, (inside, folder_in_repo) = HUB_REPO, DEFAULT_ADAPTERS[family]
        if weights.is_pickle(inside) and not allow_pickle:  # before any download
            weights.refuse_pickle(inside, "IP-Adapter")
        root = fetch_from_hub(repo, allow_online, [inside] + [f"{folder_in_repo}/{name}" for name in _ENCODER_FILES],
                              what="IP-Adapter", on_progress=on_progress, cancel=cancel)
        path, encoder = os.path.join(root, inside), os.path.join(root, folder_in_repo)
    else:
        path = os.path.abspath(os.path.expanduser(spec))
        if not os.path.isfile(path):
            raise DiffusionError(f"The IP-Adapter file {spec} does not exist",
                                 "pick its .safetensors file, or a hub file like "
                                 f"{HUB_REPO}/{DEFAULT_ADAPTERS[family][0]}")
        encoder = os.path.join(os.path.dirname(path), "image_encoder")
    pickle = weights.is_pickle(path)
    if pickle and not allow_pickle:
        weights.refuse_pickle(path, "IP-Adapter")
    if not os.path.isfile(os.path.join(encoder, "config.json")):
        raise DiffusionError(f"The IP-Adapter {os.path.basename(path)} has no image encoder beside it "
                             f"(no {os.path.join(encoder, 'config.json')})",
                             "put the CLIP image encoder it was trained with in a folder named image_encoder "
                             "beside the file (h94/IP-Adapter has one in models/ and in sdxl_models/)")
    if not pickle:
        _check_fits(path, encoder, family, context_width, FAMILY_NAMES)
    return AdapterSource(spec, path, encoder, family, pickle)


def _check_fits(path: str, encoder: str, family: str, context_width: int | None, family_names: dict) -> None:
    shapes = weights.tensor_shapes(path, "IP-Adapter")
    keys = [key for key in shapes if key.endswith(".to_k_ip.weight")]
    if not keys or not any(key.startswith("image_proj.") for key in shapes):
        raise DiffusionError(f"{os.path.basename(path)} is not an IP-Adapter (no image_proj and to_k_ip weights)",
                             "pick an IP-Adapter file such as ip-adapter_sd15.safetensors")
    width = shapes[keys[0]][1]
    if context_width is not None and width != context_width:
        made_for = _TEXT_WIDTH.get(width)
        fits = DEFAULT_ADAPTERS[family][0]
        raise DiffusionError(
            f"The IP-Adapter {os.path.basename(path)} is for "
            f"{family_names[made_for] + ' models' if made_for else f'models with {width}-wide text'}, not this "
            f"{family_names[family]} model", f"use an {family_names[family]} adapter, such as {HUB_REPO}/{fits} "
                                             "(or leave the adapter empty for that default)")
    with open(os.path.join(encoder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config = config.get("vision_config", config)
    if "image_proj.proj.weight" in shapes:  # the base adapters take the projected image embedding
        needed, has, what = shapes["image_proj.proj.weight"][1], config.get("projection_dim"), "projection"
    else:  # "plus" adapters (a resampler) take the encoder's hidden states
        needed = next((shape[1] for key, shape in shapes.items() if key.endswith("proj_in.weight")), None)
        has, what = config.get("hidden_size"), "hidden states"
    if needed is not None and has is not None and needed != has:
        raise DiffusionError(f"The image encoder beside {os.path.basename(path)} gives {has}-wide {what}, the adapter "
                             f"takes {needed}", "use the image encoder the adapter was trained with (h94: ViT-H "
                                                "in models/image_encoder, ViT-bigG in sdxl_models/image_encoder)")


def read_adapter(source: AdapterSource) -> dict:
    """The adapter's weights as diffusers' load_ip_adapter reads a file: {"image_proj": ..., "ip_adapter": ...}."""
    if source.pickle:
        from diffusers.models.model_loading_utils import load_state_dict

        return load_state_dict(source.path)
    from safetensors import safe_open

    state = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(source.path, framework="pt", device="cpu") as f:
        for key in f.keys():
            part, _, name = key.partition(".")
            if part in state:
                state[part][name] = f.get_tensor(key)
    return state
