# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: dependencies (status, install, local wheels) and the model folder."""
import os

import bpy
from bpy.props import EnumProperty, StringProperty

from . import dependencies

INSTALL_OPERATOR = "scene_diffusion.install_dependencies"


class SceneDiffusionPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    wheel_dir: StringProperty(
        name="Local Wheel Folder",
        description=("Install from the .whl files in this folder instead of the internet "
                     "(works with Allow Online Access off)"),
        subtype='DIR_PATH',
    )
    torch_build: EnumProperty(
        name="PyTorch Build",
        description="Which PyTorch build the installer fetches",
        items=(
            ('AUTO', "Automatic", "NVIDIA CUDA build when an NVIDIA GPU is found, otherwise the CPU "
                                  "build (macOS: the standard build, which uses Metal)"),
            ('CUDA', "NVIDIA CUDA", "The CUDA build (Linux and Windows with an NVIDIA GPU)"),
            ('CPU', "CPU Only", "The small CPU-only build"),
        ),
        default='AUTO',
    )
    model_cache_dir: StringProperty(
        name="Model Folder",
        description="Where downloaded models are kept; empty: the extension's own user folder",
        subtype='DIR_PATH',
    )

    def draw(self, context):
        draw_preferences(self.layout, self, context)


def draw_preferences(layout, prefs: SceneDiffusionPreferences, context) -> None:
    draw_dependencies(layout.box(), prefs)
    box = layout.box()
    box.label(text="Models", icon='FILE_FOLDER')
    box.prop(prefs, "model_cache_dir")
    if not prefs.model_cache_dir:
        box.label(text=f"Using {model_cache_dir(context)}")


def draw_dependencies(layout, prefs: SceneDiffusionPreferences) -> None:
    """The package list (present with version, or missing), progress or the install button."""
    layout.label(text="Python Packages", icon='PACKAGE')
    column = layout.column(align=True)
    for status in dependencies.statuses():
        row = column.row()
        row.label(text=status.name, icon='CHECKMARK' if status.present else 'ERROR')
        row.label(text=status.version or "missing")

    job = dependencies.current_install()
    if dependencies.install_running():
        layout.label(text=f"Installing: {job.progress_text}", icon='TIME')
    else:
        if not prefs.wheel_dir and not bpy.app.online_access:
            layout.label(text="Allow Online Access is off: turn it on in Preferences > System,", icon='INFO')
            layout.label(text="or install from a local wheel folder below")
        text = "Install Dependencies" if dependencies.missing_packages() else "Reinstall Dependencies"
        layout.operator(INSTALL_OPERATOR, text=text, icon='IMPORT')
    if job is not None and job.done and job.result is not None and not job.result.ok:
        layout.label(text=f"Failed: {job.result.summary}", icon='ERROR')
        layout.label(text=f"Full log: the text \"{dependencies.LOG_TEXT_NAME}\" and {log_file_path()}")
    layout.prop(prefs, "wheel_dir")
    layout.prop(prefs, "torch_build")


def addon_preferences(context) -> SceneDiffusionPreferences:
    return context.preferences.addons[__package__].preferences


def model_cache_dir(context) -> str:
    """The folder models are kept in: the preference, or the extension's user folder."""
    path = addon_preferences(context).model_cache_dir
    if path:
        return os.path.normpath(bpy.path.abspath(path))
    return bpy.utils.extension_path_user(__package__, path="models", create=True)


def log_file_path() -> str:
    """Where the last install's full pip log is written."""
    return os.path.join(bpy.utils.extension_path_user(__package__, create=True), dependencies.LOG_FILE_NAME)


classes = (SceneDiffusionPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
