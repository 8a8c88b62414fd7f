# SPDX-License-Identifier: GPL-3.0-or-later
"""Meshes as the texture engine sees them: evaluated, triangulated, in world space.

The mesh is the *evaluated* one (modifiers, shape keys and armatures applied by Blender's
evaluation, nothing applied to the object), read at once with `foreach_get` into an
engine.texture.Surface: per triangle its corners' world positions, their corner normals
(flat or smooth as the mesh is shaded) and their UVs in the UV map the texture uses.
Modifiers carry UV maps through (a Subdivision modifier subdivides them too), so the UVs
of the evaluated mesh are those the material will sample.
"""
from __future__ import annotations

import bpy
import numpy as np

from ..engine.errors import DiffusionError
from ..engine.texture import Surface

__all__ = ["surface_of"]


def surface_of(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, uv_map: str | None) -> Surface:
    """`obj`'s evaluated mesh in `depsgraph` as a Surface, with the UVs of `uv_map` (None:
    all zero, for what needs only the geometry)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_map) if uv_map is not None else None
        if uv_map is not None and layer is None:
            raise DiffusionError(f"The evaluated mesh of '{obj.name}' has no UV map '{uv_map}'",
                                 "a modifier may drop it: check the modifier stack, or pick another UV map")
        mesh.calc_loop_triangles()
        count = len(mesh.loop_triangles)
        if count == 0:
            raise DiffusionError(f"'{obj.name}' has no faces to texture",
                                 "texture meshes with faces, or check its modifiers")
        loops = _read(mesh.loop_triangles, "loops", count * 3, np.int32)
        corner_vertices = _read(mesh.loops, "vertex_index", len(mesh.loops), np.int32)
        positions = _read(mesh.vertices, "co", len(mesh.vertices) * 3, np.float32).reshape(-1, 3)
        normals = _read(mesh.corner_normals, "vector", len(mesh.loops) * 3, np.float32).reshape(-1, 3)
        uvs = (_read(layer.uv, "vector", len(mesh.loops) * 2, np.float32).reshape(-1, 2) if layer is not None
               else np.zeros((len(mesh.loops), 2), np.float32))
    finally:
        evaluated.to_mesh_clear()
    world = np.array(evaluated.matrix_world, dtype=np.float64)
    corners = positions[corner_vertices[loops]].astype(np.float64) @ world[:3, :3].T + world[:3, 3]
    # Normals turn with the inverse transpose (non-uniform scale), then are made unit again.
    turned = normals[loops].astype(np.float64) @ np.linalg.inv(world[:3, :3])
    turned /= np.maximum(np.linalg.norm(turned, axis=1, keepdims=True), 1e-12)
    return Surface(name=obj.name, corners=corners.reshape(count, 3, 3), normals=turned.reshape(count, 3, 3),
                   uvs=uvs[loops].astype(np.float64).reshape(count, 3, 2), uv_map=uv_map or "")


def _read(collection, attribute: str, length: int, dtype) -> np.ndarray:
    values = np.empty(length, dtype=dtype)
    collection.foreach_get(attribute, values)
    return values
