# SPDX-License-Identifier: GPL-3.0-or-later
"""Exact per-pixel data passes (depth, normals, indices, motion vectors) rendered by Cycles.

How: the person's scene is copied with `Scene.copy()` (a new scene that links the same
collections and objects and copies the view layers with their exclusions, holdout and
indirect-only flags), the copy is set to Cycles at one sample with only the passes we
need, rendered with `write_still` into an uncompressed 32-bit multilayer EXR in a
temporary folder, read back with the pure-numpy reader in `scene.exr`, and the copy is
deleted again. The person's scene, render settings, view layers, compositor and current
frame are never written to: every setting is changed on the copy only, so nothing needs
restoring, even when the render fails. The same path works in Blender 4.2 to 5.0 because
it needs no compositor nodes and no Render Result pixels (absent in background mode).

The frame: `bpy.ops.render.render(scene=...)` renders at the frame of the *context* scene,
and afterwards re-evaluates the context depsgraph, which writes animated values back onto
the objects. With the person's scene as context that would mean changing their frame and
re-evaluating it (losing un-keyed edits of animated values); with the copy as context the
copy's evaluation at frame N would be written onto the person's objects. So the context
scene is a third, empty temporary scene (the "clock") set to frame N: the render happens
at N and the re-evaluation touches nothing of the person's.

Besides the data passes: "cryptomatte" (object names per pixel, with the manifest from
the EXR header in `RenderedPasses.metadata`: how segmentation tells objects apart without
writing a pass index onto the person's objects), "freestyle" (line art drawn by Freestyle
as a pass of the same render, with our own line set and line style made on the copy and
removed again) and `material_override` (every object rendered with one temporary
material, through the copy's view layer: the person's materials are not touched).

Why Cycles rather than ray casting: it is faster (see scripts/bench_depth.py) and it sees
exactly what a render sees: modifiers, curves, hair, instances, true displacement, alpha
cut-outs (the view layer's alpha threshold), ray visibility, hide_render, collection
exclusion and indirect-only, with no visibility rules of our own to keep in step.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine.errors import DiffusionError
from . import frames
from .exr import read_exr

__all__ = ["PASSES", "CaptureSession", "RenderedPasses", "capture_session", "render_passes",
           "resolve_camera", "capture_size", "unshaded_material"]

# Our pass name -> (view layer property, names the EXR layer has had, channel letters).
# Blender 5.0 renamed "IndexOB"/"IndexMA" to "Object Index"/"Material Index". Letters are
# matched in either case (5.0 writes cryptomatte channels as r, g, b, a).
PASSES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "z": ("use_pass_z", ("Depth",), "Z"),
    "normal": ("use_pass_normal", ("Normal",), "XYZ"),
    "object_index": ("use_pass_object_index", ("Object Index", "IndexOB"), "X"),
    "material_index": ("use_pass_material_index", ("Material Index", "IndexMA"), "X"),
    "vector": ("use_pass_vector", ("Vector",), "XYZW"),
    "position": ("use_pass_position", ("Position",), "XYZ"),
    "uv": ("use_pass_uv", ("UV",), "UVA"),
    "combined": ("use_pass_combined", ("Combined",), "RGBA"),
    # 1 where the pixel sees a back face, 0 elsewhere: the Combined pass's red under the
    # unshaded override, which emits Geometry > Backfacing. Given only where that override is
    # used (see capture_session); otherwise left out of the images.
    "backfacing": ("use_pass_combined", ("Combined",), "R"),
    # Rank 0 of the object cryptomatte: R = the object's name hash as float bits, G = coverage.
    "cryptomatte": ("use_pass_cryptomatte_object", ("CryptoObject00",), "RGBA"),
    # Freestyle strokes over transparency: A = line coverage. Set up by _configure_freestyle.
    "freestyle": ("", ("Freestyle",), "RGBA"),
}

# Freestyle's crease angle default: edges between faces meeting at a sharper angle are lines.
_CREASE_ANGLE = math.radians(134.43)

_TEMPORARY_NAME = ".scene_diffusion_capture"


@dataclass(frozen=True, eq=False)
class RenderedPasses:
    """Passes of one capture render.

    images: pass name -> HxW float32 (one channel: z, object_index, material_index) or
        HxWxC float32 (normal: XYZ world space, vector: XYZW, ...), rows top-down.
        z: planar camera-space depth in scene units (Euclidean distance for panoramic
        cameras), 1e10 where no geometry was hit.
    camera: name of the camera object rendered from; camera_type: 'PERSP', 'ORTHO', 'PANO'.
    metadata: the EXR header's string attributes (cryptomatte manifests, Blender's stamp).
    """
    images: dict[str, np.ndarray]
    width: int
    height: int
    frame: int
    camera: str
    camera_type: str
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)


def resolve_camera(scene: bpy.types.Scene, camera: bpy.types.Object | None = None,
                   frame: int | None = None) -> bpy.types.Object:
    """The camera object to capture from: `camera`, else the scene's camera at `frame`.

    Like a render, the scene's camera follows the timeline markers bound to cameras.
    """
    if camera is None:
        camera = _marker_camera(scene, scene.frame_current if frame is None else frame) or scene.camera
    if camera is None:
        raise DiffusionError(
            "No active camera",
            "add one with Shift+A > Camera and make it the scene camera (Ctrl+Numpad 0)")
    if camera.type != 'CAMERA':
        raise DiffusionError(
            f"'{camera.name}' is not a camera", "pick a camera object to capture from")
    return camera


def _marker_camera(scene: bpy.types.Scene, frame: int) -> bpy.types.Object | None:
    """The camera a render at `frame` switches to (Blender's BKE_scene_camera_switch_find)."""
    bound = sorted((marker.frame, index, marker.camera) for index, marker in enumerate(scene.timeline_markers)
                   if marker.camera is not None and not marker.camera.hide_render)
    if not bound:
        return None
    before = [camera for marker_frame, _, camera in bound if marker_frame <= frame]
    return before[-1] if before else bound[0][2]


def capture_size(scene: bpy.types.Scene, width: int | None, height: int | None) -> tuple[int, int]:
    """Width and height of a capture: the given ones, else the scene's output size."""
    percentage = scene.render.resolution_percentage / 100.0
    width = width or max(1, round(scene.render.resolution_x * percentage))
    height = height or max(1, round(scene.render.resolution_y * percentage))
    if width < 1 or height < 1:
        raise DiffusionError(f"A capture of {width}x{height} pixels is empty", "use a positive size")
    return int(width), int(height)


def render_passes(
    scene: bpy.types.Scene,
    passes: tuple[str, ...] = ("z",),
    camera: bpy.types.Object | None = None,
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
    view_layer: bpy.types.ViewLayer | None = None,
    line_thickness: float = 1.0,
    material_override: bpy.types.Material | None = None,
) -> RenderedPasses:
    """Render `passes` of `scene` from `camera` at `frame` with Cycles, changing nothing.

    view_layer: whose collection exclusions and flags apply; default: the context's view
    layer when it belongs to `scene`, else the scene's first view layer.
    line_thickness: Freestyle line width in pixels (the "freestyle" pass).
    material_override: render every object with this material (e.g. a diagnostic shader).
    """
    with capture_session(scene, passes, width, height, frame, view_layer, line_thickness,
                         material_override) as session:
        return session.render(camera)


class CaptureSession:
    """Renders of one scene's passes from several cameras through one temporary copy, its
    scene data kept between renders (Cycles' persistent data: measured here, a 16k-triangle
    view at 512² took 0.16 s a render alone and 0.07 s from the second render on)."""

    def __init__(self, scene: bpy.types.Scene, copy: bpy.types.Scene, clock: bpy.types.Scene, layer_name: str,
                 folder: str, passes: tuple[str, ...], width: int, height: int, frame: int) -> None:
        self.scene, self.copy, self.clock = scene, copy, clock
        self.layer_name, self.folder, self.passes = layer_name, folder, passes
        self.width, self.height, self.frame = width, height, frame

    def render(self, camera: bpy.types.Object | None = None) -> RenderedPasses:
        """The passes seen by `camera` (default: the scene camera at the session's frame)."""
        camera = resolve_camera(self.scene, camera, self.frame)
        started = time.perf_counter()
        metadata: dict[str, str] = {}
        path = os.path.join(self.folder, "capture.exr")
        if os.path.exists(path):
            os.remove(path)
        with _camera_without_blur(camera, self.copy) as render_camera:
            self.copy.camera = render_camera
            _render(self.copy, self.clock)
        files = [name for name in os.listdir(self.folder) if name.endswith(".exr")]
        if len(files) != 1:
            raise DiffusionError("Blender wrote no capture image", "check the console for render errors")
        channels = read_exr(os.path.join(self.folder, files[0]), metadata=metadata)
        images = {name: _pass_image(channels, self.layer_name, name, (self.height, self.width))
                  for name in self.passes}
        return RenderedPasses(
            images=images, width=self.width, height=self.height, frame=self.frame, camera=camera.name,
            camera_type=camera.data.type, seconds=time.perf_counter() - started, metadata=metadata)


@contextlib.contextmanager
def capture_session(
    scene: bpy.types.Scene,
    passes: tuple[str, ...] = ("z",),
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
    view_layer: bpy.types.ViewLayer | None = None,
    line_thickness: float = 1.0,
    material_override: bpy.types.Material | None = None,
) -> Iterator[CaptureSession]:
    """A CaptureSession for `passes` of `scene` at `frame` (see render_passes for the rest);
    everything it made is removed when the block ends, also when a render fails."""
    unknown = [name for name in passes if name not in PASSES]
    if unknown:
        raise ValueError(f"unknown passes {unknown}; known: {sorted(PASSES)}")
    subframe = scene.frame_subframe if frame is None else 0.0
    frame = scene.frame_current if frame is None else int(frame)
    width, height = capture_size(scene, width, height)
    layer_name = frames.view_layer(scene, view_layer).name
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="scene_diffusion_") as folder, \
            _temporary_line_styles(), \
            _temporary_scene(scene.copy()) as copy, \
            _temporary_scene(bpy.data.scenes.new(_TEMPORARY_NAME)) as clock:
        copy.timeline_markers.clear()  # or the render would switch to a marker's camera
        copy.frame_current = clock.frame_current = frame
        copy.frame_subframe = clock.frame_subframe = subframe
        if material_override is None and "combined" not in passes and not _shading_matters():
            material_override = stack.enter_context(unshaded_material(backfacing="backfacing" in passes))
        elif "backfacing" in passes:  # only the unshaded override tells back faces
            passes = tuple(name for name in passes if name != "backfacing")
        _configure(copy, layer_name, passes, width, height, os.path.join(folder, "capture.exr"))
        if "freestyle" in passes:
            _configure_freestyle(copy, copy.view_layers[layer_name], line_thickness)
        if material_override is not None:
            copy.view_layers[layer_name].material_override = material_override
        clock.render.engine = 'CYCLES'  # the operator checks the context scene's engine can render
        try:
            yield CaptureSession(scene, copy, clock, layer_name, folder, passes, width, height, frame)
        finally:
            # Persistent data keeps the copy's Cycles engine in Blender's Render of that scene,
            # which outlives the scene; turning it off frees the engine now (an RNA update).
            copy.render.use_persistent_data = False


