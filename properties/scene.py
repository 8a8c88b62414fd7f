# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene settings saved with the .blend file: `scene.scene_diffusion`."""
import random

import bpy
from bpy.props import (
    BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
    StringProperty,
)

from ..engine.detectors import DETECTORS
from ..engine.kinds import CONDITION_KINDS
from ..engine.models import DEFAULT_MODEL, model_suggestions
from ..engine.prompts import FIELD_LABELS, FIELDS, preset_items
from ..engine.schedulers import SCHEDULERS
from .animation import SceneDiffusionAnimation
from .background import SceneDiffusionBackdrop, SceneDiffusionWorld
from .texture import SceneDiffusionTexture

SEED_MAX = 2**31 - 1

# The scene's condition kinds as enum items, in the order the panel lists them.
KIND_ITEMS = tuple((kind.name.upper(), kind.label, kind.description)
                   for kind in CONDITION_KINDS if kind.from_scene)
AUTO_ON_OFF = (
    ('AUTO', "Automatic", "Decide from the free memory of the device"),
    ('ON', "On", "Always"),
    ('OFF', "Off", "Never"),
)


class SceneDiffusionLora(bpy.types.PropertyGroup):
    """One LoRA in the list: a .safetensors file and its weight."""
    enabled: BoolProperty(name="Enabled", default=True, description="Use this LoRA")
    path: StringProperty(name="File", subtype='FILE_PATH', description="The LoRA's .safetensors file")
    weight: FloatProperty(name="Weight", default=1.0, soft_min=-2.0, soft_max=2.0,
                          description="How strongly the LoRA applies (0: not at all)")
    few_step: EnumProperty(
        name="Few-Step", default='AUTO',
        description="Few-step LoRAs (LCM, Lightning, Hyper-SD, TCD) pick their own scheduler and guidance",
        items=(
            ('AUTO', "Automatic", "Recognise few-step LoRAs by their file or folder name"),
            ('NONE', "Ordinary", "Not a few-step LoRA"),
            ('LCM', "LCM", "LCM-LoRA: LCM scheduler, 4-8 steps, guidance 1-2"),
            ('LIGHTNING', "Lightning", "SDXL-Lightning: Euler (trailing), guidance 1"),
            ('HYPER', "Hyper-SD", "Hyper-SD: DDIM (trailing), guidance 1"),
            ('HYPER_CFG', "Hyper-SD CFG", "Hyper-SD with CFG: DDIM (trailing), guidance up to 8"),
            ('TCD', "TCD", "TCD-LoRA: TCD scheduler, guidance 1"),
        ),
    )


class SceneDiffusionEmbedding(bpy.types.PropertyGroup):
    """One textual inversion embedding in the list: a file, and the word prompts use it by."""
    enabled: BoolProperty(name="Enabled", default=True, description="Load this embedding")
    path: StringProperty(name="File", subtype='FILE_PATH', description="The embedding's .safetensors file")
    token: StringProperty(name="Token", default="",
                          description="The word that uses it in a prompt or negative prompt "
                                      "(empty: <file name>, as A1111 names them)")


class SceneDiffusionReference(bpy.types.PropertyGroup):
    """One reference image (IP-Adapter): a picture that steers style or content, and how strongly."""
    enabled: BoolProperty(name="Enabled", default=True, description="Use this reference image")
    image: PointerProperty(type=bpy.types.Image, name="Image", description="The reference picture")
    weight: FloatProperty(name="Weight", default=0.6, min=0.0, max=2.0, soft_max=1.0,
                          description="How strongly the picture steers (0: not at all, about 0.5: a hint, 1: strong)")


def _prompt_parts_annotations() -> dict:
    # One StringProperty per field of the seed's "anatomy of a good prompt" (engine/prompts.py).
    return {name: StringProperty(name=FIELD_LABELS[name][0], description=FIELD_LABELS[name][1])
            for name in FIELDS}


SceneDiffusionPromptParts = type("SceneDiffusionPromptParts", (bpy.types.PropertyGroup,), {
    "__doc__": "The parts a prompt is built from when the prompt builder is on.",
    "__annotations__": _prompt_parts_annotations(),
})


# Built once: Blender keeps pointers to the strings of dynamic enum items, so they must live on.
_DETECTOR_ITEMS = {
    identifier.lower(): [(name, detector.label, "needs annotator weights from the hub" if detector.needs_weights
                          else "works offline, no weights")
                         for name, detector in DETECTORS.items() if detector.kind == identifier.lower()]
    or [('NONE', "None", "No detector makes this kind")]
    for identifier, _, _ in KIND_ITEMS
}


def _detector_items(self, context):
    """The detectors whose output feeds this row's kind (the kind is the property's own name)."""
    return _DETECTOR_ITEMS[self.path_from_id().rsplit(".", 1)[-1]]


