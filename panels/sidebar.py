# SPDX-License-Identifier: GPL-3.0-or-later
"""3D Viewport sidebar, tab "Diffusion", and the status-bar progress. Drawing only."""
from __future__ import annotations

import os

import bpy

from .. import dependencies
from ..engine.errors import DiffusionError
from ..engine.models import FAMILY_NAMES, peek_family
from ..engine.references import DEFAULT_ADAPTERS, HUB_REPO
from ..engine.prompts import CHUNK_TOKENS, estimated_chunks, estimated_tokens
from ..engine.smoke_model import SMOKE_NOTE, is_smoke
from ..operators import jobs, live
from ..operators.request import effective_prompt
from ..scene.camera import output_size


_families: dict[str, str] = {}


def family_label(spec: str) -> str:
    # Known families are cached: the sidebar redraws often. Unknown ones are looked up again,
    # so a model shows its family once it has been downloaded.
    if spec not in _families:
        family = peek_family(spec)
        if family is None:
            return "family unknown until downloaded"
        _families[spec] = FAMILY_NAMES[family]
    return _families[spec]


def draw_progress(layout: bpy.types.UILayout) -> bool:
    """Progress bar and Cancel button of the running job; False when none runs."""
    status = jobs.status()
    if status is None:
        return False
    row = layout.row(align=True)
    row.progress(factor=status.fraction, type='BAR', text=status.text())
    row.operator("scene_diffusion.cancel", text="", icon='CANCEL')
    return True


class _Sidebar:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Diffusion"


class SCENE_DIFFUSION_PT_generate(_Sidebar, bpy.types.Panel):
    bl_label = "Scene Diffusion"
    bl_idname = "SCENE_DIFFUSION_PT_generate"

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
        else:
            col.label(text=family_label(settings.model.strip()), icon='FILE_3D')
        if settings.use_prompt_builder:
            col.label(text=effective_prompt(settings) or "(fill the Prompt Builder's parts)", icon='TEXT')
        else:
            col.prop(settings, "prompt", text="")
        prompt = effective_prompt(settings)
        chunks = estimated_chunks(prompt)
        if chunks > 1:
            col.label(text=f"About {estimated_tokens(prompt)} tokens, read as {chunks} chunks of {CHUNK_TOKENS}",
                      icon='INFO')
        col.prop(settings, "negative_prompt", text="", icon='REMOVE')

        col = layout.column(align=True)
        col.prop(settings, "steps")
        col.prop(settings, "guidance")
        row = col.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "randomize_seed", text="", icon='FILE_REFRESH')
        layout.prop(settings, "scheduler")
        self.draw_size(layout, context.scene)

        live_on = live.is_on()
        if jobs.running_is_live() or not draw_progress(layout):
            row = layout.row(align=True)
            row.operator("scene_diffusion.generate_image", icon='RENDER_STILL')
            row.operator("scene_diffusion.live_view", text="Live", icon='VIEW_CAMERA', depress=live_on)
        if live_on:
            row = layout.row(align=True)
            row.prop(settings, "live_resolution", text="Live")
            row.prop(settings, "live_steps", text="Steps")
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


class SCENE_DIFFUSION_PT_prompt_builder(_Sidebar, bpy.types.Panel):
    bl_label = "Prompt Builder"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw_header(self, context):
        self.layout.prop(context.scene.scene_diffusion, "use_prompt_builder", text="")

    def draw(self, context):
        settings = context.scene.scene_diffusion
        layout = self.layout
        row = layout.row(align=True)
        row.prop(settings, "prompt_preset", text="")
        row.operator("scene_diffusion.apply_prompt_preset", text="Apply")
        col = layout.column(align=True)
        col.active = settings.use_prompt_builder
        for name in settings.prompt_parts.__annotations__:
            col.prop(settings.prompt_parts, name)


class SCENE_DIFFUSION_PT_mode(_Sidebar, bpy.types.Panel):
    bl_label = "Start From"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.scene_diffusion
        layout = self.layout
        layout.prop(settings, "mode", expand=True)
        if settings.mode == 'TXT2IMG':
            return
        layout.template_ID(settings, "init_image", open="image.open")
        layout.prop(settings, "strength")
        if settings.mode == 'INPAINT':
            layout.template_ID(settings, "mask_image", open="image.open")


