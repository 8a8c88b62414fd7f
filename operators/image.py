# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image: a "render with diffusion" from the active camera, steered by the scene."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import bpy

from .. import dependencies, preferences
from ..engine import models
from ..engine.errors import DiffusionError
from ..engine.requests import GenerationRequest, GenerationResult
from ..scene import camera as scene_camera
from ..scene import images
from . import capture, jobs
from .request import build_request, describe


@dataclass(frozen=True)
class ImageJob:
    """Everything captured on the main thread; the worker needs nothing else."""
    request: GenerationRequest
    cache_dir: str
    placement: tuple[str | None, str | None]
    scene_name: str
    frame: int
    size_note: str


def require_dependencies() -> None:
    missing = dependencies.missing_packages()
    if missing:
        raise DiffusionError(f"Missing Python packages: {', '.join(missing)}",
                             "install them with the button in Preferences > Add-ons > Scene Diffusion")


def prepare(context: bpy.types.Context) -> ImageJob:
    """Validate and capture on the main thread. Raises DiffusionError and changes nothing."""
    scene = context.scene
    settings = scene.scene_diffusion
    prefs = preferences.addon_preferences(context)
    require_dependencies()
    size = scene_camera.output_size(scene)
    models.check_available(settings.model, bpy.app.online_access, prefs.allow_pickle,
                           preferences.single_file_configs(prefs))
    # Every check that can fail runs before the capture writes its condition images.
    request = build_request(context, size.width, size.height, (), seed=settings.seed)
    captured = capture.capture(scene, capture.enabled_kinds(scene), size, scene.frame_current)
    request = dataclasses.replace(request, controls=captured.units)
    # Only now, with every check passed, may the seed change.
    if settings.randomize_seed:
        request = dataclasses.replace(request, seed=settings.next_seed())
    return ImageJob(request, preferences.model_cache_dir(context), preferences.engine_placement(prefs),
                    scene.name, scene.frame_current, size.describe() if size.rounded else "")


def recipe(job: ImageJob, result: GenerationResult) -> dict:
    return {
        "kind": "image",
        **describe(job.request),
        "seed": result.seed,
        "family": result.family,
        "controlnets": list(result.controlnets),
        "frame": job.frame,
        "scene": job.scene_name,
        "notes": list(result.notes),
    }


def write_result(job: ImageJob, result: GenerationResult) -> str:
    """Main thread: the images become new datablocks; returns the message for the person."""
    names = []
    for rgb in result.images:
        image = images.new_image(f"Diffusion {job.frame:04d} seed {result.seed}", rgb, recipe(job, result))
        images.show_in_image_editors(image)
        names.append(image.name)
    message = f"Generated '{', '.join(names)}' ({job.request.width}×{job.request.height}, seed {result.seed})"
    if job.size_note:
        message += f"; size {job.size_note}"
    for note in result.notes:
        message += f"; {note}"
    return message


class SCENE_DIFFUSION_OT_generate_image(bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_image"
    bl_label = "Generate Image"
    bl_description = ("Generate an image from the active camera, steered by the scene's conditions, "
                      "into a new image datablock")
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not jobs.is_running()

    def execute(self, context):
        return self.run(context, blocking=True)

    def invoke(self, context, event):
        return self.run(context, blocking=False)

    def run(self, context, blocking: bool) -> set[str]:
        try:
            job = prepare(context)

            def work(report, cancel):
                return jobs.engine(job.cache_dir, *job.placement).generate(job.request, report, cancel)

            outcome = jobs.start(work, "Generate Image", lambda result: write_result(job, result),
                                 blocking=blocking)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        if outcome is not None:
            return jobs.report_outcome(self, outcome)
        return {'FINISHED'}


classes = (SCENE_DIFFUSION_OT_generate_image,)
register, unregister = bpy.utils.register_classes_factory(classes)
