# SPDX-License-Identifier: GPL-3.0-or-later
"""Every ControlNet condition of one camera view at one frame, from one capture render.

`capture_conditions(scene, {"depth", "normal", "canny"}, frame=12)` renders the scene once
through scene/render.py with the passes those kinds need (depth, normal, object
cryptomatte, Freestyle lines), turns them into condition images with engine.conditions and
engine.segmentation, and takes OpenPose from the armatures (scene/pose.py, no render). The
person's scene, frame and data are left as they were.

Kinds and what they are made from:
- depth: the Z pass (engine.conditions.depth_to_control: near bright, background black).
- normal: the Normal pass turned into camera space (scene/normals.py), drawn in the BAE
  convention of the normal ControlNets (engine.conditions.normal_to_control).
- canny: cv2.Canny on a picture of the exact passes (normal map + depth), not on a quick
  render (engine.conditions.edges_from_passes). Measured at 512x512 on the depth bench
  scene with a sun and an area light: a one-sample Cycles render in the scene's own look
  is noise to Canny (50,000 edge pixels against 2,400); a flat "facing ratio" clay render
  (a material override, so a second render, 0.15 s) loses a cube standing in front of a
  wall that faces the same way; the passes cost nothing beyond depth's render and give the
  geometry's silhouettes, creases and depth steps. Texture edges are not in it.
- lineart: Freestyle lines (silhouettes, borders, creases) drawn as a pass of the render:
  the cleaner alternative to Canny, white lines on black.
- segmentation: the object cryptomatte, each object painted in the ADE20K colour of its
  class (scene/segmentation.py); no object index is written onto the person's objects.
- openpose: armatures to OpenPose skeletons (scene/pose.py).

Refused with a DiffusionError, before anything is returned: an empty view, and a camera
inside an object (see _refuse_inside).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine.conditions import depth_to_control, edges_from_passes, lines_to_control, normal_to_control
from ..engine.errors import DiffusionError
from ..engine.kinds import SCENE_KINDS
from ..engine.segmentation import ADE20K_CLASSES, labels_to_control
from ..engine.views import CameraView
from .depth import geometry_mask
from .camera import camera_view
from .normals import to_camera_space
from .pose import capture_pose
from .render import CaptureSession, capture_session, capture_size, render_passes, resolve_camera, unshaded_material
from .segmentation import ObjectMap, cryptomatte_names, object_map, segment_labels

__all__ = ["CaptureOptions", "ConditionImage", "ViewCapture", "capture_conditions", "capture_session_for",
           "capture_view", "session_passes"]

# The render passes each kind is made from ("z" is always rendered: it tells geometry from
# background for the empty-view and inside-an-object checks).
_PASSES: dict[str, tuple[str, ...]] = {
    "depth": ("z",),
    "canny": ("z", "normal"),
    "normal": ("z", "normal"),
    "segmentation": ("z", "cryptomatte"),
    "lineart": ("z", "freestyle"),
}


# The inside-an-object check runs when at least this share of pixels sees geometry (a
# camera inside a closed mesh sees no background), and refuses when at least _INSIDE_SHARE
# of the pixels see back faces. A room or sky dome with the camera inside that shows
# anything facing the camera (furniture, a character) passes; see _refuse_inside.
_COVERED_SHARE = 0.99
_INSIDE_SHARE = 0.98
_CHECK_SIZE = 64  # long side of the back-face check render, in pixels

_LINE_REFERENCE = 512  # line_thickness is in pixels of a capture this size (short side)


@dataclass(frozen=True)
class CaptureOptions:
    """Settings of the condition kinds (each kind reads its own).

    depth_near, depth_far: scene units mapped to white and to the far grey; None follows
        the visible range. depth_inverse: normalise 1/z (as MiDaS maps), else z.
    canny_low, canny_high: cv2.Canny's hysteresis thresholds (0..1020ish; A1111's 100/200).
    line_thickness: Freestyle line width in pixels at a 512-pixel capture (short side),
        scaled with the capture size, never under 1 pixel.
    segment_background: ADE20K class of pixels that see no object ("" = black: no class).
    pose_occlusion, pose_hands, pose_face: see scene.pose.capture_pose.
    """
    depth_near: float | None = None
    depth_far: float | None = None
    depth_inverse: bool = True
    canny_low: int = 100
    canny_high: int = 200
    line_thickness: float = 1.0
    segment_background: str = "sky"
    pose_occlusion: bool = False
    pose_hands: bool = True
    pose_face: bool = True


@dataclass(frozen=True, eq=False)
class ConditionImage:
    """One condition image.

    image: HxWx3 uint8 RGB, rows top-down, in the convention its ControlNet expects.
    frame, camera: the frame and camera (object name) it was captured at.
    seconds: its share of the work: the capture render (shared by the pass-based kinds)
        plus its own processing.
    extra: per kind: depth {"near", "far"} (scene units, the visible range), segmentation
        {"classes": object name -> ADE20K class, "" -> background's}, openpose {"json"
        (OpenPose JSON), "armatures"}, canny {"low", "high"}.
    """
    kind: str
    image: np.ndarray
    frame: int
    camera: str
    seconds: float
    extra: dict = field(default_factory=dict)


def capture_conditions(
    scene: bpy.types.Scene,
    kinds: Iterable[str],
    camera: bpy.types.Object | None = None,
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
    options: CaptureOptions = CaptureOptions(),
) -> dict[str, ConditionImage]:
    """The condition images of `kinds` (any of engine.kinds.SCENE_KINDS) seen by `camera` at `frame`.

    camera: default the scene camera at `frame` (following camera markers, like a render).
    width, height: default the scene's output size (with its percentage).
    frame: default the current frame; the scene's frame and data are never changed.
    One Cycles render serves all of depth, canny, normal, segmentation and line art.
    Returns kind -> ConditionImage, in the order of SCENE_KINDS.
    """
    return capture_view(scene, kinds, camera, width, height, frame, options).conditions


@dataclass(frozen=True, eq=False)
class ViewCapture:
    """One camera view at one frame: its conditions, and (when asked for) its geometry.

    conditions: kind -> ConditionImage, in the order of SCENE_KINDS.
    view: the camera's view at the frame and size (engine.views.CameraView).
    z: HxW float32, the Z pass in the view's depth convention, +inf on background; None
        unless asked for (or rendered anyway for the pass-based kinds).
    vector: HxWx4 float32, Cycles' Vector pass from the same render (scene/motion.py reads
        it), with `motion`; else None.
    objects: which object each pixel sees (from the object cryptomatte of the same render),
        with `objects`; else None.
    """
    conditions: dict[str, ConditionImage]
    view: CameraView
    z: np.ndarray | None
    vector: np.ndarray | None = None
    objects: ObjectMap | None = None


def capture_view(
    scene: bpy.types.Scene,
    kinds: Iterable[str],
    camera: bpy.types.Object | None = None,
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
    options: CaptureOptions = CaptureOptions(),
    depth: bool = False,
    session: CaptureSession | None = None,
    motion: bool = False,
    objects: bool = False,
) -> ViewCapture:
    """`capture_conditions` with the view's geometry: its CameraView and, with `depth` (or
    when a pass-based kind renders anyway), its Z pass, from the same render.

    session: render through this CaptureSession (several views of one scene, see
    `capture_session` and `session_passes`); its size, frame and passes must be this
    capture's.
    motion: the Vector pass too, from the same render (animations: one render a frame; the
        camera-inside check reads back faces from it where no material changes what the
        passes see).
    objects: which object each pixel sees too (region prompts), from the same render.
    """
    kinds = set(kinds)
    unknown = kinds - set(SCENE_KINDS)
    if unknown:
        raise ValueError(f"unknown condition kinds {sorted(unknown)}; known: {', '.join(SCENE_KINDS)}")
    _check(options)
    frame_number = scene.frame_current if frame is None else int(frame)
    camera = resolve_camera(scene, camera, frame_number)
    width, height = capture_size(scene, width, height)
    view = camera_view(scene, camera, width, height, frame_number)
    results: dict[str, ConditionImage] = {}
    z = None

    pass_kinds = [kind for kind in SCENE_KINDS if kind in kinds and kind in _PASSES]
    vector = seen_objects = None
    if pass_kinds or depth or motion or objects:
        if session is not None:
            rendered = session.render(camera)
        else:
            # Animations also take back faces from this render: the camera-inside check then
            # needs no second render on every frame.
            passes = session_passes(kinds, objects) + (("vector", "backfacing") if motion else ())
            rendered = render_passes(scene, passes, camera=camera, width=width, height=height,
                                     frame=frame, line_thickness=_line_thickness(options, width, height))
        vector = rendered.images.get("vector")
        seen_objects = object_map(rendered) if objects else None
        z = rendered.images["z"]
        mask = geometry_mask(z, camera.name)
        if mask.mean() >= _COVERED_SHARE:
            back = rendered.images.get("backfacing")
            # Where this render told back faces and they are few, the camera is not inside
            # anything; otherwise a small render of its own decides (and names the object).
            if back is None or np.count_nonzero(back > 0.5) >= _INSIDE_SHARE * back.size:
                _refuse_inside(scene, camera, width, height, frame)
        normals = None
        if "normal" in rendered.images:
            started = time.perf_counter()
            normals = to_camera_space(rendered.images["normal"], view.rotation)
            shared = rendered.seconds + time.perf_counter() - started
        else:
            shared = rendered.seconds
        for kind in pass_kinds:
            started = time.perf_counter()
            image, extra = _make(kind, rendered, z, mask, normals, options)
            results[kind] = ConditionImage(
                kind=kind, image=image, frame=frame_number, camera=camera.name,
                seconds=shared + time.perf_counter() - started, extra=extra)
        z = np.where(mask, z, np.float32(np.inf)).astype(np.float32)

    if "openpose" in kinds:
        pose = capture_pose(scene, camera=camera, width=width, height=height, frame=frame,
                            occlusion=options.pose_occlusion, hands=options.pose_hands, face=options.pose_face)
        results["openpose"] = ConditionImage(
            kind="openpose", image=pose.image, frame=frame_number, camera=camera.name, seconds=pose.seconds,
            extra={"json": pose.json, "armatures": list(pose.armatures)})
    return ViewCapture({kind: results[kind] for kind in SCENE_KINDS if kind in results}, view, z, vector,
                       seen_objects)


def session_passes(kinds: Iterable[str], objects: bool = False) -> tuple[str, ...]:
    """The render passes a capture of `kinds` needs (the Z pass always; the object cryptomatte
    with `objects`)."""
    names = ["z"] + [name for kind in SCENE_KINDS if kind in set(kinds) and kind in _PASSES for name in _PASSES[kind]]
    return tuple(dict.fromkeys(names + (["cryptomatte"] if objects else [])))


def capture_session_for(scene: bpy.types.Scene, kinds: Iterable[str], width: int, height: int, frame: int,
                        options: CaptureOptions = CaptureOptions(), objects: bool = False):
    """A CaptureSession that serves `capture_view(..., session=...)` for `kinds` from many cameras
    (and which object each pixel sees, with `objects`)."""
    return capture_session(scene, session_passes(kinds, objects), width, height, frame,
                           line_thickness=_line_thickness(options, width, height))


def _line_thickness(options: CaptureOptions, width: int, height: int) -> float:
    # Thinner than a pixel, one-sample strokes fall apart into dashes.
    return max(1.0, options.line_thickness * min(width, height) / _LINE_REFERENCE)


def _check(options: CaptureOptions) -> None:
    """Settings errors, before anything is rendered."""
    if not 0 <= options.canny_low <= options.canny_high:
        raise DiffusionError(
            f"Canny low threshold {options.canny_low} must be between 0 and the high threshold "
            f"{options.canny_high}", "lower the low threshold (100 and 200 are the usual values)")
    if options.segment_background and options.segment_background not in ADE20K_CLASSES:
        raise DiffusionError(f"'{options.segment_background}' is not an ADE20K class",
                             "pick the background's class from the list, e.g. sky or wall")
    if options.line_thickness <= 0:
        raise DiffusionError("Line thickness must be positive", "set it to 1 pixel or more")
    # Depth ranges are checked by depth_to_control, also before any render:
    depth_to_control(np.ones((1, 1)), np.ones((1, 1), bool), options.depth_near, options.depth_far)


def _make(kind: str, rendered, z: np.ndarray, mask: np.ndarray, normals: np.ndarray | None,
          options: CaptureOptions) -> tuple[np.ndarray, dict]:
    if kind == "depth":
        image = depth_to_control(z, mask, options.depth_near, options.depth_far, options.depth_inverse)
        return image, {"near": float(z[mask].min()), "far": float(z[mask].max())}
    if kind == "normal":
        return normal_to_control(normals, mask), {}
    if kind == "canny":
        return (edges_from_passes(z, mask, normals, options.canny_low, options.canny_high),
                {"low": options.canny_low, "high": options.canny_high})
    if kind == "lineart":
        return lines_to_control(rendered.images["freestyle"][..., 3]), {}
    segments = segment_labels(rendered, options.segment_background)
    return labels_to_control(segments.labels), {"classes": segments.classes}


def _refuse_inside(scene: bpy.types.Scene, camera: bpy.types.Object, width: int, height: int,
                   frame: int | None) -> None:
    """Refuse a camera inside an object: nearly every pixel sees a back face.

    Why a second render: Cycles flips the normal of a back face to face the camera, so the
    Normal pass cannot tell. A small render with every object shaded by a diagnostic
    material (emission = Geometry > Backfacing) can, with the object cryptomatte to name
    the object. It only runs when nearly no background is in view, as inside a closed mesh,
    and, for animation frames, only when their own render saw back faces nearly everywhere.
    A camera inside a solid sees only its inner side: back faces everywhere. A room or sky
    dome with outward normals also shows back faces, but passes as long as anything in it
    faces the camera; an empty one is refused with the fix (flip its normals).
    """
    scale = _CHECK_SIZE / max(width, height)
    small = (max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1 else (width, height)
    with unshaded_material(backfacing=True) as material:
        check = render_passes(scene, ("combined", "cryptomatte"), camera=camera, width=small[0],
                              height=small[1], frame=frame, material_override=material)
    back = check.images["combined"][..., 0] > 0.5
    if back.mean() < _INSIDE_SHARE:
        return
    hashes = np.ascontiguousarray(check.images["cryptomatte"][..., 0]).view(np.uint32)
    counts = {name: int(np.count_nonzero(back & (hashes == value)))
              for value, name in cryptomatte_names(check.metadata).items()}
    around = [name for name in sorted(counts, key=counts.get, reverse=True)[:2] if counts[name]]
    inside = " and ".join(f"'{name}'" for name in around) or "an object"
    raise DiffusionError(
        f"The camera '{camera.name}' is inside {inside}: it sees only the inside (back faces) of it",
        "move the camera out of it; if it is a room or a sky dome meant to be seen from inside, "
        "flip its normals to face the camera (Edit Mode > Mesh > Normals > Flip)")