# Shader nodes that make a surface see-through, hide it from the Z pass, or are volumes:
# with any of them in the file, every object keeps its own material in a capture.
_SEE_THROUGH_NODES = {"ShaderNodeBsdfTransparent", "ShaderNodeHoldout", "ShaderNodeVolumeAbsorption",
                      "ShaderNodeVolumeScatter", "ShaderNodeVolumePrincipled", "ShaderNodeVolumeCoefficients",
                      "ShaderNodeBsdfRefraction", "ShaderNodeBsdfGlass"}


def _shading_matters() -> bool:
    """Whether any material in the file could change what a data pass sees: alpha cut-outs
    (a Principled BSDF's Alpha below 1 or driven), transparent, holdout or volume shaders,
    true displacement, or a node group (not looked into). Conservative: any doubt is yes.

    Why: shading is most of a capture render's time (a 2048×1024 panorama of a room: 2.2 s
    with the scene's materials, 0.8 s unshaded), and the Z, normal and object passes come from
    the first hit, which materials change only in these ways (checked: Z and cryptomatte
    bit for bit equal, normals within 2e-7; tests/scene/test_capture_shading.py)."""
    for material in bpy.data.materials:
        if material.users == 0 or material.node_tree is None:
            continue
        for node in material.node_tree.nodes:
            if node.mute:
                continue
            if node.bl_idname in _SEE_THROUGH_NODES or node.bl_idname == "ShaderNodeGroup":
                return True
            if node.bl_idname == "ShaderNodeBsdfPrincipled":
                alpha = node.inputs.get("Alpha")
                if alpha is not None and (alpha.is_linked or alpha.default_value < 1.0):
                    return True
            if node.bl_idname == "ShaderNodeOutputMaterial":
                for name in ("Displacement", "Volume"):
                    socket = node.inputs.get(name)
                    if socket is not None and socket.is_linked:
                        return True
    return False


