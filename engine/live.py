# SPDX-License-Identifier: GPL-3.0-or-later
"""Live View's rules, apart from Blender: which models are quick enough, and at what size.

Live View redraws at every change of the scene, so a generation must take a few steps: a
few-step LoRA (LCM, Lightning, Hyper-SD, TCD; engine/loras.py) or a distilled model
("turbo", "lightning", "lcm", "hyper" in its name). The turbo models are trained without
classifier-free guidance and take guidance 0; the few-step LoRAs set their own guidance.
"""
from __future__ import annotations

import os
import re

from .errors import DiffusionError
from .loras import recognise_few_step
from .requests import GenerationRequest

__all__ = ["FEW_STEP_FIX", "few_step_of_request", "live_request", "live_size"]

# Distilled models, by the names they are published under (sd-turbo, sdxl-turbo,
# SDXL-Lightning merges, LCM_Dreamshaper, Hyper-SD merges, DMD2 ...).
_MODEL_PATTERNS = (
    ("turbo", re.compile(r"turbo")),
    ("lightning", re.compile(r"lightning")),
    ("lcm", re.compile(r"(^|[^a-z])(lcm|dmd2)([^a-z]|$)")),
    ("hyper", re.compile(r"hyper[-_ ]?sd")),
)
FEW_STEP_FIX = ("add a few-step LoRA in the LoRAs panel (LCM-LoRA, SDXL-Lightning, Hyper-SD or TCD), or pick a "
                "few-step model such as stabilityai/sd-turbo or stabilityai/sdxl-turbo")


def few_step_of_request(request: GenerationRequest) -> str:
    """What makes the request few-step ("LoRA lcm-lora-sdv1-5", "turbo model"), or ""."""
    for lora in request.loras:
        kind = lora.few_step if lora.few_step not in ("auto", "none") else \
            recognise_few_step(lora.path) if lora.few_step == "auto" else ""
        if kind and lora.weight != 0:
            return f"{kind} LoRA {os.path.basename(lora.path)}"
    name = request.model.strip().lower()
    for kind, pattern in _MODEL_PATTERNS:
        if pattern.search(name):
            return f"{kind} model"
    return ""


def live_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The render's aspect at `long_side` pixels on its longer side, both multiples of 8 (at least 64)."""
    scale = long_side / max(width, height)
    return tuple(max(64, int(round(side * scale / 8)) * 8) for side in (width, height))


def live_request(request: GenerationRequest, steps: int) -> GenerationRequest:
    """`request` as Live View runs it: few steps, no previews, turbo models without guidance.
    Refuses a request with nothing few-step about it."""
    import dataclasses

    found = few_step_of_request(request)
    if not found:
        raise DiffusionError(f"Live View needs a few-step model, and {request.model or 'the model'} with no few-step "
                             "LoRA is not one", FEW_STEP_FIX)
    changes = dict(steps=steps, preview_every=0)
    if found == "turbo model":
        changes["guidance"] = 0.0
    return dataclasses.replace(request, **changes)
