# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar "Texture": views, texture size, blending, and the texture buttons. Drawing only."""
from __future__ import annotations

import bpy

from ..operators import jobs
from .sidebar import _Sidebar


class SCENE_DIFFUSION_PT_texture(_Sidebar, bpy.types.Panel):
    bl_label = "Texture"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        texture = context.scene.scene_diffusion.texture
        layout.prop(texture, "views", expand=True)
        col = layout.column(align=True)
        if texture.views == 'ORBIT':
            col.prop(texture, "view_count")
            col.prop(texture, "elevation")
            row = col.row(align=True)
            row.prop(texture, "include_top", toggle=True)
            row.prop(texture, "include_bottom", toggle=True)
        elif texture.views == 'CAMERAS':
            col.prop(texture, "camera_collection", text="")
        layout.prop(texture, "texture_size")
        layout.prop(texture, "sequential")
        col = layout.column(align=True)
        col.prop(texture, "weight_exponent")
        col.prop(texture, "discard_angle")
        layout.prop(texture, "fill")
        layout.prop(texture, "target_material")
        row = layout.row(align=True)
        row.prop(texture, "from_current")
        sub = row.row(align=True)
        sub.active = texture.from_current
        sub.prop(texture, "current_strength")

        busy = jobs.busy()
        col = layout.column(align=True)
        col.enabled = not busy
        col.operator("scene_diffusion.generate_texture", icon='TEXTURE')
        col.operator("scene_diffusion.show_coverage", icon='HIDE_OFF')

        box = layout.box()
        box.label(text="Project an image:")
        box.template_ID(texture, "project_image", open="image.open")
        row = box.row()
        row.enabled = not busy and texture.project_image is not None
        operator = row.operator("scene_diffusion.project_image", icon='MOD_UVPROJECT')
        operator.image = texture.project_image.name if texture.project_image is not None else ""

        box = layout.box()
        box.label(text="Seamless material:")
        row = box.row(align=True)
        row.prop(texture, "material_mapping", expand=True)
        box.prop(texture, "material_scale")
        row = box.row()
        row.enabled = not busy
        row.operator("scene_diffusion.generate_material", icon='MATERIAL')


classes = (SCENE_DIFFUSION_PT_texture,)
register, unregister = bpy.utils.register_classes_factory(classes)
