# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene Diffusion's engine: Stable Diffusion + ControlNet with diffusers, bpy-free.

Importing this package is cheap: torch and diffusers load only when `Engine` is used.
It uses only relative imports, so `sys.path.insert(0, repo_root); import engine` works.
"""
from .errors import Cancelled, DiffusionError
from .memory import MemoryOptions
from .requests import (
    CONTROL_KINDS, MODES, CancelToken, ControlUnit, EmbeddingSpec, GenerationRequest, GenerationResult,
    LoraSpec, Progress, ReferenceImage, RegionPrompt,
)

__all__ = [
    "CONTROL_KINDS", "CancelToken", "Cancelled", "ControlUnit", "DiffusionError", "EmbeddingSpec", "Engine",
    "GenerationRequest", "GenerationResult", "LoraSpec", "MODES", "MemoryOptions", "Progress",
    "ReferenceImage", "RegionPrompt",
]


def __getattr__(name: str):
    # Lazy: the Engine module imports torch.
    if name == "Engine":
        from .generate import Engine
        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
