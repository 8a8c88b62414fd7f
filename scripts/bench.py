# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: speed as ratios (and a few absolute budgets), measured in one run.

This machine is noisy, so comparisons interleave the two sides run by run and compare
medians. Each row prints its figure, its target and whether it is met.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str      # "x" for a ratio, "s" or "ms" for times
    target: float  # the figure must be at most this
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.target


def interleaved_medians(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median seconds of a() and b(), run alternately so drifts in machine load hit both;
    which goes first alternates too (a b, b a, ...), so running second is no advantage."""
    times_a, times_b = [], []
    for run in range(runs):
        pairs = [(a, times_a), (b, times_b)]
        for fn, times in pairs if run % 2 == 0 else pairs[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def bench_engine_vs_diffusers(cache_dir: str, runs: int) -> list[Row]:
    import numpy as np
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    from engine import ControlUnit, Engine, GenerationRequest
    from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline

    size, steps = 128, 8
    y, x = np.mgrid[0:size, 0:size]
    control = np.repeat(((x + y) % 256).astype(np.uint8)[..., None], 3, axis=2)
    request = GenerationRequest("a house by a lake", negative_prompt="blurry", width=size, height=size,
                                steps=steps, seed=7, model="smoke",
                                controls=(ControlUnit("depth", control),))
    engine = Engine(cache_dir)
    controlnet = ControlNetModel.from_pretrained(ensure_smoke_controlnet(cache_dir, "sd15", "depth"))
    plain = StableDiffusionControlNetPipeline.from_pretrained(
        ensure_smoke_pipeline(cache_dir, "sd15"), controlnet=controlnet,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)

    def run_engine():
        return engine.generate(request)

    def run_plain():
        return plain("a house by a lake", negative_prompt="blurry", image=Image.fromarray(control),
                     width=size, height=size, num_inference_steps=steps,
                     generator=torch.Generator().manual_seed(7), output_type="np")

    run_engine(), run_plain()  # warm up: loads, allocator, caches
    ours, theirs = interleaved_medians(run_engine, run_plain, runs)
    return [Row("engine / plain diffusers, txt2img + depth ControlNet (smoke, 128², 8 steps)",
                ours / theirs, "x", 1.02, f"medians {ours * 1000:.1f} ms vs {theirs * 1000:.1f} ms, {runs} runs each")]


def bench_mode_switch(cache_dir: str, runs: int) -> list[Row]:
    """Getting the pipeline for a new mode once the model is loaded, against the first load.

    Timed: what `Engine.generate` does before denoising (resolving the models and getting
    the pipeline), for txt2img on a fresh engine (the first load: base + ControlNets read
    from disk) and then for the first img2img and the first inpaint. The denoising itself
    is left out: it is the same work whatever came before. The files are in the OS cache,
    so the first load here is its fastest; from a cold disk the ratio is smaller still.
    """
    import numpy as np

    from engine import ControlUnit, Engine, GenerationRequest

    size = 64
    control = np.zeros((size, size, 3), dtype=np.uint8)
    init = np.full((size, size, 3), 0.5, dtype=np.float32)
    mask = np.ones((size, size), dtype=np.float32)
    rows = []
    for model, label in (("smoke", "SD 1.5 + 2 ControlNets"), ("smoke-sdxl", "SDXL + union ControlNet, 2 modes")):
        units = (ControlUnit("depth", control), ControlUnit("canny", control))
        requests = [GenerationRequest("a house", width=size, height=size, model=model, controls=units, **extra)
                    for extra in ({}, {"init_image": init}, {"init_image": init, "mask": mask})]
        Engine(cache_dir).generate(requests[0])  # builds the smoke files once; warms imports
        loads, switches = [], []
        for _ in range(runs):
            engine = Engine(cache_dir)
            for i, request in enumerate(requests):
                start = time.perf_counter()
                engine.pipelines.pipeline(engine.plan(request))
                (switches if i else loads).append(time.perf_counter() - start)
            assert len(engine.loads) == len(set(engine.loads)), "a mode switch read a model from disk"
        load, switch = statistics.median(loads), statistics.median(switches)
        rows.append(Row(f"mode switch / first load, {label} (smoke)", switch / load, "x", 0.05,
                        f"medians {switch * 1000:.1f} ms vs {load * 1000:.1f} ms, {runs} runs, "
                        "txt2img -> img2img -> inpaint"))
    return rows


def bench_img2img_vs_diffusers(cache_dir: str, runs: int) -> list[Row]:
    import numpy as np
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline
    from PIL import Image

    from engine import ControlUnit, Engine, GenerationRequest
    from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline

    size, steps, strength = 128, 8, 0.75
    y, x = np.mgrid[0:size, 0:size]
    depth = np.repeat(((x + y) % 256).astype(np.uint8)[..., None], 3, axis=2)
    edges = np.repeat((((x // 16 + y // 16) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    init = np.stack([x / size, y / size, np.full(x.shape, 0.5)], axis=2).astype(np.float32)
    units = (ControlUnit("depth", depth, scale=0.8), ControlUnit("canny", edges, scale=0.6, guidance_end=0.8))
    request = GenerationRequest("a house by a lake", negative_prompt="blurry", width=size, height=size,
                                steps=steps, seed=7, model="smoke", controls=units, init_image=init,
                                strength=strength)
    engine = Engine(cache_dir)
    controlnets = [ControlNetModel.from_pretrained(ensure_smoke_controlnet(cache_dir, "sd15", kind))
                   for kind in ("depth", "canny")]
    plain = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
        ensure_smoke_pipeline(cache_dir, "sd15"), controlnet=controlnets,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)

    def run_engine():
        return engine.generate(request)

    def run_plain():
        return plain("a house by a lake", negative_prompt="blurry", image=init,
                     control_image=[Image.fromarray(depth), Image.fromarray(edges)], strength=strength,
                     width=size, height=size, num_inference_steps=steps,
                     controlnet_conditioning_scale=[0.8, 0.6], control_guidance_start=[0.0, 0.0],
                     control_guidance_end=[1.0, 0.8], generator=torch.Generator().manual_seed(7), output_type="np")

    run_engine(), run_plain()  # warm up: loads, allocator, caches
    ours, theirs = interleaved_medians(run_engine, run_plain, runs)
    return [Row("engine / plain diffusers, img2img + 2 ControlNets (smoke, 128², 8 steps x 0.75)",
                ours / theirs, "x", 1.02, f"medians {ours * 1000:.1f} ms vs {theirs * 1000:.1f} ms, {runs} runs each")]


def bench_previews(cache_dir: str, runs: int) -> list[Row]:
    """What a linear preview at every step adds to a step, and what one preview costs.

    A step's time is read from the progress events (the time between the first and the last
    step's event, over the steps between): the text encoding and the VAE decode around the
    loop are the same with and without previews and would only dilute the ratio. The two
    sides alternate run by run, as in `interleaved_medians`.
    """
    import torch

    from engine import Engine, GenerationRequest
    from engine.previews import latents_to_rgb

    # 256²: a smoke step there takes long enough to time (0.1-0.3 s here) and short enough to
    # run many; the preview's own cost at 512² and beyond is in the rows below.
    size, steps = 256, 5
    engine = Engine(cache_dir)

    def step_time(preview_every: int) -> float:
        events = []
        engine.generate(GenerationRequest("a house by a lake", width=size, height=size, steps=steps, seed=7,
                                          model="smoke", preview_every=preview_every), on_progress=events.append)
        assert (events[-1].preview is not None) == bool(preview_every)
        return (events[-1].elapsed - events[0].elapsed) / (len(events) - 1)

    step_time(1), step_time(0)  # warm up: loads, allocator, caches
    with_previews, without = [], []
    for run in range(runs):
        sides = [(1, with_previews), (0, without)]
        for every, times in sides if run % 2 == 0 else sides[::-1]:
            times.append(step_time(every))
    ours, theirs = statistics.median(with_previews), statistics.median(without)
    # A preview costs ~0.1 ms against a ~40 ms step, far below this machine's drift between
    # runs: the median of each run's own pair steadies the figure (a ratio of medians swung
    # 0.97-1.05 from one `make bench` to the next).
    paired = statistics.median(a / b for a, b in zip(with_previews, without))
    rows = [Row(f"denoising step with a linear preview / without (smoke, {size}², every step)", paired, "x",
                1.05, f"median of {runs} paired runs; medians {ours * 1000:.1f} ms vs {theirs * 1000:.1f} ms a step")]

    for side, label in ((64, "512² image"), (512, "4096² image, shown at 256²")):
        latents = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0))
        latents_to_rgb(latents, "sd15")
        times = []
        for _ in range(max(runs, 30)):
            start = time.perf_counter()
            latents_to_rgb(latents, "sd15")
            times.append(time.perf_counter() - start)
        cost = statistics.median(times) * 1000
        rows.append(Row(f"one linear preview, {side}×{side} latents ({label})", cost, "ms", 1.0 if side == 64 else 10.0,
                        f"median of {len(times)} runs"))
    return rows


def bench_loras(cache_dir: str, runs: int) -> list[Row]:
    """Switching LoRAs that are loaded already, against the first load of the base model;
    and a generation with two LoRAs against plain diffusers with the same two loaded.

    Switching is timed as in the mode-switch row: what `Engine.generate` does before
    denoising, here for the LoRA sets (a), (b), (a, b), () once both files were read.
    """
    import torch
    from diffusers import StableDiffusionPipeline

    from engine import Engine, GenerationRequest, LoraSpec
    from engine.smoke_model import ensure_smoke_pipeline

    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "engine"))
    from checkpoint_files import make_lora  # the tests' tiny LoRA maker (peft, random weights)

    base = ensure_smoke_pipeline(cache_dir, "sd15")
    folder = os.path.join(cache_dir, "bench-loras")
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"style-{name}.safetensors") for name in "ab"]
    for seed, path in enumerate(paths, 1):
        if not os.path.isfile(path):
            make_lora(base, path, seed=seed)
    a, b = (LoraSpec(paths[0], 0.7), LoraSpec(paths[1], 0.5))

    def request(loras=(), size=64, steps=2):
        return GenerationRequest("a house by a lake", negative_prompt="blurry", width=size, height=size,
                                 steps=steps, seed=7, model="smoke", loras=loras)

    Engine(cache_dir).generate(request((a, b)))  # warms imports
    loads, switches = [], []
    for _ in range(runs):
        engine = Engine(cache_dir)
        start = time.perf_counter()
        engine.pipelines.pipeline(engine.plan(request()))
        loads.append(time.perf_counter() - start)
        engine.pipelines.pipeline(engine.plan(request((a, b))))  # reads the two LoRA files
        read = len(engine.loads)
        for loras in ((a,), (b,), (a, b), ()):
            start = time.perf_counter()
            engine.pipelines.pipeline(engine.plan(request(loras)))
            switches.append(time.perf_counter() - start)
        assert len(engine.loads) == read, "a LoRA switch read something from disk"
    load, switch = statistics.median(loads), statistics.median(switches)
    rows = [Row("LoRA switch / first load of the base (smoke SD 1.5, 2 LoRAs loaded)", switch / load, "x", 0.05,
                f"medians {switch * 1000:.1f} ms vs {load * 1000:.1f} ms, {runs} runs, (a) (b) (a,b) ()")]

    size, steps = 128, 8
    engine = Engine(cache_dir)
    plain = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, feature_extractor=None,
                                                    requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    plain.load_lora_weights(paths[0], adapter_name="a")
    plain.load_lora_weights(paths[1], adapter_name="b")
    plain.set_adapters(["a", "b"], [0.7, 0.5])

    def run_engine():
        return engine.generate(request((a, b), size, steps))

    def run_plain():
        return plain("a house by a lake", negative_prompt="blurry", width=size, height=size,
                     num_inference_steps=steps, generator=torch.Generator().manual_seed(7), output_type="np")

    run_engine(), run_plain()  # warm up
    ours, theirs = interleaved_medians(run_engine, run_plain, runs)
    rows.append(Row("engine / plain diffusers, txt2img + 2 LoRAs (smoke, 128², 8 steps)", ours / theirs, "x", 1.02,
                    f"medians {ours * 1000:.1f} ms vs {theirs * 1000:.1f} ms, {runs} runs each"))
    return rows


def bench_pose_capture(cache_dir: str, runs: int) -> list[Row]:
    """OpenPose capture (scene.pose.capture_pose) at 512x512 of two full Rigify human
    metarigs (body, 21-point hands, 70-point faces), posed, seen by one camera.

    The row is the capture at another frame than the current one (a temporary scene is
    evaluated and every animated value put back: what animation frames do); the detail
    also gives the capture at the current frame (the context's depsgraph is read).
    """
    import importlib
    import math

    import bpy  # first: it puts Blender's own modules (addon_utils) on sys.path
    import addon_utils

    from bench_depth import _package

    pose = importlib.import_module(f"{_package().__name__}.scene.pose")
    addon_utils.enable("rigify", default_set=True)  # in memory: background Blender saves no preferences
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 512
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 1.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    for x in (-0.7, 0.7):
        bpy.ops.object.armature_human_metarig_add()
        rig = bpy.context.active_object
        rig.location.x = x
        arm = rig.pose.bones["upper_arm.L"]
        arm.rotation_mode = 'XYZ'
        arm.keyframe_insert("rotation_euler", frame=1)
        arm.rotation_euler.z = 0.8
        arm.keyframe_insert("rotation_euler", frame=10)
    scene.frame_set(1)

    def timed(frame: int | None) -> float:
        times = []
        for _ in range(runs + 1):  # the first run warms up
            start = time.perf_counter()
            capture = pose.capture_pose(scene, frame=frame)
            times.append(time.perf_counter() - start)
        assert len(capture.people) == 2, "the benchmark scene lost its characters"
        return statistics.median(times[1:])

    current, other = timed(None), timed(10)
    return [Row("pose capture at another frame, 512², 2 Rigify metarigs with hands and faces", other, "s",
                0.030, f"median of {runs}; at the current frame {current * 1000:.1f} ms")]


def bench_conditions(cache_dir: str, runs: int) -> list[Row]:
    """Scene conditions (scene.conditions.capture_conditions) at 512x512 on the depth
    benchmark scene (scripts/bench_depth.py: a cube, a 64x32 UV sphere and a plane, one
    perspective camera): depth alone, Canny alone, and all five pass-based kinds from one
    render. The depth row's detail also gives scripts/bench_depth.py's comparison of the
    ways to get exact depth (why Cycles: see scene/depth.py)."""
    import importlib

    from bench_depth import _package, bench_depth, build_scene

    conditions = importlib.import_module(f"{_package().__name__}.scene.conditions")
    methods = bench_depth(512, 5)  # builds its own file; ours is built after it
    scene = build_scene(512)

    def timed(kinds: set[str]) -> float:
        times = []
        for _ in range(runs + 1):  # the first run warms up (Cycles kernels, imports)
            start = time.perf_counter()
            captured = conditions.capture_conditions(scene, kinds)
            times.append(time.perf_counter() - start)
        assert set(captured) == kinds
        return statistics.median(times[1:])

    depth, canny = timed({"depth"}), timed({"canny"})
    everything = timed({"depth", "canny", "normal", "segmentation", "lineart"})
    return [
        Row("depth condition, 512², 3 objects (Cycles Z pass + normalisation)", depth, "s", 0.5,
            f"median of {runs}; depth alone by method: Cycles {methods['cycles_s']:.3f} s (render "
            f"{methods['cycles_render_s']:.3f} s, EXR {methods['exr_read_s'] * 1000:.1f} ms), BVHTree "
            f"{methods['bvhtree_s']:.2f} s, Scene.ray_cast {methods['scene_ray_cast_s']:.2f} s"),
        Row("Canny condition, 512², 3 objects (Z + Normal passes, cv2.Canny)", canny, "s", 1.0,
            f"median of {runs}"),
        Row("depth + Canny + normal + segmentation + line art, 512², one render", everything, "s", 1.0,
            f"median of {runs}; Freestyle and the object cryptomatte are the extra cost"),
    ]


def bench_prompt_encoding(cache_dir: str, runs: int) -> list[Row]:
    """Encoding a 200-token weighted prompt (engine.text_encoding: 3 chunks, each encoded
    alone, weighted, for the prompt and the padded negative) against a plain 20-token one
    (passed as text: diffusers' own encode_prompt). Each side is everything done with the
    prompt before denoising, the negative prompt "blurry" included."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from engine.smoke_model import ensure_smoke_pipeline
    from engine.text_encoding import text_arguments

    plain = "a small house by the lake"  # 20 tokens: the smoke tokenizer has one per letter
    words = "(masterpiece:1.2), a small [wooden] house by the (lake:1.3), mountains, pine forest".split()

    def row(family: str, label: str) -> Row:
        cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
        pipe = cls.from_pretrained(ensure_smoke_pipeline(cache_dir, family))
        weighted = " ".join(words)
        while len(pipe.tokenizer(weighted, add_special_tokens=False, verbose=False).input_ids) < 200:
            weighted += " " + words[len(weighted.split()) % len(words)]
        assert len(pipe.tokenizer(plain, add_special_tokens=False).input_ids) == 20

        def encode_weighted():
            arguments = text_arguments(pipe, weighted, "blurry")
            assert arguments["prompt_embeds"].shape[1] == 3 * 77

        def encode_plain():
            arguments = text_arguments(pipe, plain, "blurry")
            with torch.no_grad():
                pipe.encode_prompt(arguments["prompt"], device=torch.device("cpu"), num_images_per_prompt=1,
                                   do_classifier_free_guidance=True, negative_prompt=arguments["negative_prompt"])

        encode_weighted(), encode_plain()  # warm up
        ours, theirs = interleaved_medians(encode_weighted, encode_plain, runs)
        return Row(f"prompt encoding, 200 weighted tokens / 20 plain tokens ({label} smoke, with a negative)",
                   ours / theirs, "x", 5.0, f"medians {ours * 1000:.2f} ms vs {theirs * 1000:.2f} ms, {runs} runs each")

    return [row("sd15", "SD 1.5"), row("sdxl", "SDXL")]


BENCHES: list[Callable[[str, int], list[Row]]] = [bench_engine_vs_diffusers, bench_mode_switch,
                                                  bench_img2img_vs_diffusers, bench_previews, bench_loras,
                                                  bench_pose_capture, bench_conditions,
                                                  bench_prompt_encoding]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="runs per side (at least 10)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scene_diffusion_bench"),
                        help="where the smoke models are written")
    parser.add_argument("--only", default="", help="run only the benchmarks whose name holds this text")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 steadies ratios on a busy 2-core machine")
    args = parser.parse_args()
    runs = max(10, args.runs)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    rows: list[Row] = []
    for bench in BENCHES:
        if args.only not in bench.__name__:
            continue
        rows.extend(bench(args.cache, runs))
    width = max(len(r.name) for r in rows)
    print(f"{'benchmark'.ljust(width)}  {'figure':>9}  {'target':>8}  met  detail")
    for r in rows:
        figure = f"{r.value:.3f}{r.unit}"
        target = f"≤{r.target:g}{r.unit}"
        print(f"{r.name.ljust(width)}  {figure:>9}  {target:>8}  {'yes' if r.met else 'NO ':3}  {r.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
