# SPDX-License-Identifier: GPL-3.0-or-later
"""Animation's figures for `make bench`, measured in a Blender process of their own.

    python scripts/bench_animation.py frame CACHE     # everything but the diffusion, per 512² frame
    python scripts/bench_animation.py pipeline CACHE  # N frames against N x one Engine.generate
    python scripts/bench_animation.py memory CACHE    # RSS after 10 and after 100 frames

The shot: a camera trucking past a floor, a subdivided Suzanne and a wall, 512² (64² for
memory's 100 frames), the smoke model. Prints one JSON line.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_texture import MODULE, enable  # noqa: E402


def shot(size: int, frames: int):
    import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.frame_start, scene.frame_end = 1, frames
    bpy.ops.mesh.primitive_plane_add(size=30.0)
    bpy.ops.mesh.primitive_monkey_add(size=1.5, location=(0.0, 0.0, 1.0))
    bpy.context.active_object.modifiers.new("Subdivision", 'SUBSURF').levels = 2
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 6.0, 2.0))
    bpy.context.active_object.scale = (12.0, 0.5, 4.0)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.rotation_euler = (math.radians(80), 0.0, 0.0)
    for frame, x in ((1, -1.0), (frames, 1.0)):
        camera.location = (x, -7.0, 1.5)
        camera.keyframe_insert("location", frame=frame)
    scene.camera = camera
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed, settings.prompt = "smoke", 4, 1, "a cobbled street"
    settings.show_previews = False
    anim = settings.animation
    anim.output_dir = tempfile.mkdtemp(prefix="scene_diffusion_bench_anim_")
    anim.strength_schedule, anim.steps_schedule, anim.diffusion_cadence, anim.video = "0:(0.5)", "0:(4)", 1, False
    return scene


def frame(cache: str) -> dict:
    """What one 512² frame costs besides its diffusion, step for step as the job does it
    (operators/animation.py, Painter.diffuse): warp of the previous frame's bytes, colour
    match, contrast, anti-blur, noise, the init image as floats and its strength map; after
    the diffusion the colour match of its output and the PNG write. From real geometry of
    consecutive frames; median of 20."""
    import bpy  # noqa: F401  (before enable)
    import numpy as np
    modules = enable(cache)
    scene = shot(512, 21)
    motion = modules[f"{MODULE}.scene.motion"]
    warp = __import__(f"{MODULE}.engine.warp", fromlist=["warp"])
    colour = __import__(f"{MODULE}.engine.colour", fromlist=["adjust"])
    files = __import__(f"{MODULE}.engine.frame_files", fromlist=["write_frame"])
    job = modules[f"{MODULE}.operators.animation"]
    geometry = [motion.frame_geometry(scene, f, 512, 512) for f in range(1, 22)]
    # A picture-like first frame (smooth shapes and some grain): noise would cost the PNG
    # coder several times what a real frame does.
    y, x = (np.mgrid[0:512, 0:512] + 0.5) / 512.0
    rng = np.random.default_rng(0)
    picture = np.stack([0.5 + 0.4 * np.sin(7 * x + 3 * y), 0.5 + 0.4 * np.cos(5 * y - 2 * x), 0.4 + 0.3 * x * y], 2)
    previous = (np.clip(picture + rng.normal(0, 0.02, picture.shape), 0, 1) * 255).astype(np.uint8)
    reference = colour.colour_reference(previous.astype(np.float32) / 255.0)
    adjustments = colour.FrameAdjustments()  # Deforum's defaults: LAB, anti-blur, Perlin noise
    folder = tempfile.mkdtemp(prefix="scene_diffusion_bench_png_")
    runs = []
    for index in range(20):
        started = time.perf_counter()
        warped = warp.warp(previous, geometry[index], geometry[index + 1], background=True)
        adjusted = colour.adjust_bytes(warped.image, reference, adjustments)
        files.to_float(adjusted)  # the init image the diffusion would start from
        job.strength_map(warped.valid, 0.5)  # and its strength map: what the warp did not show is redrawn
        before = time.perf_counter() - started
        # The diffusion's output (float32, as Engine.generate gives it): the warped frame
        # stands in for it, made outside the time (the noised init would cost the PNG coder
        # what no real frame does).
        output = files.to_float(warped.image)
        started = time.perf_counter()
        pixels = colour.matched_bytes(output, reference, adjustments.colour_mode)  # as the job does after img2img
        files.write_frame(folder, index + 1, pixels, {"frame": index + 1})
        runs.append(before + time.perf_counter() - started)
        previous = pixels
    return {"frame": sorted(runs)[len(runs) // 2]}


def pipeline(cache: str) -> dict:
    """An 8-frame Render Animation against its 8 generations replayed alone, right after."""
    import bpy
    modules = enable(cache)
    shot(256, 8)
    jobs = modules[f"{MODULE}.operators.jobs"]
    requests: list = []
    original = jobs.engine

    def engine(*args):
        real = original(*args)

        class Keeping:
            def generate(self, request, report=None, cancel=None):
                requests.append(request)
                return real.generate(request, report, cancel)
        return Keeping()

    jobs.engine = engine
    bpy.ops.scene_diffusion.generate_image()  # loads the model: not the animation's
    requests.clear()
    started = time.perf_counter()
    assert bpy.ops.scene_diffusion.render_animation() == {'FINISHED'}
    total = time.perf_counter() - started
    jobs.engine = original
    real = original(*jobs_placement(modules))
    began = time.perf_counter()
    for request in requests:  # every frame's own request, replayed alone
        real.generate(request)
    return {"total": total, "frames": len(requests), "generate": (time.perf_counter() - began) / len(requests)}


def jobs_placement(modules) -> tuple:
    import bpy
    preferences = modules[f"{MODULE}.preferences"]
    prefs = preferences.addon_preferences(bpy.context)
    return (preferences.model_cache_dir(bpy.context), *preferences.engine_placement(prefs))


def memory(cache: str) -> dict:
    import bpy
    enable(cache)
    scene = shot(64, 100)
    anim = scene.scene_diffusion.animation
    anim.use_scene_range = False
    anim.frame_start, anim.frame_end = 1, 10
    assert bpy.ops.scene_diffusion.render_animation() == {'FINISHED'}
    after_10 = _rss()
    anim.frame_start, anim.frame_end = 11, 100
    anim.resume = False
    assert bpy.ops.scene_diffusion.render_animation() == {'FINISHED'}
    return {"after_10": after_10, "after_100": _rss()}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    what, cache = sys.argv[1], sys.argv[2]
    print(json.dumps({"frame": frame, "pipeline": pipeline, "memory": memory}[what](cache)))
