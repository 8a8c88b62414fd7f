# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar "Conditions": a row per condition kind, its settings and its last capture. Drawing only."""
from __future__ import annotations

import bpy

from ..operators import jobs
from ..properties.scene import KIND_ITEMS
from ..scene.images import find_capture
from .sidebar import _Sidebar

THUMBNAIL_SCALE = 5.0


class SCENE_DIFFUSION_PT_conditions(_Sidebar, bpy.types.Panel):
    bl_label = "Conditions"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        conditions = scene.scene_diffusion.conditions
        for identifier, label, _ in KIND_ITEMS:
            kind = identifier.lower()
            control = conditions.control(kind)
            box = layout.box()
            row = box.row(align=True)
            row.prop_enum(conditions, "enabled_kinds", identifier, text=label)
            row.prop(control, "scale", text="")
            if identifier not in conditions.enabled_kinds:
                continue
            box.prop(control, "source", expand=True)
            if control.source == 'IMAGE':
                box.template_ID(control, "image", open="image.open")
                sub = box.column(align=True)
                sub.label(text="Or make it from a picture:")
                sub.template_ID(control, "photo", open="image.open")
                row = sub.row(align=True)
                row.prop(control, "detector", text="")
                row.operator("scene_diffusion.detect_condition", icon='SHADERFX').kind = kind
            else:
                draw_kind_settings(box, kind, conditions, context)
            row = box.row(align=True)
            row.prop(control, "guidance_start")
            row.prop(control, "guidance_end")
            capture = find_capture(kind, scene.frame_current) if control.source == 'SCENE' else control.image
            if capture is not None and capture.preview is not None:
                box.template_icon(icon_value=capture.preview.icon_id, scale=THUMBNAIL_SCALE)
                box.label(text=capture.name, icon='IMAGE_DATA')

        layout.prop(conditions, "capture_from")
        if jobs.busy():
            return  # the main panel shows the progress and Cancel
        row = layout.row(align=True)
        row.operator("scene_diffusion.capture_conditions", icon='RESTRICT_RENDER_OFF')
        row.operator("scene_diffusion.generate_image", text="Capture & Generate", icon='RENDER_STILL')


def draw_kind_settings(layout: bpy.types.UILayout, kind: str, conditions, context) -> None:
    if kind == "depth":
        layout.prop(conditions, "depth_range", expand=True)
        if conditions.depth_range == 'FIXED':
            row = layout.row(align=True)
            row.prop(conditions, "depth_near")
            row.prop(conditions, "depth_far")
        layout.prop(conditions, "depth_inverse")
    elif kind == "canny":
        row = layout.row(align=True)
        row.prop(conditions, "canny_low", text="Low")
        row.prop(conditions, "canny_high", text="High")
    elif kind == "lineart":
        layout.prop(conditions, "line_thickness")
    elif kind == "openpose":
        row = layout.row(align=True)
        row.prop(conditions, "pose_hands", toggle=True)
        row.prop(conditions, "pose_face", toggle=True)
        layout.prop(conditions, "pose_occlusion")
    elif kind == "segmentation":
        layout.prop(conditions, "segment_background")
        obj = context.object
        if obj is not None and hasattr(obj, "scene_diffusion_segment"):
            layout.prop(obj, "scene_diffusion_segment", text=f"{obj.name} is")


class SCENE_DIFFUSION_UL_pose_overrides(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "keypoint", text="")
        row.prop_search(item, "bone", context.object.data, "bones", text="")
        row.prop(item, "at", text="")


class SCENE_DIFFUSION_PT_pose_overrides(_Sidebar, bpy.types.Panel):
    bl_label = "OpenPose Bones"
    bl_parent_id = "SCENE_DIFFUSION_PT_conditions"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        obj = context.object
        return obj is not None and obj.type == 'ARMATURE' and hasattr(obj, "scene_diffusion_pose")

    def draw(self, context):
        layout = self.layout
        pose = context.object.scene_diffusion_pose
        layout.label(text="Bones for keypoints this rig's names don't give:", icon='ARMATURE_DATA')
        row = layout.row()
        row.template_list("SCENE_DIFFUSION_UL_pose_overrides", "", pose, "overrides", pose, "active_override", rows=3)
        col = row.column(align=True)
        col.operator("scene_diffusion.pose_override_add", text="", icon='ADD')
        col.operator("scene_diffusion.pose_override_remove", text="", icon='REMOVE')


classes = (SCENE_DIFFUSION_PT_conditions, SCENE_DIFFUSION_UL_pose_overrides, SCENE_DIFFUSION_PT_pose_overrides)
register, unregister = bpy.utils.register_classes_factory(classes)
