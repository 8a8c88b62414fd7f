# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: dependencies (status, install, local wheels) and the model folder."""
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import dependencies
from .engine.models import DEFAULT_BASE, DEFAULT_CONTROLNETS, FAMILIES, FAMILY_NAMES

INSTALL_OPERATOR = "scene_diffusion.install_dependencies"
MODEL_CACHE_VARIABLE = "SCENE_DIFFUSION_MODEL_CACHE"


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

    allow_pickle: BoolProperty(
        name="Allow Pickle Files",
        description=("Load .ckpt/.bin/.pt/.pth weights. Pickle files can run any code when they are "
                     "loaded: only for files you trust"),
        default=False,
    )
    sd15_single_file_config: StringProperty(
        name="SD 1.5 Configuration",
        description=("Diffusers folder (or hub id) whose configs single-file SD 1.5 checkpoints load with; "
                     f"empty: {DEFAULT_BASE['sd15']} from the cache"),
    )
    sdxl_single_file_config: StringProperty(
        name="SDXL Configuration",
        description=("Diffusers folder (or hub id) whose configs single-file SDXL checkpoints load with; "
                     f"empty: {DEFAULT_BASE['sdxl']} from the cache"),
    )
    device: EnumProperty(
        name="Device", default='AUTO',
        items=(('AUTO', "Automatic", "NVIDIA GPU, else Apple GPU, else the CPU"),
               ('cuda', "NVIDIA GPU", "CUDA"), ('mps', "Apple GPU", "Metal"), ('cpu', "CPU", "Slow")),
        description="Where generations run",
    )
    precision: EnumProperty(
        name="Precision", default='AUTO',
        items=(('AUTO', "Automatic", "bfloat16 on GPUs that have it, float16 on other GPUs, float32 on the CPU"),
               ('float32', "float32", "Full precision"), ('float16', "float16", "Half precision"),
               ('bfloat16', "bfloat16", "Half precision with float32's range")),
        description="The number format the models run in",
    )
    show_controlnets: BoolProperty(name="ControlNets", default=False,
                                   description="Show the ControlNet used for each condition kind")

    def draw(self, context):
        draw_preferences(self.layout, self, context)


def draw_preferences(layout, prefs: SceneDiffusionPreferences, context) -> None:
    draw_dependencies(layout.box(), prefs)
    box = layout.box()
    box.label(text="Models", icon='FILE_FOLDER')
    box.prop(prefs, "model_cache_dir")
    if not prefs.model_cache_dir:
        box.label(text=f"Using {model_cache_dir(context)}")
    box.prop(prefs, "allow_pickle")
    box.prop(prefs, "sd15_single_file_config")
    box.prop(prefs, "sdxl_single_file_config")
    row = box.row()
    row.prop(prefs, "device")
    row.prop(prefs, "precision")
    box.prop(prefs, "show_controlnets", icon='TRIA_DOWN' if prefs.show_controlnets else 'TRIA_RIGHT', emboss=False)
    if prefs.show_controlnets:
        for family in FAMILIES:
            column = box.column(align=True)
            column.label(text=f"{FAMILY_NAMES[family]} ControlNets (empty: the default shown greyed)")
            for kind, default in DEFAULT_CONTROLNETS[family].items():
                column.prop(prefs, controlnet_property(family, kind), text=kind.title(), placeholder=default)


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
    """The folder models are kept in: the preference, else $SCENE_DIFFUSION_MODEL_CACHE (a farm's
    shared folder, set by the job), else the extension's user folder."""
    path = addon_preferences(context).model_cache_dir or os.environ.get(MODEL_CACHE_VARIABLE, "")
    if path:
        return os.path.normpath(bpy.path.abspath(path))
    return bpy.utils.extension_path_user(__package__, path="models", create=True)


def log_file_path() -> str:
    """Where the last install's full pip log is written."""
    return os.path.join(bpy.utils.extension_path_user(__package__, create=True), dependencies.LOG_FILE_NAME)


def controlnet_property(family: str, kind: str) -> str:
    return f"controlnet_{family}_{kind}"


# One override field per family and condition kind (empty: the family's default ControlNet).
for _family in FAMILIES:
    for _kind, _default in DEFAULT_CONTROLNETS[_family].items():
        SceneDiffusionPreferences.__annotations__[controlnet_property(_family, _kind)] = StringProperty(
            name=f"{FAMILY_NAMES[_family]} {_kind} ControlNet",
            description=f"Hub id or local folder of the {_kind} ControlNet for {FAMILY_NAMES[_family]} models; "
                        f"empty: {_default}",
        )


def controlnet_overrides(prefs: SceneDiffusionPreferences) -> dict[str, str]:
    """The engine's `controlnet_overrides`: "<family>:<kind>" -> spec, for the fields filled in."""
    overrides = {}
    for family in FAMILIES:
        for kind in DEFAULT_CONTROLNETS[family]:
            value = getattr(prefs, controlnet_property(family, kind)).strip()
            if value:
                overrides[f"{family}:{kind}"] = bpy.path.abspath(value) if value.startswith("//") else value
    return overrides


def single_file_configs(prefs: SceneDiffusionPreferences) -> dict[str, str]:
    configs = {"sd15": prefs.sd15_single_file_config.strip(), "sdxl": prefs.sdxl_single_file_config.strip()}
    return {family: value for family, value in configs.items() if value}


def engine_placement(prefs: SceneDiffusionPreferences) -> tuple[str | None, str | None]:
    """(device, dtype) overrides for the engine; None: automatic."""
    return (None if prefs.device == 'AUTO' else prefs.device,
            None if prefs.precision == 'AUTO' else prefs.precision)


classes = (SceneDiffusionPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
