# SPDX-License-Identifier: GPL-3.0-or-later
"""Capture Conditions: the scene as ControlNet conditions, written as previewable images.

The same capture feeds the generate operators: what the person previews is what steers.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import bpy

from ..engine.errors import DiffusionError
from ..engine.requests import ControlUnit
from ..engine.kinds import KIND_LABELS, SCENE_KINDS
from ..properties.scene import KIND_ITEMS
from ..scene import images
from ..scene.camera import OutputSize, output_size
from ..scene.conditions import CaptureOptions, ConditionImage, ViewCapture, capture_view
from ..scene.regions import Regions, regions_in_view, scene_prompts
from . import jobs
from .base import JobOperator

# The sensor width Blender's 3D Viewport projects with (36 mm at its zoom factor of 2).
VIEWPORT_SENSOR_WIDTH = 72.0


@dataclass(frozen=True)
class Captured:
    """The conditions of one frame: images for the engine, and the scene's captures to store
    as datablocks if the person is to see them (`store_captured`)."""
    units: tuple[ControlUnit, ...]
    conditions: tuple[ConditionImage, ...]
    frame: int
    geometry: ViewCapture | None = None  # with `motion`: the view, Z and Vector passes of the same render
    regions: Regions = Regions()  # the region prompts in view, and those not in view


def capture_options(conditions) -> CaptureOptions:
    fixed = conditions.depth_range == 'FIXED'
    if fixed and conditions.depth_far <= conditions.depth_near:
        raise DiffusionError(f"The fixed depth range is empty: Far ({conditions.depth_far:g}) is not beyond "
                             f"Near ({conditions.depth_near:g})", "set Far greater than Near, or use the visible range")
    return CaptureOptions(
        depth_near=conditions.depth_near if fixed else None,
        depth_far=conditions.depth_far if fixed else None,
        depth_inverse=conditions.depth_inverse,
        canny_low=conditions.canny_low, canny_high=conditions.canny_high,
        line_thickness=conditions.line_thickness,
        segment_background=conditions.segment_background.strip(),
        pose_occlusion=conditions.pose_occlusion, pose_hands=conditions.pose_hands, pose_face=conditions.pose_face,
    )


def region_prompts(scene: bpy.types.Scene) -> dict[str, str]:
    """Object name -> region prompt, when the panel's Region Prompts is on."""
    return scene_prompts(scene) if scene.scene_diffusion.use_regions else {}


def capture(scene: bpy.types.Scene, kinds: set[str], size: OutputSize, frame: int,
            camera: bpy.types.Object | None = None, from_images: bool = True, motion: bool = False,
            prompts: dict[str, str] | None = None) -> Captured:
    """Capture `kinds` (lower-case) at `frame`; writes nothing (see `store_captured`).

    from_images: kinds whose source is an image the person picked use that image instead.
    motion: the frame's geometry too (Z and Vector passes, `Captured.geometry`), from the
    same render as the conditions.
    prompts: object name -> region prompt; their regions in view come from the same render.
    """
    conditions = scene.scene_diffusion.conditions
    picked = {kind for kind in kinds if from_images and conditions.control(kind).source == 'IMAGE'}
    for kind in sorted(picked):
        if conditions.control(kind).image is None:
            raise DiffusionError(f"The {KIND_LABELS[kind]} condition's source is an image, but none is picked",
                                 "pick one in its row of the Conditions panel, or set its source to Scene")
    viewed = capture_view(scene, kinds - picked, camera, size.width, size.height, frame,
                          capture_options(conditions), motion=motion, objects=bool(prompts)) \
        if kinds - picked or motion or prompts else None
    from_scene = viewed.conditions if viewed is not None else {}
    units = []
    for kind in SCENE_KINDS:
        if kind not in kinds:
            continue
        pixels = images.condition_pixels(conditions.control(kind).image) if kind in picked else from_scene[kind].image
        units.append(unit(conditions, kind, pixels))
    regions = regions_in_view(prompts, viewed.objects) if prompts else Regions()
    return Captured(tuple(units), tuple(from_scene.values()), frame, viewed if motion else None, regions)


