# SPDX-License-Identifier: GPL-3.0-or-later
"""Which ADE20K class each object stands for, and the label map of a capture render.

Telling objects apart per pixel: the object cryptomatte pass of the capture render
(scene/render.py). The object index pass would need `pass_index` set on the objects, and
the render's scene copy shares the person's objects, so that would write to their file;
cryptomatte needs nothing set: Cycles writes a hash of each object's name per pixel and
the name -> hash manifest into the EXR header. At one sample through the pixel centre,
rank 0 holds the one object each pixel sees (coverage 1), or 0 (coverage 0) for background.

The class of an object: its `scene_diffusion_segment` property (properties/objects.py)
when set, else a guess: "person" for meshes deformed by or parented to an armature, then
words in the object's, its data's and its materials' names (engine.segmentation.guess_class),
else a stable class per object from engine.segmentation.FALLBACK_CLASSES.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from ..engine.errors import DiffusionError
from ..engine.segmentation import ADE20K_CLASSES, class_index, fallback_classes, guess_class
from .render import RenderedPasses

__all__ = ["AUTO", "ObjectMap", "SegmentLabels", "auto_class", "class_for", "cryptomatte_names", "identifier_for",
           "object_map", "segment_labels"]

AUTO = "AUTO"  # the property's "guess from the object" value


def identifier_for(class_name: str) -> str:
    """The enum identifier of an ADE20K class ("chest of drawers" -> "chest_of_drawers")."""
    return class_name.replace(" ", "_")


_BY_IDENTIFIER = {identifier_for(name): name for name in ADE20K_CLASSES}


@dataclass(frozen=True, eq=False)
class SegmentLabels:
    """labels: HxW int16 ADE20K class index per pixel, -1 = no class.
    classes: object name -> class name, for the objects in view (and "" -> the background's)."""
    labels: np.ndarray
    classes: dict[str, str]


@dataclass(frozen=True, eq=False)
class ObjectMap:
    """Which object each pixel of a view sees: ids HxW int32 (-1: none), names[id]."""
    ids: np.ndarray
    names: tuple[str, ...]

    def coverage(self, names: set[str]) -> np.ndarray:
        """HxW float32: 1 where the pixel sees one of `names`, else 0."""
        wanted = np.array([name in names for name in self.names] + [False])
        return wanted[self.ids].astype(np.float32)  # id -1 reads the last entry: False


def object_map(rendered: RenderedPasses) -> ObjectMap:
    """The object per pixel of a render with the "cryptomatte" pass (see the module docstring)."""
    crypto = rendered.images["cryptomatte"]
    hashes = np.ascontiguousarray(crypto[..., 0]).view(np.uint32)
    seen = crypto[..., 1] > 0.0
    names = cryptomatte_names(rendered.metadata)
    values, inverse = np.unique(np.where(seen, hashes, 0), return_inverse=True)
    known = [value for value in values.tolist() if value in names]
    ids = np.array([known.index(value) if value in names else -1 for value in values.tolist()], np.int32)
    pixels = ids[inverse.reshape(hashes.shape)]
    pixels[~seen] = -1
    return ObjectMap(pixels, tuple(names[value] for value in known))


def auto_class(obj: bpy.types.Object) -> str | None:
    """The class guessed for `obj` from what it is and its names, or None."""
    if _is_character(obj):
        return "person"
    names = [obj.name]
    if obj.data is not None:
        names.append(obj.data.name)
    names += [slot.material.name for slot in getattr(obj, "material_slots", ()) if slot.material is not None]
    return guess_class(names)


def class_for(obj: bpy.types.Object) -> str | None:
    """The class the person chose for `obj`, else the guess (None: no guess)."""
    chosen = getattr(obj, "scene_diffusion_segment", AUTO)  # absent when not registered
    if chosen and chosen != AUTO:
        return _BY_IDENTIFIER[chosen]
    return auto_class(obj)


def _is_character(obj: bpy.types.Object) -> bool:
    """Deformed by an armature, or parented to one (a rigid prop held by a rig is not)."""
    if any(m.type == 'ARMATURE' and m.object is not None for m in getattr(obj, "modifiers", ())):
        return True
    return obj.parent is not None and obj.parent.type == 'ARMATURE' and obj.parent_type == 'ARMATURE'


def segment_labels(rendered: RenderedPasses, background: str = "sky") -> SegmentLabels:
    """ADE20K labels of a render with the "cryptomatte" pass.

    background: the class of pixels that see no object ("" = none, drawn black).
    """
    crypto = rendered.images["cryptomatte"]
    hashes = np.ascontiguousarray(crypto[..., 0]).view(np.uint32)
    seen = crypto[..., 1] > 0.0
    names = cryptomatte_names(rendered.metadata)
    # One pass over the pixels: each distinct hash in view is resolved once.
    values, inverse = np.unique(np.where(seen, hashes, 0), return_inverse=True)
    in_view = {names[value] for value in values.tolist() if value in names}
    classes: dict[str, str] = {}
    unknown: list[str] = []
    for name in sorted(in_view):
        obj = bpy.data.objects.get(name)
        guessed = class_for(obj) if obj is not None else None
        if guessed is None:
            unknown.append(name)
        else:
            classes[name] = guessed
    classes.update(fallback_classes(unknown))

    none = class_index(background) if background else -1
    per_value = np.array([class_index(classes[names[value]]) if names.get(value) in classes else none
                          for value in values.tolist()], np.int16)
    labels = per_value[inverse.reshape(hashes.shape)]
    labels[~seen] = none
    classes[""] = background
    return SegmentLabels(labels=labels, classes=classes)


def cryptomatte_names(metadata: dict[str, str]) -> dict[int, str]:
    """Object name hash -> object name, from the EXR header's object cryptomatte manifest."""
    for key, value in metadata.items():
        # cryptomatte/<id>/name is "<view layer>.CryptoObject"; its manifest is beside it.
        if key.startswith("cryptomatte/") and key.endswith("/name") and value.endswith("CryptoObject"):
            manifest = metadata.get(key[:-len("name")] + "manifest", "{}")
            try:
                return {int(code, 16): name for name, code in json.loads(manifest).items()}
            except (ValueError, TypeError, AttributeError) as error:
                raise DiffusionError("The capture render's object list is unreadable",
                                     f"report this as a bug ({error})") from error
    raise DiffusionError("The capture render has no object cryptomatte", "report this as a bug")
