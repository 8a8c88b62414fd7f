# SPDX-License-Identifier: GPL-3.0-or-later
"""3D Viewport sidebar, tab "Diffusion", and the status-bar progress. Drawing only."""
from __future__ import annotations

import bpy

from .. import dependencies
from ..engine.errors import DiffusionError
from ..engine.smoke_model import SMOKE_NOTE, is_smoke
from ..operators import jobs
from ..scene.camera import output_size


def draw_progress(layout: bpy.types.UILayout) -> bool:
    """Progress bar and Cancel button of the running job; False when none runs."""
    status = jobs.status()
    if status is None:
        return False
    row = layout.row(align=True)
    row.progress(factor=status.fraction, type='BAR', text=status.text())
    row.operator("scene_diffusion.cancel", text="", icon='CANCEL')
    return True


class SCENE_DIFFUSION_PT_generate(bpy.types.Panel):
    bl_label = "Scene Diffusion"
    bl_idname = "SCENE_DIFFUSION_PT_generate"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Diffusion"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.scene_diffusion

        missing = dependencies.missing_packages()
        if missing:
            box = layout.box()
            box.label(text="Missing Python packages:", icon='ERROR')
            box.label(text=", ".join(missing))
            if dependencies.install_running():
                box.label(text=dependencies.current_install().progress_text, icon='SORTTIME')
            else:
                box.operator("scene_diffusion.install_dependencies", icon='IMPORT')
            return

        col = layout.column()
        col.prop(settings, "model")
        if is_smoke(settings.model):
            col.label(text=SMOKE_NOTE, icon='INFO')
        col.prop(settings, "prompt", text="")
        col.prop(settings, "negative_prompt", text="", icon='REMOVE')

        col = layout.column(align=True)
        col.prop(settings, "steps")
        col.prop(settings, "guidance")
        row = col.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "randomize_seed", text="", icon='FILE_REFRESH')
        layout.prop(settings, "depth_scale")
        self.draw_size(layout, context.scene)

        if not draw_progress(layout):
            layout.operator("scene_diffusion.generate_image", icon='RENDER_STILL')
        outcome = jobs.last_outcome()
        if outcome is not None and outcome.level != 'INFO':
            layout.label(text=outcome.message, icon='ERROR' if outcome.level == 'ERROR' else 'INFO')

    @staticmethod
    def draw_size(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
        try:
            size = output_size(scene)
        except DiffusionError as error:
            layout.label(text=str(error), icon='ERROR')
            return
        if size.rounded:
            layout.label(text=f"Size {size.width}×{size.height} (render size rounded to a multiple of 8)",
                         icon='INFO')
        else:
            layout.label(text=f"Size {size.width}×{size.height}")


def draw_status_bar(self, context) -> None:
    draw_progress(self.layout)


classes = (SCENE_DIFFUSION_PT_generate,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
