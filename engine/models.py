# SPDX-License-Identifier: GPL-3.0-or-later
"""Model specs: what the person names (hub id, local folder, `smoke`) -> a folder to load.

Nothing here loads weights; it finds them (downloading only when allowed) and tells,
from the model's own config, which family (SD 1.5 or SDXL) it belongs to and whether
a ControlNet is a union model (one model, a control mode per condition kind). It also
refuses, before anything is loaded, ControlNets that cannot run with the base model.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import smoke_model
from .errors import DiffusionError

FAMILIES = ("sd15", "sdxl")
FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}

DEFAULT_BASE = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}

# The ControlNet used for each condition kind unless the person overrides it (see
# `resolve_controlnet`). SDXL uses the union model for every kind: one download serves all
# kinds, and diffusers cannot mix union and single-kind ControlNets in one generation.
# Single-kind SDXL ControlNets (diffusers/controlnet-depth-sdxl-1.0, -canny-, thibaud/
# controlnet-openpose-sdxl-1.0, ...) work as overrides, for all the kinds used together.
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
    "sdxl": {kind: "xinsir/controlnet-union-sdxl-1.0" for kind in (
        "depth", "canny", "openpose", "normal", "segmentation", "lineart", "scribble", "softedge", "mlsd",
    )},
}

# A union ControlNet's control mode for each condition kind: xinsir's order (0 openpose,
# 1 depth, 2 hed/pidi/scribble/ted, 3 canny/lineart/anime lineart/mlsd, 4 normal, 5 segment).
UNION_CONTROL_MODES = {
    "openpose": 0, "depth": 1, "softedge": 2, "scribble": 2,
    "canny": 3, "lineart": 3, "mlsd": 3, "normal": 4, "segmentation": 5,
}

# Only safetensors weights and their configs: pickle files and fp16/EMA duplicates stay on the hub.
_PIPELINE_FILES = ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"]
_CONTROLNET_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
_SKIP_FILES = ["*.fp16.*", "*non_ema*", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.onnx",
               "safety_checker/*", "feature_extractor/*"]


@dataclass(frozen=True)
class ModelSource:
    """A model ready to load: `path` is a local diffusers folder.

    control_types: for a union ControlNet, how many control modes it has; 0 otherwise.
    """
    spec: str
    path: str
    family: str
    smoke: bool = False
    control_types: int = 0

    @property
    def union(self) -> bool:
        return self.control_types > 0

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
                       allow_online: bool, overrides: Mapping[str, str] | None = None) -> ModelSource:
    """The ControlNet for `kind`, first found of: `spec` (the unit's own model), the
    override for "<family>:<kind>" then for "<kind>", the family's default.

    The smoke model ignores the overrides (they name real ControlNets) and uses smoke
    ControlNets, so trying the pipeline offline never needs a download.
    """
    if not spec and base.smoke:
        if base.family == "sdxl":  # like the real SDXL table: the union model for every kind
            path = smoke_model.ensure_smoke_union_controlnet(cache_dir)
            return ModelSource("smoke-controlnet-union", path, base.family, smoke=True,
                               control_types=union_control_types(path, read_config(path)))
        path = smoke_model.ensure_smoke_controlnet(cache_dir, base.family, kind)
        return ModelSource(f"smoke-controlnet-{kind}", path, base.family, smoke=True)
    overrides = overrides or {}
    spec = spec or overrides.get(f"{base.family}:{kind}") or overrides.get(kind)
    if not spec:
        try:
            spec = DEFAULT_CONTROLNETS[base.family][kind]
        except KeyError:
            raise DiffusionError(f"There is no default {FAMILY_NAMES[base.family]} ControlNet for '{kind}'",
                                 "set one for this kind in the preferences") from None
    path = _local_or_hub(spec, allow_online, _CONTROLNET_FILES, what="ControlNet")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise DiffusionError(f"{spec} is not a ControlNet folder (no config.json)",
                             "pick the folder that holds the ControlNet's config.json, or a hub id")
    config = read_config(path)
    return ModelSource(spec, path, family_of(config), control_types=union_control_types(path, config))


def check_controlnets(base: ModelSource, controlnets: Sequence[ModelSource], kinds: Sequence[str]) -> None:
    """Refuse, before anything is loaded, ControlNets that cannot run with `base` together."""
    for source, kind in zip(controlnets, kinds):
        if source.family != base.family:
            raise DiffusionError(
                f"The {kind} ControlNet {source.spec} is for {FAMILY_NAMES[source.family]} but the model "
                f"{base.spec} is {FAMILY_NAMES[base.family]}",
                f"pick a {FAMILY_NAMES[base.family]} ControlNet for {kind} in the preferences",
            )
    union = [(s, k) for s, k in zip(controlnets, kinds) if s.union]
    single = [(s, k) for s, k in zip(controlnets, kinds) if not s.union]
    if union and single:
        (u, u_kind), (s, s_kind) = union[0], single[0]
        raise DiffusionError(
            f"The {u_kind} ControlNet {u.spec} is a union model and the {s_kind} ControlNet {s.spec} is not: "
            "diffusers runs either union or single-kind ControlNets in one generation",
            f"use the union model for {s_kind} too (or single-kind ControlNets for both) in the preferences, "
            "or turn one of the conditions off",
        )
    for source, kind in union:
        union_mode(source, kind)  # raises when the union model has no mode for the kind


def union_mode(source: ModelSource, kind: str) -> int:
    """The control mode a union ControlNet uses for a condition kind."""
    mode = UNION_CONTROL_MODES.get(kind)
    if mode is None or mode >= source.control_types:
        raise DiffusionError(f"The union ControlNet {source.spec} has no control mode for '{kind}'",
                             f"pick a single-kind ControlNet for {kind} in the preferences")
    return mode


def detect_family(path: str) -> str:
    """SD 1.5 or SDXL, read from the UNet's (or ControlNet's) config, never from the name."""
    unet = os.path.join(path, "unet")
    return family_of(read_config(unet if os.path.isdir(unet) else path))


def family_of(config: dict) -> str:
    # SDXL's UNet (and its ControlNets) add an embedding of the pooled text and image sizes.
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    return "sd15"


def union_control_types(path: str, config: dict) -> int:
    """How many control modes a union ControlNet has; 0 for a single-kind ControlNet.

    From the config, or else from the weights file's header (no weights are read): union
    weights hold a task embedding with one row per mode, whatever the config's class says.
    """
    if config.get("num_control_type"):
        return int(config["num_control_type"])
    weights = os.path.join(path, "diffusion_pytorch_model.safetensors")
    if not os.path.isfile(weights):
        return 0
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(weights, framework="np") as f:
            if "task_embedding" not in f.keys():
                return 0
            return int(f.get_slice("task_embedding").get_shape()[0])
    except (OSError, SafetensorError) as error:
        raise DiffusionError(f"Cannot read the ControlNet weights {weights}: {error}",
                             "download the ControlNet again, or pick another") from None


def read_config(folder: str) -> dict:
    """A model folder's config.json."""
    config_path = os.path.join(folder, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise DiffusionError(f"Cannot read the model config {config_path}: {error}",
                             "check that the folder holds a complete diffusers model") from None


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
