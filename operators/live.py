# SPDX-License-Identifier: GPL-3.0-or-later
"""Live View: while on, every change of the scene redraws the picture with a few-step model.

How it runs, all on the main thread but the generation:
- `on_depsgraph_update` (and `on_frame_change`) note a change: something the picture depends
  on moved (the scene's `signature`: the frame, the camera and its lens, every object's
  place, the panel's settings and region prompts) or an object's geometry was edited. A
  generation in flight is cancelled at its next step, so results never pile up.
- `tick` (a timer in the UI; tests call it) starts the next generation once the changes
  have settled for DEBOUNCE seconds and no job runs: it captures the conditions of the
  scene as it is then (the state of the newest change), and hands the rest to the worker
  as an ordinary job marked `live` (operators/jobs.py: no undo step, no report unless it
  fails, and any other job stops it first).
- The result goes into one image, "Live View", shown in the Image Editors and as the scene
  camera's background; nothing else is written.

A capture renders a copy of the scene; Blender then tags the person's objects as updated
(their relations and shading), so the depsgraph update right after a capture is an echo of
it: its geometry flags are ignored, and only a changed signature counts. Live View turns
itself off when another file is opened, and when the extension is disabled.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass

import bpy
from bpy.app.handlers import persistent

from .. import preferences
from ..engine.errors import DiffusionError
from ..engine.live import live_request, live_size
from ..scene import images
from ..scene.camera import OutputSize
from ..scene.settings import settings_json
from . import capture, jobs
from .request import checked_request

DEBOUNCE = 0.3  # seconds without a change before a generation starts
TICK = 0.1  # seconds between ticks in the UI
LIVE_NAME = "Live View"
# Objects whose geometry edits change the picture (a camera's "geometry" is its drawing).
_GEOMETRY = {'MESH', 'CURVE', 'SURFACE', 'META', 'FONT', 'CURVES', 'POINTCLOUD', 'VOLUME', 'GREASEPENCIL',
             'ARMATURE'}


@dataclass
class LiveState:
    scene_name: str
    camera_name: str
    background: bool  # we added the camera's background image (removed again when stopping)
    shown_background: bool  # the camera showed its background images before
    signature: str = ""  # the scene as the last generation saw it
    dirty_since: float | None = None  # the newest change not generated yet
    capturing: bool = False
    echo: bool = False  # the next depsgraph update echoes a capture
    generations: int = 0  # started
    shown: int = 0  # results shown
    known: object = None  # the last job outcome seen (a new failed live one stops Live View)


_live: LiveState | None = None


def state() -> LiveState | None:
    return _live


def is_on() -> bool:
    return _live is not None


def signature(scene: bpy.types.Scene) -> str:
    """A digest of what the picture depends on besides geometry: frame, camera, lens, the
    place of every object that renders, the render size and the panel (with region prompts)."""
    camera = scene.camera
    parts = [str(scene.frame_current), str(scene.render.resolution_x), str(scene.render.resolution_y),
             str(scene.render.resolution_percentage), settings_json(scene)]
    if camera is not None:
        data = camera.data
        parts += [camera.name, _matrix(camera.matrix_world)]
        if camera.type == 'CAMERA':
            parts.append(repr((data.type, data.lens, data.sensor_width, data.sensor_height, data.sensor_fit,
                               data.shift_x, data.shift_y, data.ortho_scale, data.clip_start, data.clip_end)))
    for obj in scene.objects:
        if not obj.hide_render:
            parts.append(f"{obj.name}:{obj.data.name if obj.data is not None else ''}:{_matrix(obj.matrix_world)}")
    return hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest()


def _matrix(matrix) -> str:
    return ",".join(f"{value:.5g}" for row in matrix for value in row)


def start(context: bpy.types.Context) -> None:
    """Turn Live View on (a first generation follows at the next tick). Raises DiffusionError,
    changing nothing, when it cannot run: no camera, no few-step model, a bad setting."""
    global _live
    if _live is not None:
        return
    scene = context.scene
    if scene.camera is None:
        raise DiffusionError("Live View needs a scene camera", "add a camera and make it the scene's camera")
    _live_job_request(context, scene)  # every check the generations will make, before anything changes
    camera = scene.camera
    live = LiveState(scene.name, camera.name, background=False,
                     shown_background=getattr(camera.data, "show_background_images", False))
    if camera.type == 'CAMERA':
        entry = camera.data.background_images.new()
        entry.image = _live_image(scene)
        entry.alpha = 1.0
        camera.data.show_background_images = True
        live.background = True
    live.dirty_since = -float("inf")  # the first picture at the first tick
    live.known = jobs.last_outcome()
    _live = live
    if on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(on_depsgraph_update)
    if on_frame_change not in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.append(on_frame_change)
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TICK)


def stop() -> None:
    """Turn Live View off: its generation in flight is cancelled, the camera's background put back."""
    global _live
    live, _live = _live, None
    if on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(on_depsgraph_update)
    if on_frame_change in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.remove(on_frame_change)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if live is None:
        return
    if jobs.running_is_live():
        jobs.cancel()
    camera = bpy.data.objects.get(live.camera_name)
    if live.background and camera is not None and camera.type == 'CAMERA':
        data = camera.data
        image = _find_live_image()
        for entry in list(data.background_images):
            if image is not None and entry.image == image:
                data.background_images.remove(entry)
        data.show_background_images = live.shown_background


