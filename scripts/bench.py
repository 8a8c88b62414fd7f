# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: speed as ratios (and a few absolute budgets), measured in one run.

This machine is noisy, so a comparison runs its two sides in pairs, one right after the
other (which goes first alternates), and its figure is the median of the pairs' own ratios:
a drift in machine load hits both halves of a pair alike and drops out of its ratio. The
engine-against-diffusers rows add pairs until the median is known to ±0.5 % (its 95 %
confidence interval, which needs no assumption about the noise), within a time budget, so
the figure holds still from one `make bench` to the next. Each row prints its figure, the
interquartile range of the paired ratios (the spread), its target and whether it is met.
"""
from __future__ import annotations

import argparse
import math
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
    spread: tuple[float, float] | None = None  # the paired ratios' quartiles (comparisons)

    @property
    def met(self) -> bool:
        return self.value <= self.target


# Comparisons run pairs until the median ratio's 95 % interval is within ±PRECISION of it, or
# until MAX_PAIRS pairs or MAX_SECONDS (per row) when the machine is too busy for that.
PRECISION = 0.005
MAX_PAIRS = 400
MAX_SECONDS = 180.0


@dataclass(frozen=True)
class Paired:
    """Seconds of two sides measured in pairs, and each pair's ratio a / b."""
    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.a, self.b)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        q1, _, q3 = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q1, q3

    @property
    def interval(self) -> tuple[float, float]:
        """The median ratio's 95 % confidence interval: the order statistics around the middle
        that the median falls between with 95 % probability (binomial, distribution-free)."""
        ratios, n = sorted(self.ratios), len(self.a)
        low = max(0, math.floor((n - 1.96 * math.sqrt(n)) / 2) - 1)
        high = min(n - 1, math.ceil((n + 1.96 * math.sqrt(n)) / 2))
        return ratios[low], ratios[high]

    @property
    def precise(self) -> bool:
        low, high = self.interval
        return (high - low) / 2 <= PRECISION * self.ratio

    def detail(self, unit: str = "ms") -> str:
        scale = 1000 if unit == "ms" else 1
        low, high = self.interval
        return (f"median of {len(self.a)} paired ratios (95% interval {low:.3f}–{high:.3f}); medians "
                f"{statistics.median(self.a) * scale:.1f} {unit} vs {statistics.median(self.b) * scale:.1f} {unit}")

    def row(self, name: str, target: float, unit: str = "ms", note: str = "") -> Row:
        return Row(name, self.ratio, "x", target, self.detail(unit) + note, self.spread)


def paired_measures(a: Callable[[], float], b: Callable[[], float], runs: int, until_precise: bool = False) -> Paired:
    """`runs` pairs of a() and b(), each returning the seconds it measured, run back to back,
    alternately a b, b a, ... (running second, on warm caches, is then no advantage to either);
    `until_precise`: more pairs until the median ratio is known to ±PRECISION (see the top)."""
    times_a, times_b = [], []
    started = time.perf_counter()
    while len(times_a) < runs or (until_precise and not Paired(times_a, times_b).precise
                                  and len(times_a) < MAX_PAIRS and time.perf_counter() - started < MAX_SECONDS):
        pairs = [(a, times_a), (b, times_b)]
        for measure, times in pairs if len(times_a) % 2 == 0 else pairs[::-1]:
            times.append(measure())
    return Paired(times_a, times_b)


def paired_runs(a: Callable[[], object], b: Callable[[], object], runs: int, until_precise: bool = True) -> Paired:
    """Seconds of a() and b() in alternating pairs (see paired_measures)."""
    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def measure() -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return measure

    return paired_measures(timed(a), timed(b), runs, until_precise)


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
    return [paired_runs(run_engine, run_plain, runs).row(
        "engine / plain diffusers, txt2img + depth ControlNet (smoke, 128², 8 steps)", 1.02)]


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
        for _ in range(runs):  # a pair: a fresh engine's first load, then its two switches (their mean)
            engine = Engine(cache_dir)
            times = []
            for request in requests:
                start = time.perf_counter()
                engine.pipelines.pipeline(engine.plan(request))
                times.append(time.perf_counter() - start)
            assert len(engine.loads) == len(set(engine.loads)), "a mode switch read a model from disk"
            loads.append(times[0])
            switches.append(statistics.mean(times[1:]))
        rows.append(Paired(switches, loads).row(f"mode switch / first load, {label} (smoke)", 0.05,
                                                note=", txt2img -> img2img -> inpaint"))
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
    return [paired_runs(run_engine, run_plain, runs).row(
        "engine / plain diffusers, img2img + 2 ControlNets (smoke, 128², 8 steps x 0.75)", 1.02)]


