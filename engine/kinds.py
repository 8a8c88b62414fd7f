# SPDX-License-Identifier: GPL-3.0-or-later
"""The condition kinds: the one list every other place (requests, captures, the panel) reads."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConditionKind", "CONDITION_KINDS", "CONTROL_KINDS", "SCENE_KINDS", "KIND_LABELS"]


@dataclass(frozen=True)
class ConditionKind:
    """name: the ControlUnit kind; from_scene: captured from the 3D scene (the others come
    only from a detector or a picked image)."""
    name: str
    label: str
    description: str
    from_scene: bool


CONDITION_KINDS: tuple[ConditionKind, ...] = (
    ConditionKind("depth", "Depth", "Exact depth from the camera: near bright, far dark", True),
    ConditionKind("canny", "Canny", "Edges of the scene's exact geometry", True),
    ConditionKind("openpose", "OpenPose", "Skeletons of the armatures in view, drawn as OpenPose", True),
    ConditionKind("normal", "Normal", "Surface directions in camera space", True),
    ConditionKind("segmentation", "Segmentation", "Objects coloured by their class (ADE20K palette)", True),
    ConditionKind("lineart", "Line Art", "Clean lines from Freestyle", True),
    ConditionKind("scribble", "Scribble", "Rough strokes drawn by hand", False),
    ConditionKind("softedge", "Soft Edge", "Soft edges (HED, PiDiNet)", False),
    ConditionKind("mlsd", "M-LSD", "Straight lines", False),
)

CONTROL_KINDS: tuple[str, ...] = tuple(kind.name for kind in CONDITION_KINDS)
SCENE_KINDS: tuple[str, ...] = tuple(kind.name for kind in CONDITION_KINDS if kind.from_scene)
KIND_LABELS: dict[str, str] = {kind.name: kind.label for kind in CONDITION_KINDS}
