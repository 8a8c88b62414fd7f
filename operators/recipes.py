# SPDX-License-Identifier: GPL-3.0-or-later
"""Use These Settings: every setting that made a result put back from its recipe.

A result made by this version carries the panel's settings whole (`recipe["settings"]`,
scene/settings.py), so restoring them and generating again gives the same pixels. An older
recipe (or one made by a button that keeps no snapshot) gives back what it names: prompts,
model, steps, guidance, scheduler, LoRAs, embeddings. Either way the seed is the one used, with
Random Seed off. What cannot be restored (a field this version does not know, a datablock or a
file that is not here) is listed, and the rest is still restored.
"""
from __future__ import annotations

import json
import os

import bpy

from ..scene import images
from ..scene.settings import restore_scene, scene_snapshot

# The kinds of result the History lists (captures, previews and coverage maps are not results).
RESULT_KINDS = frozenset({"image", "texture", "world", "backdrop", "animation", "material"})

# The fields an older recipe names, and the setting each goes to.
_BASIC = ("prompt", "negative_prompt", "model", "steps", "guidance", "scheduler")


def newest_first(recipes: list[dict]) -> list[int]:
    """Each recipe's position in a list sorted by when it was made, newest first (what a
    UIList's filter_items returns as its new order)."""
    order = sorted(range(len(recipes)), key=lambda i: -float(recipes[i].get("made", 0) or 0))
    rank = {index: position for position, index in enumerate(order)}
    return [rank[index] for index in range(len(recipes))]


def show_result(wm: bpy.types.WindowManager, _context) -> None:
    """The History's selection changed: show the picked result in every Image Editor."""
    index = wm.scene_diffusion_history
    if 0 <= index < len(bpy.data.images):
        images.show_in_image_editors(bpy.data.images[index])


def apply_recipe(scene: bpy.types.Scene, recipe: dict) -> list[str]:
    """Put the recipe's settings on `scene`; what could not be put back, one note each."""
    settings = scene.scene_diffusion
    notes = []
    if recipe.get("settings"):
        notes += restore_scene(scene, json.loads(recipe["settings"]))
    else:
        notes.append("it is an older recipe, so only its prompts, model, steps, guidance, scheduler, LoRAs and "
                     "embeddings came back")
        for name in _BASIC:
            if name in recipe:
                setattr(settings, name, recipe[name])
        settings.loras.clear()
        for lora in recipe.get("loras", []):
            item = settings.loras.add()
            item.path, item.weight = lora["path"], lora["weight"]
            item.few_step = str(lora.get("few_step", "auto")).upper()
        settings.embeddings.clear()
        for embedding in recipe.get("embeddings", []):
            item = settings.embeddings.add()
            item.path, item.token = embedding["path"], embedding.get("token", "")
    if "seed" in recipe:
        settings.seed, settings.randomize_seed = int(recipe["seed"]), False
    notes += missing_files(settings)
    return notes


def missing_files(settings) -> list[str]:
    """The LoRAs, embeddings and local model the settings name that are not on this computer."""
    notes = []
    for kind, items in (("LoRA", settings.loras), ("embedding", settings.embeddings)):
        for item in items:
            if item.enabled and item.path and not os.path.isfile(bpy.path.abspath(item.path)):
                notes.append(f"the {kind} {item.path} is not on this computer: copy it there, or pick it again "
                             f"in the {kind}s list")
    model = settings.model.strip()
    if (model.startswith(("/", "~", ".", "//")) or os.sep in model and os.path.splitext(model)[1]) \
            and not os.path.exists(bpy.path.abspath(os.path.expanduser(model))):
        notes.append(f"the model {model} is not on this computer: copy it there, or pick another model")
    return notes


def _picked_recipe(operator: bpy.types.Operator, name: str) -> dict | None:
    """The recipe of the image named `name`, or None with the error reported."""
    image = bpy.data.images.get(name)
    if image is None:
        operator.report({'ERROR'}, f"No image named '{name}': pick a result in the History panel")
        return None
    recipe = images.get_recipe(image)
    if not recipe.get("prompt") and not recipe.get("settings"):
        operator.report({'ERROR'}, f"'{image.name}' has no Scene Diffusion recipe: pick an image the extension made")
        return None
    return recipe


class SCENE_DIFFUSION_OT_use_recipe(bpy.types.Operator):
    bl_idname = "scene_diffusion.use_recipe"
    bl_label = "Use These Settings"
    bl_description = ("Put back every setting that made this result, its seed too, so generating again "
                      "makes it again")
    bl_options = {'REGISTER', 'UNDO'}

    image: bpy.props.StringProperty(name="Image", description="The result whose settings to use")

    def execute(self, context):
        recipe = _picked_recipe(self, self.image)
        if recipe is None:
            return {'CANCELLED'}
        notes = apply_recipe(context.scene, recipe)
        if notes:
            self.report({'WARNING'}, f"Settings of '{self.image}' restored, except: " + "; ".join(notes))
        else:
            self.report({'INFO'}, f"Settings of '{self.image}' restored (seed {recipe.get('seed')})")
        return {'FINISHED'}


class SCENE_DIFFUSION_OT_recipe_variations(bpy.types.Operator):
    bl_idname = "scene_diffusion.recipe_variations"
    bl_label = "Variations"
    bl_description = ("Generate images with this result's settings from the seeds after its own, in one job "
                      "(its settings become the panel's)")
    bl_options = {'REGISTER'}

    image: bpy.props.StringProperty(name="Image", description="The result to vary")
    count: bpy.props.IntProperty(name="Count", default=4, min=1, max=64, description="How many variations")

    def execute(self, context):
        return self._run(context, 'EXEC_DEFAULT')

    def invoke(self, context, event):
        return self._run(context, 'INVOKE_DEFAULT')  # a background job, Blender stays usable

    def _run(self, context, how: str) -> set[str]:
        recipe = _picked_recipe(self, self.image)
        if recipe is None:
            return {'CANCELLED'}
        settings = context.scene.scene_diffusion
        before = scene_snapshot(context.scene)
        notes = apply_recipe(context.scene, recipe)
        settings.seed = int(recipe.get("seed", settings.seed)) + 1
        try:
            result = bpy.ops.scene_diffusion.generate_image(how, variations=self.count)
        except RuntimeError as error:  # refused: the panel goes back to what it was
            restore_scene(context.scene, before)
            self.report({'ERROR'}, str(error).replace("Error: ", "", 1).strip())
            return {'CANCELLED'}
        if notes:
            self.report({'WARNING'}, "Not restored: " + "; ".join(notes))
        return result


classes = (SCENE_DIFFUSION_OT_use_recipe, SCENE_DIFFUSION_OT_recipe_variations)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register()
    # On the window manager: which row is picked is not a setting of the scene, nor saved.
    bpy.types.WindowManager.scene_diffusion_history = bpy.props.IntProperty(
        name="History", default=-1, update=show_result, description="The result shown")


def unregister() -> None:
    del bpy.types.WindowManager.scene_diffusion_history
    _unregister()
