# SPDX-License-Identifier: GPL-3.0-or-later
"""Render Animation: Deforum-style frames that follow the scene's camera and objects.

Per diffused frame N (engine/animation.py plans which, and with what): the previous
diffused frame, as its 8-bit PNG holds it, is warped into N's view with the scene's exact
geometry (engine/warp.py, scene/motion.py); its colours are matched to the first frame,
then contrast, anti-blur and noise (engine/colour.py); then image to image + ControlNet
with N's conditions, at N's strength, and the pixels the warp could not show drawn anew
(a strength of 1 there: engine/differential.py). With cadence, the frames between two
diffused ones are both warped to them and cross-faded.

Everything is checked before the first file is written. Each item of the job is one
diffused frame and the frames before it since the last one; frames go to disk as they
are made (a cancel keeps every frame written), each PNG with its recipe and the settings
hash; a resumed run continues after the last whole frame on disk and never rewrites one.

Captures happen on the main thread with the worker idle (`ahead=0`): a capture render
under a context override beside Python running on another thread crashes Blender 5.0.1
(scripts/check_render_beside_python.py).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import bpy
import numpy as np

from .. import preferences
from ..engine import colour
from ..engine.animation import AnimationSettings, FramePlan, plan_frames
from ..engine.errors import DiffusionError, NothingInView
from ..engine.frame_files import (
    Resume, frame_path, read_frame, resume_point, settings_hash, to_bytes, to_float, write_frame, write_settings,
)
from ..engine.requests import ControlUnit, GenerationRequest, RegionPrompt
from ..engine.warp import FrameGeometry, warp
from ..scene import camera as scene_camera
from ..scene import images, sequence
from ..scene.motion import frame_geometry, geometry_of
from ..scene.render import resolve_camera
from ..scene.regions import never_seen
from ..scene.settings import settings_json
from . import capture, jobs
from .base import JobOperator
from .request import checked_request, describe

NOTHING_AFTER = "frames written before are kept; resume to continue"
# How far the pixels a warp could not show are grown into the rest before they are redrawn
# at full strength (a margin over the warp's own half-pixel reach), and feathered.
UNSEEN_GROW = 2


@dataclass(frozen=True)
class AnimationJob:
    settings: AnimationSettings
    plans: tuple[FramePlan, ...]
    groups: tuple[tuple[int, ...], ...]  # plan indices per item: the frames since the last diffused one, then it
    base: GenerationRequest
    folder: str
    digest: str
    resume: Resume
    kinds: frozenset[str]
    init: np.ndarray | None
    video: bool
    fps: float
    scene_name: str
    width: int
    height: int
    panel: str = ""  # the panel's settings as JSON (scene/settings.py), for Use These Settings
    prompts: tuple[tuple[str, str], ...] = ()  # (object name, region prompt): their regions, per frame


@dataclass(frozen=True, eq=False)
class GroupInput:
    """One item: its frames' plans and geometry, the diffused frame's conditions, and when
    the run resumes here, the previous diffused frame and the colour reference from disk."""
    plans: tuple[FramePlan, ...]
    geometry: tuple[FrameGeometry, ...]
    controls: tuple[ControlUnit, ...]
    previous: tuple[np.ndarray, FrameGeometry] | None = None
    reference: np.ndarray | None = None
    regions: tuple[RegionPrompt, ...] = ()  # the diffused frame's region prompts in view


def groups_of(plans: list[FramePlan]) -> list[tuple[int, ...]]:
    """Plan indices per item: each diffused frame with the frames since the one before it;
    frames after the last diffused one form a last item of their own."""
    groups, pending = [], []
    for index, plan in enumerate(plans):
        pending.append(index)
        if plan.diffused:
            groups.append(tuple(pending))
            pending = []
    if pending:
        groups.append(tuple(pending))
    return groups


def animation_settings(context: bpy.types.Context) -> AnimationSettings:
    scene = context.scene
    settings = scene.scene_diffusion
    anim = settings.animation
    start, end = (scene.frame_start, scene.frame_end) if anim.use_scene_range else (anim.frame_start,
                                                                                    anim.frame_end)
    from .request import effective_prompt
    return AnimationSettings(
        frame_start=start, frame_end=end, seed=settings.seed, prompt=effective_prompt(settings),
        negative_prompt=settings.negative_prompt,
        prompts_json=anim.prompts.as_string() if anim.prompts is not None else "",
        strength_schedule=anim.strength_schedule, noise_schedule=anim.noise_schedule,
        contrast_schedule=anim.contrast_schedule, cfg_scale_schedule=anim.cfg_scale_schedule,
        steps_schedule=anim.steps_schedule, amount_schedule=anim.amount_schedule,
        kernel_schedule=anim.kernel_schedule, sigma_schedule=anim.sigma_schedule,
        threshold_schedule=anim.threshold_schedule, seed_behavior=anim.seed_behavior,
        seed_iter_n=anim.seed_iter_N, seed_schedule=anim.seed_schedule, color_coherence=anim.color_coherence,
        cadence=anim.diffusion_cadence, use_init=anim.use_init, blend_prompts=anim.blend_prompts)


def output_folder(scene: bpy.types.Scene) -> str:
    """The frames' folder: the output directory (`//` is next to the .blend) / the scene's name."""
    base = scene.scene_diffusion.animation.output_dir or "//diffusion/"
    if base.startswith("//") and not bpy.data.filepath:
        raise DiffusionError("The output folder is relative to the .blend file, which is not saved yet",
                             "save the file, or set an absolute output folder in the Animation panel")
    folder = os.path.join(os.path.abspath(bpy.path.abspath(base)), bpy.path.clean_name(scene.name))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not can_write(existing):
        raise DiffusionError(f"The output folder {folder} cannot be written ({existing} is not a writable folder)",
                             "pick a folder you can write to in the Animation panel")
    return folder


def can_write(folder: str) -> bool:
    """Whether a file can be made in `folder`: tried for real (permissions alone say yes to
    root everywhere, /proc included), and removed again."""
    import tempfile
    try:
        handle, path = tempfile.mkstemp(prefix=".scene_diffusion_", dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.remove(path)
    return True


def refuse_frames_without_camera(scene: bpy.types.Scene, plans: list[FramePlan]) -> None:
    for plan in plans:
        try:
            resolve_camera(scene, None, plan.frame)
        except DiffusionError as error:
            raise DiffusionError(f"Frame {plan.frame} has no camera ({error.what})", error.fix) from None


def prepare_animation(context: bpy.types.Context) -> AnimationJob:
    scene = context.scene
    settings = scene.scene_diffusion
    anim = settings.animation
    panel = settings_json(scene)
    anim_settings = dataclasses.replace(animation_settings(context), seed=settings.draw_seed()
                                        if not anim.resume else settings.seed)
    plans = plan_frames(anim_settings)
    size = scene_camera.output_size(scene)
    refuse_frames_without_camera(scene, plans)
    base = checked_request(context, size.width, size.height, start_from=False)
    init = None
    if anim_settings.use_init:
        if anim.init_image is None:
            raise DiffusionError("Use Init is on but no init image is picked",
                                 "pick the image the first frame starts from, or turn Use Init off")
        init = images.display_rgb(anim.init_image)
    folder = output_folder(scene)
    recipe_settings = {**anim_settings.as_dict(), **{key: value for key, value in describe(base).items()
                                                     if key not in ("seed", "prompt", "negative_prompt",
                                                                    "steps", "guidance", "strength", "mode",
                                                                    "regions", "references", "ip_adapter")},
                       "width": size.width, "height": size.height, "kinds": sorted(capture.enabled_kinds(scene))}
    # Only when used: the settings of a run without them hash as they always did.
    prompts = capture.region_prompts(scene)
    if prompts:
        recipe_settings["region_prompts"] = prompts
    if base.references:
        recipe_settings.update(references=describe(base)["references"], ip_adapter=base.ip_adapter)
    digest = settings_hash(recipe_settings)
    resume = resume_point(folder, digest, anim_settings.frame_start, anim_settings.frame_end, anim.resume)
    render = scene.render
    return AnimationJob(anim_settings, tuple(plans), tuple(groups_of(plans)), base, folder, digest, resume,
                        frozenset(capture.enabled_kinds(scene)), init, anim.video, render.fps / render.fps_base,
                        scene.name, size.width, size.height, panel, tuple(sorted(prompts.items())))


def first_item(job: AnimationJob) -> int:
    """The item the run starts at: the one holding the first frame not on disk."""
    next_index = job.resume.next_frame - job.settings.frame_start
    for item, group in enumerate(job.groups):
        if next_index <= group[-1]:
            return item
    return len(job.groups)


def capture_group(scene: bpy.types.Scene, job: AnimationJob, item: int) -> GroupInput:
    """Main thread, worker idle: the item's frames' geometry, its diffused frame's conditions,
    and on the first item of a resumed run what the worker would have carried over."""
    plans = tuple(job.plans[index] for index in job.groups[item])
    geometry = [frame_geometry(scene, plan.frame, job.width, job.height) for plan in plans[:-1]]
    controls: tuple[ControlUnit, ...] = ()
    regions: tuple[RegionPrompt, ...] = ()
    diffused = plans[-1]
    last = None
    if diffused.diffused and (job.kinds or job.prompts):
        # The conditions, the regions and the geometry of the diffused frame from one render.
        size = scene_camera.output_size(scene)
        try:
            captured = capture.capture(scene, set(job.kinds), size, diffused.frame, motion=True,
                                       prompts=dict(job.prompts))
            controls, regions = captured.units, captured.regions.regions
            view = captured.geometry
            last = geometry_of(scene, resolve_camera(scene, None, diffused.frame), view.view, view.z, view.vector)
        except NothingInView:
            controls = ()
    geometry.append(last if last is not None else frame_geometry(scene, diffused.frame, job.width, job.height))
    geometry = tuple(geometry)
    previous = reference = None
    first_frame = job.plans[job.groups[item][0]]
    if first_frame.index > 0 and item == first_item(job):
        before = job.plans[job.groups[item - 1][-1]] if item > 0 else None
        if before is not None:
            pixels = read_frame(frame_path(job.folder, before.frame))
            previous = (pixels, frame_geometry(scene, before.frame, job.width, job.height))
        reference = read_frame(frame_path(job.folder, job.settings.frame_start))
    return GroupInput(plans, geometry, controls, previous, reference, regions)


class Painter:
    """The worker's side: the previous diffused frame (8-bit, as on disk) and its geometry,
    and the colour reference, carried from item to item."""

    def __init__(self, job: AnimationJob, cache_dir: str, placement: tuple[str | None, str | None]) -> None:
        self.job, self.cache_dir, self.placement = job, cache_dir, placement
        self.previous: tuple[np.ndarray, FrameGeometry] | None = None
        self.reference: colour.ColourReference | None = None
        self.mode = colour.ColourMode.parse(job.settings.color_coherence)

    def group(self, given: GroupInput, report, cancel) -> list[tuple[FramePlan, np.ndarray, dict]]:
        if given.previous is not None:
            self.previous = given.previous
        if given.reference is not None:
            self.reference = colour.colour_reference(given.reference.astype(np.float32) / 255.0)
        last = given.plans[-1]
        if last.diffused:
            made = self.diffuse(last, given.geometry[-1], given.controls, report, cancel, given.regions)
            ahead = (made, given.geometry[-1])
        else:
            ahead = None
        frames = []
        for plan, geometry in zip(given.plans[:-1] if last.diffused else given.plans,
                                  given.geometry[:-1] if last.diffused else given.geometry):
            frames.append((plan, self.between(plan, geometry, ahead), {"diffused": 0}))
        if last.diffused:
            regions = [{"prompt": region.prompt, "objects": region.name} for region in given.regions]
            frames.append((last, made, {"diffused": 1, **({"regions": regions} if regions else {})}))
            self.previous = (made, given.geometry[-1])
        return frames

    def diffuse(self, plan: FramePlan, geometry: FrameGeometry, controls, report, cancel,
                regions: tuple[RegionPrompt, ...] = ()) -> np.ndarray:
        request = dataclasses.replace(
            self.job.base, prompt=plan.prompt, negative_prompt=plan.negative_prompt, guidance=plan.cfg,
            steps=plan.steps, seed=plan.seed, controls=controls, regions=regions, prompt_blend=plan.prompt_blend)
        if self.previous is None:  # the first frame
            if self.job.init is not None:
                if plan.keeps_warp:
                    return to_bytes(self.job.init)
                request = dataclasses.replace(request, init_image=self.job.init, strength=plan.denoise)
            image = self.engine().generate(request, report, cancel).images[0]
            made = to_bytes(image)
            self.reference = colour.colour_reference(made.astype(np.float32) / 255.0)
            return made
        pixels, before = self.previous
        # Warped and adjusted as bytes, as Deforum does its 8-bit frames: the steps round to
        # 8 bits anyway, and bytes move a quarter of the memory of floats.
        warped = warp(pixels, before, geometry, background=True)
        adjustments = colour.FrameAdjustments(
            colour_mode=self.mode, contrast=plan.contrast, kernel=plan.kernel, sigma=plan.sigma, amount=plan.amount,
            threshold=plan.threshold, noise=plan.noise, seed=plan.seed)
        adjusted = colour.adjust_bytes(warped.image, self.reference, adjustments)
        if plan.keeps_warp:
            return adjusted
        init = to_float(adjusted)
        strengths = strength_map(warped.valid, plan.denoise)
        if strengths is not None:
            request = dataclasses.replace(request, init_image=init, strength=1.0, strength_map=strengths)
        else:
            request = dataclasses.replace(request, init_image=init, strength=plan.denoise)
        image = self.engine().generate(request, report, cancel).images[0]
        if self.mode is not colour.ColourMode.NONE and self.reference is not None:
            return colour.matched_bytes(image, self.reference, self.mode)  # as Deforum does after img2img
        return to_bytes(image)

    def between(self, plan: FramePlan, geometry: FrameGeometry,
                ahead: tuple[np.ndarray, FrameGeometry] | None) -> np.ndarray:
        """A frame that is not diffused: the diffused frames around it warped to it and
        cross-faded by where it lies between them (the one before alone after the last)."""
        pixels, before = self.previous
        behind = warp(to_float(pixels), before, geometry, background=True)
        if ahead is None:
            return to_bytes(np.where(behind.valid[..., None], behind.image, 0.0))
        next_pixels, after = ahead
        front = warp(to_float(next_pixels), after, geometry, background=True)
        span = after.view.frame - before.view.frame
        weight = np.float32((geometry.view.frame - before.view.frame) / span)
        w_front = np.where(front.valid, weight, 0.0)
        w_behind = np.where(behind.valid, 1.0 - weight, 0.0)
        total = w_front + w_behind
        mixed = (front.image * w_front[..., None] + behind.image * w_behind[..., None]) / np.maximum(total, 1e-6)[
            ..., None]
        return to_bytes(np.where((total > 0)[..., None], mixed, 0.0))

    def engine(self):
        return jobs.engine(self.cache_dir, *self.placement)


def strength_map(valid: np.ndarray, denoise: float) -> np.ndarray | None:
    """HxW float32: full strength where the warp showed nothing (grown by UNSEEN_GROW), the
    frame's own elsewhere; None where it showed every pixel."""
    import cv2

    # What was shown, eroded: what was not, grown (outside the frame counts as shown, as it
    # counts as not unseen when the unseen are dilated). The bools' bytes are 0 and 1.
    size = 2 * UNSEEN_GROW + 1
    kept = cv2.erode(np.ascontiguousarray(valid, bool).view(np.uint8),
                     cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    if cv2.countNonZero(kept) == kept.size:
        return None
    return np.where(kept.view(bool), np.float32(denoise), np.float32(1.0))


def frame_recipe(job: AnimationJob, plan: FramePlan, extra: dict) -> dict:
    return {"kind": "animation_frame", "frame": plan.frame, "prompt": plan.prompt, "negative_prompt":
            plan.negative_prompt, "seed": plan.seed, "strength": plan.strength, "cfg": plan.cfg, "steps": plan.steps,
            "noise": plan.noise, "model": job.base.model, "settings_hash": job.digest, **extra}


def animation_steps(job: AnimationJob, cache_dir: str, placement) -> jobs.Steps:
    painter = Painter(job, cache_dir, placement)
    start_item = first_item(job)
    items = list(range(start_item, len(job.groups)))
    written: list[int] = []
    diffused: list[int] = []
    regions_seen: list[RegionPrompt] = []

    def prepare(index: int) -> GroupInput:
        scene = bpy.data.scenes.get(job.scene_name)
        if scene is None:
            raise DiffusionError(f"The scene '{job.scene_name}' is gone", "render the animation again")
        given = capture_group(scene, job, items[index])
        regions_seen.extend(given.regions)
        return given

    def work(given: GroupInput, report, cancel):
        return painter.group(given, report, cancel)

    def write(_index: int, frames) -> None:
        if not written and not os.path.isdir(job.folder):
            os.makedirs(job.folder, exist_ok=True)
        if not written:
            write_settings(job.folder, job.settings.as_dict(), job.digest)
        for plan, pixels, extra in frames:
            if os.path.exists(frame_path(job.folder, plan.frame)):
                continue  # made before a resume: never rewritten
            write_frame(job.folder, plan.frame, pixels, frame_recipe(job, plan, extra))
            written.append(plan.frame)
            if extra.get("diffused"):
                diffused.append(plan.frame)
        images.show_preview(frames[-1][1].astype(np.float32) / 255.0)

    def finish(_count: int) -> str:
        message = finish_animation(job, written, diffused)
        unseen = never_seen(dict(job.prompts), regions_seen) if written else []
        return message + ("; region prompts in no frame rendered (skipped): " + ", ".join(unseen) if unseen else "")

    return jobs.Steps("Render Animation", work=work, write=write, finish=finish, count=len(items),
                      prepare=prepare, noun="frame", ahead=0,
                      kept=lambda count: f"{len(written)} frame{'s' if len(written) != 1 else ''} written are kept; "
                                         "turn on Resume to continue")


def finish_animation(job: AnimationJob, written: list[int], diffused: list[int]) -> str:
    paths = [frame_path(job.folder, plan.frame) for plan in job.plans]
    present = [path for path in paths if os.path.exists(path)]
    recipe = {**describe(job.base), "settings_hash": job.digest, "folder": job.folder,
              "diffused_frames": diffused, "made": time.time(), "seed": job.settings.seed, "settings": job.panel}
    image = sequence.show_sequence(f"Animation {job.scene_name}", present[0], job.settings.frame_start,
                                   len(present), recipe)
    images.show_in_image_editors(image)
    message = (f"Rendered {len(written)} frame{'s' if len(written) != 1 else ''} "
               f"({job.settings.frame_start}–{job.settings.frame_end}) to {job.folder}")
    if job.resume.done:
        message += f"; resumed after frame {job.resume.done[-1].frame}"
    scene = bpy.data.scenes.get(job.scene_name)
    if scene is not None and scene.scene_diffusion.seed != job.settings.seed:
        scene.scene_diffusion.seed = job.settings.seed  # so Resume continues with the seed these frames used
    if job.video and len(present) == len(paths):
        video = sequence.write_video(present, job.fps, os.path.join(job.folder, "animation.mp4"))
        message += f"; video {os.path.basename(video)}"
    return message


class SCENE_DIFFUSION_OT_render_animation(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.render_animation"
    bl_label = "Render Animation"
    bl_description = ("Render the frame range as Deforum-style diffused frames that follow the scene's camera and "
                      "objects exactly, to PNGs (and a video) in the output folder")
    bl_options = {'REGISTER'}

    def prepare(self, context) -> jobs.Steps:
        prefs = preferences.addon_preferences(context)
        job = prepare_animation(context)
        if first_item(job) >= len(job.groups):  # only when resuming: otherwise frames on disk are refused
            raise jobs.NothingToDo(f"Every frame of {job.settings.frame_start}–{job.settings.frame_end} is already "
                                   f"in {job.folder}: nothing to do")
        return animation_steps(job, preferences.model_cache_dir(context), preferences.engine_placement(prefs))


class SCENE_DIFFUSION_OT_key_deforum_motion(bpy.types.Operator):
    bl_idname = "scene_diffusion.key_deforum_motion"
    bl_label = "Key Deforum Motion"
    bl_description = ("Make a copy of the scene camera that moves by Deforum's translation, rotation and FOV "
                      "schedules over the frame range (keyed, so you can edit it), and make it the scene camera")
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        from ..engine.deforum_motion import MOTION_SCHEDULES, camera_path

        scene = context.scene
        anim = scene.scene_diffusion.animation
        try:
            camera = resolve_camera(scene, None, scene.frame_current)
            if camera.data.type != 'PERSP':
                raise DiffusionError(f"'{camera.name}' is not a perspective camera",
                                     "Deforum's motion moves a perspective camera")
            start, end = (scene.frame_start, scene.frame_end) if anim.use_scene_range else (anim.frame_start,
                                                                                            anim.frame_end)
            if end < start:
                raise DiffusionError(f"The frame range {start}–{end} has no frames", "set End at or after Start")
            schedules = {name: getattr(anim, name) for name in MOTION_SCHEDULES}
            path = camera_path(schedules, start, end - start + 1, np.array(camera.matrix_world),
                               seed=scene.scene_diffusion.seed, scale=anim.motion_scale,
                               sensor=camera.data.sensor_width)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        moving = key_camera(scene, camera, path)
        return jobs.report_outcome(self, jobs.Outcome(
            'INFO', f"Keyed '{moving.name}' over frames {start}–{end} from Deforum's motion; it is the scene "
                    f"camera now ('{camera.name}' is unchanged)"))


def key_camera(scene: bpy.types.Scene, camera: bpy.types.Object, path) -> bpy.types.Object:
    """A copy of `camera` (its own camera data, no animation) keyed along `path`, linked
    beside it and made the scene camera; `camera` itself is not touched."""
    from mathutils import Matrix

    moving = camera.copy()
    moving.data = camera.data.copy()
    moving.animation_data_clear()
    moving.data.animation_data_clear()
    moving.name = f"{camera.name} Deforum"
    for collection in camera.users_collection:
        collection.objects.link(moving)
    moving.rotation_mode = 'XYZ'
    moving.parent = None
    previous = None
    for placement in path:
        matrix = Matrix(placement.world_from_camera.tolist())
        location, rotation, _scale = matrix.decompose()
        moving.location = location
        # Compatible with the frame before: no 360° jumps in the keyed curves.
        moving.rotation_euler = rotation.to_euler('XYZ', previous) if previous is not None else rotation.to_euler('XYZ')
        previous = moving.rotation_euler.copy()
        moving.data.lens = placement.lens
        moving.keyframe_insert("location", frame=placement.frame)
        moving.keyframe_insert("rotation_euler", frame=placement.frame)
        moving.data.keyframe_insert("lens", frame=placement.frame)
    scene.camera = moving
    return moving


classes = (SCENE_DIFFUSION_OT_render_animation, SCENE_DIFFUSION_OT_key_deforum_motion)
register, unregister = bpy.utils.register_classes_factory(classes)
