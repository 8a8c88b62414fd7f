# SPDX-License-Identifier: GPL-3.0-or-later
"""Region prompts: each object's words (its own, else its collection's), and their masks in a view.

An object's prompt is `object.scene_diffusion.region_prompt`; without one it takes the
prompt of the nearest collection holding it (its own collections first, then their parents;
among collections equally near, the first by name). The scene's own top collection has no
prompt: that is the main prompt's place. Objects with the
same words make one region. A region's mask is exactly the pixels its objects cover in the
view (the object cryptomatte of the capture render: occlusion-aware, see scene/segmentation.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..engine.regions import RegionPrompt
from .segmentation import ObjectMap

__all__ = ["Regions", "never_seen", "regions_in_view", "restore_prompts", "scene_prompts", "snapshot_prompts"]


def scene_prompts(scene: bpy.types.Scene) -> dict[str, str]:
    """Object name -> its region prompt, for every object of `scene` that has one."""
    parents = _collection_parents(scene)
    prompts = {}
    for obj in scene.objects:
        prompt = _prompt_of(obj, parents)
        if prompt:
            prompts[obj.name] = prompt
    return prompts


def _prompt_of(obj: bpy.types.Object, parents: dict[str, list[bpy.types.Collection]]) -> str:
    own = obj.scene_diffusion.region_prompt.strip()
    if own:
        return own
    level = sorted(obj.users_collection, key=lambda c: c.name)
    seen: set[str] = set()
    while level:
        for collection in level:
            prompt = collection.scene_diffusion.region_prompt.strip()
            if prompt:
                return prompt
        seen.update(c.name for c in level)
        level = sorted({p.name: p for c in level for p in parents.get(c.name, []) if p.name not in seen}.values(),
                       key=lambda c: c.name)
    return ""


def _collection_parents(scene: bpy.types.Scene) -> dict[str, list[bpy.types.Collection]]:
    """Collection name -> the collections (in this scene) that hold it as a child."""
    parents: dict[str, list[bpy.types.Collection]] = {}
    todo = [scene.collection]
    while todo:
        collection = todo.pop()
        for child in collection.children:
            parents.setdefault(child.name, []).append(collection)
            todo.append(child)
    return parents


@dataclass(frozen=True)
class Regions:
    """The regions of one view (what steers) and the objects with a prompt that it does not see."""
    regions: tuple[RegionPrompt, ...] = ()
    unseen: tuple[str, ...] = ()


def regions_in_view(prompts: dict[str, str], seen: ObjectMap) -> Regions:
    """One RegionPrompt per distinct prompt among the objects `seen` (their pixels as its mask)."""
    by_prompt: dict[str, list[str]] = {}
    in_view = set(seen.names)
    for name in sorted(prompts):
        if name in in_view:
            by_prompt.setdefault(prompts[name], []).append(name)
    regions, shown = [], set()
    for prompt, names in by_prompt.items():
        mask = seen.coverage(set(names))
        if mask.any():  # listed by the cryptomatte yet covering no pixel centre: not in view either
            regions.append(RegionPrompt(prompt, mask, ", ".join(names), tuple(names)))
            shown.update(names)
    return Regions(tuple(regions), tuple(sorted(set(prompts) - shown)))


def never_seen(prompts: dict[str, str], regions) -> list[str]:
    """The objects of `prompts` that none of `regions` (RegionPrompts of several views) covers."""
    return sorted(set(prompts) - {name for region in regions for name in region.objects})


def snapshot_prompts(scene: bpy.types.Scene) -> dict[str, dict[str, str]]:
    """Every region prompt set on the scene's objects and collections (their own, not inherited)."""
    return {
        "objects": {obj.name: obj.scene_diffusion.region_prompt for obj in scene.objects
                    if obj.scene_diffusion.region_prompt.strip()},
        "collections": {c.name: c.scene_diffusion.region_prompt for c in scene.collection.children_recursive
                        if c.scene_diffusion.region_prompt.strip()},
    }


def restore_prompts(scene: bpy.types.Scene, data: dict) -> list[str]:
    """Set the region prompts of a snapshot, clearing the others; what is not here, one note each."""
    notes = []
    wanted_objects, wanted_collections = dict(data.get("objects", {})), dict(data.get("collections", {}))
    for obj in scene.objects:
        prompt = wanted_objects.pop(obj.name, "")
        if obj.scene_diffusion.region_prompt != prompt:
            obj.scene_diffusion.region_prompt = prompt
    for collection in scene.collection.children_recursive:
        prompt = wanted_collections.pop(collection.name, "")
        if collection.scene_diffusion.region_prompt != prompt:
            collection.scene_diffusion.region_prompt = prompt
    notes += [f"the object '{name}' with the region prompt '{prompt}' is not in this scene"
              for name, prompt in wanted_objects.items()]
    notes += [f"the collection '{name}' with the region prompt '{prompt}' is not in this scene"
              for name, prompt in wanted_collections.items()]
    return notes
