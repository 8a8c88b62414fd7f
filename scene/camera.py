# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene camera and the output size it is rendered at."""
from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..engine.errors import DiffusionError

MIN_SIZE, MAX_SIZE = 64, 4096


@dataclass(frozen=True)
class OutputSize:
    """The generation size: the render resolution (with its %), rounded to a multiple of 8."""
    width: int
    height: int
    render_width: int
    render_height: int

    @property
    def rounded(self) -> bool:
        return (self.width, self.height) != (self.render_width, self.render_height)

    def describe(self) -> str:
        if not self.rounded:
            return f"{self.width}×{self.height}"
        return (f"{self.width}×{self.height} (render size {self.render_width}×{self.render_height} "
                f"rounded to a multiple of 8)")


def round_to_8(value: int) -> int:
    return max(8, int(value / 8.0 + 0.5) * 8)  # half up, not banker's rounding


def output_size(scene: bpy.types.Scene) -> OutputSize:
    """The size to generate at, checked against what Stable Diffusion can do."""
    render = scene.render
    width = int(render.resolution_x * render.resolution_percentage / 100)
    height = int(render.resolution_y * render.resolution_percentage / 100)
    size = OutputSize(round_to_8(width), round_to_8(height), width, height)
    for name, value in (("width", size.width), ("height", size.height)):
        if value > MAX_SIZE:
            raise DiffusionError(f"The render {name} {value} px is over {MAX_SIZE} px",
                                 "lower the resolution or its % in Output Properties > Format")
        if value < MIN_SIZE:
            raise DiffusionError(f"The render {name} {value} px is under {MIN_SIZE} px",
                                 "raise the resolution or its % in Output Properties > Format")
    return size
