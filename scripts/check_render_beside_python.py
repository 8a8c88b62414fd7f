# SPDX-License-Identifier: GPL-3.0-or-later
"""Does a capture render on the main thread survive Python running on another thread?

    python scripts/check_render_beside_python.py MODE

MODE: "engine" (the worker runs Engine.generate with the smoke model: diffusers' Python),
"torch" or "numpy" (tight loops of C work), with "-session" (renders through one
CaptureSession), "-shaded" (a transparent material in the file: no unshaded override) or
"-nooverride" (render without `bpy.context.temp_override`: the context scene stays the
person's, so the render happens at its frame, not the clock's). Prints SURVIVED, or Blender
dies with a segmentation fault (run with `python -X faulthandler` to see both threads).

Measured on bpy 5.0.1 (2 cores): "engine" crashed in 3 of 5 runs. Two crashes were seen
with faulthandler: the worker was running ordinary Python (diffusers' import machinery,
pathlib) while the main thread was inside `bpy.ops.render.render` under temp_override.
"engine-nooverride" survived 5 of 5, "torch" and "numpy" survived every run. So
renders under a context override race with Python bytecode on other threads; this is why
every capture runs before a job, never beside the worker (operators/jobs.py Steps).
"""

import os
import sys
import threading

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_texture import MODULE, enable  # noqa: E402

CACHE = os.environ.get("SCENE_DIFFUSION_CACHE", "/tmp/scene_diffusion_bench")


def scene_to_render() -> bpy.types.Scene:
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 128
    bpy.ops.object.camera_add(location=(0, -6, 1), rotation=(1.45, 0, 0))
    scene.camera = bpy.context.active_object
    bpy.ops.mesh.primitive_monkey_add(size=2)
    bpy.context.active_object.modifiers.new("Subdivision", 'SUBSURF').levels = 2
    return scene


def busy(mode: str, stop: threading.Event) -> None:
    """The other thread's work until `stop`."""
    if mode.startswith("engine"):
        import importlib
        generate = importlib.import_module(f"{MODULE}.engine.generate")
        requests = importlib.import_module(f"{MODULE}.engine.requests")
        engine = generate.Engine(CACHE)
        init = np.random.rand(256, 256, 3).astype(np.float32)
        while not stop.is_set():
            engine.generate(requests.GenerationRequest(prompt="x", width=256, height=256, steps=4, seed=1,
                                                       init_image=init, strength=0.5))
    elif mode.startswith("torch"):
        import torch
        torch.set_num_threads(2)
        conv = torch.nn.Conv2d(64, 64, 3, padding=1)
        x = torch.randn(1, 64, 128, 128)
        with torch.no_grad():
            while not stop.is_set():
                conv(x).sum()
    else:
        a = np.random.rand(600, 600)
        while not stop.is_set():
            (a @ a).sum()


def main(mode: str) -> None:
    modules = enable(CACHE)
    render = modules[f"{MODULE}.scene.render"]
    scene = scene_to_render()
    if "nooverride" in mode:
        def without_override(copy, clock):
            bpy.ops.render.render(write_still=True, scene=copy.name)
        render._render = without_override
    if "shaded" in mode:
        material = bpy.data.materials.new("see-through")
        material.use_fake_user = True
        if material.node_tree is None:
            material.use_nodes = True
        material.node_tree.nodes.new("ShaderNodeBsdfTransparent")
    stop = threading.Event()
    thread = threading.Thread(target=busy, args=(mode, stop))
    thread.start()
    try:
        if "session" in mode:
            with render.capture_session(scene, ("z", "normal"), 128, 128, 1) as session:
                for _ in range(40):
                    session.render(scene.camera)
        else:
            for _ in range(25):
                render.render_passes(scene, ("z", "normal"))
        print("SURVIVED", mode)
    finally:
        stop.set()
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1])