def bench_previews(cache_dir: str, runs: int) -> list[Row]:
    """What a linear preview at every step adds to a step, and what one preview costs.

    A step's time is read from the progress events (the time between the first and the last
    step's event, over the steps between): the text encoding and the VAE decode around the
    loop are the same with and without previews and would only dilute the ratio. The two
    sides alternate run by run, as in `paired_measures`.
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
    # A preview costs ~0.1 ms against a ~40 ms step, far below this machine's drift between
    # runs: the median of each run's own pair steadies the figure (a ratio of medians swung
    # 0.97-1.05 from one `make bench` to the next).
    paired = paired_measures(lambda: step_time(1), lambda: step_time(0), runs, until_precise=True)
    rows = [paired.row(f"denoising step with a linear preview / without (smoke, {size}², every step)", 1.05,
                       note=" a step")]

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


def bench_regions(cache_dir: str, runs: int) -> list[Row]:
    """A denoising step with four region prompts against none (smoke SD 1.5, 512², the
    regions the four quarters). The step's time is read from the progress events, as in
    bench_previews: the regions' text encoding and masks are made once per call, before the
    loop."""
    import numpy as np

    from engine import Engine, GenerationRequest
    from engine.regions import RegionPrompt

    size, steps = 512, 4
    engine = Engine(cache_dir)
    quarters = []
    for index, prompt in enumerate(("a red door", "a green tree", "a blue sky", "a stone wall")):
        mask = np.zeros((size, size), np.float32)
        row, column = divmod(index, 2)
        mask[row * size // 2:(row + 1) * size // 2, column * size // 2:(column + 1) * size // 2] = 1.0
        quarters.append(RegionPrompt(prompt, mask))

    def step_time(regions) -> float:
        events = []
        engine.generate(GenerationRequest("a house by a lake", negative_prompt="blurry", width=size, height=size,
                                          steps=steps, seed=7, model="smoke", regions=regions),
                        on_progress=events.append)
        return (events[-1].elapsed - events[0].elapsed) / (len(events) - 1)

    step_time(tuple(quarters)), step_time(())  # warm up
    paired = paired_measures(lambda: step_time(tuple(quarters)), lambda: step_time(()), runs, until_precise=True)
    return [paired.row(f"denoising step with 4 region prompts / none (smoke, {size}²)", 1.3, note=" a step")]


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
    for _ in range(runs):  # a pair: a fresh engine's first load, then its four switches (their mean)
        engine = Engine(cache_dir)
        start = time.perf_counter()
        engine.pipelines.pipeline(engine.plan(request()))
        loads.append(time.perf_counter() - start)
        engine.pipelines.pipeline(engine.plan(request((a, b))))  # reads the two LoRA files
        read = len(engine.loads)
        times = []
        for loras in ((a,), (b,), (a, b), ()):
            start = time.perf_counter()
            engine.pipelines.pipeline(engine.plan(request(loras)))
            times.append(time.perf_counter() - start)
        switches.append(statistics.mean(times))
        assert len(engine.loads) == read, "a LoRA switch read something from disk"
    rows = [Paired(switches, loads).row("LoRA switch / first load of the base (smoke SD 1.5, 2 LoRAs loaded)", 0.05,
                                        note=", (a) (b) (a,b) ()")]

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
    rows.append(paired_runs(run_engine, run_plain, runs).row(
        "engine / plain diffusers, txt2img + 2 LoRAs (smoke, 128², 8 steps)", 1.02))
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
        return paired_runs(encode_weighted, encode_plain, runs, until_precise=False).row(
            f"prompt encoding, 200 weighted tokens / 20 plain tokens ({label} smoke, with a negative)", 5.0)

    return [row("sd15", "SD 1.5"), row("sdxl", "SDXL")]


ENABLE_IN_A_FRESH_PROCESS = r"""
import os, sys, time, tempfile
home = tempfile.mkdtemp()
for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ["BLENDER_USER_" + name] = os.path.join(home, name.lower())
import bpy, addon_utils
repo = os.path.join(home, "repo"); os.makedirs(repo)
os.symlink(sys.argv[1], os.path.join(repo, "scene_diffusion"))
bpy.context.preferences.extensions.repos.new(name="dev", module="dev", custom_directory=repo, source='USER')
start = time.perf_counter()
assert addon_utils.enable("bl_ext.dev.scene_diffusion", default_set=True) is not None
print(time.perf_counter() - start)
"""


def bench_enable(cache_dir: str, runs: int) -> list[Row]:
    """Enabling the extension in a fresh Blender process (the bpy module): what every start of
    Blender pays. tests/test_extension.py checks that it imports no torch, cv2 or diffusers."""
    import subprocess

    seconds = []
    for _ in range(max(5, runs // 3)):
        out = subprocess.run([sys.executable, "-c", ENABLE_IN_A_FRESH_PROCESS, REPO_ROOT], capture_output=True,
                             text=True, timeout=300, check=True)
        seconds.append(float(out.stdout.strip().splitlines()[-1]))
    median = statistics.median(seconds)
    return [Row("enabling the extension in a fresh Blender process", median, "s", 0.5,
                f"median of {len(seconds)} processes, {min(seconds):.3f}–{max(seconds):.3f} s")]


def bench_command(cache_dir: str, runs: int) -> list[Row]:
    """A command-line command's startup next to its work (scripts/bench_command.py): each run a
    fresh process, the smoke model loaded from the cache, 512x512, 10 steps."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "bench_command.py"), cache_dir],
                         capture_output=True, text=True, timeout=3600, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    overhead = got["startup"] + got["load"]
    return [Row("command startup: Blender start + enable + open the .blend + model load", overhead, "s", math.inf,
                f"start, enable, open {got['startup']:.2f} s; capture + model load from the cache {got['load']:.2f} s "
                f"(of which importing torch and diffusers {got['imports']:.2f} s); "
                f"the work itself ({got['steps']} smoke steps at 512², write) {got['work']:.2f} s; "
                f"median of {got['runs']} processes")]


