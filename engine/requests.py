# SPDX-License-Identifier: GPL-3.0-or-later
"""Requests and results: the whole contract between Blender and the engine.

Everything here is plain data (numpy arrays, strings, numbers), so a request built on
Blender's main thread can be handed to the worker thread without touching bpy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

CONTROL_KINDS = (
    "depth", "canny", "openpose", "normal", "segmentation",
    "lineart", "scribble", "softedge", "mlsd",
)


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
    """A LoRA `.safetensors` file and the weight it is applied with."""
    path: str
    weight: float = 1.0


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """Everything one generation needs.

    init_image: HxWx3 float32 0..1 (image-to-image); strength: how much of it is redrawn.
    mask: HxW float32 0..1, 1 = repaint (inpainting).
    tiling: "" (none), "x", "y" or "xy": seamless along those axes.
    model: "smoke", a hub id, a local diffusers folder or a single .safetensors file.
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
    init_image: np.ndarray | None = None
    strength: float = 0.75
    mask: np.ndarray | None = None
    tiling: str = ""
    loras: tuple[LoraSpec, ...] = ()
    num_images: int = 1
    allow_online: bool = False
    preview_every: int = 0  # 0: no previews; n: a preview image every n steps


@dataclass(frozen=True)
class Progress:
    """A progress event from the worker: step i of n, with a time estimate."""
    step: int
    total: int
    elapsed: float
    eta: float
    message: str = ""
    preview: np.ndarray | None = None  # HxWx3 float32 0..1, small


@dataclass(frozen=True, eq=False)
class GenerationResult:
    """images: list of HxWx3 float32 0..1 arrays."""
    images: list[np.ndarray]
    seed: int
    model: str
    family: str
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
