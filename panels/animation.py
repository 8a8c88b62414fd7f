# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar "Animation": the frame range, Deforum's schedules and the output. Drawing only."""
from __future__ import annotations

import bpy

from ..operators import jobs
from .sidebar import _Sidebar


class SCENE_DIFFUSION_PT_animation(_Sidebar, bpy.types.Panel):
    bl_label = "Animation"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        anim = context.scene.scene_diffusion.animation
        layout.operator("scene_diffusion.import_deforum_settings", icon='IMPORT')
        layout.prop(anim, "use_scene_range")
        if not anim.use_scene_range:
            row = layout.row(align=True)
            row.prop(anim, "frame_start")
            row.prop(anim, "frame_end")
        col = layout.column(align=True)
        for name in ("strength_schedule", "noise_schedule", "contrast_schedule", "cfg_scale_schedule",
                     "steps_schedule"):
            col.prop(anim, name)
        box = layout.box()
        box.label(text="Anti-blur:")
        col = box.column(align=True)
        for name in ("amount_schedule", "kernel_schedule", "sigma_schedule", "threshold_schedule"):
            col.prop(anim, name)
        layout.prop(anim, "seed_behavior")
        if anim.seed_behavior == 'ITER':
            layout.prop(anim, "seed_iter_N")
        elif anim.seed_behavior == 'SCHEDULE':
            layout.prop(anim, "seed_schedule")
        layout.prop(anim, "color_coherence")
        layout.prop(anim, "diffusion_cadence")
        row = layout.row(align=True)
        row.prop(anim, "use_init")
        sub = row.row(align=True)
        sub.active = anim.use_init
        sub.prop(anim, "init_image", text="")
        row = layout.row(align=True)
        row.prop(anim, "prompts")
        row.prop(anim, "blend_prompts", text="Blend", toggle=True)
        box = layout.box()
        box.label(text="Deforum camera motion:")
        col = box.column(align=True)
        for name in ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
                     "rotation_3d_z", "fov_schedule", "motion_scale"):
            col.prop(anim, name)
        box.operator("scene_diffusion.key_deforum_motion", icon='CAMERA_DATA')
        layout.prop(anim, "output_dir")
        row = layout.row(align=True)
        row.prop(anim, "resume", toggle=True)
        row.prop(anim, "video", toggle=True)
        row = layout.row()
        row.enabled = not jobs.busy()
        row.operator("scene_diffusion.render_animation", icon='RENDER_ANIMATION')


classes = (SCENE_DIFFUSION_PT_animation,)
register, unregister = bpy.utils.register_classes_factory(classes)
