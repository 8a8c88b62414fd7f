# SPDX-License-Identifier: GPL-3.0-or-later
"""What farm tasks made, gathered into one file.

On a farm each task opens the same .blend, makes its part (one object's texture, one seed's
image) and saves a copy of its own; tasks never write one file together. Gathering brings
into the open file what Scene Diffusion made in those copies and the open file lacks: the
images it made, and for each textured object its material slots and the UV map texturing
made, exactly as if the objects had been textured here one after the other.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import bpy

from ..engine.errors import DiffusionError
from . import images, materials

__all__ = ["Gathered", "gather"]

# Made images worth keeping; previews and coverage maps are scratch.
_SKIPPED_KINDS = {"preview", "coverage"}


@dataclass
class Gathered:
    images: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    files: int = 0

    def describe(self) -> str:
        parts = [f"{len(self.images)} image{'s' if len(self.images) != 1 else ''}"]
        if self.objects:
            parts.append(f"textures on {', '.join(self.objects)}")
        return f"Gathered {' and '.join(parts)} from {self.files} file{'s' if self.files != 1 else ''}"


def gather(paths: list[str]) -> Gathered:
    """Bring in from each .blend in `paths` what Scene Diffusion made there that is not here."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise DiffusionError(f"No .blend file at {missing[0]}", "give the files the tasks saved (--output-blend)")
    if not paths:
        raise DiffusionError("No .blend files to gather", "point at the folder the farm tasks saved their files in")
    known = {_key(image) for image in bpy.data.images if images.get_recipe(image)}
    result = Gathered(files=len(paths))
    for path in paths:
        textured = _gather_images(path, known, result)
        if textured:
            _gather_objects(path, textured, result)
    bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=False, do_recursive=True)
    return result


def _key(image: bpy.types.Image) -> str:
    return json.dumps(images.get_recipe(image), sort_keys=True, default=str)


def _gather_images(path: str, known: set[str], result: Gathered) -> list[str]:
    """Keep the made images new to this file; the names of objects with a new texture."""
    with bpy.data.libraries.load(path, link=False) as (source, loaded):
        loaded.images = list(source.images)
    textured = []
    for image in loaded.images:
        if image is None:
            continue
        recipe, key = images.get_recipe(image), _key(image)
        new = bool(recipe) and recipe.get("kind") not in _SKIPPED_KINDS and key not in known
        if new and recipe.get("kind") == "texture" and recipe.get("object") in bpy.context.scene.objects:
            textured.append(recipe["object"])  # it comes with its object's material
            new = False
        if new:
            known.add(key)
            image.use_fake_user = True
            result.images.append(image.name)
        else:
            bpy.data.images.remove(image)
    return sorted(set(textured))


def _gather_objects(path: str, names: list[str], result: Gathered) -> None:
    with bpy.data.libraries.load(path, link=False) as (_source, loaded):
        loaded.objects = list(names)
    for name, part in zip(names, loaded.objects):
        if part is None:
            continue
        here = bpy.context.scene.objects[name]
        _copy_uv_maps(part, here)
        _copy_slots(part, here)
        texture = materials.texture_of(here)
        if texture is not None:
            result.images.append(texture.name)
        result.objects.append(name)
        bpy.data.objects.remove(part)


def _copy_uv_maps(part: bpy.types.Object, here: bpy.types.Object) -> None:
    """UV maps texturing made on the part's copy of the mesh (same topology: the same mesh)."""
    if part.type != 'MESH' or len(part.data.loops) != len(here.data.loops):
        return
    for layer in part.data.uv_layers:
        if here.data.uv_layers.get(layer.name) is not None:
            continue
        coordinates = [0.0] * (2 * len(part.data.loops))
        layer.data.foreach_get("uv", coordinates)
        made = here.data.uv_layers.new(name=layer.name)
        made.data.foreach_set("uv", coordinates)
        if part.data.uv_layers.active is not None and part.data.uv_layers.active.name == layer.name:
            here.data.uv_layers.active = made


def _copy_slots(part: bpy.types.Object, here: bpy.types.Object) -> None:
    """Slots as texturing left them on the part: its new material on object-linked slots, or
    the person's own material with its Base Color re-linked (every user of it sees that, as
    when textured here)."""
    while len(here.material_slots) < len(part.material_slots):
        here.data.materials.append(None)
    for slot_here, slot_part in zip(here.material_slots, part.material_slots):
        material = slot_part.material
        if material is None or not _touched(material, here.name):
            continue
        if images.get_recipe(material).get("kind") == "texture_material":
            slot_here.link = 'OBJECT'
            slot_here.material = material
            continue
        original = slot_here.material  # the person's material, its Base Color re-linked in the part
        if original is not None and original != material:
            original.user_remap(material)
            name = original.name
            bpy.data.materials.remove(original)
            material.name = name


def _touched(material: bpy.types.Material, name: str) -> bool:
    """Whether texturing `name` wired an image into `material`."""
    if material.node_tree is None:
        return False
    return any(node.type == 'TEX_IMAGE' and node.image is not None
               and images.get_recipe(node.image).get("kind") == "texture"
               and images.get_recipe(node.image).get("object") == name for node in material.node_tree.nodes)
