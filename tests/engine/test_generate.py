# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine.generate on the smoke model: equality with plain diffusers, caching, progress, cancel."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine import CancelToken, Cancelled, ControlUnit, DiffusionError, GenerationRequest
from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def depth_request(control_image, **changes) -> GenerationRequest:
    fields = dict(prompt="a red chair in a white room", negative_prompt="blurry", width=96, height=64,
                  steps=4, guidance=7.0, seed=1234, model="smoke",
                  controls=(ControlUnit("depth", control_image, scale=0.9),))
    fields.update(changes)
    return GenerationRequest(**fields)


def test_engine_equals_plain_diffusers_bit_for_bit(smoke_engine, model_cache, control_image):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    result = smoke_engine.generate(depth_request(control_image))

    controlnet = ControlNetModel.from_pretrained(ensure_smoke_controlnet(model_cache, "sd15", "depth"))
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        ensure_smoke_pipeline(model_cache, "sd15"), controlnet=controlnet,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    expected = pipe(
        "a red chair in a white room", negative_prompt="blurry", image=Image.fromarray(control_image),
        width=96, height=64, num_inference_steps=4, guidance_scale=7.0,
        controlnet_conditioning_scale=0.9, generator=torch.Generator().manual_seed(1234),
        output_type="np",
    ).images[0]

    assert result.images[0].shape == (64, 96, 3)
    assert result.images[0].dtype == np.float32
    assert np.array_equal(result.images[0], expected)


def test_control_image_and_seed_change_the_result(smoke_engine, control_image):
    first = smoke_engine.generate(depth_request(control_image)).images[0]
    other_seed = smoke_engine.generate(depth_request(control_image, seed=99)).images[0]
    other_control = smoke_engine.generate(depth_request(255 - control_image)).images[0]
    assert not np.array_equal(first, other_seed)
    assert not np.array_equal(first, other_control)


def test_second_generation_loads_nothing(smoke_engine, control_image):
    smoke_engine.generate(depth_request(control_image))
    loads, base = list(smoke_engine.loads), smoke_engine.pipelines.current_base
    controlnet = smoke_engine.pipelines.pipeline(smoke_engine.plan(depth_request(control_image))).controlnet
    result = smoke_engine.generate(depth_request(control_image, seed=5))
    # Nothing read from disk, and the very modules of the first generation ran the second.
    assert smoke_engine.loads == loads
    assert smoke_engine.pipelines.current_base is base
    assert smoke_engine.pipelines.pipeline(smoke_engine.plan(depth_request(control_image))).controlnet is controlnet
    assert "load" in result.timings


def test_text_to_image_without_controls(smoke_engine):
    result = smoke_engine.generate(GenerationRequest("a tree", width=64, height=64, steps=2, model="smoke"))
    image = result.images[0]
    assert image.shape == (64, 64, 3)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert result.family == "sd15"
    assert any("random weights" in note for note in result.notes)


def test_progress_every_step(smoke_engine, control_image):
    events = []
    smoke_engine.generate(depth_request(control_image), on_progress=events.append)
    assert [e.step for e in events] == list(range(1, events[-1].total + 1))
    assert events[-1].eta == 0
    assert all(e.elapsed >= 0 for e in events)


def test_cancel_stops_within_a_step_without_decoding(smoke_engine, control_image, cancel_at_step_two):
    steps_seen, decodes = cancel_at_step_two(smoke_engine, depth_request(control_image, steps=10))
    assert steps_seen == [1, 2]
    assert decodes == 0
    # The engine stays usable after a cancel.
    assert smoke_engine.generate(depth_request(control_image)).images[0].shape == (64, 96, 3)


def test_cancelled_before_start_loads_nothing(smoke_engine, control_image):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        smoke_engine.generate(depth_request(control_image), cancel=token)


@pytest.mark.parametrize("changes, words", [
    (dict(width=4100), "outside 64..4096"),
    (dict(width=60), "outside 64..4096"),
    (dict(width=100), "multiple of 8"),
    (dict(steps=0), "Steps"),
])
def test_bad_requests_are_refused_before_loading(smoke_engine, control_image, changes, words):
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match=words):
        smoke_engine.generate(depth_request(control_image, **changes))
    assert smoke_engine.loads == loads


def test_uncached_hub_model_offline_says_so(smoke_engine, control_image):
    with pytest.raises(DiffusionError, match="not in the local cache and online access is off"):
        smoke_engine.generate(depth_request(control_image, model="nobody/not-a-model"))


def test_importing_the_engine_loads_neither_torch_nor_bpy():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import engine; "
            "from engine import GenerationRequest, ControlUnit, Engine; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules; "
            "assert 'bpy' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, REPO_ROOT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_no_progress_bar_thread_lives_beside_blender(model_cache):
    """tqdm starts a monitor thread with its first bar (diffusers makes them even when
    disabled) that wakes every 10 s and runs Python: what a render under a context override
    must not have beside it. An engine stops it, and later bars start none."""
    import threading

    import tqdm
    from tqdm._monitor import TMonitor

    from engine.generate import Engine

    def monitors() -> list:
        return [thread for thread in threading.enumerate() if isinstance(thread, TMonitor)]

    tqdm.tqdm.monitor_interval = 10  # as tqdm ships
    with tqdm.tqdm(range(2), disable=True) as bar:
        list(bar)
    assert monitors()
    Engine(model_cache).generate(GenerationRequest(prompt="a fox", width=64, height=64, steps=2, model="smoke"))
    with tqdm.tqdm(range(2), disable=True) as bar:
        list(bar)
    assert not monitors()
