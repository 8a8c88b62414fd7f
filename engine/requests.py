# SPDX-License-Identifier: GPL-3.0-or-later
"""Requests and results: the whole contract between Blender and the engine.

Everything here is plain data (numpy arrays, strings, numbers), so a request built on
Blender's main thread can be handed to the worker thread without touching bpy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .kinds import CONTROL_KINDS
from .memory import MemoryOptions
from .references import ReferenceImage
from .regions import RegionPrompt

__all__ = ["CONTROL_KINDS", "MODES", "CancelToken", "ControlUnit", "GenerationRequest", "GenerationResult",
           "LoraSpec", "Progress", "ReferenceImage", "RegionPrompt"]


# What a request asks for, from its inputs: no init image -> txt2img; an init image ->
# img2img; an init image and a mask -> inpaint. Each may have any number of ControlNets.
MODES = ("txt2img", "img2img", "inpaint")


@dataclass(frozen=True, eq=False)
class ControlUnit:
    """One ControlNet condition.

    image: HxWx3 uint8 in the convention the ControlNet expects (depth: near bright).
    guidance_start/end: the fraction of the denoising steps the unit acts on.
    model: a ControlNet spec overriding the family default for this kind.
    """
    kind: str
    image: np.ndarray
    scale: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    model: str | None = None


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA `.safetensors` file and the weight it is applied with (0: off).

    few_step: "auto" (recognised by its file or folder name, see engine.loras), "none" (an
        ordinary LoRA), or the kind of few-step LoRA it is: "lcm", "lightning", "hyper",
        "hyper_cfg", "tcd". A few-step LoRA picks its scheduler (unless the request names
        one) and lowers guidance it cannot take.
    """
    path: str
    weight: float = 1.0
    few_step: str = "auto"


@dataclass(frozen=True)
class EmbeddingSpec:
    """A textual inversion embedding file (`.safetensors`; pickle only when allowed) and the
    token a prompt uses it by (empty: `<file name>`, as A1111 names them)."""
    path: str
    token: str = ""


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """Everything one generation needs.

    init_image: HxWx3 float32 0..1 (image-to-image); another size than width x height is
        resized to it (the result's notes say so).
    strength: how much of the init image is redrawn, 0..1 (1: all of it; in inpainting, the
        masked area from scratch); diffusers runs about steps x strength denoising steps.
    mask: HxW float32 0..1 the size of the init image, >= 0.5 = repaint (inpainting).
    strength_map: HxW float32 0..1 the size of the init image: each pixel's own strength in
        image to image (engine/differential.py), at most `strength`, where the pipeline starts;
        e.g. 1 where an animation frame's warp shows nothing, the frame's strength elsewhere.
    prompt_blend: (another prompt, its negative prompt, weight 0..1): the text embeddings
        taken that far from this prompt's towards the other's (animations between prompt keys).
    tiling: "" (none), "x", "y" or "xy": seamless along those axes (the image wraps around:
        "x" for 360° panoramas, "xy" for tileable textures).
    model: "smoke", "smoke-sdxl", a hub id, a local diffusers folder or a single .safetensors file.
    scheduler: "default" (the model's own) or a name from engine.schedulers.SCHEDULER_NAMES.
    controlnet_overrides: the ControlNet spec to use per condition kind instead of the family
        default, keyed "<kind>" or "<family>:<kind>" ("sdxl:depth"; wins over "depth");
        empty values are ignored. A unit's own `model` wins over both.
    preview_every: 0 for no previews; n for a preview image in the progress event of every
        n-th step (see engine/previews.py), made by `preview_method`: "auto", "linear" (a 4x3
        colour matrix, 1/8 size, nearly free) or "tiny_vae" (TAESD, from the local cache).
    memory: CPU offload, VAE tiling and attention slicing, each "auto", "on" or "off".
    regions: a prompt per region of the picture (engine/regions.py): each region's words
        steer where its mask is, the main prompt steers everywhere.
    references: reference images steering through an IP-Adapter (engine/references.py), each
        with its weight; ip_adapter: the adapter's spec ("": the family's default).
    """
    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0
    model: str = "smoke"
    scheduler: str = "default"
    controls: tuple[ControlUnit, ...] = ()
    controlnet_overrides: dict[str, str] = field(default_factory=dict)
    init_image: np.ndarray | None = None
    strength: float = 0.75
    mask: np.ndarray | None = None
    strength_map: np.ndarray | None = None
    prompt_blend: tuple[str, str, float] | None = None
    tiling: str = ""
    loras: tuple[LoraSpec, ...] = ()
    embeddings: tuple[EmbeddingSpec, ...] = ()
    regions: tuple[RegionPrompt, ...] = ()
    references: tuple[ReferenceImage, ...] = ()
    ip_adapter: str = ""
    num_images: int = 1
    allow_online: bool = False
    # Pickle weights (.ckpt, .bin, .pt, .pth) can run code when loaded: refused unless True.
    allow_pickle: bool = False
    # Per family ("sd15", "sdxl"): the diffusers folder or hub id whose configs and tokenizers a
    # single-file checkpoint loads with; empty: the family's standard repository (cached or fetched).
    single_file_configs: dict[str, str] = field(default_factory=dict)
    preview_every: int = 0  # 0: no previews; n: a preview image every n steps
    preview_method: str = "auto"
    memory: MemoryOptions = MemoryOptions()

    @property
    def mode(self) -> str:
        """"txt2img", "img2img" or "inpaint", from the inputs given (see MODES)."""
        if self.init_image is None:
            return "txt2img"
        return "img2img" if self.mask is None else "inpaint"


@dataclass(frozen=True)
class Progress:
    """A progress event from the worker: step i of n, with a time estimate.

    item, items: in a many-result job (engine.jobs.for_each), the result being made
    (from 1) and how many the job makes; 0 otherwise.
    """
    step: int
    total: int
    elapsed: float
    eta: float
    message: str = ""
    preview: np.ndarray | None = None  # HxWx3 float32 0..1, small
    item: int = 0
    items: int = 0


@dataclass(frozen=True, eq=False)
class GenerationResult:
    """images: list of HxWx3 float32 0..1 arrays.

    controlnets: the ControlNet spec each control unit ran with, in the units' order.
    """
    images: list[np.ndarray]
    seed: int
    model: str
    family: str
    mode: str = "txt2img"
    controlnets: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # things the person should know (e.g. "random weights")


class CancelToken:
    """Set from the main thread, checked by the worker at every denoising step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled (True) or `timeout` seconds passed (False)."""
        return self._event.wait(timeout)
