# SPDX-License-Identifier: GPL-3.0-or-later
"""Textures wired into materials, without touching what the person made.

Default: a NEW material (Principled BSDF, its Base Color from an Image Texture node that
names the UV map) shown on every slot of the object through object-linked slots: the
mesh's own materials (shared with other objects using the mesh) and every other material
and node tree stay as they were. Or, when the person picks a target material, only that
material's Base Color input is re-linked to the new Image Texture node.
"""
from __future__ import annotations

import bpy

from ..engine.errors import DiffusionError
from . import images

__all__ = ["texture_material", "show_texture", "set_base_color", "texture_of", "assign", "tiling_material"]

_IMAGE_NODE = "Scene Diffusion Texture"
_UV_NODE = "Scene Diffusion UV"


def texture_material(obj: bpy.types.Object, image: bpy.types.Image, uv_map: str,
                     name: str | None = None) -> bpy.types.Material:
    """A new material showing `image` through `uv_map`, on every slot of `obj` (object-linked)."""
    material = bpy.data.materials.new(name or f"{obj.name} Diffusion")
    if material.node_tree is None:  # Blender 4.x makes the node tree on request
        material.use_nodes = True
    principled = _principled(material)
    if principled is None:
        principled = material.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
        output = material.node_tree.nodes.new("ShaderNodeOutputMaterial")
        material.node_tree.links.new(principled.outputs["BSDF"], output.inputs["Surface"])
    set_base_color(material, image, uv_map)
    assign(obj, material)
    return material


def assign(obj: bpy.types.Object, material: bpy.types.Material) -> None:
    """Show `material` on every slot of `obj` through object-linked slots: the mesh's own
    materials, which other objects using the mesh see, are kept."""
    if len(obj.material_slots) == 0:
        # An empty slot on the mesh changes nothing for other users of the mesh; the material
        # itself goes on this object's own side of the slot.
        obj.data.materials.append(None)
    for slot in obj.material_slots:
        slot.link = 'OBJECT'
        slot.material = material


def tiling_material(name: str, image: bpy.types.Image, mapping: str, scale: float,
                    uv_map: str = "") -> bpy.types.Material:
    """A new material repeating the seamless `image`: through a UV map (`mapping` 'UV') or
    projected from six sides in object space ('BOX'), `scale` times per unit."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    tree = material.node_tree
    principled = _principled(material)
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = _IMAGE_NODE
    texture.image = image
    texture.extension = 'REPEAT'
    texture.location = (principled.location.x - 320, principled.location.y)
    placing = tree.nodes.new("ShaderNodeMapping")
    placing.inputs["Scale"].default_value = (scale, scale, scale)
    placing.location = (texture.location.x - 200, texture.location.y)
    if mapping == 'BOX':
        texture.projection, texture.projection_blend = 'BOX', 0.2
        coordinates = tree.nodes.new("ShaderNodeTexCoord")
        tree.links.new(coordinates.outputs["Object"], placing.inputs["Vector"])
    else:
        coordinates = tree.nodes.new("ShaderNodeUVMap")
        coordinates.uv_map = uv_map
        tree.links.new(coordinates.outputs["UV"], placing.inputs["Vector"])
    coordinates.location = (placing.location.x - 200, placing.location.y)
    tree.links.new(placing.outputs["Vector"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], principled.inputs["Base Color"])
    return material


def show_texture(obj: bpy.types.Object, image: bpy.types.Image, uv_map: str) -> bpy.types.Material:
    """Show `image` on `obj`: through the material Scene Diffusion made for it before (its
    texture node is pointed at the new image; the old image stays), else a new one."""
    for slot in obj.material_slots:
        material = slot.material
        recipe = images.get_recipe(material) if material is not None else {}
        node = material.node_tree.nodes.get(_IMAGE_NODE) if material is not None and material.node_tree else None
        if recipe.get("kind") == "texture_material" and recipe.get("object") == obj.name and node is not None:
            node.image = image
            coordinates = material.node_tree.nodes.get(_UV_NODE)
            if coordinates is not None:
                coordinates.uv_map = uv_map
            return material
    material = texture_material(obj, image, uv_map)
    images.set_recipe(material, {"kind": "texture_material", "object": obj.name})
    return material


def set_base_color(material: bpy.types.Material, image: bpy.types.Image, uv_map: str) -> None:
    """Feed `material`'s Principled BSDF Base Color from `image` through `uv_map`; the rest
    of its node tree stays as it is."""
    principled = _principled(material)
    if principled is None:
        raise DiffusionError(f"The material '{material.name}' has no Principled BSDF to take the texture",
                             "pick a material with a Principled BSDF, or let a new material be made")
    tree = material.node_tree
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = _IMAGE_NODE
    texture.image = image
    texture.location = (principled.location.x - 320, principled.location.y)
    coordinates = tree.nodes.new("ShaderNodeUVMap")
    coordinates.name = coordinates.label = _UV_NODE
    coordinates.uv_map = uv_map
    coordinates.location = (texture.location.x - 220, texture.location.y)
    tree.links.new(coordinates.outputs["UV"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], principled.inputs["Base Color"])


def texture_of(obj: bpy.types.Object) -> bpy.types.Image | None:
    """The newest texture Scene Diffusion made for `obj`, found through its materials."""
    found = None
    for slot in obj.material_slots:
        material = slot.material
        if material is None or material.node_tree is None:
            continue
        for node in material.node_tree.nodes:
            image = getattr(node, "image", None) if node.type == 'TEX_IMAGE' else None
            if image is not None and images.get_recipe(image).get("kind") == "texture" \
                    and images.get_recipe(image).get("object") == obj.name:
                if found is None or images.get_recipe(image).get("made", 0) > images.get_recipe(found).get("made", 0):
                    found = image
    return found


def _principled(material: bpy.types.Material) -> bpy.types.ShaderNode | None:
    if material.node_tree is None:
        return None
    return next((node for node in material.node_tree.nodes if node.type == 'BSDF_PRINCIPLED'), None)