def bench_texture(cache_dir: str, runs: int) -> list[Row]:
    """Texturing (scripts/bench_texture.py, each measurement in a Blender process of its own):
    one 512² view into a 2048² texture; everything but diffusion for 8 views at 2048²; the
    peak memory of 8 views at 4096² above the idle extension (its model loaded)."""
    import json
    import subprocess

    def child(what: str) -> dict:
        out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "bench_texture.py"), what, cache_dir],
                             capture_output=True, text=True, timeout=1800, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    speed, memory = child("speed"), child("memory")
    rest = speed["total"] - speed["diffusion"]
    gigabytes = (memory["peak"] - memory["idle"]) / 2**30
    return [
        Row("project one 512² view into a 2048² texture (visibility, weights, splat)", speed["projection"], "s", 0.5,
            f"Suzanne with Subdivision 2, {speed['triangles']} triangles, median of 5"),
        Row("8-view 2048² texture: everything but diffusion", rest, "s", 4.0,
            f"total {speed['total']:.1f} s, diffusion {speed['diffusion']:.1f} s ({speed['views']} views at 512², "
            "smoke, 2 steps): captures, projection, blend, fill, padding, write"),
        Row("8-view 4096² texture: peak memory above the idle extension", gigabytes, "GB", 2.0,
            f"peak {memory['peak'] / 2**30:.2f} GB, idle {memory['idle'] / 2**30:.2f} GB"),
    ]


def bench_world(cache_dir: str, runs: int) -> list[Row]:
    """Backgrounds (scripts/bench_world.py, each in a Blender process of its own): a depth
    panorama capture at 2048x1024; a 4096x2048 World with the smoke model, its time outside
    the UNet (the VAE of every window, the pipelines, and our upscale, blend and poles)."""
    import json
    import subprocess

    def child(what: str) -> dict:
        out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "bench_world.py"), what, cache_dir],
                             capture_output=True, text=True, timeout=1800, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    capture, upscale = child("capture"), child("upscale")
    outside_unet = (upscale["total"] - upscale["unet"]) / upscale["total"]
    ours = (upscale["total"] - upscale["diffusion_calls"]) / upscale["total"]
    vae = (upscale["vae_encode"] + upscale["vae_decode"]) / upscale["total"]
    floor = upscale["one_decode"] / (upscale["one_decode"] + upscale["unet"])
    return [
        Row("depth panorama capture at 2048×1024", capture["capture"], "s", 1.0,
            "a closed room, a subdivided Suzanne and 3 boxes around the camera; median of 5 (Cycles, 1 sample)"),
        Row("4096×2048 World: share of the time outside the UNet", outside_unet * 100, "%", 10.0,
            f"total {upscale['total']:.1f} s, UNet {upscale['unet']:.1f} s, {upscale['passes']} passes (smoke, "
            f"3 steps, windows at 0.35); the VAE {vae * 100:.1f} %, our own upscale, blend and poles "
            f"{ours * 100:.1f} %. Floor: one decode of 4096×2048 alone ({upscale['one_decode']:.1f} s) beside this "
            f"UNet time is {floor * 100:.0f} % (the smoke VAE decodes 512² in ~5 UNet calls)"),
    ]


