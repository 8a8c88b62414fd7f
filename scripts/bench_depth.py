# SPDX-License-Identifier: GPL-3.0-or-later
"""Time the ways of getting exact depth from Blender, at size x size, median of several runs.

    .venv/bin/python scripts/bench_depth.py [--size 512] [--runs 5]

Methods (the scene: a cube, a 64x32 UV sphere and a plane, one perspective camera):
- cycles: what the extension uses (scene.depth.capture_depth): a temporary scene copy
  rendered by Cycles at one sample into an uncompressed EXR, read with numpy. Also split
  into its render and EXR-read parts.
- bvhtree: every visible mesh in camera space merged into one mathutils BVHTree, one
  `ray_cast` per pixel.
- scene_ray_cast: `Scene.ray_cast` per pixel (world space).
The ray casts here only see viewport-visible meshes; they are timing references, not a
second implementation. `bench_depth()` is the function `make bench` can call.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "scene_diffusion"


def _package():
    """The checkout imported as the package `scene_diffusion` (not registered)."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, os.path.join(REPO_ROOT, "__init__.py"), submodule_search_locations=[REPO_ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return sys.modules[PACKAGE]


def build_scene(size: int):
    """A fresh file holding the benchmark scene, rendered at size x size."""
    import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.ops.mesh.primitive_cube_add(location=(0.0, 0.0, 0.0))
    bpy.ops.mesh.primitive_uv_sphere_add(location=(2.0, -3.0, 1.0), segments=64, ring_count=32)
    bpy.ops.mesh.primitive_plane_add(location=(0.0, 5.0, 0.0), rotation=(np.pi / 2, 0.0, 0.0), size=8.0)
    bpy.context.view_layer.update()
    return scene


def _camera_rays(scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ray directions through pixel centres (rows top-down), and the matrix."""
    camera = scene.camera
    frame = [tuple(v) for v in camera.data.view_frame(scene=scene)]  # TR, BR, BL, TL
    right, top = frame[0][0], frame[0][1]
    left, bottom = frame[2][0], frame[2][1]
    distance = -frame[0][2]
    centres = (np.arange(size) + 0.5) / size
    xs = left + (right - left) * centres
    ys = top - (top - bottom) * centres
    grid_x, grid_y = np.meshgrid(xs, ys)
    directions = np.stack([grid_x, grid_y, np.full_like(grid_x, -distance)], -1).reshape(-1, 3)
    return directions, np.array(camera.matrix_world)


def depth_by_bvhtree(scene, size: int) -> np.ndarray:
    """Planar depth by one camera-space BVHTree of all visible meshes (inf = background)."""
    import bpy
    from mathutils import Matrix
    from mathutils.bvhtree import BVHTree
    depsgraph = bpy.context.evaluated_depsgraph_get()
    to_camera = scene.camera.matrix_world.inverted()
    vertices: list[np.ndarray] = []
    triangles: list[np.ndarray] = []
    count = 0
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type != 'MESH':
            continue
        mesh = obj.to_mesh()
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        matrix = np.array(to_camera @ Matrix(instance.matrix_world))
        co = co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        vertices.append(co)
        triangles.append(tris.reshape(-1, 3) + count)
        count += len(co)
        obj.to_mesh_clear()
    tree = BVHTree.FromPolygons(np.concatenate(vertices).tolist(), np.concatenate(triangles).tolist())
    directions, _ = _camera_rays(scene, size)
    origin = (0.0, 0.0, 0.0)
    ray_cast = tree.ray_cast
    z = np.full(len(directions), np.inf, np.float32)
    for i, direction in enumerate(directions.tolist()):
        location = ray_cast(origin, direction)[0]
        if location is not None:
            z[i] = -location[2]
    return z.reshape(size, size)


def depth_by_scene_ray_cast(scene, size: int) -> np.ndarray:
    """Planar depth by Scene.ray_cast per pixel (inf = background)."""
    import bpy
    depsgraph = bpy.context.evaluated_depsgraph_get()
    directions, matrix = _camera_rays(scene, size)
    world = directions @ matrix[:3, :3].T
    origin = tuple(matrix[:3, 3])
    axis = -matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])  # the camera looks down its -Z
    ray_cast = scene.ray_cast
    locations = np.full((len(directions), 3), np.nan)
    for i, direction in enumerate(world.tolist()):
        hit, location = ray_cast(depsgraph, origin, direction)[:2]
        if hit:
            locations[i] = location
    z = (locations - origin) @ axis  # NaN where nothing was hit
    return np.where(np.isnan(z), np.inf, z).astype(np.float32).reshape(size, size)


def _median_seconds(function: Callable[[], object], runs: int) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench_depth(size: int = 512, runs: int = 5) -> dict[str, float]:
    """Median seconds of each depth method at size x size, and how far they disagree."""
    from importlib import import_module

    import bpy
    _package()
    depth = import_module(f"{PACKAGE}.scene.depth")
    render = import_module(f"{PACKAGE}.scene.render")
    exr = import_module(f"{PACKAGE}.scene.exr")
    scene = build_scene(size)
    results: dict[str, float] = {}
    depth.capture_depth(scene)  # first render loads Cycles' kernels: not what we time
    results["cycles_s"], capture = _median_seconds(lambda: depth.capture_depth(scene), runs)
    with tempfile.TemporaryDirectory() as folder:
        # The render alone: the same settings, rendered again from the copy.
        def render_only() -> None:
            with render._temporary_scene(scene.copy()) as copy, \
                    render._temporary_scene(bpy.data.scenes.new("clock")) as clock:
                copy.camera = scene.camera
                render._configure(copy, scene.view_layers[0].name, ("z",), size, size,
                                  os.path.join(folder, "capture.exr"))
                clock.render.engine = 'CYCLES'
                started = time.perf_counter()
                render._render(copy, clock)
                times.append(time.perf_counter() - started)
        times: list[float] = []
        for _ in range(runs):
            render_only()
        results["cycles_render_s"] = statistics.median(times)
        results["exr_read_s"], _ = _median_seconds(
            lambda: exr.read_exr(os.path.join(folder, "capture.exr")), runs)
    ray_runs = max(1, min(runs, 3))  # these take seconds each
    results["bvhtree_s"], bvh_z = _median_seconds(lambda: depth_by_bvhtree(scene, size), ray_runs)
    results["scene_ray_cast_s"], ray_z = _median_seconds(lambda: depth_by_scene_ray_cast(scene, size), ray_runs)
    both = capture.mask & np.isfinite(bvh_z)
    results["bvhtree_vs_cycles_max_abs"] = float(np.abs(bvh_z[both] - capture.z[both]).max())
    results["bvhtree_vs_cycles_mask_disagree"] = float(np.mean(capture.mask != np.isfinite(bvh_z)))
    both = capture.mask & np.isfinite(ray_z)
    results["scene_ray_cast_vs_cycles_max_abs"] = float(np.abs(ray_z[both] - capture.z[both]).max())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = bench_depth(args.size, args.runs)
    print(f"depth at {args.size}x{args.size}, median of {args.runs} runs:")
    for name, value in results.items():
        print(f"  {name:36s} {value:.4g}")


if __name__ == "__main__":
    main()
