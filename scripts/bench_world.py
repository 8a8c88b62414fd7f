# SPDX-License-Identifier: GPL-3.0-or-later
"""Backgrounds' figures for `make bench`, measured in a Blender process of their own.

    python scripts/bench_world.py capture CACHE  # a depth panorama at 2048x1024
    python scripts/bench_world.py upscale CACHE  # a 4096x2048 World: its time in the UNet and the rest

The capture scene: a room (floor, four walls, a ceiling) with a subdivided Suzanne and a
few boxes around the camera. The upscale: the smoke model, 3 steps, windows at 0.35
(one UNet step each), the poles; the UNet's own time is taken by forward hooks on it.
Prints one JSON line.
"""
from __future__ import annotations

import json
import math
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench_texture import MODULE, enable  # noqa: E402  (the same extension set-up)


def room() -> None:
    import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0.0, 0.0, 1.6), rotation=(math.pi / 2, 0.0, 0.0))
    scene.camera = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 2.0))
    walls = bpy.context.active_object
    walls.scale = (12.0, 16.0, 4.0)
    with bpy.context.temp_override(active_object=walls, object=walls, selected_objects=[walls], edit_object=walls):
        bpy.ops.object.mode_set(mode='EDIT')
        bpy.ops.mesh.select_all(action='SELECT')
        bpy.ops.mesh.flip_normals()  # a room seen from inside
        bpy.ops.object.mode_set(mode='OBJECT')
    bpy.ops.mesh.primitive_monkey_add(size=1.5, location=(0.0, 4.0, 1.0))
    bpy.context.active_object.modifiers.new("Subdivision", 'SUBSURF').levels = 2
    for x, y in ((3.0, 2.0), (-4.0, -3.0), (2.0, -5.0)):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(x, y, 0.5))


def capture(cache: str) -> dict:
    import bpy  # before enable: addon_utils comes with it
    modules = enable(cache)
    room()
    panorama = modules[f"{MODULE}.scene.panorama"]
    scene = bpy.context.scene
    panorama.capture_panorama(scene, {"depth"}, 256, scene.frame_current)  # warm: Cycles' kernels
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        captured = panorama.capture_panorama(scene, {"depth"}, 2048, scene.frame_current)
        runs.append(time.perf_counter() - started)
    assert captured.conditions["depth"].image.shape == (1024, 2048, 3)
    return {"capture": sorted(runs)[len(runs) // 2]}


def upscale(cache: str) -> dict:
    import bpy  # noqa: F401
    modules = enable(cache)
    import importlib

    import numpy as np
    generate = importlib.import_module(f"{MODULE}.engine.generate")
    requests = modules[f"{MODULE}.engine.requests"]
    worlds = modules[f"{MODULE}.engine.worlds"]
    engine = generate.Engine(cache)
    base = requests.GenerationRequest(prompt="a canyon at dawn", steps=3, seed=3, model="smoke")
    engine.generate(base)  # loads the model: not the upscale's
    unet_seconds = {"total": 0.0}
    hooks = []

    def attach(unet) -> None:
        started: list[float] = []
        hooks.append(unet.register_forward_pre_hook(lambda module, args: started.append(time.perf_counter())))

        def done(module, args, output):
            unet_seconds["total"] += time.perf_counter() - started.pop()
        hooks.append(unet.register_forward_hook(done))

    vae_seconds = {"encode": 0.0, "decode": 0.0, "decoded_pixels": 0}

    def attach_vae(vae) -> None:
        for part, coder in (("encode", vae.encoder), ("decode", vae.decoder)):
            started: list[float] = []
            hooks.append(coder.register_forward_pre_hook(lambda module, args, started=started: started.append(
                time.perf_counter())))

            def done(module, args, output, part=part, started=started):
                vae_seconds[part] += time.perf_counter() - started.pop()
                if part == "decode":
                    vae_seconds["decoded_pixels"] += output.shape[0] * output.shape[-2] * output.shape[-1]
            hooks.append(coder.register_forward_hook(done))

    settings = worlds.WorldSettings(width=4096, height=2048, base_width=1024, window=512, overlap=128,
                                    refine_strength=0.35, cap_size=512)
    painter = worlds.WorldPainter(settings, base)
    steps = worlds.passes(settings)
    attached = False
    started = time.perf_counter()
    in_diffusion = 0.0
    for step in steps:
        request = painter.request_for(step)
        if not attached:
            for unet in _modules("UNet2DConditionModel"):
                attach(unet)
            for vae in _modules("AutoencoderKL"):
                attach_vae(vae)
            attached = True
        began = time.perf_counter()
        image = engine.generate(request).images[0]
        in_diffusion += time.perf_counter() - began
        painter.add(step, image)
    result = painter.result()
    total = time.perf_counter() - started
    for hook in hooks:
        hook.remove()
    assert result.shape == (2048, 4096, 3) and np.isfinite(result).all()
    # The least any World of this size spends outside the UNet: one decode of all its pixels
    # (at this run's decoding speed), whatever the passes are.
    one_decode = vae_seconds["decode"] / vae_seconds["decoded_pixels"] * settings.width * settings.height
    return {"total": total, "unet": unet_seconds["total"], "diffusion_calls": in_diffusion, "passes": len(steps),
            "vae_encode": vae_seconds["encode"], "vae_decode": vae_seconds["decode"], "one_decode": one_decode}


def _modules(kind: str) -> list:
    """Every model of this class the engine holds (the pipelines of each mode share them)."""
    import gc

    import torch
    found = {id(obj): obj for obj in gc.get_objects()
             if isinstance(obj, torch.nn.Module) and type(obj).__name__ == kind}
    return list(found.values())


if __name__ == "__main__":
    what, cache = sys.argv[1], sys.argv[2]
    print(json.dumps(capture(cache) if what == "capture" else upscale(cache)))