def bench_animation(cache_dir: str, runs: int) -> list[Row]:
    """Animation (scripts/bench_animation.py, each in a Blender process of its own): what a
    512² frame costs besides its diffusion; an 8-frame render against 8 generations; the
    memory of 100 frames against 10."""
    import json
    import subprocess

    def child(what: str) -> dict:
        out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "bench_animation.py"), what,
                              cache_dir], capture_output=True, text=True, timeout=1800, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    # The machine's speed drifts between minutes: the frame's figure is the median of 5
    # processes' medians, its spread their range.
    frames = sorted(child("frame")["frame"] for _ in range(5))
    frame = {"frame": frames[len(frames) // 2]}
    memory = child("memory")
    # The noisiest row: each run pairs an animation with its own generations replayed right
    # after; the median of 5 such pairs.
    pairs = sorted((child("pipeline") for _ in range(5)), key=lambda p: p["total"] / (p["frames"] * p["generate"]))
    pipeline = pairs[len(pairs) // 2]
    ratio = pipeline["total"] / (pipeline["frames"] * pipeline["generate"])
    grown = (memory["after_100"] - memory["after_10"]) / 2**20
    return [
        Row("animation frame at 512²: everything but the diffusion", frame["frame"] * 1000, "ms", 40.0,
            "as the job: warp, colour match, contrast, anti-blur, noise, init and strength map; after the diffusion "
            "its colour match and the PNG write; median of 5 processes' medians of "
            f"20 frames, which ranged {frames[0] * 1000:.1f}–{frames[-1] * 1000:.1f} ms"),
        Row("8-frame animation over 8 x one generation", ratio, "x", 1.10,
            f"median of 5 pairs: {pipeline['total']:.1f} s against its 8 generations replayed alone, "
            f"{pipeline['generate']:.2f} s each (smoke, 256², 4 steps); captures run with the worker idle (a render "
            "beside it crashes Blender 5.0.1)"),
        Row("memory after 100 frames over after 10", grown, "MB", 50.0,
            f"{memory['after_10'] / 2**20:.0f} MB after 10, {memory['after_100'] / 2**20:.0f} MB after 100 (64²)"),
    ]


BENCHES: list[Callable[[str, int], list[Row]]] = [bench_engine_vs_diffusers, bench_mode_switch,
                                                  bench_img2img_vs_diffusers, bench_previews, bench_regions,
                                                  bench_loras, bench_pose_capture, bench_conditions,
                                                  bench_prompt_encoding, bench_enable, bench_texture, bench_world,
                                                  bench_animation, bench_command]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="runs per side (at least 10)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scene_diffusion_bench"),
                        help="where the smoke models are written")
    parser.add_argument("--only", default="", help="run only the benchmarks whose name holds this text")
    # Two threads on a 2-core machine that runs anything else stall each other: with torch's
    # default, paired ratios spread 0.02-1.9 and a generation's median took 6x longer.
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
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
    print(f"{'benchmark'.ljust(width)}  {'figure':>9}  {'spread (IQR)':>13}  {'target':>8}  met  detail")
    for r in rows:
        figure = f"{r.value:.3f}{r.unit}"
        spread = f"{r.spread[0]:.3f}–{r.spread[1]:.3f}" if r.spread else ""
        target = f"≤{r.target:g}{r.unit}" if math.isfinite(r.target) else "report"
        print(f"{r.name.ljust(width)}  {figure:>9}  {spread:>13}  {target:>8}  {'yes' if r.met else 'NO ':3}  "
              f"{r.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