def on_depsgraph_update(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> None:
    live = _live
    if live is None or scene.name != live.scene_name or live.capturing:
        return
    geometry = any(isinstance(update.id, bpy.types.Object) and update.id.type in _GEOMETRY
                   and update.is_updated_geometry for update in depsgraph.updates)
    if live.echo:
        live.echo, geometry = False, False
    if geometry or signature(scene) != live.signature:
        changed(live)


def on_frame_change(scene: bpy.types.Scene, *_args) -> None:
    live = _live
    if live is not None and scene.name == live.scene_name and not live.capturing \
            and signature(scene) != live.signature:
        changed(live)


def changed(live: LiveState, now: float | None = None) -> None:
    """A change to draw: noted, and the generation in flight (drawing an older state) cancelled."""
    live.dirty_since = time.monotonic() if now is None else now
    if jobs.running_is_live():
        jobs.cancel()


def tick(now: float | None = None) -> None:
    """Drain the live generation's events; start the next one when changes have settled and
    nothing runs. `now`: the time (tests pass one past the debounce)."""
    live = _live
    if live is None:
        return
    if jobs.is_running() and jobs.drain_and_report() is None:
        return
    outcome = jobs.last_outcome()  # drained here or by the jobs' own timer
    if outcome is not live.known:
        live.known = outcome
        if jobs.last_was_live() and outcome is not None and outcome.level == 'ERROR':
            stop()  # it would fail again at every change
            return
    now = time.monotonic() if now is None else now
    if live.dirty_since is None or now - live.dirty_since < DEBOUNCE or jobs.is_running():
        return
    scene = bpy.data.scenes.get(live.scene_name)
    if scene is None or bpy.context.scene != scene:  # gone, or the window shows another scene now
        stop()
        return
    _generate(live, scene)


def _timer() -> float | None:
    if _live is None:
        return None
    try:
        tick()
    except DiffusionError as error:  # a setting changed into one that cannot run
        stop()
        jobs.report(jobs.Outcome('ERROR', f"Live View stopped: {error}"))
        return None
    return TICK


def _generate(live: LiveState, scene: bpy.types.Scene) -> None:
    live.capturing = True
    try:
        live.signature = signature(scene)
        live.dirty_since = None
        steps = _live_steps(bpy.context, scene)
        jobs.start_steps(steps, blocking=False)
    finally:
        live.capturing = False
        live.echo = True
    live.generations += 1


def _live_job_request(context, scene: bpy.types.Scene):
    settings = scene.scene_diffusion
    size = scene_output_size(scene, settings.live_resolution)
    request = checked_request(context, size.width, size.height)
    return live_request(request, settings.live_steps), size


def scene_output_size(scene: bpy.types.Scene, long_side: int) -> OutputSize:
    """The render's aspect at Live View's resolution (its long side)."""
    render = scene.render
    width, height = live_size(max(1, int(render.resolution_x * render.resolution_percentage / 100)),
                              max(1, int(render.resolution_y * render.resolution_percentage / 100)), long_side)
    return OutputSize(width, height, width, height)


def _live_steps(context, scene: bpy.types.Scene) -> jobs.Steps:
    """Main thread: capture the scene as it is now and make the job that draws it."""
    request, size = _live_job_request(context, scene)
    prefs = preferences.addon_preferences(context)
    captured = capture.capture(scene, capture.enabled_kinds(scene), size, scene.frame_current,
                               prompts=capture.region_prompts(scene))
    request = dataclasses.replace(request, controls=captured.units, regions=captured.regions.regions)
    cache_dir, placement = preferences.model_cache_dir(context), preferences.engine_placement(prefs)
    scene_name = scene.name

    def work(_input, report, cancel):
        return jobs.engine(cache_dir, *placement).generate(request, report, cancel).images[0]

    def write(_index, rgb) -> None:
        live = _live
        if live is None or live.scene_name != scene_name:
            return  # turned off meanwhile
        image = _live_image(bpy.data.scenes.get(scene_name))
        if tuple(image.size) != (rgb.shape[1], rgb.shape[0]):
            image.scale(rgb.shape[1], rgb.shape[0])
        images.set_pixels(image, rgb)
        images.show_in_image_editors(image)
        live.shown += 1

    return jobs.Steps(LIVE_NAME, work=work, write=write, finish=lambda _count: "", live=True)


def _find_live_image() -> bpy.types.Image | None:
    return next((image for image in bpy.data.images if images.get_recipe(image).get("kind") == "live"), None)


def _live_image(scene) -> bpy.types.Image:
    """Our one Live View image (tagged; one the person named so is left alone)."""
    image = _find_live_image()
    if image is None:
        size = scene_output_size(scene, scene.scene_diffusion.live_resolution) if scene is not None else None
        image = bpy.data.images.new(LIVE_NAME, size.width if size else 64, size.height if size else 64, alpha=True)
        images.set_recipe(image, {"kind": "live"})
    return image


@persistent
def _on_load_pre(*_args) -> None:
    stop()


class SCENE_DIFFUSION_OT_live_view(bpy.types.Operator):
    bl_idname = "scene_diffusion.live_view"
    bl_label = "Live View"
    bl_description = ("Redraw the picture at every change of the camera or the scene, with a few-step model, "
                      "in the Image Editor and as the camera's background (press again to stop)")
    bl_options = {'REGISTER'}

    def execute(self, context):
        if is_on():
            stop()
            self.report({'INFO'}, "Live View off")
            return {'FINISHED'}
        try:
            start(context)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        self.report({'INFO'}, "Live View on: change the camera or the scene to redraw")
        return {'FINISHED'}


classes = (SCENE_DIFFUSION_OT_live_view,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    stop()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
