# SPDX-License-Identifier: GPL-3.0-or-later
"""Step previews: every n-th progress event carries a small image, the result is bit for bit
the same with and without them, and the tiny VAE is used from the local cache only."""
import os

import numpy as np
import pytest

from engine import DiffusionError, GenerationRequest
from engine.previews import LATENT_RGB_BIAS, TINY_VAES, latents_to_rgb, noise_scale


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt="a lantern on a wooden table", width=96, height=64, steps=4, seed=21, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def run(engine, request):
    events = []
    result = engine.generate(request, on_progress=events.append)
    return result.images[0], events


@pytest.mark.parametrize("model", ["smoke", "smoke-sdxl"])
def test_previews_do_not_change_the_result(smoke_engine, model):
    without = smoke_engine.generate(make_request(model=model)).images[0]
    with_previews, events = run(smoke_engine, make_request(model=model, preview_every=1))
    assert np.array_equal(with_previews, without)
    assert all(event.preview is not None for event in events)


def test_a_small_preview_every_nth_step(smoke_engine):
    _, events = run(smoke_engine, make_request(model="smoke-sdxl", preview_every=2))
    assert [e.step for e in events if e.preview is not None] == [2, 4]
    assert all(e.preview is None for e in events if e.step % 2)
    preview = events[1].preview
    assert preview.shape == (8, 12, 3)  # one pixel per latent pixel: 1/8 of 96x64
    assert preview.dtype == np.float32
    assert 0.0 <= preview.min() and preview.max() <= 1.0
    _, no_previews = run(smoke_engine, make_request(model="smoke-sdxl"))
    assert all(e.preview is None for e in no_previews)


def test_previews_follow_the_denoising(smoke_engine):
    _, events = run(smoke_engine, make_request(model="smoke-sdxl", preview_every=1))
    assert not np.array_equal(events[0].preview, events[-1].preview)


@pytest.mark.parametrize("name, scaled", [("EulerDiscreteScheduler", True), ("EulerAncestralDiscreteScheduler", True),
                                          ("PNDMScheduler", False), ("DPMSolverMultistepScheduler", False)])
def test_preview_latents_are_scaled_as_the_scheduler_scales_the_unets_input(name, scaled):
    """Euler-type schedulers hold x0 + sigma * noise (the first latents ~15x too large, every
    preview pixel clipped); the preview divides by sqrt(sigma² + 1), read from the scheduler
    after its step, exactly as its own scale_model_input does for the next UNet call."""
    import diffusers
    import torch

    scheduler = getattr(diffusers, name)(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    scheduler.set_timesteps(4)
    sample = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    first, second = scheduler.timesteps[:2]
    sample = scheduler.scale_model_input(sample, first)
    # Ancestral steps add noise: diffusers passes the pipeline's generator to the schedulers that take one.
    extra = {"generator": torch.Generator().manual_seed(1)} if "Ancestral" in name else {}
    after = scheduler.step(torch.zeros_like(sample), first, sample, return_dict=False, **extra)[0]
    expected = scheduler.scale_model_input(after, second) if scaled else after
    assert torch.allclose(after * noise_scale(scheduler), expected)
    assert (noise_scale(scheduler) < 1.0) == scaled


def test_linear_colours_are_the_published_factors():
    import torch

    grey = latents_to_rgb(torch.zeros(1, 4, 2, 2), "sd15")
    assert np.allclose(grey, 0.5)  # zero latents -> mid grey
    sdxl = latents_to_rgb(torch.zeros(1, 4, 2, 2), "sdxl")
    assert np.allclose(sdxl[0, 0], (np.array(LATENT_RGB_BIAS["sdxl"]) + 1) / 2)
    first_channel = torch.zeros(1, 4, 1, 1)
    first_channel[0, 0] = 1.0
    assert np.allclose(latents_to_rgb(first_channel, "sd15")[0, 0], (np.array([0.3512, 0.2297, 0.3227]) + 1) / 2)


@pytest.fixture
def tiny_vae_in_cache(tmp_path, monkeypatch):
    """A (tiny, random) TAESD in a Hugging Face cache layout, found by the ordinary lookup."""
    import huggingface_hub.constants
    import torch
    from diffusers import AutoencoderTiny

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    commit = "0" * 40
    repo = tmp_path / ("models--" + TINY_VAES["sd15"].replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
                    num_encoder_blocks=(1,) * 4, num_decoder_blocks=(1,) * 4,
                    ).save_pretrained(os.fspath(repo / "snapshots" / commit))
    return repo


def test_tiny_vae_previews_from_the_local_cache(smoke_engine, tiny_vae_in_cache):
    smoke_engine.previews._tiny_vaes.clear()
    try:
        without = smoke_engine.generate(make_request()).images[0]
        image, events = run(smoke_engine, make_request(preview_every=2, preview_method="tiny_vae"))
        assert np.array_equal(image, without)
        preview = events[1].preview
        assert preview.shape == (64, 96, 3)  # decoded to full size
        assert 0.0 <= preview.min() and preview.max() <= 1.0
        # "auto" keeps to the linear preview on a CPU, where a tiny-VAE decode per step is costly.
        _, auto = run(smoke_engine, make_request(preview_every=2))
        assert auto[1].preview.shape == (8, 12, 3)
    finally:
        smoke_engine.previews._tiny_vaes.clear()


def test_a_tiny_vae_asked_for_but_not_cached_says_what_to_do(smoke_engine, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    smoke_engine.previews._tiny_vaes.clear()
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match="madebyollin/taesd is not in the local cache.*set previews to Linear"):
        run(smoke_engine, make_request(preview_every=1, preview_method="tiny_vae"))
    assert smoke_engine.loads == loads  # refused before loading the model
    with pytest.raises(DiffusionError, match="Preview method 'fancy'"):
        run(smoke_engine, make_request(preview_every=1, preview_method="fancy"))