def draw_file_list(layout, settings, collection: str, active: str, noun: str):
    """A list (of files, or of images) with its add and remove buttons (operators
    scene_diffusion.NOUN_add and NOUN_remove, UIList SCENE_DIFFUSION_UL_COLLECTION); the
    active row, or None."""
    row = layout.row()
    row.template_list(f"SCENE_DIFFUSION_UL_{collection}", "", settings, collection, settings, active, rows=3)
    col = row.column(align=True)
    col.operator(f"scene_diffusion.{noun}_add", text="", icon='ADD')
    col.operator(f"scene_diffusion.{noun}_remove", text="", icon='REMOVE')
    items, index = getattr(settings, collection), getattr(settings, active)
    return items[index] if 0 <= index < len(items) else None


class SCENE_DIFFUSION_UL_loras(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "path", text="", emboss=False)
        row.prop(item, "weight", text="")


class SCENE_DIFFUSION_PT_loras(_Sidebar, bpy.types.Panel):
    bl_label = "LoRAs"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        item = draw_file_list(self.layout, context.scene.scene_diffusion, "loras", "active_lora", "lora")
        if item is not None:
            self.layout.prop(item, "path")
            self.layout.prop(item, "few_step")


class SCENE_DIFFUSION_UL_embeddings(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.label(text=embedding_token(item))
        row.prop(item, "path", text="", emboss=False)


def embedding_token(item) -> str:
    """The word a prompt uses the embedding by (as the engine names it when Token is empty)."""
    if item.token.strip():
        return item.token.strip()
    stem = os.path.splitext(os.path.basename(bpy.path.abspath(item.path)))[0]
    return f"<{stem}>" if stem else "(no file)"


class SCENE_DIFFUSION_PT_embeddings(_Sidebar, bpy.types.Panel):
    bl_label = "Embeddings"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        item = draw_file_list(layout, context.scene.scene_diffusion, "embeddings", "active_embedding", "embedding")
        if item is not None:
            layout.prop(item, "path")
            layout.prop(item, "token")
            layout.label(text=f"Write {embedding_token(item)} in a prompt or the negative prompt")


class SCENE_DIFFUSION_UL_references(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        if item.image is not None:
            row.label(text=item.image.name, icon_value=layout.icon(item.image))
        else:
            row.label(text="(no image)", icon='ERROR')
        row.prop(item, "weight", text="")


class SCENE_DIFFUSION_PT_references(_Sidebar, bpy.types.Panel):
    bl_label = "Reference Images"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.scene_diffusion
        item = draw_file_list(layout, settings, "references", "active_reference", "reference")
        if item is not None:
            layout.template_ID(item, "image", open="image.open")
            layout.prop(item, "weight")
        layout.prop(settings, "ip_adapter")
        if not settings.ip_adapter.strip():
            family = peek_family(settings.model)
            if is_smoke(settings.model):
                layout.label(text="Adapter: the smoke model's own")
            elif family in DEFAULT_ADAPTERS:
                layout.label(text=f"Adapter: {HUB_REPO}/{DEFAULT_ADAPTERS[family][0]}")
            else:  # a model not downloaded yet: its family shows once it is
                layout.label(text=f"Adapter: {HUB_REPO}'s for the model's family")


class SCENE_DIFFUSION_PT_advanced(_Sidebar, bpy.types.Panel):
    bl_label = "Advanced"
    bl_parent_id = "SCENE_DIFFUSION_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.scene_diffusion
        layout = self.layout
        layout.use_property_split = True
        layout.prop(settings, "tiling")
        layout.prop(settings, "show_previews")
        col = layout.column(heading="Memory")
        col.prop(settings, "memory_offload")
        col.prop(settings, "memory_vae_tiling")
        col.prop(settings, "memory_attention_slicing")


def draw_status_bar(self, context) -> None:
    draw_progress(self.layout)


classes = (
    SCENE_DIFFUSION_PT_generate, SCENE_DIFFUSION_PT_prompt_builder, SCENE_DIFFUSION_PT_mode,
    SCENE_DIFFUSION_UL_loras, SCENE_DIFFUSION_PT_loras, SCENE_DIFFUSION_UL_embeddings, SCENE_DIFFUSION_PT_embeddings,
    SCENE_DIFFUSION_UL_references, SCENE_DIFFUSION_PT_references, SCENE_DIFFUSION_PT_advanced,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
