# SPDX-License-Identifier: GPL-3.0-or-later
"""Model specs: what the person names (hub id, local folder, single file, `smoke`) -> what to load.

Nothing here loads weights; it finds them (downloading only when allowed, with progress)
and tells, from the model's own config or tensors, which family (SD 1.5 or SDXL) it
belongs to and whether a ControlNet is a union model (one model, a control mode per
condition kind). It also refuses, before anything is loaded, ControlNets that cannot run
with the base model, and weights that are damaged or (unless allowed) pickle files.

A single-file checkpoint (`.safetensors`, or a pickle file when allowed) is loaded with
the configuration files (model layout, scheduler, tokenizers: a few MB, no weights) of a
diffusers model of its family: the family's standard repository from the local cache or
the hub, or a local folder the person names. diffusers would otherwise fetch them from
the hub itself, even when online access is off.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

from . import smoke_model, weights
from .errors import DiffusionError
from .requests import CancelToken, Progress

ProgressCallback = Callable[[Progress], None]

FAMILIES = ("sd15", "sdxl")
FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}

DEFAULT_BASE = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
# What the Model field starts with, and what `make demo` runs without MODEL.
DEFAULT_MODEL = DEFAULT_BASE["sd15"]

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
# What loading a single-file checkpoint needs from its family's repository: no weights.
_CONFIG_FILES = ["model_index.json", "*/*.json", "*/*.txt"]
_SKIP_FILES = ["*.fp16.*", "*non_ema*", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.onnx",
               "safety_checker/*", "feature_extractor/*",
               "vae_1_0/*"]  # SDXL base's second, older VAE: not in its model_index.json


@dataclass(frozen=True)
class ModelSource:
    """A model ready to load: `path` is a local diffusers folder, or a single-file checkpoint.

    control_types: for a union ControlNet, how many control modes it has; 0 otherwise.
    config: for a single-file checkpoint, the diffusers folder whose configs it loads with.
    pickle: its weights are pickle files (the request allowed them).
    """
    spec: str
    path: str
    family: str
    smoke: bool = False
    control_types: int = 0
    config: str = ""
    pickle: bool = False

    @property
    def union(self) -> bool:
        return self.control_types > 0

    @property
    def single_file(self) -> bool:
        return bool(self.config)

    @property
    def label(self) -> str:
        name = os.path.basename(self.path) if self.single_file else self.spec
        return f"{name} ({FAMILY_NAMES[self.family]})"


def resolve_base(spec: str, cache_dir: str, allow_online: bool, allow_pickle: bool = False,
                 single_file_configs: Mapping[str, str] | None = None, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> ModelSource:
    """The base pipeline for a spec, fetched into the local cache if it must be and may be.

    single_file_configs: per family ("sd15", "sdxl"), the diffusers folder or hub id whose
        configs a single-file checkpoint of that family loads with (default: DEFAULT_BASE).
    on_progress: download progress (Progress with a message), possibly from download threads.
    """
    spec = spec.strip()
    if not spec:
        raise DiffusionError("No model is set", "type a hub id, a local folder, or 'smoke' in the Model field")
    if smoke_model.is_smoke(spec):
        family = smoke_model.smoke_family(spec)
        return ModelSource(spec, smoke_model.ensure_smoke_pipeline(cache_dir, family), family, smoke=True)
    expanded = os.path.expanduser(spec)
    if os.path.isfile(expanded) or weights.is_weights_file(spec):
        return _resolve_single_file(spec, expanded, allow_online, allow_pickle, single_file_configs or {},
                                    on_progress, cancel)
    path = _local_or_hub(spec, allow_online, _PIPELINE_FILES, what="model", on_progress=on_progress, cancel=cancel)
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise DiffusionError(f"{spec} is not a diffusers pipeline folder (no model_index.json)",
                             "pick the folder that holds model_index.json, or a hub id")
    family = detect_family(path)
    pickle = weights.check_model_folder(path, weights.PIPELINE_COMPONENTS, allow_pickle, what="model")
    return ModelSource(spec, path, family, pickle=pickle)


def _resolve_single_file(spec: str, path: str, allow_online: bool, allow_pickle: bool,
                         configs: Mapping[str, str], on_progress: ProgressCallback | None,
                         cancel: CancelToken | None) -> ModelSource:
    _check_model_file(spec, path)
    checkpoint = weights.inspect_checkpoint(path, allow_pickle)
    config = single_file_config(checkpoint, configs.get(checkpoint.family, ""), allow_online, on_progress, cancel)
    return ModelSource(spec, os.path.abspath(path), checkpoint.family, config=config, pickle=checkpoint.pickle)


def _check_model_file(spec: str, path: str) -> None:
    if not os.path.isfile(path):
        raise DiffusionError(f"The model file {spec} does not exist", "check the path")
    if not weights.is_weights_file(path):
        raise DiffusionError(f"The model {spec} is a file of an unknown kind",
                             "pick a .safetensors checkpoint, a diffusers folder or a hub id")


def single_file_config(checkpoint: weights.Checkpoint, spec: str, allow_online: bool,
                       on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> str:
    """The diffusers folder whose configs and tokenizers `checkpoint` is loaded with, checked
    against the checkpoint's family and sizes (a mismatch would fail deep inside diffusers)."""
    family, name = checkpoint.family, FAMILY_NAMES[checkpoint.family]
    spec = spec.strip() or DEFAULT_BASE[family]
    what = f"{name} configuration"
    fix = (f"{os.path.basename(checkpoint.path)} loads with the configuration files of {spec} (model layout and "
           f"tokenizer: a few MB, no weights): turn on Allow Online Access (Preferences > System) once to fetch "
           f"them, or set a local {name} diffusers folder as the {name} single-file configuration in the preferences")
    folder = _local_or_hub(spec, allow_online, _CONFIG_FILES, what=what, on_progress=on_progress, cancel=cancel,
                           fix=fix)
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise DiffusionError(f"The {what} {spec} is not a diffusers pipeline folder (no model_index.json)", fix)
    unet = read_config(os.path.join(folder, "unet"))
    config_family = family_of(unet)
    if config_family != family:
        raise DiffusionError(f"The checkpoint {os.path.basename(checkpoint.path)} is {name} but its configuration "
                             f"{spec} is {FAMILY_NAMES[config_family]}", fix)
    width = (unet.get("block_out_channels") or [0])[0]
    context = unet.get("cross_attention_dim")
    if width != checkpoint.unet_width or (isinstance(context, int) and checkpoint.context_width
                                          and context != checkpoint.context_width):
        raise DiffusionError(
            f"The configuration {spec} does not fit the checkpoint {os.path.basename(checkpoint.path)}: its UNet is "
            f"{width} channels wide with {context}-wide text features, the checkpoint's is {checkpoint.unet_width} "
            f"with {checkpoint.context_width}", fix)
    return folder


