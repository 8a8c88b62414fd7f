# SPDX-License-Identifier: GPL-3.0-or-later
"""The startup bench of a command-line command (run by scripts/bench.py):

    python scripts/bench_command.py CACHE_DIR

Builds a small .blend (a cube before a camera, 512x512, the smoke model), runs
`-c scene_diffusion image --json` once to fill the model cache, then RUNS more times, each a
fresh process (scripts/run_command.py: the bpy module as Blender), and splits each run's time
by the JSON events' wall clock: spawn to "start" (Blender start, extension enabled, .blend
opened), "start" to the first step less one step (capture and model load from the cache), the
rest (the steps, writing and saving). Also how long importing torch and diffusers takes in a
fresh process (the extension imports them on first use: part of "model load"). Prints the
medians as one JSON line.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = 5
STEPS = 10


def build(path: str) -> None:
    import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 512
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    bpy.ops.wm.save_as_mainfile(filepath=path)


def run(blend: str, cache: str) -> dict:
    env = {**os.environ, "SCENE_DIFFUSION_MODEL_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    spawned = time.time()
    done = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "run_command.py"), blend, "image",
                           "--model", "smoke", "--steps", str(STEPS), "--json", "--no-save"],
                          capture_output=True, text=True, timeout=900, env=env, check=True)
    ended = time.time()
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    start = next(e["time"] for e in events if e["event"] == "start")
    steps = [e["time"] for e in events if e["event"] == "progress"]
    per_step = (steps[-1] - steps[0]) / max(1, len(steps) - 1)
    return {"startup": start - spawned, "load": steps[0] - start - per_step,
            "work": ended - steps[0] + per_step, "total": ended - spawned}


def main(cache: str) -> None:
    folder = tempfile.mkdtemp(prefix="scene_diffusion_bench_command_")
    blend = os.path.join(folder, "bench.blend")
    subprocess.run([sys.executable, __file__, "--build", blend], check=True, capture_output=True, timeout=300)
    run(blend, cache)  # fills the model cache: the runs below load from it, as a farm worker does
    runs = [run(blend, cache) for _ in range(RUNS)]
    imports = statistics.median(float(subprocess.run(
        [sys.executable, "-c", "import time; t = time.time(); import torch, diffusers; print(time.time() - t)"],
        capture_output=True, text=True, check=True, timeout=300).stdout) for _ in range(3))
    print(json.dumps({key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": RUNS,
                                                                                          "steps": STEPS,
                                                                                          "imports": imports}))


if __name__ == "__main__":
    if sys.argv[1] == "--build":
        build(sys.argv[2])
    else:
        main(sys.argv[1])
