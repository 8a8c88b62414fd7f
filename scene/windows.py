# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender's open areas: the one loop over windows that redraws and image editors use."""
from __future__ import annotations

from collections.abc import Iterator

import bpy

__all__ = ["areas", "redraw"]


def areas(types: set[str]) -> Iterator[bpy.types.Area]:
    """Every open area of these types, in every window (none when headless)."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        screen = window.screen
        for area in screen.areas if screen else ():
            if area.type in types:
                yield area


def redraw(types: set[str]) -> None:
    """Tag the open areas of these types for a redraw."""
    for area in areas(types):
        area.tag_redraw()
