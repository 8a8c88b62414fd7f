# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image: a "render with diffusion" from the active camera, steered by its depth."""
from __future__ import annotations

from dataclasses import dataclass

import bpy

from .. import dependencies, preferences
from ..engine import models
from ..engine.conditions import depth_to_control
from ..engine.errors import DiffusionError
from ..engine.requests import ControlUnit, GenerationRequest, GenerationResult
from ..scene import camera as scene_camera
from ..scene import images
from ..scene.depth import capture_depth
from ..scene.render import resolve_camera
from . import jobs


@dataclass(frozen=True)
class ImageJob:
    """Everything captured on the main thread; the worker needs nothing else."""
    request: GenerationRequest
    cache_dir: str
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
    require_dependencies()
    camera = resolve_camera(scene)
    size = scene_camera.output_size(scene)
    allow_online = bpy.app.online_access
    models.check_available(settings.model, allow_online)
    depth = capture_depth(scene, camera, size.width, size.height)
    control = ControlUnit("depth", depth_to_control(depth.z, depth.mask), scale=settings.depth_scale)
    # Only now, with every check passed, may the seed change.
    seed = settings.next_seed()
    request = GenerationRequest(
        prompt=settings.prompt, negative_prompt=settings.negative_prompt,
        width=size.width, height=size.height, steps=settings.steps, guidance=settings.guidance,
        seed=seed, model=settings.model.strip(), controls=(control,), allow_online=allow_online,
    )
    return ImageJob(request, preferences.model_cache_dir(context), scene.name, scene.frame_current,
                    size.describe() if size.rounded else "")


def recipe(job: ImageJob, result: GenerationResult) -> dict:
    request = job.request
    return {
        "kind": "image",
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": result.seed,
        "model": request.model,
        "family": result.family,
        "steps": request.steps,
        "guidance": request.guidance,
        "width": request.width,
        "height": request.height,
        "frame": job.frame,
        "scene": job.scene_name,
        "controls": [{"kind": u.kind, "scale": u.scale, "guidance_start": u.guidance_start,
                      "guidance_end": u.guidance_end, "model": u.model or "default"}
                     for u in request.controls],
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
    bl_description = ("Generate an image from the active camera, steered by the scene's exact depth, "
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
            cache_dir = job.cache_dir

            def work(report, cancel):
                return jobs.engine(cache_dir).generate(job.request, report, cancel)

            outcome = jobs.start(work, "Generate Image", lambda result: write_result(job, result),
                                 blocking=blocking)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        if outcome is not None:
            return jobs.report_outcome(self, outcome)
        return {'FINISHED'}


classes = (SCENE_DIFFUSION_OT_generate_image,)
register, unregister = bpy.utils.register_classes_factory(classes)
