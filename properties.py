# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings saved with the .blend file: `scene.scene_diffusion`."""
import random

import bpy
from bpy.props import (
    BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty,
)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SEED_MAX = 2**31 - 1


class SceneDiffusionSettings(bpy.types.PropertyGroup):
    model: StringProperty(
        name="Model",
        description=("Base model: a Hugging Face hub id, a local diffusers folder, a single "
                     ".safetensors file, or 'smoke' (random weights, for checking the pipeline)"),
        default=DEFAULT_MODEL,
    )
    prompt: StringProperty(
        name="Prompt", description="What the image should show",
        default="a cosy living room, soft morning light, highly detailed",
    )
    negative_prompt: StringProperty(
        name="Negative Prompt", description="What the image should not show",
        default="blurry, low quality, deformed",
    )
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
    depth_scale: FloatProperty(
        name="Depth Strength", description="How strongly the scene's depth steers the image (ControlNet scale)",
        default=1.0, min=0.0, max=2.0,
    )

    def next_seed(self) -> int:
        """The seed for the next generation (a new random one if asked for)."""
        if self.randomize_seed:
            self.seed = random.randint(0, SEED_MAX)
        return self.seed


classes = (SceneDiffusionSettings,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.scene_diffusion = PointerProperty(type=SceneDiffusionSettings)


def unregister() -> None:
    del bpy.types.Scene.scene_diffusion
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