@contextlib.contextmanager
def unshaded_material(backfacing: bool = False) -> Iterator[bpy.types.Material]:
    """A temporary material about as cheap as Cycles can shade: an emission of 0, or with
    `backfacing` of 1 on back faces and 0 on front faces (the "backfacing" pass; ~5 % slower
    to shade, measured at 2048×1024), never sampled as a light."""
    material = bpy.data.materials.new(".scene_diffusion_unshaded")
    if material.node_tree is None:  # Blender 4.x makes the node tree on request
        material.use_nodes = True
    cycles = getattr(material, "cycles", None)
    if cycles is not None:  # no light to build from every emitting triangle
        cycles.emission_sampling = 'NONE'
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links = material.node_tree.links
    if backfacing:
        links.new(nodes.new("ShaderNodeNewGeometry").outputs["Backfacing"], emission.inputs["Color"])
    else:
        emission.inputs["Strength"].default_value = 0.0
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    try:
        yield material
    finally:
        bpy.data.materials.remove(material)


def _render(copy: bpy.types.Scene, clock: bpy.types.Scene) -> None:
    """Render `copy` at `clock`'s frame to its output file.

    No 3D View in the context: a view's local camera would override the copy's camera.
    Leaves no "Render Result" image that was not there before.
    """
    viewers = {image.name for image in bpy.data.images if image.type == 'RENDER_RESULT'}
    try:
        with bpy.context.temp_override(scene=clock, view_layer=clock.view_layers[0],
                                       area=None, region=None):
            bpy.ops.render.render(write_still=True, scene=copy.name)
    except RuntimeError as error:  # e.g. another render is running
        raise DiffusionError("Blender could not render the capture", str(error)) from error
    finally:
        # The render operator creates the viewer image on first use; a capture is not a
        # render the person asked for, so it must not add one to their file.
        for image in [image for image in bpy.data.images
                      if image.type == 'RENDER_RESULT' and image.name not in viewers]:
            bpy.data.images.remove(image)