def unit(conditions, kind: str, pixels) -> ControlUnit:
    """A ControlUnit of `kind` with its settings from the Conditions panel (`conditions`)."""
    control = conditions.control(kind)
    return ControlUnit(kind, pixels, scale=control.scale, guidance_start=control.guidance_start,
                       guidance_end=control.guidance_end)


def units_of(scene: bpy.types.Scene, captured: dict[str, ConditionImage]) -> tuple[ControlUnit, ...]:
    """ControlUnits of captured conditions, each kind with its Conditions panel settings."""
    return tuple(unit(scene.scene_diffusion.conditions, kind, condition.image) for kind, condition in captured.items())


def store_captured(captured: Captured) -> tuple[list[bpy.types.Image], list[bpy.types.Text]]:
    """Write the scene's captures as condition images (and OpenPose JSON as text), each
    replacing our own earlier capture of its kind and frame."""
    written, texts = [], []
    for condition in captured.conditions:
        written.append(store(condition, KIND_LABELS[condition.kind]))
        if "json" in condition.extra:
            texts.append(images.write_text(f"OpenPose {condition.frame:04d}.json", "openpose_json", condition.frame,
                                           json.dumps(condition.extra["json"], indent=1)))
    return written, texts


def store(condition: ConditionImage, label: str, view: str = "camera") -> bpy.types.Image:
    """One capture as a condition image (see images.write_capture for `view`)."""
    extra = {key: value for key, value in condition.extra.items() if key != "json"}
    image = images.write_capture(f"{label} {condition.frame:04d}", condition.kind, condition.frame, condition.image,
                                 {"camera": condition.camera, "seconds": round(condition.seconds, 4), **extra},
                                 view=view)
    image.preview_ensure()  # the panel's thumbnail
    return image


def enabled_kinds(scene: bpy.types.Scene) -> set[str]:
    return {kind.lower() for kind in scene.scene_diffusion.conditions.enabled_kinds}


@contextlib.contextmanager
def viewport_camera(context: bpy.types.Context) -> Iterator[bpy.types.Object]:
    """A temporary camera seeing what the 3D Viewport shows (perspective views), removed after."""
    region = context.region_data
    space = context.space_data
    if region is None or space is None or space.type != 'VIEW_3D':
        raise DiffusionError("Capturing from the viewport needs a 3D Viewport",
                             "press Capture in the 3D Viewport's sidebar, or capture from the scene camera")
    if region.view_perspective == 'CAMERA':
        yield None  # looking through the scene camera already
        return
    if region.view_perspective != 'PERSP':
        raise DiffusionError("The 3D Viewport shows an orthographic view",
                             "switch it to perspective (Numpad 5), or capture from the scene camera")
    data = bpy.data.cameras.new(".scene_diffusion_view")
    data.lens, data.sensor_width, data.sensor_fit = space.lens, VIEWPORT_SENSOR_WIDTH, 'AUTO'
    data.clip_start, data.clip_end = space.clip_start, space.clip_end
    camera = bpy.data.objects.new(".scene_diffusion_view", data)
    camera.matrix_world = region.view_matrix.inverted()
    try:
        yield camera
    finally:
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)


