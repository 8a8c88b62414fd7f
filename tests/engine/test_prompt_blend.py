# SPDX-License-Identifier: GPL-3.0-or-later
"""Blending two prompts' embeddings (animations between prompt keys), against diffusers'
own `encode_prompt` of each prompt, mixed by hand."""
import numpy as np
import torch

from engine.requests import GenerationRequest
from engine.text_encoding import blended_arguments


def plain_embeddings(pipe, prompt, negative):
    positive, negative_embeds = pipe.encode_prompt(prompt, "cpu", 1, True, negative)
    return positive, negative_embeds


def test_the_blend_is_the_mix_of_diffusers_own_embeddings(smoke_engine):
    smoke_engine.generate(GenerationRequest(prompt="x", width=64, height=64, steps=1, model="smoke"))
    pipe = smoke_engine.pipelines.current_base
    a_pos, a_neg = plain_embeddings(pipe, "a misty forest", "blurry")
    b_pos, b_neg = plain_embeddings(pipe, "a desert at dusk", "people")
    for weight in (0.0, 0.3, 1.0):
        blended = blended_arguments(pipe, "a misty forest", "blurry", "a desert at dusk", "people", weight)
        torch.testing.assert_close(blended["prompt_embeds"], a_pos + weight * (b_pos - a_pos))
        torch.testing.assert_close(blended["negative_prompt_embeds"], a_neg + weight * (b_neg - a_neg))


def test_a_generation_between_two_prompts_is_diffusers_with_the_mixed_embeddings(smoke_engine):
    request = GenerationRequest(prompt="a misty forest", negative_prompt="blurry", width=64, height=64, steps=3,
                                seed=2, model="smoke", prompt_blend=("a desert at dusk", "people", 0.5))
    image = smoke_engine.generate(request).images[0]
    pipe = smoke_engine.pipelines.current_base
    a_pos, a_neg = plain_embeddings(pipe, "a misty forest", "blurry")
    b_pos, b_neg = plain_embeddings(pipe, "a desert at dusk", "people")
    reference = pipe(prompt_embeds=(a_pos + b_pos) / 2, negative_prompt_embeds=(a_neg + b_neg) / 2, width=64,
                     height=64, num_inference_steps=3, generator=torch.Generator("cpu").manual_seed(2),
                     output_type="np").images[0]
    np.testing.assert_allclose(image, reference, atol=1e-5)
    unblended = smoke_engine.generate(GenerationRequest(prompt="a misty forest", negative_prompt="blurry", width=64,
                                                        height=64, steps=3, seed=2, model="smoke")).images[0]
    assert np.abs(image - unblended).max() > 1e-3
