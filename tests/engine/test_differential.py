# SPDX-License-Identifier: GPL-3.0-or-later
"""Image to image with a strength per pixel: pixels at strength 0 end as the init image
through the VAE (what plain diffusers' VAE makes of it), pixels at the full strength are
redrawn, and a map that is the strength everywhere is plain image to image."""
import numpy as np
import pytest

from engine.errors import DiffusionError
from engine.requests import GenerationRequest


def smooth_init(height=64, width=64):
    y, x = (np.mgrid[0:height, 0:width] + 0.5) / np.array([height, width])[:, None, None]
    return np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y)], axis=2).astype(np.float32)


def request(**changes):
    fields = dict(prompt="a stone wall", width=64, height=64, steps=10, seed=3, model="smoke",
                  init_image=smooth_init(), strength=0.8)
    fields.update(changes)
    return GenerationRequest(**fields)


def vae_round_trip(engine, image):
    """Plain diffusers' VAE on the init image: encode (the distribution's mode), decode."""
    import torch
    vae = engine.pipelines.current_base.vae  # the model's VAE, driven by plain diffusers calls
    pixels = torch.from_numpy(image.transpose(2, 0, 1)[None] * 2.0 - 1.0)
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.mode()
        decoded = vae.decode(latents).sample
    return ((decoded[0].permute(1, 2, 0).numpy() + 1.0) / 2.0).clip(0, 1)


def test_a_map_at_the_strength_everywhere_is_plain_image_to_image(smoke_engine):
    plain = smoke_engine.generate(request()).images[0]
    mapped = smoke_engine.generate(request(strength_map=np.full((64, 64), 0.8, np.float32))).images[0]
    assert np.array_equal(plain, mapped)


def test_a_map_at_zero_everywhere_gives_the_init_image_through_the_vae(smoke_engine):
    image = smoke_engine.generate(request(strength_map=np.zeros((64, 64), np.float32))).images[0]
    assert np.abs(image - vae_round_trip(smoke_engine, smooth_init())).max() < 1e-4


def test_pixels_at_strength_zero_end_as_the_init_latents_and_the_rest_is_redrawn(smoke_engine):
    """In latent space (the VAE's decoder attends across the whole image): plain diffusers'
    image-to-image pipeline with our step callback, returning its latents."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from engine.differential import DifferentialStrength

    smoke_engine.generate(request())  # loads the model
    pipe = StableDiffusionImg2ImgPipeline(**smoke_engine.pipelines.current_base.components)
    init = smooth_init(64, 128)
    strength_map = np.zeros((64, 128), np.float32)
    strength_map[:, 64:] = 0.8
    held = DifferentialStrength(pipe, init, strength_map, 0.8, 10, seed=3)
    latents = pipe("a stone wall", image=init[None], strength=0.8, num_inference_steps=10, output_type="latent",
                   generator=torch.Generator().manual_seed(3), callback_on_step_end=held).images
    kept, redrawn = latents[..., :8], latents[..., 8:]
    assert torch.equal(kept, held.init_latents[..., :8])
    assert (redrawn - held.init_latents[..., 8:]).abs().mean() > 0.1


def test_a_map_over_the_strength_or_with_a_mask_is_refused(smoke_engine):
    with pytest.raises(DiffusionError, match="reaches 1, over the strength 0.8"):
        smoke_engine.generate(request(strength_map=np.ones((64, 64), np.float32)))
    with pytest.raises(DiffusionError, match="needs image to image"):
        smoke_engine.generate(request(strength_map=np.zeros((64, 64), np.float32),
                                      mask=np.ones((64, 64), np.float32)))
