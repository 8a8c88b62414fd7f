# SPDX-License-Identifier: GPL-3.0-or-later
"""Import Deforum Settings: the settings file Deforum writes beside its frames, applied to
the Animation panel (engine/deforum_settings.py reads it; this sets it on the scene)."""
from __future__ import annotations

import os

import bpy

from ..engine.deforum_settings import read_deforum_settings
from ..engine.errors import DiffusionError
from . import jobs


class SCENE_DIFFUSION_OT_import_deforum_settings(bpy.types.Operator):
    bl_idname = "scene_diffusion.import_deforum_settings"
    bl_label = "Import Deforum Settings"
    bl_description = ("Set the Animation panel from a Deforum settings file (the .txt Deforum writes beside its "
                      "frames); the fields not supported are listed")
    bl_options = {'REGISTER', 'UNDO'}

    filepath: bpy.props.StringProperty(name="File", subtype='FILE_PATH', options={'SKIP_SAVE'})
    filter_glob: bpy.props.StringProperty(default="*.txt;*.json", options={'HIDDEN'})

    def execute(self, context):
        try:
            path = bpy.path.abspath(self.filepath)
            if not path or not os.path.isfile(path):
                raise DiffusionError(f"No settings file at '{self.filepath}'", "pick the .txt Deforum wrote")
            with open(path, encoding="utf-8") as f:
                read = read_deforum_settings(f.read())
        except (DiffusionError, OSError, UnicodeDecodeError) as error:
            if not isinstance(error, DiffusionError):
                error = DiffusionError(f"Could not read '{self.filepath}': {error}", "pick the .txt Deforum wrote")
            return jobs.report_error(self, error)
        scene = context.scene
        settings = scene.scene_diffusion
        anim = settings.animation
        applied = []
        for name, value in read.values.items():
            if hasattr(anim, name):
                setattr(anim, name, value)
                applied.append(name)
        if "frame_start" in read.values:
            anim.use_scene_range = False
        if "seed" in read.main and int(read.main["seed"]) >= 0:
            settings.seed = int(read.main["seed"])
        if "steps" in read.main:
            settings.steps = int(read.main["steps"])
        if "guidance" in read.main:
            settings.guidance = float(read.main["guidance"])
        if "scheduler" in read.main:
            settings.scheduler = read.main["scheduler"]
        if "width" in read.main and "height" in read.main:
            scene.render.resolution_x, scene.render.resolution_y = int(read.main["width"]), int(read.main["height"])
            scene.render.resolution_percentage = 100
        if read.prompts:
            text = bpy.data.texts.new("Deforum Prompts")
            text.write(read.prompts)
            anim.prompts = text
        message = f"Imported {len(applied)} Deforum settings from {os.path.basename(path)}"
        if read.prompts:
            message += f"; prompts in the text '{anim.prompts.name}'"
        if read.unsupported:
            message += f"; not supported: {', '.join(read.unsupported)}"
        return jobs.report_outcome(self, jobs.Outcome('WARNING' if read.unsupported else 'INFO', message))

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}


classes = (SCENE_DIFFUSION_OT_import_deforum_settings,)
register, unregister = bpy.utils.register_classes_factory(classes)