class SCENE_DIFFUSION_OT_capture_conditions(bpy.types.Operator):
    bl_idname = "scene_diffusion.capture_conditions"
    bl_label = "Capture"
    bl_description = ("Capture the enabled conditions from the scene camera (or the 3D Viewport's view) at the "
                      "current frame, as images you can preview; a new capture replaces its own earlier one")
    bl_options = {'REGISTER'}

    kinds: bpy.props.EnumProperty(name="Kinds", items=KIND_ITEMS, options={'ENUM_FLAG'},
                                  description="Which conditions to capture (default: the ones enabled in the panel)")
    frame: bpy.props.IntProperty(name="Frame", description="The frame to capture at (default: the current one)")
    from_view: bpy.props.BoolProperty(name="From View", options={'SKIP_SAVE'},
                                      description="Capture from the 3D Viewport's view, not the scene camera")

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not jobs.busy()

    def execute(self, context):
        jobs.yield_live()  # no render beside the worker
        scene = context.scene
        kinds = ({kind.lower() for kind in self.kinds} if self.properties.is_property_set("kinds")
                 else enabled_kinds(scene))
        frame = self.frame if self.properties.is_property_set("frame") else scene.frame_current
        try:
            if not kinds:
                raise DiffusionError("No condition is enabled",
                                     "enable one in the Conditions panel, or pass kinds={'DEPTH', ...}")
            size = output_size(scene)
            with (viewport_camera(context) if self.from_view else contextlib.nullcontext()) as camera:
                captured = capture(scene, kinds, size, frame, camera, from_images=False)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        stored, _texts = store_captured(captured)
        names = ", ".join(image.name for image in stored)
        for image in stored:
            images.show_in_image_editors(image)
        return jobs.report_outcome(self, jobs.Outcome('INFO', f"Captured {names} at frame {frame}"))

    def invoke(self, context, event):
        self.from_view = context.scene.scene_diffusion.conditions.capture_from == 'VIEW'
        return self.execute(context)


class SCENE_DIFFUSION_OT_detect_condition(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.detect_condition"
    bl_label = "Detect"
    bl_description = ("Make this condition from the picture with the chosen detector, as a new image, "
                      "and use it for this condition")
    bl_options = {'REGISTER'}

    kind: bpy.props.StringProperty(name="Kind", description="The condition kind (depth, canny, ...)")

    def prepare(self, context) -> jobs.Steps:
        from ..engine.detectors import DETECTORS, detect

        conditions = context.scene.scene_diffusion.conditions
        if self.kind not in KIND_LABELS:
            raise DiffusionError(f"Unknown condition kind '{self.kind}'", f"use one of {', '.join(KIND_LABELS)}")
        control = conditions.control(self.kind)
        photo, name = control.photo, control.detector
        if photo is None:
            raise DiffusionError("No picture to detect from", "pick one in the Picture field")
        if name not in DETECTORS:
            raise DiffusionError(f"No detector makes {KIND_LABELS[self.kind]} conditions",
                                 "capture it from the scene, or pick a ready condition image")
        pixels = images.condition_pixels(photo) if photo.colorspace_settings.is_data else \
            (images.display_rgb(photo) * 255 + 0.5).astype("uint8")
        options = dict(allow_online=bpy.app.online_access, canny_low=conditions.canny_low,
                       canny_high=conditions.canny_high)
        kind, label, photo_name = self.kind, KIND_LABELS[self.kind], photo.name
        made: list[bpy.types.Image] = []

        def work(_input, report, cancel):
            return detect(name, pixels, **options)

        def write(_index, result) -> None:
            image = images.new_image(f"{label} of {photo_name}", result.astype("float32") / 255.0,
                                     {"kind": kind, "detector": name, "detected_from": photo_name},
                                     colorspace="Non-Color")
            image.preview_ensure()
            # Looked up again: the scene may have changed while the detector ran.
            settings = bpy.context.scene.scene_diffusion.conditions.control(kind)
            settings.source, settings.image = 'IMAGE', image
            made.append(image)

        return jobs.Steps(f"Detect {label}", work=work, write=write,
                          finish=lambda _count: (f"Made '{made[0].name}' from '{photo_name}' with "
                                                 f"{DETECTORS[name].label}"))


classes = (SCENE_DIFFUSION_OT_capture_conditions, SCENE_DIFFUSION_OT_detect_condition)
register, unregister = bpy.utils.register_classes_factory(classes)
