# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPose keypoints from the scene's armatures: the condition behind OpenPose ControlNets.

No render: every armature shown in renders is evaluated, its bones are mapped to the 18
COCO keypoints (plus 21 per hand and 70 face points when the rig has those bones; names
in scene/pose_names.py, per-armature overrides in properties/objects.py), projected through
the capture camera and drawn by engine.openpose exactly as controlnet_aux draws.

Dropped keypoints: behind the camera or outside its clip range, outside the frame, face
features on the far side of the head (a back view must not show a nose and eyes, or the
ControlNet paints a face there: see _FACING), and, with `occlusion`, keypoints hidden
behind other geometry (see _hidden).

At another frame than the current one, the armatures and the camera are evaluated through
scene/frames.py (the person's frame and un-keyed edits are left as they were) and projected
through the camera's view (engine.views.CameraView, built by scene/camera.py).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..engine.errors import DiffusionError
from ..engine.openpose import BODY_KEYPOINTS, PosePerson, draw_poses, to_openpose_json
from ..engine.views import CameraView
from .camera import view_of
from .frames import Evaluated, evaluated_at, view_layer
from .pose_names import FACE_ESTIMATES, MIN_RECOGNISED, NAMINGS, BonePoint, Naming
from .render import capture_size, resolve_camera

__all__ = ["KeypointSource", "PoseCapture", "capture_pose", "mapping_for"]

# Face features hidden by the head itself, as a detector would miss them: a feature is
# dropped when its outward direction points away from the camera by more than this
# (dot product of the unit outward direction with the unit direction to the camera).
# Nose: visible up to about 100 degrees from the front; eyes (outward 30 degrees to
# their side): the far eye goes at about 60 degrees; ears (outward sideways): the far
# ear goes 30 degrees past the front; the 70 face points: only from the front half.
_FACING: dict[str, float] = {"nose": -0.2, "r_eye": 0.0, "l_eye": 0.0, "r_ear": -0.5, "l_ear": -0.5}
_EYE_OUTWARD = math.radians(30.0)

# A hand or face is drawn from the rig when at least this share of its points has bones.
_PART_SHARE = 0.5


@dataclass(frozen=True)
class KeypointSource:
    """Where one keypoint comes from on an armature.

    points: bone points (actual bone names) whose weighted mean is the keypoint.
    origin: a naming key ("rigify", "mixamo", ...), "override", "derived" (the neck:
        the shoulders' midpoint) or "estimated" (from the head bone, see FACE_ESTIMATES).
    offset: for "estimated": (right, up, forward) in shoulder widths from the head of
        points[0].bone, moving rigidly with that bone.
    """
    points: tuple[BonePoint, ...]
    origin: str
    offset: tuple[float, float, float] | None = None


@dataclass(frozen=True, eq=False)
class PoseCapture:
    """OpenPose keypoints of every character in view.

    people: one PosePerson per drawn armature, keypoints in pixels (NaN = dropped).
    image: HxWx3 uint8 RGB, rows top-down, drawn as controlnet_aux draws.
    json: the OpenPose JSON of `people` (engine.openpose.to_openpose_json).
    armatures: the armature (object name; "armature (instancer)" for collection
        instances) of each person, in the same order.
    unmapped: per armature considered (drawn or not), the body keypoints it has no bone for.
    namings: per armature considered, the naming label used ("" for overrides only).
    """
    people: tuple[PosePerson, ...]
    image: np.ndarray
    json: dict
    armatures: tuple[str, ...]
    unmapped: dict[str, tuple[str, ...]]
    namings: dict[str, str]
    width: int
    height: int
    frame: int
    camera: str
    seconds: float


@dataclass(frozen=True)
class _RestFrame:
    """The body's axes at rest in armature space, and its scale (shoulder width)."""
    right: Vector
    up: Vector
    forward: Vector
    width: float


@dataclass(frozen=True)
class _Mapping:
    naming: Naming | None
    body: dict[str, KeypointSource | None]
    left_hand: tuple[KeypointSource | None, ...] | None
    right_hand: tuple[KeypointSource | None, ...] | None
    face: tuple[KeypointSource | None, ...] | None
    head: str | None
    rest: _RestFrame | None

    @property
    def recognised(self) -> bool:
        return any(source is not None for source in self.body.values())


# --- Mapping bones to keypoints -----------------------------------------------------------

def mapping_for(armature: bpy.types.Object) -> dict[str, KeypointSource | None]:
    """Body keypoint -> where it comes from on `armature` (None: no bone for it).

    The naming that finds the most keypoints is used (none if it finds fewer than
    MIN_RECOGNISED), then the rows of the armature's override table win (a later row
    over an earlier one), then the neck is derived and face points are estimated.
    """
    return dict(_resolve(armature).body)


def _resolve(armature: bpy.types.Object) -> _Mapping:
    if armature.type != 'ARMATURE':
        raise ValueError(f"{armature.name!r} is not an armature")
    bones = armature.data.bones
    named = _named(tuple(bones.keys()))
    sources = dict(named.body)
    overridden = set()
    for keypoint, bone, at in _override_rows(armature):
        overridden.add(keypoint)
        sources[keypoint] = KeypointSource((BonePoint(bone, at),), "override") if bone else None

    shoulders = sources["r_shoulder"], sources["l_shoulder"]
    if "neck" not in overridden and sources["neck"] is None and all(shoulders):
        sources["neck"] = KeypointSource(tuple(
            BonePoint(p.bone, p.at, p.weight / 2) for s in shoulders for p in s.points), "derived")

    rest = _rest_frame(bones, sources, named.head)
    if named.head is not None and rest is not None:
        for key, offset in FACE_ESTIMATES.items():
            if key not in overridden and sources[key] is None:
                sources[key] = KeypointSource((BonePoint(named.head),), "estimated", offset)
    return _Mapping(naming=named.naming, body=sources, left_hand=named.left_hand,
                    right_hand=named.right_hand, face=named.face, head=named.head, rest=rest)


@dataclass(frozen=True)
class _Named:
    """What the bone names alone give (cached: a capture per animation frame asks again)."""
    naming: Naming | None
    body: dict[str, KeypointSource | None]
    left_hand: tuple[KeypointSource | None, ...] | None
    right_hand: tuple[KeypointSource | None, ...] | None
    face: tuple[KeypointSource | None, ...] | None
    head: str | None


@functools.lru_cache(maxsize=64)
def _named(names: tuple[str, ...]) -> _Named:
    index = _bone_index(names)
    naming, body = _best_naming(index)
    if naming is None:
        return _Named(None, dict.fromkeys(BODY_KEYPOINTS), None, None, None, None)

    def part(alternatives) -> tuple[KeypointSource | None, ...] | None:
        if not alternatives:
            return None
        found = [_pick(index, naming, options) for options in alternatives]
        if sum(points is not None for points in found) < _PART_SHARE * len(found):
            return None
        return tuple(KeypointSource(points, naming.key) if points else None for points in found)

    return _Named(
        naming=naming,
        body={key: KeypointSource(points, naming.key) if (points := body.get(key)) else None
              for key in BODY_KEYPOINTS},
        left_hand=part(naming.left_hand), right_hand=part(naming.right_hand), face=part(naming.face),
        head=_find(index, naming, naming.head))


def _bone_index(names: tuple[str, ...]) -> dict[str, str]:
    """Name -> bone name; "namespace:Name" bones are also found as "Name" (Mixamo's FBX)."""
    index = {name: name for name in names}
    for name in names:
        if ":" in name:
            index.setdefault(name.rsplit(":", 1)[1], name)
    return index


def _find(index: dict[str, str], naming: Naming, names: tuple[str, ...] | str) -> str | None:
    for name in (names,) if isinstance(names, str) else names:
        for prefix in naming.prefixes:
            found = index.get(prefix + name)
            if found is not None:
                return found
    return None


def _pick(index: dict[str, str], naming: Naming, alternatives) -> tuple[BonePoint, ...] | None:
    for points in alternatives:
        names = [_find(index, naming, point.bone) for point in points]
        if all(names):
            return tuple(BonePoint(name, point.at, point.weight) for name, point in zip(names, points))
    return None


def _best_naming(index: dict[str, str]) -> tuple[Naming | None, dict[str, tuple[BonePoint, ...]]]:
    best: tuple[Naming | None, dict] = (None, {})
    for naming in NAMINGS:  # on a tie the earlier naming wins
        found = {key: points for key, alternatives in naming.body.items()
                 if (points := _pick(index, naming, alternatives)) is not None}
        if len(found) > len(best[1]):
            best = (naming, found)
    return best if len(best[1]) >= MIN_RECOGNISED else (None, {})


def _override_rows(armature: bpy.types.Object) -> list[tuple[str, str, float]]:
    """(keypoint, bone, at) rows of the armature's override table, bones checked."""
    settings = getattr(armature, "scene_diffusion_pose", None)  # None when not registered
    if settings is None:
        return []
    rows = []
    for row in settings.overrides:
        bone = row.bone.strip()
        if bone and armature.data.bones.get(bone) is None:
            raise DiffusionError(
                f"The OpenPose override for '{row.keypoint}' on '{armature.name}' names a bone "
                f"'{bone}' that the armature does not have",
                "pick one of its bones in the override table, or clear the bone to leave the keypoint out")
        rows.append((row.keypoint, bone, float(row.at)))
    return rows


def _rest_point(bones, source: KeypointSource) -> Vector:
    total = Vector((0.0, 0.0, 0.0))
    for point in source.points:
        bone = bones[point.bone]
        total += point.weight * bone.head_local.lerp(bone.tail_local, point.at)
    return total


def _rest_frame(bones, sources: dict[str, KeypointSource | None], head: str | None) -> _RestFrame | None:
    if sources["r_shoulder"] is None or sources["l_shoulder"] is None:
        return None
    right = _rest_point(bones, sources["r_shoulder"]) - _rest_point(bones, sources["l_shoulder"])
    width = right.length
    if width < 1e-9:
        return None
    right = right / width
    if sources["r_hip"] is not None and sources["l_hip"] is not None:
        up = (_rest_point(bones, sources["r_shoulder"]) + _rest_point(bones, sources["l_shoulder"])
              - _rest_point(bones, sources["r_hip"]) - _rest_point(bones, sources["l_hip"]))
    elif head is not None:
        up = bones[head].tail_local - bones[head].head_local
    else:
        up = Vector((0.0, 0.0, 1.0))
    up = up - right * up.dot(right)
    if up.length < 1e-9:
        return None
    up.normalize()
    return _RestFrame(right=right, up=up, forward=up.cross(right), width=width)


# --- Which armatures, evaluated at which frame ----------------------------------------------

def _render_visible(view_layer: bpy.types.ViewLayer) -> tuple[list[bpy.types.Object], list[bpy.types.Object]]:
    """Armatures shown in renders, and empties instancing collections that hold some."""
    armatures: list[bpy.types.Object] = []
    instancers: list[bpy.types.Object] = []
    seen: set[bpy.types.Object] = set()

    def walk(layer_collection: bpy.types.LayerCollection) -> None:
        if layer_collection.exclude or layer_collection.collection.hide_render:
            return
        for obj in layer_collection.collection.objects:
            if obj in seen or obj.hide_render:
                continue
            seen.add(obj)
            if obj.type == 'ARMATURE':
                armatures.append(obj)
            elif obj.instance_type == 'COLLECTION' and _instanced_armatures(obj):
                instancers.append(obj)
        for child in layer_collection.children:
            walk(child)

    walk(view_layer.layer_collection)
    return armatures, instancers


def _instanced_armatures(instancer: bpy.types.Object) -> list[bpy.types.Object]:
    collection = instancer.instance_collection
    if collection is None:
        return []
    return [obj for obj in collection.all_objects if obj.type == 'ARMATURE' and not obj.hide_render]


@dataclass(frozen=True)
class _Rig:
    name: str
    original: bpy.types.Object
    evaluated: bpy.types.Object
    matrix: Matrix  # armature space -> world


def _rigs(evaluated: Evaluated, armatures: list[bpy.types.Object], instancers: list[bpy.types.Object]) -> list[_Rig]:
    depsgraph = evaluated.depsgraph
    rigs = []
    for arm in armatures:
        rig = evaluated.object(arm)
        rigs.append(_Rig(arm.name, arm, rig, rig.matrix_world.copy()))
    if instancers:
        wanted = set(instancers)
        for instance in depsgraph.object_instances:  # an instance is valid only in its step
            parent = instance.parent
            if (instance.is_instance and instance.object.type == 'ARMATURE' and parent is not None
                    and parent.original in wanted and not instance.object.original.hide_render):
                # instance.object is a temporary copy that lives only in this step.
                original = instance.object.original
                rigs.append(_Rig(f"{original.name} ({parent.original.name})", original,
                                 original.evaluated_get(depsgraph), instance.matrix_world.copy()))
    return rigs


# --- Projection and drawing ---------------------------------------------------------------

class _Pose:
    """Every pose bone of an evaluated rig, read at once, in world space."""

    def __init__(self, rig: _Rig, mapping: _Mapping) -> None:
        bones = rig.evaluated.pose.bones
        count = len(bones)
        self.index = {name: row for row, name in enumerate(bones.keys())}
        heads, tails = np.empty(count * 3, np.float32), np.empty(count * 3, np.float32)
        matrices = np.empty(count * 16, np.float32)
        bones.foreach_get("head", heads)
        bones.foreach_get("tail", tails)
        bones.foreach_get("matrix", matrices)
        self.heads = heads.reshape(count, 3).astype(np.float64)
        self.tails = tails.reshape(count, 3).astype(np.float64)
        self.matrices = matrices.reshape(count, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored by column
        self.world = np.array(rig.matrix, dtype=np.float64)
        self.mapping = mapping
        self.rest_data = rig.evaluated.data.bones

    def rest_to_pose(self, bone: str) -> np.ndarray:
        """Armature-space rest -> pose transform of a bone's neighbourhood (4x4)."""
        rest_inverse = np.array(self.rest_data[bone].matrix_local.inverted(), dtype=np.float64)
        return self.matrices[self.index[bone]] @ rest_inverse

    def points(self, sources) -> np.ndarray:
        """World positions (Nx3, NaN where no source) of `sources`."""
        out = np.full((len(sources), 3), np.nan)
        for row, source in enumerate(sources):
            if source is None:
                continue
            if source.offset is not None:
                out[row] = self._estimated(source)
                continue
            point = np.zeros(3)
            for part in source.points:
                i = self.index[part.bone]
                point += part.weight * (self.heads[i] + part.at * (self.tails[i] - self.heads[i]))
            out[row] = point
        valid = ~np.isnan(out[:, 0])
        out[valid] = out[valid] @ self.world[:3, :3].T + self.world[:3, 3]
        return out

    def _estimated(self, source: KeypointSource) -> np.ndarray:
        rest, bone = self.mapping.rest, source.points[0].bone
        right, up, forward = source.offset
        point = (np.array(self.rest_data[bone].head_local)
                 + rest.width * (right * np.array(rest.right) + up * np.array(rest.up)
                                 + forward * np.array(rest.forward)))
        return (self.rest_to_pose(bone) @ np.append(point, 1.0))[:3]

    def head_axes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """World forward and right of the posed head, or None without a head bone."""
        mapping = self.mapping
        if mapping.head is None or mapping.rest is None:
            return None
        turn = self.world[:3, :3] @ self.rest_to_pose(mapping.head)[:3, :3]
        forward, right = turn @ np.array(mapping.rest.forward), turn @ np.array(mapping.rest.right)
        return forward / max(np.linalg.norm(forward), 1e-12), right / max(np.linalg.norm(right), 1e-12)


def _pixels(camera: CameraView, points: np.ndarray) -> np.ndarray:
    """Nx3 world points (NaN rows allowed) -> Nx2 pixels, NaN where a render would not show them."""
    pixels, depth = camera.project(points)
    return np.where(camera.in_view(pixels, depth)[:, None], pixels, np.nan)


def _outward(key: str, forward: np.ndarray, right: np.ndarray) -> np.ndarray:
    side = right if key.startswith("r_") else -right
    if key == "nose":
        return forward
    if key.endswith("_eye"):
        return math.cos(_EYE_OUTWARD) * forward + math.sin(_EYE_OUTWARD) * side
    return side  # ears


def _own_objects(scene: bpy.types.Scene, armature: bpy.types.Object) -> set[bpy.types.Object]:
    """The character's own objects: deformed by or parented to the armature."""
    own = set(armature.children_recursive)
    for obj in scene.objects:
        if any(m.type == 'ARMATURE' and m.object == armature for m in getattr(obj, "modifiers", ())):
            own.add(obj)
    return own


def _hidden(scene: bpy.types.Scene, depsgraph, camera: CameraView, point: np.ndarray,
            own: set[bpy.types.Object]) -> bool:
    """Is `point` behind geometry, seen from the camera?

    The character's own body is looked through: bones lie inside their mesh, so the skin
    over every joint would hide it. Other objects (furniture, other characters) hide it.
    Objects hidden from renders do not.
    """
    toward = camera.toward(point)
    if camera.type != 'ORTHO':
        origin = camera.origin
    else:
        origin = point + toward * float(np.dot(camera.origin - point, toward))
    direction = -toward
    remaining = float(np.linalg.norm(point - origin))
    for _ in range(64):  # enough surfaces to pass through on one ray
        hit, location, _normal, _index, obj, _matrix = scene.ray_cast(
            depsgraph, Vector(origin), Vector(direction), distance=remaining)
        if not hit:
            return False
        original = obj.original if obj is not None else None
        if original is None or (original not in own and not original.hide_render):
            return True
        step = float(np.linalg.norm(np.array(location) - origin)) + 1e-5
        origin = origin + direction * step
        remaining -= step
        if remaining <= 0:
            return False
    return False


def capture_pose(
    scene: bpy.types.Scene,
    camera: bpy.types.Object | None = None,
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
    occlusion: bool = False,
    hands: bool = True,
    face: bool = True,
) -> PoseCapture:
    """The OpenPose keypoints and image of every armature shown in renders, seen by `camera`.

    camera: default the scene camera at `frame` (following camera markers, like a render).
    width, height: default the scene's output size (with its percentage).
    frame: default the current frame; the person's frame and data are left as they were.
    occlusion: drop keypoints hidden behind other objects (a character's own body never hides them).
    hands, face: draw hand and face points for rigs that have those bones.
    """
    started = time.perf_counter()
    frame = scene.frame_current if frame is None else int(frame)
    camera = resolve_camera(scene, camera, frame)
    if camera.data.type == 'PANO':
        raise DiffusionError(f"'{camera.name}' is a panoramic camera",
                             "capture poses from a perspective or orthographic camera")
    width, height = capture_size(scene, width, height)
    armatures, instancers = _render_visible(view_layer(scene))
    originals = list(dict.fromkeys(armatures + [arm for inst in instancers for arm in _instanced_armatures(inst)]))
    if not originals:
        raise DiffusionError("There is no armature to take a pose from",
                             "add a character rig (Rigify, Mixamo, MakeHuman/MPFB), or show its armature in renders")
    mappings = {arm: _resolve(arm) for arm in originals}  # before evaluating: errors change nothing
    _refuse_unknown(mappings)

    people: list[PosePerson] = []
    names: list[str] = []
    with evaluated_at(scene, frame, armatures + [camera], instancers, geometry=occlusion) as evaluated:
        depsgraph, ray_scene = evaluated.depsgraph, evaluated.scene
        projector = view_of(evaluated.object(camera), depsgraph, width, height, frame, camera.name)
        for rig in _rigs(evaluated, armatures, instancers):
            mapping = mappings[rig.original]
            if not mapping.recognised:
                continue
            own = _own_objects(ray_scene, rig.original) if occlusion else set()
            person = _person(rig, mapping, projector, hands, face,
                             (ray_scene, depsgraph, own) if occlusion else None)
            if person is not None:
                people.append(person)
                names.append(rig.name)

    image = draw_poses(people, width, height, hands=hands, face=face)
    return PoseCapture(
        people=tuple(people), image=image, json=to_openpose_json(people, width, height),
        armatures=tuple(names),
        unmapped={arm.name: tuple(k for k, s in m.body.items() if s is None) for arm, m in mappings.items()},
        namings={arm.name: m.naming.label if m.naming else "" for arm, m in mappings.items()},
        width=width, height=height, frame=frame, camera=camera.name,
        seconds=time.perf_counter() - started)


def _refuse_unknown(mappings: dict[bpy.types.Object, _Mapping]) -> None:
    if any(mapping.recognised for mapping in mappings.values()):
        return
    names = ", ".join(f"'{arm.name}'" for arm in list(mappings)[:3]) + (" ..." if len(mappings) > 3 else "")
    first = next(iter(mappings.values()))
    unmapped = ", ".join(key for key, source in first.body.items() if source is None)
    known = ", ".join(naming.label for naming in NAMINGS)
    raise DiffusionError(
        f"The bones of {names} match no rig naming Scene Diffusion knows ({known}); "
        f"keypoints without a bone: {unmapped}",
        "map those keypoints to bones in the armature's OpenPose keypoint overrides")


def _person(rig: _Rig, mapping: _Mapping, camera: CameraView, hands: bool, face: bool, occlusion) -> PosePerson | None:
    posed = _Pose(rig, mapping)
    body_world = posed.points([mapping.body[key] for key in BODY_KEYPOINTS])
    body = _pixels(camera, body_world)
    axes = posed.head_axes()
    if axes is not None:
        forward, right = axes
        for key, limit in _FACING.items():
            row = BODY_KEYPOINTS.index(key)
            if not np.isnan(body[row, 0]) and float(np.dot(_outward(key, forward, right),
                                                           camera.toward(body_world[row]))) < limit:
                body[row] = np.nan

    def part(sources) -> tuple[np.ndarray | None, np.ndarray | None]:
        if sources is None:
            return None, None
        world = posed.points(sources)
        return world, _pixels(camera, world)

    left_world, left = part(mapping.left_hand if hands else None)
    right_world, right_hand = part(mapping.right_hand if hands else None)
    face_world, face_points = part(mapping.face if face else None)
    if face_points is not None and axes is not None:
        centre = np.nanmean(face_world, axis=0)
        if float(np.dot(axes[0], camera.toward(centre))) < 0.0:  # the face looks away
            face_points[:] = np.nan

    if occlusion is not None:
        ray_scene, depsgraph, own = occlusion
        for world, pixels in ((body_world, body), (left_world, left), (right_world, right_hand),
                              (face_world, face_points)):
            if pixels is None:
                continue
            for row in np.flatnonzero(~np.isnan(pixels[:, 0])):
                if _hidden(ray_scene, depsgraph, camera, world[row], own):
                    pixels[row] = np.nan

    def kept(points: np.ndarray | None) -> np.ndarray | None:
        return points if points is not None and not np.isnan(points).all() else None

    left, right_hand, face_points = kept(left), kept(right_hand), kept(face_points)
    if np.isnan(body).all() and left is None and right_hand is None and face_points is None:
        return None  # out of view
    return PosePerson(body=body, left_hand=left, right_hand=right_hand, face=face_points)
