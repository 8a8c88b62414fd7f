# SPDX-License-Identifier: GPL-3.0-or-later
"""Object settings saved with the .blend file.

`object.scene_diffusion_pose`: per-armature OpenPose settings. The override table maps a
body keypoint to a bone of that armature, for rigs whose bone names match no known naming
(scene/pose_names.py) or to correct one keypoint. It lives
on the Object, not on the Armature data: a character linked from a library and made
editable with a library override can edit its objects, not its armature data.

`object.scene_diffusion_segment`: the object's class in the segmentation condition, painted
in its ADE20K colour (see scene/segmentation.py). "Automatic" guesses it from the object (a
rigged mesh is a person) and its names ("Floor", "Oak Tree", material "Grass"); any of the
150 classes can be picked instead.

`object.scene_diffusion.region_prompt` and `collection.scene_diffusion.region_prompt`: a
prompt per object (regional prompting, engine/regions.py): its words steer the pixels the
object covers in the view. An object without one takes its collection's (the nearest
collection up the hierarchy that has one); empty: none.
"""
import bpy
from bpy.props import (
    CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty,
)

from ..engine.openpose import BODY_KEYPOINTS
from ..engine.segmentation import ADE20K_CLASSES
from ..scene.segmentation import AUTO, identifier_for

_LABELS = {
    "nose": "Nose", "neck": "Neck",
    "r_shoulder": "Right Shoulder", "r_elbow": "Right Elbow", "r_wrist": "Right Wrist",
    "l_shoulder": "Left Shoulder", "l_elbow": "Left Elbow", "l_wrist": "Left Wrist",
    "r_hip": "Right Hip", "r_knee": "Right Knee", "r_ankle": "Right Ankle",
    "l_hip": "Left Hip", "l_knee": "Left Knee", "l_ankle": "Left Ankle",
    "r_eye": "Right Eye", "l_eye": "Left Eye", "r_ear": "Right Ear", "l_ear": "Left Ear",
}
SEGMENT_ITEMS = [(AUTO, "Automatic", "Guess from the object: rigged meshes are people, then words in the "
                  "object's, mesh's and materials' names, else a stable class of its own")] + [
    (identifier_for(name), name.title(), f"ADE20K class {index}: {name}")
    for index, name in enumerate(ADE20K_CLASSES)]
KEYPOINT_ITEMS = [(name, _LABELS[name], f"OpenPose keypoint {index}: the character's own "
                   f"{_LABELS[name].lower()}") for index, name in enumerate(BODY_KEYPOINTS)]


class SceneDiffusionPoseOverride(bpy.types.PropertyGroup):
    keypoint: EnumProperty(name="Keypoint", description="The OpenPose keypoint this row places",
                           items=KEYPOINT_ITEMS, default="nose",
                           override={'LIBRARY_OVERRIDABLE'})
    bone: StringProperty(name="Bone",
                         description="The bone the keypoint sits on; empty leaves the keypoint out",
                         override={'LIBRARY_OVERRIDABLE'})
    at: FloatProperty(name="Head to Tail",
                      description="Where on the bone: 0 at its head (the joint it starts from), 1 at its tail",
                      default=0.0, min=0.0, max=1.0, subtype='FACTOR',
                      override={'LIBRARY_OVERRIDABLE'})


class SceneDiffusionPoseSettings(bpy.types.PropertyGroup):
    overrides: CollectionProperty(
        type=SceneDiffusionPoseOverride, name="Keypoint Overrides",
        description="Bones for OpenPose keypoints; each row wins over the bone names Scene Diffusion knows",
        override={'LIBRARY_OVERRIDABLE', 'USE_INSERTION'})
    active_override: IntProperty(name="Active Override", default=0, min=0,
                                 override={'LIBRARY_OVERRIDABLE'})


class SceneDiffusionRegionSettings(bpy.types.PropertyGroup):
    region_prompt: StringProperty(
        name="Region Prompt",
        description="Words for the pixels this covers in the view, on top of the main prompt (a prompt per "
                    "object); empty: none",
        override={'LIBRARY_OVERRIDABLE'})


classes = (SceneDiffusionPoseOverride, SceneDiffusionPoseSettings, SceneDiffusionRegionSettings)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Object.scene_diffusion_pose = PointerProperty(
        type=SceneDiffusionPoseSettings, name="Scene Diffusion Pose",
        override={'LIBRARY_OVERRIDABLE'})
    bpy.types.Object.scene_diffusion_segment = EnumProperty(
        name="Segmentation Class",
        description="What this object is in the segmentation condition (its ADE20K colour)",
        items=SEGMENT_ITEMS, default=AUTO, override={'LIBRARY_OVERRIDABLE'})
    for owner in (bpy.types.Object, bpy.types.Collection):
        owner.scene_diffusion = PointerProperty(type=SceneDiffusionRegionSettings, name="Scene Diffusion",
                                                override={'LIBRARY_OVERRIDABLE'})


def unregister() -> None:
    del bpy.types.Collection.scene_diffusion
    del bpy.types.Object.scene_diffusion
    del bpy.types.Object.scene_diffusion_segment
    del bpy.types.Object.scene_diffusion_pose
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
