# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-object segmentation class saved with the .blend file: `object.scene_diffusion_segment`.

The segmentation condition paints each object in the ADE20K colour of its class (see
scene/segmentation.py). "Automatic" guesses it from the object (a rigged mesh is a person)
and its names ("Floor", "Oak Tree", material "Grass"); any of the 150 classes can be picked
instead. It lives on the Object, so library overrides can set it on linked assets.
"""
import bpy
from bpy.props import EnumProperty

from .engine.segmentation import ADE20K_CLASSES
from .scene.segmentation import AUTO, identifier_for

SEGMENT_ITEMS = [(AUTO, "Automatic", "Guess from the object: rigged meshes are people, then words in the "
                  "object's, mesh's and materials' names, else a stable class of its own")] + [
    (identifier_for(name), name.title(), f"ADE20K class {index}: {name}")
    for index, name in enumerate(ADE20K_CLASSES)]


def register() -> None:
    bpy.types.Object.scene_diffusion_segment = EnumProperty(
        name="Segmentation Class",
        description="What this object is in the segmentation condition (its ADE20K colour)",
        items=SEGMENT_ITEMS, default=AUTO, override={'LIBRARY_OVERRIDABLE'})


def unregister() -> None:
    del bpy.types.Object.scene_diffusion_segment