@contextlib.contextmanager
def _temporary_scene(scene: bpy.types.Scene) -> Iterator[bpy.types.Scene]:
    """`scene`, just made, removed again when the `with` block ends."""
    try:
        scene.name = _TEMPORARY_NAME  # a leading dot keeps it out of most lists
        yield scene
    finally:
        bpy.data.scenes.remove(scene, do_unlink=True)


@contextlib.contextmanager
def _camera_without_blur(camera: bpy.types.Object, copy: bpy.types.Scene) -> Iterator[bpy.types.Object]:
    """`camera`, or a temporary copy of it with depth of field off when it is on.

    With depth of field, Cycles starts each camera ray somewhere on the lens, so one
    sample's depth is jittered; a copy keeps the person's camera untouched.
    """
    if not camera.data.dof.use_dof:
        yield camera
        return
    data = camera.data.copy()
    data.dof.use_dof = False
    twin = camera.copy()
    twin.data = data
    try:
        copy.collection.objects.link(twin)
        yield twin
    finally:
        bpy.data.objects.remove(twin, do_unlink=True)
        bpy.data.cameras.remove(data, do_unlink=True)


def _configure(copy: bpy.types.Scene, layer_name: str, passes: tuple[str, ...],
               width: int, height: int, path: str) -> None:
    """Settings for a fast, exact data render, on the temporary copy only."""
    render = copy.render
    try:
        render.engine = 'CYCLES'
    except TypeError as error:  # the engine enum lacks CYCLES when its add-on is off
        raise DiffusionError("Cycles is not available", "enable the Cycles add-on in Preferences") from error
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    # Square pixels: the generated image is shown with square pixels.
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.use_border = False
    render.use_single_layer = False  # we choose the layer with `use` below
    render.use_multiview = False
    render.use_motion_blur = False  # one instant; also required by the vector pass
    render.use_freestyle = False
    render.use_compositing = False  # the person's compositor must not alter the passes
    render.use_sequencer = False
    render.use_persistent_data = True  # kept between the renders of one CaptureSession
    render.use_stamp = False
    render.use_file_extension = True
    render.use_overwrite = True
    render.use_placeholder = False
    render.filepath = path
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0 groups formats by media type
        settings.media_type = 'MULTI_LAYER_IMAGE'
    settings.file_format = 'OPEN_EXR_MULTILAYER'
    settings.color_depth = '32'
    settings.exr_codec = 'NONE'  # what scene.exr reads, and the fastest to write
    if hasattr(settings, "use_preview"):
        settings.use_preview = False
    copy.world = None  # the background does not change data passes; skips loading HDRIs

    cycles = copy.cycles
    cycles.device = 'CPU'  # no GPU kernel load for a single sample
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = 0  # data passes come from the first hit
    cycles.filter_width = 0.01  # the one sample goes through the pixel centre
    cycles.shading_system = False  # OSL compiles slowly; passes do not need it
    if hasattr(cycles, "use_light_tree"):
        cycles.use_light_tree = False

    for layer in copy.view_layers:
        layer.use = layer.name == layer_name
    layer = copy.view_layers[layer_name]
    layer.samples = 0  # a per-layer sample override would win over cycles.samples
    for prop in layer.bl_rna.properties:
        if prop.identifier.startswith("use_pass_") and not prop.is_readonly:
            setattr(layer, prop.identifier, False)
    for name in passes:
        if PASSES[name][0]:
            setattr(layer, PASSES[name][0], True)
    if "cryptomatte" in passes:
        layer.pass_cryptomatte_depth = 2  # the fewest ranks: one EXR layer; one sample has one object
    layer_cycles = getattr(layer, "cycles", None)
    if layer_cycles is not None:
        for prop in layer_cycles.bl_rna.properties:
            if prop.type == 'BOOLEAN' and not prop.is_readonly and ("pass" in prop.identifier):
                setattr(layer_cycles, prop.identifier, False)
    while layer.aovs:
        layer.aovs.remove(layer.aovs[0])
    if hasattr(layer, "lightgroups"):
        while layer.lightgroups:
            layer.lightgroups.remove(layer.lightgroups[0])