class SceneDiffusionControl(bpy.types.PropertyGroup):
    """Where one condition kind comes from, how strongly it steers the image, over which steps."""
    source: EnumProperty(
        name="Source", default='SCENE',
        items=(('SCENE', "Scene", "Captured from the scene at the frame being generated"),
               ('IMAGE', "Image", "An image you pick (a photo, a sketch, a detector's output)")),
        description="Where this condition comes from",
    )
    image: PointerProperty(type=bpy.types.Image, name="Image",
                           description="The condition image to use as it is (white lines, depth, pose, ...)")
    photo: PointerProperty(type=bpy.types.Image, name="Picture",
                           description="A picture (photo, sketch, render) to make this condition from with a detector")
    detector: EnumProperty(name="Detector", items=_detector_items,
                           description="How the picture becomes this condition")
    scale: FloatProperty(name="Strength", default=1.0, min=0.0, max=2.0,
                         description="ControlNet conditioning scale: how strongly this condition steers the image")
    guidance_start: FloatProperty(name="Start", default=0.0, min=0.0, max=1.0, subtype='FACTOR',
                                  description="The fraction of the steps at which this condition starts to act")
    guidance_end: FloatProperty(name="End", default=1.0, min=0.0, max=1.0, subtype='FACTOR',
                                description="The fraction of the steps at which this condition stops acting")


class SceneDiffusionConditions(bpy.types.PropertyGroup):
    enabled_kinds: EnumProperty(
        name="Conditions", items=KIND_ITEMS, options={'ENUM_FLAG'}, default={'DEPTH'},
        description="Which conditions are captured from the scene and steer the image",
    )
    depth: PointerProperty(type=SceneDiffusionControl)
    canny: PointerProperty(type=SceneDiffusionControl)
    openpose: PointerProperty(type=SceneDiffusionControl)
    normal: PointerProperty(type=SceneDiffusionControl)
    segmentation: PointerProperty(type=SceneDiffusionControl)
    lineart: PointerProperty(type=SceneDiffusionControl)

    depth_range: EnumProperty(
        name="Depth Range", default='VISIBLE',
        items=(('VISIBLE', "Visible", "From the nearest to the farthest thing in view"),
               ('FIXED', "Fixed", "From Near to Far, the same in every frame")),
        description="Which distances map from bright to dark",
    )
    depth_near: FloatProperty(name="Near", default=0.1, min=0.0, unit='LENGTH',
                              description="Distance shown brightest (fixed range)")
    depth_far: FloatProperty(name="Far", default=100.0, min=0.0, unit='LENGTH',
                             description="Distance shown darkest (fixed range)")
    depth_inverse: BoolProperty(name="Inverse Depth", default=True,
                                description="Map 1/distance, as the depth estimators ControlNets were trained on "
                                            "do (more contrast near the camera)")
    line_thickness: FloatProperty(name="Line Thickness", default=1.0, min=0.1, max=10.0,
                                  description="Freestyle line width in pixels at 512 pixels (scaled with the size)")
    segment_background: StringProperty(name="Background Class", default="sky",
                                       description="ADE20K class of what no object covers (empty: black)")
    capture_from: EnumProperty(
        name="Capture From", default='CAMERA',
        items=(('CAMERA', "Scene Camera", "The scene's camera, as a render sees it"),
               ('VIEW', "3D Viewport", "The view of the 3D Viewport the button is pressed in (perspective views)")),
        description="The point of view conditions are captured from when you press Capture",
    )
    canny_low: IntProperty(name="Low Threshold", default=100, min=0, max=255,
                           description="Canny's lower threshold: weaker edges connected to strong ones are kept")
    canny_high: IntProperty(name="High Threshold", default=200, min=0, max=255,
                            description="Canny's upper threshold: edges stronger than this are always kept")
    pose_occlusion: BoolProperty(name="Hide Occluded Joints", default=False,
                                 description="Leave out joints hidden behind other objects")
    pose_hands: BoolProperty(name="Hands", default=True, description="Draw hands when the rig has finger bones")
    pose_face: BoolProperty(name="Face", default=True, description="Draw the face when the rig has face bones")

    def control(self, kind: str) -> SceneDiffusionControl:
        return getattr(self, kind.lower())


def _model_suggestions(self, context, edit_text: str):
    """Smoke models, each family's default and the pipelines already downloaded."""
    text = edit_text.strip().lower()
    return [(spec, description) for spec, description in model_suggestions() if text in spec.lower()]


