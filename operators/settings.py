# SPDX-License-Identifier: GPL-3.0-or-later
"""Small operators that edit the sidebar's settings: prompt presets and the LoRA list."""
import bpy

from ..engine.prompts import FIELDS, PRESETS, PromptParts, apply_preset
from .request import TILING


class SCENE_DIFFUSION_OT_apply_prompt_preset(bpy.types.Operator):
    bl_idname = "scene_diffusion.apply_prompt_preset"
    bl_label = "Apply Preset"
    bl_description = ("Fill the prompt's empty parts from the chosen preset; also its negative prompt "
                      "(unless you wrote your own) and its Seamless setting")
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        settings = context.scene.scene_diffusion
        name = settings.prompt_preset
        parts = PromptParts(**{field: getattr(settings.prompt_parts, field) for field in FIELDS})
        filled = apply_preset(parts, name)  # only the empty fields: what was typed stays
        for field in FIELDS:
            setattr(settings.prompt_parts, field, getattr(filled, field))
        preset = PRESETS[name]
        if preset.negative and _is_replaceable_negative(settings):
            settings.negative_prompt = preset.negative
        if preset.tiling:
            settings.tiling = {value: key for key, value in TILING.items()}[preset.tiling]
        settings.use_prompt_builder = True
        self.report({'INFO'}, f"Applied the '{preset.label}' preset")
        return {'FINISHED'}


def _is_replaceable_negative(settings) -> bool:
    """True when the negative prompt is empty, the default, or a preset's: never the person's own."""
    current = settings.negative_prompt.strip()
    default = type(settings).bl_rna.properties["negative_prompt"].default
    return current in {"", default} | {p.negative for p in PRESETS.values()}


class _AddFileToList:
    """Add a row with a file (picked in the file browser) to one of the settings' lists."""
    bl_options = {'REGISTER', 'UNDO'}
    collection = ""  # the list's property on scene.scene_diffusion
    active = ""  # its active-row index property

    filepath: bpy.props.StringProperty(subtype='FILE_PATH')
    filter_glob: bpy.props.StringProperty(default="*.safetensors", options={'HIDDEN'})

    def execute(self, context):
        settings = context.scene.scene_diffusion
        items = getattr(settings, self.collection)
        items.add().path = self.filepath
        setattr(settings, self.active, len(items) - 1)
        return {'FINISHED'}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}


class _RemoveFromList:
    """Remove the active row of one of the settings' lists (its file stays on disk)."""
    bl_options = {'REGISTER', 'UNDO'}
    collection = ""
    active = ""

    @classmethod
    def poll(cls, context):
        settings = context.scene.scene_diffusion
        return 0 <= getattr(settings, cls.active) < len(getattr(settings, cls.collection))

    def execute(self, context):
        settings = context.scene.scene_diffusion
        items = getattr(settings, self.collection)
        items.remove(getattr(settings, self.active))
        setattr(settings, self.active, max(0, min(getattr(settings, self.active), len(items) - 1)))
        return {'FINISHED'}


class SCENE_DIFFUSION_OT_lora_add(_AddFileToList, bpy.types.Operator):
    bl_idname = "scene_diffusion.lora_add"
    bl_label = "Add LoRA"
    bl_description = "Add a LoRA (.safetensors) to the list"
    collection, active = "loras", "active_lora"


class SCENE_DIFFUSION_OT_lora_remove(_RemoveFromList, bpy.types.Operator):
    bl_idname = "scene_diffusion.lora_remove"
    bl_label = "Remove LoRA"
    bl_description = "Remove the selected LoRA from the list (the file stays on disk)"
    collection, active = "loras", "active_lora"


class SCENE_DIFFUSION_OT_embedding_add(_AddFileToList, bpy.types.Operator):
    bl_idname = "scene_diffusion.embedding_add"
    bl_label = "Add Embedding"
    bl_description = "Add a textual inversion embedding (.safetensors) to the list; prompts use it by its token"
    collection, active = "embeddings", "active_embedding"


class SCENE_DIFFUSION_OT_embedding_remove(_RemoveFromList, bpy.types.Operator):
    bl_idname = "scene_diffusion.embedding_remove"
    bl_label = "Remove Embedding"
    bl_description = "Remove the selected embedding from the list (the file stays on disk)"
    collection, active = "embeddings", "active_embedding"


class SCENE_DIFFUSION_OT_reference_add(bpy.types.Operator):
    bl_idname = "scene_diffusion.reference_add"
    bl_label = "Add Reference Image"
    bl_description = ("Add a reference image row (the picture an Image Editor shows, if one does; pick or open "
                      "another in the row)")
    bl_options = {'REGISTER', 'UNDO'}

    image: bpy.props.StringProperty(name="Image", description="The image datablock (default: the one an Image "
                                                              "Editor shows)")

    def execute(self, context):
        settings = context.scene.scene_diffusion
        item = settings.references.add()
        item.image = bpy.data.images.get(self.image) if self.image else shown_image(context)
        settings.active_reference = len(settings.references) - 1
        return {'FINISHED'}


def shown_image(context) -> bpy.types.Image | None:
    """The image an Image Editor of the window shows, if any."""
    screen = context.screen
    for area in screen.areas if screen is not None else ():
        if area.type == 'IMAGE_EDITOR' and area.spaces.active.image is not None:
            return area.spaces.active.image
    return None


class SCENE_DIFFUSION_OT_reference_remove(_RemoveFromList, bpy.types.Operator):
    bl_idname = "scene_diffusion.reference_remove"
    bl_label = "Remove Reference Image"
    bl_description = "Remove the selected reference image from the list (the image stays in the file)"
    collection, active = "references", "active_reference"


class _PoseOverrideOperator:
    @classmethod
    def poll(cls, context):
        obj = context.object
        return obj is not None and obj.type == 'ARMATURE' and hasattr(obj, "scene_diffusion_pose")


class SCENE_DIFFUSION_OT_pose_override_add(_PoseOverrideOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.pose_override_add"
    bl_label = "Add Keypoint Bone"
    bl_description = "Place an OpenPose keypoint on a bone of this armature (wins over the known bone names)"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        pose = context.object.scene_diffusion_pose
        pose.overrides.add()
        pose.active_override = len(pose.overrides) - 1
        return {'FINISHED'}


class SCENE_DIFFUSION_OT_pose_override_remove(_PoseOverrideOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.pose_override_remove"
    bl_label = "Remove Keypoint Bone"
    bl_description = "Remove the selected row; the keypoint goes back to the known bone names"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        pose = context.object.scene_diffusion_pose
        if 0 <= pose.active_override < len(pose.overrides):
            pose.overrides.remove(pose.active_override)
            pose.active_override = max(0, min(pose.active_override, len(pose.overrides) - 1))
        return {'FINISHED'}


classes = (SCENE_DIFFUSION_OT_apply_prompt_preset, SCENE_DIFFUSION_OT_lora_add, SCENE_DIFFUSION_OT_lora_remove,
           SCENE_DIFFUSION_OT_embedding_add, SCENE_DIFFUSION_OT_embedding_remove,
           SCENE_DIFFUSION_OT_reference_add, SCENE_DIFFUSION_OT_reference_remove,
           SCENE_DIFFUSION_OT_pose_override_add, SCENE_DIFFUSION_OT_pose_override_remove)
register, unregister = bpy.utils.register_classes_factory(classes)
