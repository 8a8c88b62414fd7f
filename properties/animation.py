# SPDX-License-Identifier: GPL-3.0-or-later
"""Animation settings saved with the .blend file: `scene.scene_diffusion.animation`, with
Deforum's own names and defaults (sd-webui-deforum's `DeforumAnimArgs`), so settings
pasted from Deforum work unchanged. Strength keeps Deforum's meaning: the share of the
previous frame KEPT (1.0 keeps it all, 0.0 redraws everything)."""
import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty


def _schedule(name: str, default: str, description: str):
    return StringProperty(name=name, default=default, description=f"{description} (a Deforum schedule: "
                                                                  "frame:(value), values may be expressions in t)")


class SceneDiffusionAnimation(bpy.types.PropertyGroup):
    use_scene_range: BoolProperty(name="Scene Range", default=True,
                                  description="Render the scene's frame range (off: the range below)")
    frame_start: IntProperty(name="Start", default=1, min=0, description="First frame to render")
    frame_end: IntProperty(name="End", default=48, min=0, description="Last frame to render")

    strength_schedule: _schedule("Strength", "0:(0.65)", "How much of the previous frame each frame keeps")
    noise_schedule: _schedule("Noise", "0:(0.065)", "Noise added to the previous frame before it is redrawn")
    contrast_schedule: _schedule("Contrast", "0:(1.0)", "Contrast of the previous frame before it is redrawn")
    cfg_scale_schedule: _schedule("CFG Scale", "0:(7)", "Guidance per frame")
    steps_schedule: _schedule("Steps", "0:(25)", "Denoising steps per frame")
    seed_schedule: _schedule("Seed Schedule", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)",
                             "The seed per frame when Seed Behavior is Schedule")
    amount_schedule: _schedule("Anti-blur Amount", "0:(0.1)", "Unsharp mask amount")
    kernel_schedule: _schedule("Anti-blur Kernel", "0:(5)", "Unsharp mask kernel size")
    sigma_schedule: _schedule("Anti-blur Sigma", "0:(1.0)", "Unsharp mask sigma")
    threshold_schedule: _schedule("Anti-blur Threshold", "0:(0.0)", "Unsharp mask threshold")

    translation_x: _schedule("Translation X", "0:(0)", "Deforum camera motion: right, per frame")
    translation_y: _schedule("Translation Y", "0:(0)", "Deforum camera motion: up, per frame")
    translation_z: _schedule("Translation Z", "0:(1.75)", "Deforum camera motion: forward, per frame")
    rotation_3d_x: _schedule("Rotation X", "0:(0)", "Deforum camera motion: tilt up, degrees per frame")
    rotation_3d_y: _schedule("Rotation Y", "0:(0)", "Deforum camera motion: turn left, degrees per frame")
    rotation_3d_z: _schedule("Rotation Z", "0:(0)", "Deforum camera motion: roll counter-clockwise, degrees per frame")
    fov_schedule: _schedule("FOV", "0:(70)", "Deforum camera motion: horizontal field of view, degrees")
    motion_scale: bpy.props.FloatProperty(
        name="Motion Scale", default=0.005, min=0.0, soft_max=1.0, precision=4,
        description="Blender units per Deforum translation unit (Deforum's own 3D scale is 1/200)")

    seed_behavior: EnumProperty(
        name="Seed Behavior", default='ITER',
        items=(('ITER', "Iter", "The seed grows by one every Seed Iter N frames"),
               ('FIXED', "Fixed", "One seed for every frame"),
               ('RANDOM', "Random", "A new random seed every frame (reproducible from the first)"),
               ('LADDER', "Ladder", "Up two, down one"),
               ('ALTERNATE', "Alternate", "Up one, down one"),
               ('SCHEDULE', "Schedule", "The Seed Schedule")),
        description="How the seed changes from frame to frame (Deforum's seed_behavior)")
    seed_iter_N: IntProperty(name="Seed Iter N", default=1, min=1,
                             description="Frames per seed step (Iter)")
    color_coherence: EnumProperty(
        name="Color Coherence", default='LAB',
        items=(('NONE', "None", "No colour matching"),
               ('LAB', "LAB", "Match the first frame's colours in LAB (Deforum's default)"),
               ('HSV', "HSV", "Match the first frame's colours in HSV"),
               ('RGB', "RGB", "Match the first frame's colours in RGB")),
        description="Keep the colours from drifting: each frame's histogram matched to the first frame's")
    diffusion_cadence: IntProperty(
        name="Cadence", default=2, min=1, max=16,
        description=("Diffuse every N-th frame; the frames between are the diffused ones warped to them and "
                     "cross-faded"))
    use_init: BoolProperty(name="Use Init", default=False,
                           description="The first frame starts from the init image (image to image)")
    init_image: PointerProperty(type=bpy.types.Image, name="Init Image",
                                description="The image the first frame starts from")
    prompts: PointerProperty(type=bpy.types.Text, name="Prompts",
                             description=("Deforum's prompts per frame as JSON in a text ({\"0\": \"a forest\", "
                                          "\"30\": \"a desert --neg snow\"}); empty: the main prompt"))
    blend_prompts: BoolProperty(name="Blend Prompts", default=False,
                                description="Blend the prompts' embeddings between consecutive keys")
    output_dir: StringProperty(name="Output", default="//diffusion/", subtype='DIR_PATH',
                               description="Where the frames are written (a folder per scene inside it)")
    resume: BoolProperty(name="Resume", default=False,
                         description=("Continue after the last frame on disk made with these settings (frames on "
                                      "disk are never rewritten)"))
    video: BoolProperty(name="Video", default=True, description="Also write an H.264 MP4 of the frames")


classes = (SceneDiffusionAnimation,)
register, unregister = bpy.utils.register_classes_factory(classes)
