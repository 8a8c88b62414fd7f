# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image: a "render with diffusion" from the active camera, steered by the scene."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import bpy

from .. import preferences
from ..engine.requests import GenerationRequest, GenerationResult
from ..scene import camera as scene_camera
from ..scene import images
from ..scene.settings import settings_json
from . import capture, jobs
from .base import JobOperator
from .request import checked_request, describe, region_note


@dataclass(frozen=True)
class ImageJob:
    """Everything gathered on the main thread; the worker needs only `request`."""
    request: GenerationRequest
    captured: capture.Captured
    cache_dir: str
    placement: tuple[str | None, str | None]
    scene_name: str
    frame: int
    size_note: str
    settings: str = ""  # the panel's settings as JSON (scene/settings.py), for Use These Settings


def prepare(context: bpy.types.Context, frame: int | None = None) -> ImageJob:
    """Check and capture on the main thread, for `frame` (default: the current one).

    Raises DiffusionError and changes nothing: every check runs before the capture, and the
    captures and the seed are written only with the result (`write_result`).
    """
    scene = context.scene
    settings = scene.scene_diffusion
    prefs = preferences.addon_preferences(context)
    frame = scene.frame_current if frame is None else int(frame)
    size = scene_camera.output_size(scene)
    request = checked_request(context, size.width, size.height)  # before anything is captured
    captured = capture.capture(scene, capture.enabled_kinds(scene), size, frame,
                               prompts=capture.region_prompts(scene))
    snapshot = settings_json(scene)  # before the seed is drawn: the recipe's seed is the drawn one
    request = dataclasses.replace(request, controls=captured.units, regions=captured.regions.regions,
                                  seed=settings.draw_seed())
    return ImageJob(request, captured, preferences.model_cache_dir(context), preferences.engine_placement(prefs),
                    scene.name, frame, size.describe() if size.rounded else "", snapshot)


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
        "settings": job.settings,
        "made": time.time(),
    }


def write_result(job: ImageJob, result: GenerationResult, first: bool = True) -> list[bpy.types.Image]:
    """Main thread: the captures that steered it, the images as new datablocks, and (for the
    first result of a job) the seed used back into the settings (so Random Seed shows what it
    drew)."""
    if first:
        capture.store_captured(job.captured)
    made = []
    for rgb in result.images:
        image = images.new_image(f"Diffusion {job.frame:04d} seed {result.seed}", rgb, recipe(job, result))
        images.show_in_image_editors(image)
        made.append(image)
    scene = bpy.data.scenes.get(job.scene_name)
    if first and scene is not None and scene.scene_diffusion.seed != result.seed:
        scene.scene_diffusion.seed = result.seed
    return made


def message(job: ImageJob, result: GenerationResult, made: list[bpy.types.Image]) -> str:
    text = (f"Generated '{', '.join(image.name for image in made)}' ({job.request.width}×{job.request.height}, "
            f"seed {result.seed})")
    if job.size_note:
        text += f"; size {job.size_note}"
    text += region_note(job.request.regions, job.captured.regions.unseen)
    for note in result.notes:
        text += f"; {note}"
    return text


def image_steps(job: ImageJob, variations: int = 1) -> jobs.Steps:
    """The job of one image, or of `variations` images from the seeds after the first (the same
    captures and settings): generate on the worker, write each on the main thread."""
    written: list[tuple[GenerationResult, list[bpy.types.Image]]] = []

    def work(index: int, report, cancel) -> GenerationResult:
        request = dataclasses.replace(job.request, seed=job.request.seed + index)
        return jobs.engine(job.cache_dir, *job.placement).generate(request, report, cancel)

    def write(index: int, result: GenerationResult) -> None:
        written.append((result, write_result(job, result, first=index == 0)))

    def finish(_count: int) -> str:
        if len(written) == 1:
            return message(job, *written[0])
        names = ", ".join(image.name for _, made in written for image in made)
        return f"Generated {len(written)} variations: {names} (seeds {written[0][0].seed}–{written[-1][0].seed})"

    return jobs.Steps("Generate Image", work=work, write=write, finish=finish, count=variations,
                      prepare=lambda index: index, noun="variation")


class SCENE_DIFFUSION_OT_generate_image(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_image"
    bl_label = "Generate Image"
    bl_description = ("Generate an image from the active camera, steered by the scene's conditions, "
                      "into a new image datablock")
    bl_options = {'REGISTER'}

    variations: bpy.props.IntProperty(name="Variations", default=1, min=1, max=64,
                                      description="How many images, each from the next seed")

    def prepare(self, context):
        return image_steps(prepare(context), self.variations)


classes = (SCENE_DIFFUSION_OT_generate_image,)
register, unregister = bpy.utils.register_classes_factory(classes)
