# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: dependencies and model defaults."""
import bpy


class SceneDiffusionPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    def draw(self, context):
        layout = self.layout
        layout.label(text="Scene Diffusion")


classes = (SceneDiffusionPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
