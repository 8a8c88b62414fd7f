# SPDX-License-Identifier: GPL-3.0-or-later
"""Backgrounds: Generate World (a 360° panorama wired into a World) and Generate Backdrop
(the camera's frame behind the foreground objects, shown in the viewport and in renders).

Everything is checked and captured on the main thread before the job (`prepare`); the
World and the backdrop are written, and wired in, only when the last pass is done, so a
cancel leaves nothing half-made.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Vector

from .. import preferences
from ..engine import inputs, models, panorama
from ..engine.errors import DiffusionError, NothingInView
from ..engine.kinds import KIND_LABELS
from ..engine.requests import ControlUnit, GenerationRequest
from ..engine.worlds import Pass, WorldPainter, WorldSettings, passes
from ..scene import backdrop as scene_backdrop
from ..scene import camera as scene_camera
from ..scene import images
from ..scene import world as scene_world
from ..scene.conditions import ConditionImage
from ..scene.panorama import PANORAMA_KINDS, capture_panorama
from ..scene.regions import regions_in_view
from ..scene.settings import settings_json
from . import capture, jobs
from .base import JobOperator
from .request import checked_request, describe

NOTHING_KEPT_WORLD = "nothing was written: the World is written once its last pass is done"
NATIVE = {"sd15": 512, "sdxl": 1024}  # the square each family was trained at
# Extending a picture: the repaint mask reaches this share of the panorama's height into
# the picture, and is feathered over as much again.
EXTEND_GROW = 1 / 128


@dataclass(frozen=True)
class WorldJob:
    """Everything gathered on the main thread for one World."""
    settings: WorldSettings
    base: GenerationRequest
    controls: tuple[ControlUnit, ...]
    conditions: tuple[ConditionImage, ...]
    start: np.ndarray | None
    extend: tuple[np.ndarray, np.ndarray] | None
    keep: tuple[np.ndarray, np.ndarray] | None
    notes: tuple[str, ...]
    scene_name: str
    origin: tuple[float, float, float] | None
    panel: str = ""  # the panel's settings as JSON (scene/settings.py), for Use These Settings


def base_width(model: str, width: int) -> int:
    """The width the panorama is generated at: 2:1 at the model's own square, at most `width`."""
    native = NATIVE.get(models.peek_family(model) or "sd15", 512)
    return min(width, 2 * native)


