# SPDX-License-Identifier: GPL-3.0-or-later
"""The panel's settings (`scene.scene_diffusion`) as plain data, and back.

Every result's recipe carries a snapshot of the settings that made it (and of the region
prompts on the scene's objects), so **Use These Settings** can put every one of them back:
nested groups as dicts, lists (LoRAs, embeddings) as lists of dicts, datablocks by type and
name, enums by identifier. Restoring goes by name:
a field this version does not know (a recipe from a newer one) is skipped and listed, a
datablock that is not in this file is left empty and listed, and nothing else is touched.
"""
from __future__ import annotations

import json

import bpy

__all__ = ["REGION_PROMPTS", "restore", "restore_scene", "scene_snapshot", "settings_json", "snapshot"]

# The key of the region prompts (on objects and collections, not in the panel) in a scene snapshot.
REGION_PROMPTS = "region_prompts"

# Where a datablock pointer's value is looked up again, by the pointer's type.
_ID_COLLECTIONS = {"Image": "images", "Object": "objects", "Collection": "collections", "Material": "materials",
                   "Text": "texts", "World": "worlds", "Camera": "cameras"}


def snapshot(group: bpy.types.PropertyGroup) -> dict:
    """Every setting of `group` (and of the groups and lists inside it) as plain data."""
    data = {}
    for prop in group.bl_rna.properties:
        name = prop.identifier
        if name == "rna_type" or (prop.is_readonly and prop.type != 'POINTER' and prop.type != 'COLLECTION'):
            continue
        value = getattr(group, name)
        if prop.type == 'POINTER':
            if isinstance(value, bpy.types.ID) or prop.fixed_type.bl_rna.identifier in _ID_COLLECTIONS:
                # No None: ID properties (where recipes are kept) cannot hold it.
                data[name] = {"id": prop.fixed_type.bl_rna.identifier, "name": value.name if value else ""}
            elif value is not None:
                data[name] = snapshot(value)
        elif prop.type == 'COLLECTION':
            data[name] = [snapshot(item) for item in value]
        elif getattr(prop, "is_array", False):
            data[name] = list(value)
        elif prop.type == 'ENUM' and prop.is_enum_flag:
            data[name] = sorted(value)
        else:
            data[name] = value
    return data


def restore(group: bpy.types.PropertyGroup, data: dict, path: str = "") -> list[str]:
    """Set `group` from a snapshot; what could not be set, one note each ("" when all was)."""
    notes = []
    for name, value in data.items():
        where = f"{path}{name}"
        prop = group.bl_rna.properties.get(name)
        if prop is None or name == "rna_type":
            notes.append(f"unknown setting '{where}' (from a newer version?) skipped")
            continue
        try:
            if prop.type == 'POINTER':
                notes += _restore_pointer(group, prop, value, where)
            elif prop.type == 'COLLECTION':
                items = getattr(group, name)
                items.clear()
                for entry in value or []:
                    notes += restore(items.add(), entry, f"{where}[{len(items) - 1}].")
            elif prop.type == 'ENUM' and prop.is_enum_flag:
                setattr(group, name, set(value))
            elif getattr(group, name) != value and not (getattr(prop, "is_array", False)
                                                        and list(getattr(group, name)) == list(value)):
                setattr(group, name, value)
        except (TypeError, ValueError, AttributeError) as error:
            notes.append(f"'{where}' not set: {error}")
    return notes


def _restore_pointer(group, prop, value, where: str) -> list[str]:
    name = prop.identifier
    kind = prop.fixed_type.bl_rna.identifier
    if kind in _ID_COLLECTIONS:
        if not value or not value.get("name"):
            setattr(group, name, None)
            return []
        found = getattr(bpy.data, _ID_COLLECTIONS[kind]).get(value.get("name", ""))
        setattr(group, name, found)
        return [] if found is not None else [f"{kind.lower()} '{value.get('name')}' for '{where}' is not in this file"]
    if isinstance(value, dict):
        return restore(getattr(group, name), value, f"{where}.")
    return [f"'{where}' not set: not a group"]


def scene_snapshot(scene: bpy.types.Scene) -> dict:
    """The panel's settings and the region prompts of the scene's objects and collections."""
    from .regions import snapshot_prompts

    return {**snapshot(scene.scene_diffusion), REGION_PROMPTS: snapshot_prompts(scene)}


def restore_scene(scene: bpy.types.Scene, data: dict) -> list[str]:
    """Put a `scene_snapshot` back (one without region prompts, from an older version, leaves
    the prompts as they are); what could not be set, one note each."""
    from .regions import restore_prompts

    data = dict(data)
    prompts = data.pop(REGION_PROMPTS, None)
    notes = restore(scene.scene_diffusion, data)
    if prompts is not None:
        notes += restore_prompts(scene, prompts)
    return notes


def settings_json(scene: bpy.types.Scene) -> str:
    """The scene snapshot as JSON text: how recipes keep it (ID properties cannot hold None,
    lists of strings or large ints; text holds them all exactly)."""
    return json.dumps(scene_snapshot(scene), sort_keys=True)