def resolve_controlnet(spec: str | None, kind: str, base: ModelSource, cache_dir: str,
                       allow_online: bool, overrides: Mapping[str, str] | None = None, allow_pickle: bool = False,
                       on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> ModelSource:
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
    path = _local_or_hub(spec, allow_online, _CONTROLNET_FILES, what="ControlNet", on_progress=on_progress,
                         cancel=cancel)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise DiffusionError(f"{spec} is not a ControlNet folder (no config.json)",
                             "pick the folder that holds the ControlNet's config.json, or a hub id")
    config = read_config(path)
    pickle = weights.check_model_folder(path, ("",), allow_pickle, what="ControlNet")
    return ModelSource(spec, path, family_of(config), control_types=union_control_types(path, config), pickle=pickle)


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


def context_width(source: ModelSource) -> int | None:
    """The width of the text features `source`'s UNet attends to (768 SD 1.5, 2048 SDXL), from
    its UNet config (a single-file checkpoint's config folder was checked to match it); None
    when the config does not say."""
    folder = source.config if source.single_file else source.path
    try:
        with open(os.path.join(folder, "unet", "config.json"), encoding="utf-8") as f:
            width = json.load(f).get("cross_attention_dim")
    except (OSError, json.JSONDecodeError):
        return None
    return width if isinstance(width, int) else None


def read_config(folder: str) -> dict:
    """A model folder's config.json."""
    config_path = os.path.join(folder, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise DiffusionError(f"Cannot read the model config {config_path}: {error}",
                             "check that the folder holds a complete diffusers model") from None


def _local_or_hub(spec: str, allow_online: bool, patterns: list[str], what: str,
                  on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                  fix: str = "") -> str:
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    if os.path.exists(expanded):
        raise DiffusionError(f"The {what} path {spec} is a file, not a folder",
                             "pick a diffusers folder (with model_index.json or config.json)")
    if looks_like_path(spec):
        raise DiffusionError(f"The {what} folder {spec} does not exist", "check the path")
    return fetch_from_hub(spec, allow_online, patterns, what, on_progress=on_progress, cancel=cancel, fix=fix)


def looks_like_path(spec: str) -> bool:
    """A hub id is 'owner/name'; anything else with slashes or a drive letter is a path."""
    return (spec.startswith(("/", "~", ".", "\\")) or spec.count("/") > 1 or "\\" in spec
            or (len(spec) > 1 and spec[1] == ":"))


def fetch_from_hub(repo_id: str, allow_online: bool, patterns: list[str], what: str = "model",
                   on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   fix: str = "") -> str:
    """A hub repository's snapshot in the standard Hugging Face cache, downloaded only if allowed,
    with progress events ("Downloading owner/name: 1.2 of 4.3 GB") while it downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    from .downloads import download_snapshot, hub_errors

    try:
        return snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=_SKIP_FILES,
                                 local_files_only=True)
    except HFValidationError:
        raise DiffusionError(f"'{repo_id}' is neither a local folder nor a hub id",
                             "type a hub id like 'owner/name', a folder path, or 'smoke'") from None
    except LocalEntryNotFoundError:
        pass
    offline = not allow_online or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    if offline:
        fix = fix or ("turn on Allow Online Access (Preferences > System) to download it, pick a local folder, "
                      "or use MODEL=smoke / model 'smoke' to try the pipeline offline")
        raise DiffusionError(f"The {what} {repo_id} is not in the local cache and online access is off", fix)
    fix = fix or ("check the internet connection and try again (a partial download resumes), pick a local folder, "
                  "or use the 'smoke' model (make demo MODEL=smoke) to try the pipeline offline")
    with hub_errors(f"The {what} {repo_id}", fix):
        return download_snapshot(repo_id, patterns, _SKIP_FILES, on_progress, cancel)


def check_available(spec: str, allow_online: bool, allow_pickle: bool = False,
                    single_file_configs: Mapping[str, str] | None = None) -> None:
    """Fail fast (no torch, no download) when a base model can be neither found nor fetched."""
    spec = spec.strip()
    if not spec:
        raise DiffusionError("No model is set", "type a hub id, a local folder, or 'smoke' in the Model field")
    if smoke_model.is_smoke(spec):
        return
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return
    if os.path.isfile(expanded) or weights.is_weights_file(spec):
        _check_model_file(spec, expanded)
        if weights.is_pickle(expanded) and not allow_pickle:
            weights.refuse_pickle(expanded, "model")
        if weights.is_pickle(expanded):
            return  # reading a pickle file's tensor names means loading it: left to the generation
        checkpoint = weights.inspect_checkpoint(expanded, allow_pickle)
        config = (single_file_configs or {}).get(checkpoint.family, "").strip()
        if not allow_online or os.path.isdir(os.path.expanduser(config)) or looks_like_path(config):
            single_file_config(checkpoint, config, allow_online=False)  # raises unless local or cached
        return
    if os.path.exists(expanded) or looks_like_path(spec):
        _local_or_hub(spec, allow_online, _PIPELINE_FILES, what="model")  # raises the path's error
    if not allow_online or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        fetch_from_hub(spec, allow_online, _PIPELINE_FILES, what="model")  # raises unless cached


def peek_family(spec: str) -> str | None:
    """The family of a model spec if it can be told cheaply (no torch, no network), else None.

    For the sidebar: smoke models, local folders, single-file headers, and hub ids whose
    config is in the local cache.
    """
    spec = spec.strip()
    try:
        if smoke_model.is_smoke(spec):
            return smoke_model.smoke_family(spec)
        expanded = os.path.expanduser(spec)
        if os.path.isdir(expanded):
            return detect_family(expanded)
        if os.path.isfile(expanded):
            if weights.is_pickle(expanded):
                return None  # its tensor names are only readable by unpickling it
            return weights.inspect_checkpoint(expanded, allow_pickle=False).family
        if not spec or looks_like_path(spec):
            return None
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec, "unet/config.json")
        if isinstance(cached, str):
            with open(cached, encoding="utf-8") as f:
                return family_of(json.load(f))
    except (DiffusionError, OSError, ValueError):
        return None
    return None


def cached_pipelines() -> list[str]:
    """Hub ids of the diffusers pipelines in the local Hugging Face cache (no network, no torch)."""
    from huggingface_hub import constants

    found = []
    try:
        entries = sorted(os.listdir(constants.HF_HUB_CACHE))
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith("models--"):
            continue
        snapshots = os.path.join(constants.HF_HUB_CACHE, entry, "snapshots")
        try:
            revisions = os.listdir(snapshots)
        except OSError:
            continue
        if any(os.path.isfile(os.path.join(snapshots, r, "model_index.json")) for r in revisions):
            found.append(entry[len("models--"):].replace("--", "/"))
    return found


def model_suggestions() -> list[tuple[str, str]]:
    """(spec, description) pairs for the model field: smoke models, family defaults, cached pipelines."""
    suggestions = [("smoke", "random weights, SD 1.5 layout: checks the pipeline offline"),
                   ("smoke-sdxl", "random weights, SDXL layout: checks the pipeline offline")]
    cached = cached_pipelines()
    for family, spec in DEFAULT_BASE.items():
        where = "in the cache" if spec in cached else "downloads on first use"
        suggestions.append((spec, f"{FAMILY_NAMES[family]} default, {where}"))
    suggestions += [(spec, "in the cache") for spec in cached if spec not in DEFAULT_BASE.values()]
    return suggestions
