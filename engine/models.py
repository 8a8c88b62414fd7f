# SPDX-License-Identifier: GPL-3.0-or-later
"""Model specs: what the person names (hub id, local folder, `smoke`) -> a folder to load.

Nothing here loads weights; it finds them (downloading only when allowed) and tells
which family (SD 1.5 or SDXL) they belong to, from the model's own config.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from . import smoke_model
from .errors import DiffusionError

FAMILIES = ("sd15", "sdxl")
FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}

DEFAULT_BASE = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}

# The ControlNet used for each condition kind unless the person overrides it.
DEFAULT_CONTROLNETS = {
    "sd15": {
        "depth": "lllyasviel/control_v11f1p_sd15_depth",
        "canny": "lllyasviel/control_v11p_sd15_canny",
        "openpose": "lllyasviel/control_v11p_sd15_openpose",
        "normal": "lllyasviel/control_v11p_sd15_normalbae",
        "segmentation": "lllyasviel/control_v11p_sd15_seg",
        "lineart": "lllyasviel/control_v11p_sd15_lineart",
        "scribble": "lllyasviel/control_v11p_sd15_scribble",
        "softedge": "lllyasviel/control_v11p_sd15_softedge",
        "mlsd": "lllyasviel/control_v11p_sd15_mlsd",
    },
    "sdxl": {
        "depth": "diffusers/controlnet-depth-sdxl-1.0",
        "canny": "diffusers/controlnet-canny-sdxl-1.0",
        "openpose": "thibaud/controlnet-openpose-sdxl-1.0",
        "normal": "xinsir/controlnet-union-sdxl-1.0",
        "segmentation": "xinsir/controlnet-union-sdxl-1.0",
        "lineart": "xinsir/controlnet-union-sdxl-1.0",
        "scribble": "xinsir/controlnet-scribble-sdxl-1.0",
        "softedge": "xinsir/controlnet-union-sdxl-1.0",
        "mlsd": "xinsir/controlnet-union-sdxl-1.0",
    },
}

# Only safetensors weights and their configs: pickle files and fp16/EMA duplicates stay on the hub.
_PIPELINE_FILES = ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"]
_CONTROLNET_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
_SKIP_FILES = ["*.fp16.*", "*non_ema*", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.onnx",
               "safety_checker/*", "feature_extractor/*"]


@dataclass(frozen=True)
class ModelSource:
    """A model ready to load: `path` is a local diffusers folder."""
    spec: str
    path: str
    family: str
    smoke: bool = False

    @property
    def label(self) -> str:
        return f"{self.spec} ({FAMILY_NAMES[self.family]})"


def resolve_base(spec: str, cache_dir: str, allow_online: bool) -> ModelSource:
    """The base pipeline for a spec, fetched into the local cache if it must be and may be."""
    spec = spec.strip()
    if not spec:
        raise DiffusionError("No model is set", "type a hub id, a local folder, or 'smoke' in the Model field")
    if smoke_model.is_smoke(spec):
        family = smoke_model.smoke_family(spec)
        return ModelSource(spec, smoke_model.ensure_smoke_pipeline(cache_dir, family), family, smoke=True)
    path = _local_or_hub(spec, allow_online, _PIPELINE_FILES, what="model")
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise DiffusionError(f"{spec} is not a diffusers pipeline folder (no model_index.json)",
                             "pick the folder that holds model_index.json, or a hub id")
    return ModelSource(spec, path, detect_family(path))


def resolve_controlnet(spec: str | None, kind: str, base: ModelSource, cache_dir: str,
                       allow_online: bool) -> ModelSource:
    """The ControlNet for `kind`: `spec` if given, else the family's default."""
    if not spec:
        if base.smoke:
            path = smoke_model.ensure_smoke_controlnet(cache_dir, base.family, kind)
            return ModelSource(f"smoke-controlnet-{kind}", path, base.family, smoke=True)
        try:
            spec = DEFAULT_CONTROLNETS[base.family][kind]
        except KeyError:
            raise DiffusionError(f"There is no default {FAMILY_NAMES[base.family]} ControlNet for '{kind}'",
                                 "set one for this kind in the preferences") from None
    path = _local_or_hub(spec, allow_online, _CONTROLNET_FILES, what="ControlNet")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise DiffusionError(f"{spec} is not a ControlNet folder (no config.json)",
                             "pick the folder that holds the ControlNet's config.json, or a hub id")
    return ModelSource(spec, path, detect_family(path))


def detect_family(path: str) -> str:
    """SD 1.5 or SDXL, read from the UNet's (or ControlNet's) config, never from the name."""
    config_path = os.path.join(path, "unet", "config.json")
    if not os.path.isfile(config_path):
        config_path = os.path.join(path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise DiffusionError(f"Cannot read the model config {config_path}: {error}",
                             "check that the folder holds a complete diffusers model") from None
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    return "sd15"


def _local_or_hub(spec: str, allow_online: bool, patterns: list[str], what: str) -> str:
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    if os.path.exists(expanded):
        raise DiffusionError(f"The {what} path {spec} is a file, not a folder",
                             "pick a diffusers folder (with model_index.json or config.json)")
    if looks_like_path(spec):
        raise DiffusionError(f"The {what} folder {spec} does not exist", "check the path")
    return fetch_from_hub(spec, allow_online, patterns, what)


def looks_like_path(spec: str) -> bool:
    """A hub id is 'owner/name'; anything else with slashes or a drive letter is a path."""
    return (spec.startswith(("/", "~", ".", "\\")) or spec.count("/") > 1 or "\\" in spec
            or (len(spec) > 1 and spec[1] == ":"))


def fetch_from_hub(repo_id: str, allow_online: bool, patterns: list[str], what: str = "model") -> str:
    """A hub repository's snapshot in the standard Hugging Face cache, downloaded only if allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=_SKIP_FILES,
                                 local_files_only=True)
    except HFValidationError:
        raise DiffusionError(f"'{repo_id}' is neither a local folder nor a hub id",
                             "type a hub id like 'owner/name', a folder path, or 'smoke'") from None
    except LocalEntryNotFoundError:
        pass
    offline = not allow_online or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    fix = ("turn on Allow Online Access (Preferences > System) to download it, pick a local folder, "
           "or use MODEL=smoke / model 'smoke' to try the pipeline offline")
    if offline:
        raise DiffusionError(f"The {what} {repo_id} is not in the local cache and online access is off", fix)
    try:
        return snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=_SKIP_FILES)
    except OSError as error:  # connection and HTTP errors derive from OSError
        raise DiffusionError(
            f"The {what} {repo_id} is not in the local cache and the hub cannot be reached ({error})", fix,
        ) from None


def check_available(spec: str, allow_online: bool) -> None:
    """Fail fast (no torch, no download) when a base model can be neither found nor fetched."""
    spec = spec.strip()
    if not spec:
        raise DiffusionError("No model is set", "type a hub id, a local folder, or 'smoke' in the Model field")
    if smoke_model.is_smoke(spec):
        return
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return
    if os.path.exists(expanded) or looks_like_path(spec):
        _local_or_hub(spec, allow_online, _PIPELINE_FILES, what="model")  # raises the path's error
    if not allow_online or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        fetch_from_hub(spec, allow_online, _PIPELINE_FILES, what="model")  # raises unless cached
