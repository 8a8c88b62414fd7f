# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene at frame N, evaluated without changing the person's frame or data.

Every capture at another frame than the current one (poses, camera matrices, normals'
camera, and per-frame captures of animations) evaluates through `evaluated_at`, the one
frame-N path of the add-on. Renders at frame N go through scene/render.py's "clock" scene
instead; both leave the file as it was.

Why it is done this way (measured on bpy 5.0.1):
- `scene.frame_set(N)` and back re-evaluates animation at both frames and writes it onto
  the objects: an un-keyed edit of an animated value (a pose tried but not keyed) is lost.
- A temporary scene's depsgraph evaluated through the context is an *active* depsgraph:
  Blender writes its animated values (F-curves, NLA, drivers) and evaluated matrices back
  onto the original objects, so the person's objects would hold frame N afterwards.
- What we do: at the current frame of the context scene, read the context's evaluated
  depsgraph (what the viewport shows, un-keyed edits included; nothing is re-evaluated).
  At another frame, evaluate a temporary scene at N holding temporary copies of the
  objects asked for: Blender writes the evaluation back onto the copies (whose
  constraints and drivers on themselves follow the copy), which are then deleted. What
  the copies depend on (a parent, a constraint target, a driver's object) is the
  person's and gets written back to, so every animated value in the file is noted before
  and each one that changed is put back, and those objects are re-evaluated by the
  person's depsgraph at its own frame (no time change, so nothing is re-animated). The
  file ends as it was, un-keyed edits included, also when the evaluation fails. Only the
  copies and what they depend on are evaluated, not every mesh; with `geometry` the
  temporary scene is a linked copy of the person's (ray casts need the geometry at N).
- Objects disabled in viewports are in no viewport depsgraph (linked or not, Blender
  evaluates them only as far as another object depends on them: a constraint on one bone
  leaves the other bones in their old pose); their copies are shown, so evaluated fully.
  Limit: an armature disabled in viewports that an evaluated object depends on keeps
  Blender's cached pose (pose_bone.head ...) of frame N until it is evaluated again.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bpy

from ..engine.errors import DiffusionError

__all__ = ["Evaluated", "evaluated_at", "view_layer"]

_TEMPORARY_NAME = ".scene_diffusion_frame"


def view_layer(scene: bpy.types.Scene, layer: bpy.types.ViewLayer | None = None) -> bpy.types.ViewLayer:
    """The view layer whose exclusions a capture of `scene` follows: `layer` when given (it
    must be one of the scene's), else the context's when it belongs to `scene`, else the
    scene's first."""
    if layer is None:
        if bpy.context.scene == scene and bpy.context.view_layer is not None:
            return bpy.context.view_layer
        return scene.view_layers[0]
    if scene.view_layers.get(layer.name) is None:
        raise ValueError(f"view layer {layer.name!r} is not in scene {scene.name!r}")
    return scene.view_layers[layer.name]


@dataclass(frozen=True)
class Evaluated:
    """A depsgraph at the asked frame, the scene to ray cast in, and per object of the
    person's the object evaluated in its place (itself, or a temporary copy).

    Valid only inside the `with evaluated_at(...)` block that made it.
    """
    depsgraph: bpy.types.Depsgraph
    scene: bpy.types.Scene
    stand_ins: dict[bpy.types.Object, bpy.types.Object]

    def object(self, original: bpy.types.Object) -> bpy.types.Object:
        """The evaluated object standing in for the person's `original`."""
        return self.stand_ins[original].evaluated_get(self.depsgraph)


@contextmanager
def evaluated_at(scene: bpy.types.Scene, frame: int, objects: Iterable[bpy.types.Object],
                 instancers: Iterable[bpy.types.Object] = (), geometry: bool = False,
                 layer: bpy.types.ViewLayer | None = None) -> Iterator[Evaluated]:
    """`objects` (and collection `instancers`) evaluated at `frame`; the file is as before
    once the block ends, un-keyed edits included (see the module docstring).

    geometry: meshes are needed too (ray casts through `Evaluated.scene`).
    layer: whose collection exclusions apply; default `view_layer(scene)`.
    """
    needed, instancers = list(dict.fromkeys(objects)), list(instancers)
    layer = view_layer(scene, layer)
    frame = int(frame)
    if frame == scene.frame_current and bpy.context.scene == scene and bpy.context.view_layer == layer:
        depsgraph = bpy.context.evaluated_depsgraph_get()
        # Objects disabled in viewports are in no viewport depsgraph: they go the other way.
        if all(obj.evaluated_get(depsgraph).is_evaluated for obj in needed):
            yield Evaluated(depsgraph, scene, {obj: obj for obj in needed})
            return
    with _at_frame(scene, layer, frame, needed, instancers, geometry) as evaluated:
        yield evaluated


@contextmanager
def _at_frame(scene: bpy.types.Scene, layer: bpy.types.ViewLayer, frame: int, needed: list[bpy.types.Object],
              instancers: list[bpy.types.Object], geometry: bool) -> Iterator[Evaluated]:
    animated = _AnimatedValues.take()
    temporary = scene.copy() if geometry else bpy.data.scenes.new(_TEMPORARY_NAME)
    stand_ins: dict[bpy.types.Object, bpy.types.Object] = {}
    touched: list[bpy.types.Object] = []
    try:
        temporary.name = _TEMPORARY_NAME
        temporary.frame_current, temporary.frame_subframe = frame, 0.0
        view = temporary.view_layers[layer.name] if geometry else temporary.view_layers[0]
        if not geometry:
            for instancer in instancers:
                temporary.collection.objects.link(instancer)
        for obj in needed:
            # A copy takes the evaluation's write-back; its constraints and drivers that
            # target the object itself target the copy. Shown in viewports, so evaluated.
            twin = obj.copy()
            twin.name = _TEMPORARY_NAME
            twin.hide_viewport = False
            temporary.collection.objects.link(twin)
            stand_ins[obj] = twin
        with bpy.context.temp_override(scene=temporary, view_layer=view):
            depsgraph = bpy.context.evaluated_depsgraph_get()
        ours = set(stand_ins.values())
        touched = [id_eval.original for id_eval in depsgraph.ids
                   if isinstance(id_eval, bpy.types.Object) and id_eval.original not in ours]
        yield Evaluated(depsgraph, temporary, stand_ins)
    finally:
        for twin in stand_ins.values():
            bpy.data.objects.remove(twin, do_unlink=True)
        bpy.data.scenes.remove(temporary, do_unlink=True)
        written, failed = animated.restore()
        # Objects of the person's evaluated there (what the copies depend on, instanced
        # characters, the scene copy's objects, objects read by drivers of shared data) got
        # its matrices and poses written onto them: have the person's depsgraph compute
        # them again (transforms and data, not the animation).
        refresh = list(dict.fromkeys(touched + written))
        for datablock in refresh:
            if isinstance(datablock, bpy.types.Object):
                datablock.update_tag(refresh={'OBJECT', 'DATA'})
            else:
                datablock.update_tag()
        if refresh and bpy.context.view_layer is not None:
            bpy.context.view_layer.update()
        if failed:
            raise DiffusionError(f"Evaluating frame {frame} could not put back some animated values",
                                 "; ".join(failed[:5]))


# Collections of bpy.data whose IDs can be animated (getattr: names differ by version).
_ANIMATABLE = (
    "objects", "armatures", "cameras", "meshes", "shape_keys", "materials", "node_groups",
    "lights", "worlds", "curves", "lattices", "metaballs", "textures", "particles", "speakers",
    "volumes", "pointclouds", "hair_curves", "grease_pencils", "grease_pencils_v3",
    "cache_files", "movieclips", "masks", "linestyles", "scenes", "lightprobes", "fonts",
)


class _AnimatedValues:
    """The current value of every animated property (F-curves, NLA, drivers) in the file."""

    def __init__(self, entries: list[tuple[bpy.types.ID, str, object]]) -> None:
        self._entries = entries

    @classmethod
    def take(cls) -> _AnimatedValues:
        entries = []
        for name in _ANIMATABLE:
            for datablock in getattr(bpy.data, name, ()):
                animation = getattr(datablock, "animation_data", None)
                if animation is None:
                    continue
                for path in _animated_paths(animation):
                    try:
                        entries.append((datablock, path, _read(datablock, path)))
                    except (AttributeError, KeyError, TypeError, ValueError):
                        continue  # a path that does not resolve animates nothing
        return cls(entries)

    def restore(self) -> tuple[list[bpy.types.ID], list[str]]:
        """Write back what changed; returns the datablocks written to and what failed."""
        written, failed = [], []
        for datablock, path, value in self._entries:
            try:
                if _read(datablock, path) != value:
                    _write(datablock, path, value)
                    written.append(datablock)
            except (AttributeError, KeyError, TypeError, ValueError, ReferenceError) as error:
                failed.append(f"{path}: {error}")
        return written, failed


def _animated_paths(animation) -> set[str]:
    paths: set[str] = set()

    def from_action(action) -> None:
        if action is None:
            return
        layers = getattr(action, "layers", None)  # layered actions: Blender 4.4+
        if layers:
            for layer in layers:
                for strip in layer.strips:
                    for bag in getattr(strip, "channelbags", ()):
                        paths.update(curve.data_path for curve in bag.fcurves)
        else:
            paths.update(curve.data_path for curve in getattr(action, "fcurves", ()))

    def from_strips(strips) -> None:
        for strip in strips:
            from_action(strip.action)
            from_strips(strip.strips)  # meta strips

    from_action(animation.action)
    for track in animation.nla_tracks:
        from_strips(track.strips)
    paths.update(driver.data_path for driver in animation.drivers)
    paths.discard("")
    return paths


def _split(path: str) -> tuple[str, str, bool]:
    """(owner path, property or custom property key, is a custom property)."""
    if path.endswith('"]'):
        cut = path.rfind('["')
        return path[:cut], bpy.utils.unescape_identifier(path[cut + 2:-2]), True
    owner, _, name = path.rpartition(".")
    return owner, name, False


def _read(datablock: bpy.types.ID, path: str) -> object:
    owner_path, key, custom = _split(path)
    owner = datablock.path_resolve(owner_path) if owner_path else datablock
    value = owner[key] if custom else getattr(owner, key)
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, set):
        return frozenset(value)
    if hasattr(value, "to_list"):  # an IDProperty array
        return tuple(value.to_list())
    return tuple(value)  # vectors, colours, RNA arrays


def _write(datablock: bpy.types.ID, path: str, value: object) -> None:
    owner_path, key, custom = _split(path)
    owner = datablock.path_resolve(owner_path) if owner_path else datablock
    if isinstance(value, frozenset):
        value = set(value)
    if custom:
        owner[key] = list(value) if isinstance(value, tuple) else value
    else:
        setattr(owner, key, value)
