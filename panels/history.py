# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar "History": what the extension made, newest first, with thumbnail, prompt, seed,
model and time; clicking a row shows it, Use These Settings puts its settings back. Drawing
only (the list filters and sorts what it draws; selecting is the property's update)."""
from __future__ import annotations

import time

import bpy

from ..operators.recipes import RESULT_KINDS, newest_first
from ..scene.images import get_recipe
from .sidebar import _Sidebar


class SCENE_DIFFUSION_UL_history(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        recipe = get_recipe(item)
        row = layout.row(align=True)
        row.label(text=f"{recipe.get('prompt', '') or item.name}", icon_value=layout.icon(item))
        row.label(text=f"{recipe.get('kind', '')} · {recipe.get('seed', '')}")

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        made = [get_recipe(image) for image in items]
        flags = [self.bitflag_filter_item if recipe.get("kind") in RESULT_KINDS else 0 for recipe in made]
        return flags, newest_first(made)


class SCENE_DIFFUSION_PT_history(_Sidebar, bpy.types.Panel):
    bl_label = "History"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        wm = context.window_manager
        layout.template_list("SCENE_DIFFUSION_UL_history", "", bpy.data, "images", wm, "scene_diffusion_history",
                             rows=4)
        index = wm.scene_diffusion_history
        image = bpy.data.images[index] if 0 <= index < len(bpy.data.images) else None
        recipe = get_recipe(image) if image is not None else {}
        if recipe.get("kind") not in RESULT_KINDS:
            layout.label(text="Pick a result to see how it was made")
            return
        col = layout.column(align=True)
        col.label(text=recipe.get("prompt", ""))
        col.label(text=f"Seed {recipe.get('seed', '?')} · {recipe.get('model', '?')} · "
                       f"{recipe.get('steps', '?')} steps")
        if recipe.get("made"):
            col.label(text=time.strftime("Made %Y-%m-%d %H:%M", time.localtime(float(recipe["made"]))))
        row = layout.row(align=True)
        row.operator("scene_diffusion.use_recipe", icon='RECOVER_LAST').image = image.name
        if recipe.get("kind") == "image":
            row.operator("scene_diffusion.recipe_variations", icon='DUPLICATE').image = image.name


classes = (SCENE_DIFFUSION_UL_history, SCENE_DIFFUSION_PT_history)
register, unregister = bpy.utils.register_classes_factory(classes)
