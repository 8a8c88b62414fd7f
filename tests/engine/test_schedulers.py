# SPDX-License-Identifier: GPL-3.0-or-later
"""Schedulers: each runs, each gives its own image, each equals plain diffusers with the
same scheduler, and switching back to "default" gives the default result bit for bit,
all without loading anything."""
import numpy as np
import pytest
import torch

from engine import DiffusionError, GenerationRequest
from engine.schedulers import SCHEDULER_NAMES, SCHEDULERS
from engine.smoke_model import ensure_smoke_pipeline

PROMPT = "a stone bridge over a river"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, width=64, height=64, steps=3, guidance=5.0, seed=7, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def test_the_schedulers_people_ask_for_are_there():
    labels = {choice.label for choice in SCHEDULERS.values()}
    assert {"Euler", "Euler ancestral", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "UniPC", "LCM"} <= labels
    assert SCHEDULER_NAMES[0] == "default"


def test_every_scheduler_runs_differs_and_equals_plain_diffusers(smoke_engine, model_cache):
    import diffusers

    default = smoke_engine.generate(make_request()).images[0]
    loads = list(smoke_engine.loads)
    images = {name: smoke_engine.generate(make_request(scheduler=name)).images[0] for name in SCHEDULERS}
    back = smoke_engine.generate(make_request()).images[0]

    assert smoke_engine.loads == loads
    assert np.array_equal(back, default)
    every = [default, *images.values()]
    assert len({image.tobytes() for image in every}) == len(every)  # each gives its own image

    plain = diffusers.StableDiffusionPipeline.from_pretrained(
        ensure_smoke_pipeline(model_cache, "sd15"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    own_config = plain.scheduler.config
    # A few, to keep the test quick: config options, ancestral and SDE noise from the generator, LCM.
    for name in ("dpmpp_2m_karras", "euler_a", "dpmpp_2m_sde_karras", "lcm"):
        choice = SCHEDULERS[name]
        plain.scheduler = getattr(diffusers, choice.class_name).from_config(own_config, **choice.options)
        expected = plain(PROMPT, width=64, height=64, num_inference_steps=3, guidance_scale=5.0,
                         generator=torch.Generator().manual_seed(7), output_type="np").images[0]
        assert np.array_equal(images[name], expected), name


def test_a_scheduler_applies_to_every_mode_and_is_not_left_behind(smoke_engine, init_image):
    img2img = dict(init_image=init_image, strength=0.7, steps=4)
    default = smoke_engine.generate(make_request(**img2img)).images[0]
    euler_a = smoke_engine.generate(make_request(scheduler="euler_a", **img2img)).images[0]
    txt2img_after = smoke_engine.generate(make_request()).images[0]
    default_again = smoke_engine.generate(make_request(**img2img)).images[0]
    assert not np.array_equal(default, euler_a)
    assert np.array_equal(default, default_again)
    assert np.array_equal(txt2img_after, smoke_engine.generate(make_request()).images[0])


def test_an_unknown_scheduler_is_refused_before_loading(model_cache):
    from engine import Engine

    engine = Engine(model_cache)
    with pytest.raises(DiffusionError, match="Unknown scheduler 'k_lms'") as error:
        engine.generate(make_request(scheduler="k_lms"))
    assert "dpmpp_2m_karras" in error.value.fix
    assert engine.loads == []