class SceneDiffusionSettings(bpy.types.PropertyGroup):
    model: StringProperty(
        name="Model",
        description=("Base model: a Hugging Face hub id, a local diffusers folder, a single "
                     ".safetensors file, or 'smoke' / 'smoke-sdxl' (random weights, for checking the pipeline)"),
        default=DEFAULT_MODEL,
        search=_model_suggestions, search_options={'SUGGESTION'},
    )
    prompt: StringProperty(
        name="Prompt", description="What the image should show",
        default="a cosy living room, soft morning light, highly detailed",
    )
    negative_prompt: StringProperty(
        name="Negative Prompt", description="What the image should not show",
        default="blurry, low quality, deformed",
    )
    use_prompt_builder: BoolProperty(
        name="Prompt Builder", default=False,
        description="Build the prompt from its parts: subject, medium, style, lighting, ...",
    )
    prompt_parts: PointerProperty(type=SceneDiffusionPromptParts)
    use_regions: BoolProperty(
        name="Region Prompts", default=True,
        description="Objects (and collections) with a region prompt steer the pixels they cover with it, "
                    "the main prompt steers everywhere")
    prompt_preset: EnumProperty(name="Preset", items=preset_items(),
                                description="A starting point for the prompt's parts and the negative prompt")

    steps: IntProperty(name="Steps", description="Denoising steps", default=20, min=1, max=150)
    guidance: FloatProperty(
        name="Guidance", description="Classifier-free guidance scale (CFG): how closely to follow the prompt",
        default=7.5, min=0.0, max=30.0, soft_max=15.0,
    )
    seed: IntProperty(name="Seed", description="Random seed; the same seed gives the same image",
                      default=0, min=0, max=SEED_MAX)
    randomize_seed: BoolProperty(
        name="Random Seed", description="Pick a new random seed for every generation", default=False,
    )
    scheduler: EnumProperty(
        name="Scheduler", description="The sampler that runs the denoising steps",
        items=[('default', "Model Default", "The scheduler the model comes with")]
        + [(name, choice.label, choice.class_name) for name, choice in SCHEDULERS.items()],
        default='default',
    )

    mode: EnumProperty(
        name="Mode", default='TXT2IMG',
        items=(('TXT2IMG', "Text to Image", "A new image from the prompt and the scene's conditions"),
               ('IMG2IMG', "Image to Image", "Redraw an image, keeping as much of it as Strength says"),
               ('INPAINT', "Inpaint", "Redraw the white parts of a mask on an image")),
        description="What the generation starts from",
    )
    init_image: PointerProperty(type=bpy.types.Image, name="Image",
                                description="The image to start from (image to image, inpainting)")
    strength: FloatProperty(name="Strength", default=0.75, min=0.01, max=1.0, subtype='FACTOR',
                            description="How much of the image is redrawn: 1 redraws all of it")
    mask_image: PointerProperty(type=bpy.types.Image, name="Mask",
                                description="White where the image is redrawn, black where it is kept")

    loras: CollectionProperty(type=SceneDiffusionLora, name="LoRAs")
    active_lora: IntProperty(name="Active LoRA", default=0, min=0)
    embeddings: CollectionProperty(type=SceneDiffusionEmbedding, name="Embeddings")
    active_embedding: IntProperty(name="Active Embedding", default=0, min=0)
    live_resolution: IntProperty(
        name="Live Resolution", default=512, min=64, max=1024, step=64, subtype='PIXEL',
        description="Live View draws at this size on the render's longer side (the render's aspect)")
    live_steps: IntProperty(name="Live Steps", default=4, min=1, max=8,
                            description="Denoising steps of each Live View picture (few-step models need 1-8)")
    references: CollectionProperty(type=SceneDiffusionReference, name="Reference Images")
    active_reference: IntProperty(name="Active Reference", default=0, min=0)
    ip_adapter: StringProperty(
        name="Adapter", default="",
        description="The IP-Adapter: a .safetensors file with its image_encoder folder beside it, or a hub file "
                    "like h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors; empty: the model family's default")

    tiling: EnumProperty(
        name="Seamless", default='NONE',
        items=(('NONE', "Off", "An ordinary image"),
               ('X', "X", "Wraps left to right (360° panoramas)"),
               ('Y', "Y", "Wraps top to bottom"),
               ('XY', "X and Y", "Tiles in both directions (textures)")),
        description="Make the image wrap around, so it tiles without seams",
    )
    memory_offload: EnumProperty(name="CPU Offload", items=AUTO_ON_OFF, default='AUTO',
                                 description=("Keep parts of the model in system memory while others run "
                                              "(slower, less GPU memory)"))
    memory_vae_tiling: EnumProperty(name="VAE Tiling", items=AUTO_ON_OFF, default='AUTO',
                                    description="Decode large images in tiles (less memory)")
    memory_attention_slicing: EnumProperty(name="Attention Slicing", items=AUTO_ON_OFF, default='AUTO',
                                           description="Compute attention in slices (less memory, a little slower)")
    show_previews: BoolProperty(name="Step Previews", default=True,
                                description="Show a rough preview of the image while it is denoised")

    conditions: PointerProperty(type=SceneDiffusionConditions)
    texture: PointerProperty(type=SceneDiffusionTexture)
    world: PointerProperty(type=SceneDiffusionWorld)
    backdrop: PointerProperty(type=SceneDiffusionBackdrop)
    animation: PointerProperty(type=SceneDiffusionAnimation)

    def draw_seed(self) -> int:
        """The seed for the next generation: a new random one if asked for, else Seed.
        Nothing is stored: the operator writes it back once its result is written."""
        return random.randint(0, SEED_MAX) if self.randomize_seed else self.seed


classes = (
    SceneDiffusionLora, SceneDiffusionEmbedding, SceneDiffusionReference, SceneDiffusionPromptParts,
    SceneDiffusionControl, SceneDiffusionConditions, SceneDiffusionSettings,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.scene_diffusion = PointerProperty(type=SceneDiffusionSettings)


def unregister() -> None:
    del bpy.types.Scene.scene_diffusion
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
