# SPDX-License-Identifier: GPL-3.0-or-later
"""Region prompts: the sidebar's Regions panel (every object and collection with one, and the
active object's field), and a Scene Diffusion panel in the Object and Collection properties.
Drawing only."""
from __future__ import annotations

import bpy

from ..scene.regions import scene_prompts
from .sidebar import _Sidebar


class SCENE_DIFFUSION_PT_regions(_Sidebar, bpy.types.Panel):
    bl_label = "Regions"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw_header(self, context):
        self.layout.prop(context.scene.scene_diffusion, "use_regions", text="")

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        layout.active = scene.scene_diffusion.use_regions
        obj = context.object
        if obj is not None:
            layout.prop(obj.scene_diffusion, "region_prompt", text=obj.name, icon='OBJECT_DATA')
        prompts = scene_prompts(scene)
        if not prompts:
            layout.label(text="No object has a region prompt", icon='INFO')
            layout.label(text="Give one above, or in Object Properties")
            return
        col = layout.column(align=True)
        for name in sorted(prompts):
            other = scene.objects[name]
            row = col.row(align=True)
            if other.scene_diffusion.region_prompt.strip():
                row.prop(other.scene_diffusion, "region_prompt", text=name, icon='OBJECT_DATA')
            else:  # from a collection: edited there
                row.label(text=name, icon='OBJECT_DATA')
                row.label(text=prompts[name], icon='OUTLINER_COLLECTION')
        collections = [c for c in scene.collection.children_recursive if c.scene_diffusion.region_prompt.strip()]
        if collections:
            col = layout.column(align=True)
            col.label(text="Collections (for the objects in them without their own)")
            for collection in collections:
                col.prop(collection.scene_diffusion, "region_prompt", text=collection.name,
                         icon='OUTLINER_COLLECTION')


class _PropertiesTab:
    """A "Scene Diffusion" panel in a tab of the Properties editor (`bl_context`)."""
    bl_label = "Scene Diffusion"
    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_options = {'DEFAULT_CLOSED'}


class SCENE_DIFFUSION_PT_object_region(_PropertiesTab, bpy.types.Panel):
    bl_context = "object"

    def draw(self, context):
        obj = context.object
        layout = self.layout
        layout.use_property_split = True
        layout.prop(obj.scene_diffusion, "region_prompt")
        if hasattr(obj, "scene_diffusion_segment"):
            layout.prop(obj, "scene_diffusion_segment")


class SCENE_DIFFUSION_PT_collection_region(_PropertiesTab, bpy.types.Panel):
    bl_context = "collection"

    @classmethod
    def poll(cls, context):
        return context.collection is not None and context.collection != context.scene.collection

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(context.collection.scene_diffusion, "region_prompt")


classes = (SCENE_DIFFUSION_PT_regions, SCENE_DIFFUSION_PT_object_region, SCENE_DIFFUSION_PT_collection_region)
register, unregister = bpy.utils.register_classes_factory(classes)
