# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar "World" and "Backdrop": the background settings and their buttons. Drawing only."""
from __future__ import annotations

import bpy

from ..operators import jobs
from .sidebar import _Sidebar


class SCENE_DIFFUSION_PT_world(_Sidebar, bpy.types.Panel):
    bl_label = "World"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        world = context.scene.scene_diffusion.world
        row = layout.row(align=True)
        row.prop(world, "width")
        row.label(text=f"× {world.width // 2}")
        layout.prop(world, "from_scene")
        sub = layout.row()
        sub.active = world.from_scene
        sub.prop(world, "origin")
        layout.prop(world, "start")
        if world.start == 'CURRENT':
            layout.prop(world, "start_strength")
        elif world.start == 'EXTEND':
            layout.template_ID(world, "extend_image", open="image.open")
        col = layout.column(align=True)
        col.prop(world, "fix_poles")
        col.prop(world, "refine_strength")
        layout.prop(world, "target", expand=True)
        col = layout.column(align=True)
        col.prop(world, "strength")
        col.prop(world, "rotation")
        row = layout.row()
        row.enabled = not jobs.busy()
        row.operator("scene_diffusion.generate_world", icon='WORLD')


class SCENE_DIFFUSION_PT_backdrop(_Sidebar, bpy.types.Panel):
    bl_label = "Backdrop"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        backdrop = context.scene.scene_diffusion.backdrop
        layout.prop(backdrop, "foreground", expand=True)
        if backdrop.foreground == 'COLLECTION':
            layout.prop(backdrop, "collection", text="")
        col = layout.column(align=True)
        col.prop(backdrop, "show_in_camera")
        col.prop(backdrop, "composite")
        col.prop(backdrop, "shadow_catcher")
        row = layout.row()
        row.enabled = not jobs.busy()
        row.operator("scene_diffusion.generate_backdrop", icon='IMAGE_BACKGROUND')


classes = (SCENE_DIFFUSION_PT_world, SCENE_DIFFUSION_PT_backdrop)
register, unregister = bpy.utils.register_classes_factory(classes)
