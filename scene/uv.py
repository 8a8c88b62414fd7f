# SPDX-License-Identifier: GPL-3.0-or-later
"""The UV map a texture is painted in: the object's active one, or a new one when it has none.

An existing UV map is never changed or replaced. A mesh without any gets a new UV map,
UV_MAP_NAME, unwrapped by Smart UV Project (headless: in Edit Mode under a context
override, then back to Object Mode); the caller says so to the person.
"""
from __future__ import annotations

import math

import bpy

from ..engine.errors import DiffusionError

__all__ = ["UV_MAP_NAME", "uv_map_of", "ensure_uv_map"]

UV_MAP_NAME = "Scene Diffusion UV"
# Smart UV Project's own defaults (66° between faces of one island), with room between
# islands for the texture's padding to grow into.
_ANGLE_LIMIT = math.radians(66.0)
_ISLAND_MARGIN = 0.02


def uv_map_of(obj: bpy.types.Object) -> str | None:
    """The name of the object's active UV map (the one shown in the UV Editor), or None."""
    layers = obj.data.uv_layers
    return layers.active.name if layers.active is not None else None


def ensure_uv_map(obj: bpy.types.Object) -> tuple[str, bool]:
    """(the UV map to paint in, whether it was just made). Makes one only when there is none."""
    existing = uv_map_of(obj)
    if existing is not None:
        return existing, False
    if obj.data.library is not None:
        raise DiffusionError(f"'{obj.name}' has no UV map and its mesh is linked from a library",
                             "unwrap it in its own file, or make the mesh local")
    layer = obj.data.uv_layers.new(name=UV_MAP_NAME)
    obj.data.uv_layers.active = layer
    name = layer.name  # read now: leaving Edit Mode reallocates the layers, and `layer` then points at freed memory
    _smart_project(obj)
    return name, True


def _smart_project(obj: bpy.types.Object) -> None:
    """Unwrap every face of `obj`'s mesh into its active UV map, leaving the mode and the
    selection as they were."""
    context = bpy.context
    previous_mode = obj.mode
    selected = [polygon.select for polygon in obj.data.polygons]
    with context.temp_override(active_object=obj, object=obj, selected_objects=[obj], selected_editable_objects=[obj],
                               edit_object=obj):
        if previous_mode != 'EDIT':
            bpy.ops.object.mode_set(mode='EDIT')
        try:
            bpy.ops.mesh.select_all(action='SELECT')
            bpy.ops.uv.smart_project(angle_limit=_ANGLE_LIMIT, island_margin=_ISLAND_MARGIN)
        finally:
            bpy.ops.object.mode_set(mode='OBJECT')
        obj.data.polygons.foreach_set("select", selected)
        if previous_mode != 'OBJECT':
            bpy.ops.object.mode_set(mode=previous_mode)