def prepare_world(context: bpy.types.Context) -> WorldJob:
    scene = context.scene
    settings = scene.scene_diffusion
    world = settings.world
    width, height = world.width, world.width // 2
    if width % 16:
        nearest = max(512, round(width / 16) * 16)
        raise DiffusionError(f"A World {width} pixels wide has no height in whole multiples of 8 pixels",
                             f"use {nearest}×{nearest // 2}")
    panorama.check_size(width, height)
    frame = scene.frame_current
    notes: list[str] = []
    base = base_width(settings.model, width)
    family_native = base // 2
    paint = WorldSettings(width=width, height=height, base_width=base, window=family_native,
                          overlap=family_native // 4, refine_strength=world.refine_strength,
                          fix_poles=world.fix_poles, cap_size=family_native)
    changes = {"strength": world.start_strength} if world.start == 'CURRENT' else {}
    request = checked_request(context, base, base // 2, start_from=False, tiling="x", **changes)

    if paint.refined:  # the windows' image to image, checked before anything runs
        window = np.zeros((paint.window, paint.window, 3), np.float32)
        inputs.check_request(dataclasses.replace(request, width=paint.window, height=paint.window, tiling="",
                                                 init_image=window, strength=paint.refine_strength))

    start = extend = keep = None
    if world.start == 'CURRENT':
        image = scene_world.world_image(scene.world) if scene.world is not None else None
        if image is None:
            raise DiffusionError("The current World has no panorama to start from",
                                 "generate a World first, or set Start From to Nothing")
        start = panorama.upscale(_panorama_pixels(image), base, base // 2)
    elif world.start == 'EXTEND':
        extend, keep = _extend_inputs(scene, world.extend_image, base, width)
        if world.origin is not None:
            notes.append("an extended picture is seen from the scene camera, so the panorama is too (not from "
                         f"'{world.origin.name}')")

    controls, conditions, origin = (), (), None
    if world.from_scene:
        kinds = ({"depth"} | capture.enabled_kinds(scene)) & set(PANORAMA_KINDS)
        if "openpose" in capture.enabled_kinds(scene):
            notes.append("OpenPose is not captured as a panorama")
        picked_origin = None if world.start == 'EXTEND' else world.origin
        prompts = capture.region_prompts(scene)
        captured = capture_panorama(scene, kinds, base, frame, picked_origin,
                                    capture.capture_options(settings.conditions), objects=bool(prompts))
        if captured is None:
            notes.append("nothing is around the camera: the panorama is text to image")
        else:
            controls, conditions = capture.units_of(scene, captured.conditions), tuple(captured.conditions.values())
            origin = tuple(float(v) for v in captured.view.origin)
            if prompts:
                found = regions_in_view(prompts, captured.objects)
                request = dataclasses.replace(request, regions=found.regions)
                if found.unseen:
                    notes.append("region prompts not around the camera (skipped): " + ", ".join(found.unseen))
    panel = settings_json(scene)
    request = dataclasses.replace(request, seed=settings.draw_seed())
    return WorldJob(paint, request, controls, conditions, start, extend, keep, tuple(notes), scene.name, origin,
                    panel)


def _panorama_pixels(image: bpy.types.Image) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise DiffusionError(f"The image '{image.name}' has no pixels (its file may be missing)",
                             "reload it, or pick another image")
    if width != 2 * height:
        raise DiffusionError(f"The World's image '{image.name}' is {width}×{height}, not a 2:1 panorama",
                             f"use a 2:1 image, e.g. {2 * height}×{height}")
    return images.display_rgb(image)


def _extend_inputs(scene: bpy.types.Scene, picture: bpy.types.Image | None, base: int, width: int):
    """The picture projected into the panorama from the scene camera: (picture and repaint
    mask at the base size), (picture and how much of it to keep at the World's size)."""
    if picture is None:
        raise DiffusionError("Extend needs a picture", "pick the image the scene camera sees (e.g. a render) "
                                                       "in the World panel, or set Start From to Nothing")
    if picture.size[0] == 0 or picture.size[1] == 0:
        raise DiffusionError(f"The image '{picture.name}' has no pixels (its file may be missing)",
                             "reload it, or pick another image")
    camera = scene.camera
    if camera is None:
        raise DiffusionError("No active camera", "add one with Shift+A > Camera and make it the scene camera "
                                                 "(Ctrl+Numpad 0)")
    if camera.data.type != 'PERSP':
        raise DiffusionError(f"'{camera.name}' is not a perspective camera", "extend a picture seen by a "
                                                                             "perspective camera")
    pixels = images.display_rgb(picture)
    view = scene_camera.camera_view(scene, camera, picture.size[0], picture.size[1])
    small, covered = panorama.project_into_panorama(pixels, view, base, base // 2)
    grow = max(2, round(base // 2 * EXTEND_GROW))
    mask = panorama.outpaint_mask(covered, grow, grow)
    large, covered_large = panorama.project_into_panorama(pixels, view, width, width // 2)
    grow_large = max(2, round(width // 2 * EXTEND_GROW))
    keep = 1.0 - panorama.outpaint_mask(covered_large, 2 * grow_large, grow_large)
    return (small, mask), (large, keep.astype(np.float32))


def world_recipe(job: WorldJob, seed: int) -> dict:
    s = job.settings
    recipe = {**describe(job.base), "kind": "world", "seed": seed, "width": s.width, "height": s.height,
              "base_width": s.base_width, "fix_poles": int(s.fix_poles), "scene": job.scene_name,
              "conditions": [condition.kind for condition in job.conditions], "made": time.time(),
              "settings": job.panel}
    if s.refined:
        recipe.update(window=s.window, overlap=s.overlap, refine_strength=s.refine_strength)
    if job.origin is not None:
        recipe["origin"] = list(job.origin)
    recipe["start"] = "extend" if job.extend is not None else "current" if job.start is not None else "nothing"
    # The panorama pass's own mode (the base request carries no init image).
    if job.extend is not None:
        recipe.update(mode="inpaint", strength=1.0)
    elif job.start is not None:
        recipe.update(mode="img2img", strength=job.base.strength)
    return recipe


def world_steps(job: WorldJob, cache_dir: str, placement: tuple[str | None, str | None]) -> jobs.Steps:
    painter = WorldPainter(job.settings, job.base, job.controls, job.start, job.extend, job.keep, job.base.regions)
    steps = passes(job.settings)
    done: list[np.ndarray] = []

    def work(step: Pass, report, cancel) -> np.ndarray:
        request = painter.request_for(step)
        image = jobs.engine(cache_dir, *placement).generate(request, report, cancel).images[0]
        so_far = painter.add(step, image)
        if step is steps[-1]:
            done.append(painter.result())
        return so_far

    def write(_index: int, so_far: np.ndarray) -> None:
        images.show_preview(so_far)

    def finish(_count: int) -> str:
        return write_world(job, done[0])

    return jobs.Steps("Generate World", work=work, write=write, finish=finish, count=len(steps),
                      prepare=lambda index: steps[index], noun="pass",
                      kept=lambda _written: NOTHING_KEPT_WORLD)


def write_world(job: WorldJob, rgb: np.ndarray) -> str:
    """Main thread: the panorama as an image, its captures, and the World wired to it."""
    scene = bpy.data.scenes.get(job.scene_name)
    if scene is None:
        raise DiffusionError(f"The scene '{job.scene_name}' is gone", "generate the World again")
    settings = scene.scene_diffusion
    world_settings = settings.world
    for condition in job.conditions:
        capture.store(condition, f"Panorama {KIND_LABELS[condition.kind]}", view="panorama")
    image = images.new_image(f"World seed {job.base.seed}", rgb, world_recipe(job, job.base.seed))
    notes = list(job.notes)
    replaced = None
    if world_settings.target == 'CURRENT' and scene.world is not None:
        if scene_world.replace_environment(scene.world, image, world_settings.strength, world_settings.rotation):
            replaced = scene.world
        else:
            notes.append(f"the World '{scene.world.name}' has no Environment Texture we can replace: made a new one")
    if replaced is None:
        made = scene_world.make_world(image, world_settings.strength, world_settings.rotation)
        kept = scene_world.set_world(scene, made)
        if kept:
            notes.append(kept)
        target = f"the new World '{made.name}'"
    else:
        target = f"the World '{replaced.name}'"
    if settings.seed != job.base.seed:
        settings.seed = job.base.seed
    message = f"Made '{image.name}' ({job.settings.width}×{job.settings.height}, seed {job.base.seed}) on {target}"
    return "; ".join([message] + notes)


class SCENE_DIFFUSION_OT_generate_world(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_world"
    bl_label = "Generate World"
    bl_description = ("Generate a 360° panorama that wraps around, lined up with the scene around the camera, "
                      "and light the scene with it as its World")
    bl_options = {'REGISTER', 'UNDO'}

    def prepare(self, context) -> jobs.Steps:
        prefs = preferences.addon_preferences(context)
        job = prepare_world(context)
        return world_steps(job, preferences.model_cache_dir(context), preferences.engine_placement(prefs))


# ---------------------------------------------------------------------------------------
# Backdrop
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackdropJob:
    request: GenerationRequest
    conditions: tuple[ConditionImage, ...]
    foreground: tuple[str, ...]
    camera: str
    frame: int
    notes: tuple[str, ...]
    scene_name: str
    panel: str = ""  # the panel's settings as JSON (scene/settings.py), for Use These Settings


def foreground_objects(context: bpy.types.Context) -> list[bpy.types.Object]:
    backdrop = context.scene.scene_diffusion.backdrop
    if backdrop.foreground == 'COLLECTION':
        if backdrop.collection is None:
            raise DiffusionError("No foreground collection is picked",
                                 "pick the collection of the objects in front in the Backdrop panel, "
                                 "or use the selected objects")
        objects = list(backdrop.collection.all_objects)
        if not objects:
            raise DiffusionError(f"The collection '{backdrop.collection.name}' is empty",
                                 "put the foreground objects in it")
        return objects
    objects = [obj for obj in context.selected_objects if obj.type != 'CAMERA']
    if not objects:
        raise DiffusionError("Nothing is selected for the foreground",
                             "select the objects that stand in front of the backdrop")
    return objects


def refuse_camera_inside(camera: bpy.types.Object, objects: list[bpy.types.Object]) -> None:
    """Refuse a camera inside a foreground object's bounds: left out, the object would leave
    the camera looking at what is behind it, and back in, it would hide the backdrop."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    position = camera.evaluated_get(depsgraph).matrix_world.translation
    for obj in objects:
        if obj.type not in {'MESH', 'CURVE', 'SURFACE', 'META', 'FONT'}:
            continue
        evaluated = obj.evaluated_get(depsgraph)
        local = evaluated.matrix_world.inverted_safe() @ Vector(position)
        box = np.array([corner[:] for corner in evaluated.bound_box])
        low, high = box.min(axis=0), box.max(axis=0)
        if np.all(low < np.array(local)) and np.all(np.array(local) < high):
            raise DiffusionError(f"The camera '{camera.name}' is inside '{obj.name}', which is in the foreground",
                                 "move the camera out of it, or leave it out of the foreground")


def camera_moves(scene: bpy.types.Scene, camera: bpy.types.Object) -> bool:
    """Whether the camera's view changes over the scene's frame range."""
    start, end = scene.frame_start, scene.frame_end
    if end <= start:
        return False
    views = [scene_camera.camera_view(scene, camera, 16, 16, frame) for frame in (start, (start + end) // 2, end)]
    return any(not np.allclose(views[0].world_from_camera, view.world_from_camera, atol=1e-6)
               or not np.allclose(views[0].projection, view.projection, atol=1e-6) for view in views[1:])


def prepare_backdrop(context: bpy.types.Context) -> BackdropJob:
    scene = context.scene
    settings = scene.scene_diffusion
    foreground = foreground_objects(context)
    frame = scene.frame_current
    camera = scene.camera
    if camera is None:
        raise DiffusionError("No active camera", "add one with Shift+A > Camera and make it the scene camera "
                                                 "(Ctrl+Numpad 0)")
    refuse_camera_inside(camera, foreground)
    size = scene_camera.output_size(scene)
    request = checked_request(context, size.width, size.height, start_from=False)
    notes: list[str] = []
    kinds = capture.enabled_kinds(scene) or {"depth"}
    if "openpose" in kinds:
        kinds.discard("openpose")
        notes.append("OpenPose is left out of a backdrop (the characters are in the foreground)")
    conditions: tuple[ConditionImage, ...] = ()
    controls: tuple[ControlUnit, ...] = ()
    if kinds:
        with scene_backdrop.leaving_out(foreground):
            try:
                captured = capture.capture(scene, kinds, size, frame, prompts=capture.region_prompts(scene))
                controls, conditions = captured.units, captured.conditions
                request = dataclasses.replace(request, regions=captured.regions.regions)
                left_out = {obj.name for obj in foreground}
                unseen = [name for name in captured.regions.unseen if name not in left_out]
                if unseen:
                    notes.append("region prompts not in view behind the foreground (skipped): " + ", ".join(unseen))
            except NothingInView:
                notes.append("nothing is left behind the foreground: the backdrop is text to image")
    if camera_moves(scene, camera):
        notes.append(f"the camera moves between frames {scene.frame_start} and {scene.frame_end}: this backdrop fits "
                     f"frame {frame}; a backdrop per frame is the animation's job")
    panel = settings_json(scene)
    request = dataclasses.replace(request, controls=controls, seed=settings.draw_seed())
    return BackdropJob(request, conditions, tuple(obj.name for obj in foreground), camera.name, frame, tuple(notes),
                       scene.name, panel)


def write_backdrop(job: BackdropJob, rgb: np.ndarray) -> str:
    scene = bpy.data.scenes.get(job.scene_name)
    if scene is None:
        raise DiffusionError(f"The scene '{job.scene_name}' is gone", "generate the backdrop again")
    settings = scene.scene_diffusion
    backdrop = settings.backdrop
    for condition in job.conditions:
        capture.store(condition, f"Backdrop {KIND_LABELS[condition.kind]}", view="backdrop")
    recipe = {**describe(job.request), "kind": "backdrop", "seed": job.request.seed, "camera": job.camera,
              "frame": job.frame, "foreground": list(job.foreground), "scene": job.scene_name,
              "conditions": [condition.kind for condition in job.conditions], "made": time.time(),
              "settings": job.panel}
    image = images.new_image(f"Backdrop {job.frame:04d} seed {job.request.seed}", rgb, recipe)
    notes = list(job.notes)
    camera = bpy.data.objects.get(job.camera)
    if backdrop.show_in_camera and camera is not None:
        scene_backdrop.show_in_camera(camera, image)
    if backdrop.composite:
        notes.append(scene_backdrop.composite(scene, image))
    if backdrop.shadow_catcher:
        left = set(job.foreground)
        ground = [obj for obj in scene.objects if obj.type == 'MESH' and obj.name not in left and not obj.hide_render]
        changed = scene_backdrop.make_shadow_catchers(ground)
        if changed:
            notes.append(f"made {', '.join(repr(name) for name in changed)} shadow catchers")
    if settings.seed != job.request.seed:
        settings.seed = job.request.seed
    images.show_in_image_editors(image)
    message = f"Made '{image.name}' behind {len(job.foreground)} foreground object{'s' * (len(job.foreground) != 1)}"
    return "; ".join([message] + [note for note in notes if note])


class SCENE_DIFFUSION_OT_generate_backdrop(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_backdrop"
    bl_label = "Generate Backdrop"
    bl_description = ("Generate the camera's frame behind the foreground objects (they are left out of its "
                      "conditions) and show it behind them in the viewport and in renders")
    bl_options = {'REGISTER', 'UNDO'}

    def prepare(self, context) -> jobs.Steps:
        prefs = preferences.addon_preferences(context)
        job = prepare_backdrop(context)
        cache_dir, placement = preferences.model_cache_dir(context), preferences.engine_placement(prefs)
        made: list[str] = []

        def work(_input, report, cancel) -> np.ndarray:
            return jobs.engine(cache_dir, *placement).generate(job.request, report, cancel).images[0]

        def write(_index: int, rgb: np.ndarray) -> None:
            made.append(write_backdrop(job, rgb))

        return jobs.Steps("Generate Backdrop", work=work, write=write, finish=lambda _count: made[0])


classes = (SCENE_DIFFUSION_OT_generate_world, SCENE_DIFFUSION_OT_generate_backdrop)
register, unregister = bpy.utils.register_classes_factory(classes)
