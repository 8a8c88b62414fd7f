# SPDX-License-Identifier: GPL-3.0-or-later
"""Texturing's figures for `make bench`, measured in a Blender process of their own.

Run by scripts/bench.py (one process per measurement, so a peak of memory is this run's):

    python scripts/bench_texture.py speed CACHE   # one view's projection; an 8-view 2048² texture
    python scripts/bench_texture.py memory CACHE  # peak memory of an 8-view 4096² texture

The scene: a subdivided Suzanne (about 16k triangles) on a floor, painted from 8 views
(7 around and the top) at 512² with the smoke model, 2 steps. Prints one JSON line.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "bl_ext.bench.scene_diffusion"


def enable(cache: str):
    home = tempfile.mkdtemp(prefix="scene_diffusion_bench_")
    for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
        os.environ[f"BLENDER_USER_{name}"] = os.path.join(home, name.lower())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import addon_utils
    import bpy

    repo = os.path.join(home, "repo")
    os.makedirs(repo)
    os.symlink(REPO_ROOT, os.path.join(repo, "scene_diffusion"))
    bpy.context.preferences.extensions.repos.new(name="bench", module="bench", custom_directory=repo, source='USER')
    assert addon_utils.enable(MODULE, default_set=True) is not None
    bpy.context.preferences.addons[MODULE].preferences.model_cache_dir = cache
    import torch
    torch.set_num_threads(1)
    return sys.modules


def scene(size: int, texture_size: int):
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    bpy.ops.mesh.primitive_plane_add(size=8.0, location=(0.0, 0.0, -1.0))
    bpy.ops.object.camera_add(location=(0.0, -7.0, 1.0), rotation=(1.45, 0.0, 0.0))
    scene.camera = bpy.context.active_object
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    suzanne = bpy.context.active_object
    suzanne.modifiers.new("Subdivision", 'SUBSURF').levels = 2
    bpy.ops.object.select_all(action='DESELECT')
    suzanne.select_set(True)
    bpy.context.view_layer.objects.active = suzanne
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed, settings.prompt = "smoke", 2, 1, "a bronze statue"
    settings.show_previews = False
    texture = settings.texture
    texture.views, texture.view_count, texture.include_top = 'ORBIT', 7, True
    texture.texture_size = texture_size
    return suzanne


def timed_engine(modules):
    """Wrap the session engine's generate to add up the time spent in diffusion."""
    jobs = modules[f"{MODULE}.operators.jobs"]
    spent = {"seconds": 0.0, "calls": 0}
    original = jobs.engine

    def engine(*args):
        real = original(*args)

        class Timed:
            def generate(self, request, report=None, cancel=None):
                start = time.perf_counter()
                try:
                    return real.generate(request, report, cancel)
                finally:
                    spent["seconds"] += time.perf_counter() - start
                    spent["calls"] += 1
        return Timed()

    jobs.engine = engine
    return spent


def warm_up() -> None:
    """One small generation: the model loaded, torch and diffusers imported (not texturing)."""
    import bpy
    bpy.ops.scene_diffusion.generate_image()


def speed(cache: str) -> dict:
    import bpy
    modules = enable(cache)
    scene(512, 2048)
    warm_up()
    spent = timed_engine(modules)
    start = time.perf_counter()
    assert bpy.ops.scene_diffusion.generate_texture() == {'FINISHED'}
    total = time.perf_counter() - start

    # One view projected into the 2048² texture: visibility, weights and the splat.
    texture_ops = modules[f"{MODULE}.operators.texture"]
    engine_texture = modules[f"{MODULE}.engine.texture"]
    objects = [bpy.context.view_layer.objects.active]
    settings = bpy.context.scene.scene_diffusion.texture
    points = modules[f"{MODULE}.scene.viewpoints"].viewpoints(bpy.context.scene, settings, objects, 512, 512, 1)
    views = [view for _, view in texture_ops.capture_views(bpy.context, points[:1], set(), 512, 512, 1, objects)]
    surface = modules[f"{MODULE}.scene.surfaces"].surface_of(objects[0], bpy.context.evaluated_depsgraph_get(),
                                                            objects[0].data.uv_layers.active.name)
    cells = engine_texture.texels(surface, 2048)
    image = __import__("numpy").full((512, 512, 3), 0.5, "float32")
    runs = []
    for _ in range(5):
        sums = engine_texture.Accumulation.empty(2048)
        started = time.perf_counter()
        sums.add_view(image, engine_texture.project(cells, views[0].view, views[0].depth))
        runs.append(time.perf_counter() - started)
    return {"total": total, "diffusion": spent["seconds"], "views": spent["calls"],
            "projection": sorted(runs)[len(runs) // 2], "triangles": int(surface.corners.shape[0])}


def memory(cache: str) -> dict:
    import bpy
    enable(cache)
    scene(512, 4096)
    warm_up()
    idle = _rss()
    assert bpy.ops.scene_diffusion.generate_texture() == {'FINISHED'}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {"idle": idle, "peak": peak}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    what, cache = sys.argv[1], sys.argv[2]
    print(json.dumps(speed(cache) if what == "speed" else memory(cache)))