def _configure_freestyle(copy: bpy.types.Scene, layer: bpy.types.ViewLayer, thickness: float) -> None:
    """Freestyle lines of every visible silhouette, border and crease, as a render pass.

    The copy's line sets are copies of the person's (sharing their line styles): they are
    dropped from the copy and one of ours is made, whose new line style
    `_temporary_line_styles` removes after the render.
    """
    render = copy.render
    render.use_freestyle = True
    render.line_thickness_mode = 'ABSOLUTE'
    render.line_thickness = max(float(thickness), 0.1)
    layer.use_freestyle = True
    settings = layer.freestyle_settings
    settings.mode = 'EDITOR'
    settings.as_render_pass = True  # lines in their own pass, not drawn over Combined
    settings.crease_angle = _CREASE_ANGLE
    settings.use_culling = False
    settings.use_smoothness = False
    while settings.linesets:
        settings.linesets.remove(settings.linesets[0])
    lines = settings.linesets.new(_TEMPORARY_NAME)
    lines.select_by_visibility = True
    lines.visibility = 'VISIBLE'
    lines.select_by_edge_types = True
    lines.select_by_face_marks = lines.select_by_collection = lines.select_by_image_border = False
    for edge_type in ("silhouette", "border", "crease"):
        setattr(lines, f"select_{edge_type}", True)
    for edge_type in ("contour", "external_contour", "material_boundary", "suggestive_contour",
                      "ridge_valley", "edge_mark"):
        setattr(lines, f"select_{edge_type}", False)
    style = lines.linestyle
    style.color = (1.0, 1.0, 1.0)
    style.alpha = 1.0
    style.thickness = 1.0
    style.thickness_position = 'CENTER'


@contextlib.contextmanager
def _temporary_line_styles() -> Iterator[None]:
    """Line styles made inside the block (by `linesets.new`) are removed when it ends."""
    before = set(bpy.data.linestyles)
    try:
        yield
    finally:
        for style in [style for style in bpy.data.linestyles if style not in before]:
            bpy.data.linestyles.remove(style)


def _pass_image(channels: dict[str, np.ndarray], layer_name: str, name: str,
                shape: tuple[int, int]) -> np.ndarray:
    _, layer_names, letters = PASSES[name]
    for pass_name in layer_names:
        for case in (letters, letters.lower()):
            keys = [f"{layer_name}.{pass_name}.{letter}" for letter in case]
            if all(key in channels for key in keys):
                if len(keys) == 1:
                    return channels[keys[0]]
                return np.stack([channels[key] for key in keys], axis=-1)
    if name == "freestyle":
        return np.zeros((*shape, len(letters)), np.float32)  # Freestyle writes no pass when it draws no line
    raise DiffusionError(
        f"The capture render has no {name} pass", f"found only: {', '.join(sorted(channels))}")
