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
    unit: str      # "x" for a ratio, "s" for seconds
    target: float  # the figure must be at most this
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.target


def interleaved_medians(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median seconds of a() and b(), run alternately so drifts in machine load hit both."""
    times_a, times_b = [], []
    for _ in range(runs):
        for fn, times in ((a, times_a), (b, times_b)):
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


BENCHES: list[Callable[[str, int], list[Row]]] = [bench_engine_vs_diffusers]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="runs per side (at least 10)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "scene_diffusion_bench"),
                        help="where the smoke models are written")
    args = parser.parse_args()
    runs = max(10, args.runs)
    os.makedirs(args.cache, exist_ok=True)
    rows: list[Row] = []
    for bench in BENCHES:
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
