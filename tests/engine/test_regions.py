# SPDX-License-Identifier: GPL-3.0-or-later
"""A prompt per region on the smoke SD 1.5 and SDXL models.

References are plain diffusers: a region over the whole picture is cross-attention over the
main prompt's and the region's tokens together, which diffusers computes when given the two
prompts' embeddings side by side (the negative prompt twice: attention over a set of tokens
and a copy of it is attention over the set). A region with the main prompt's words, or with
an empty mask, changes nothing; without regions the call is diffusers' own, bit for bit."""
import numpy as np
import pytest
import torch
from plain_diffusers import plain_pipe

from engine import DiffusionError, GenerationRequest
from engine.regions import RegionPrompt, level_size
from engine.smoke_model import ensure_smoke_controlnet
from engine.requests import ControlUnit

PROMPT, NEGATIVE, OTHER = "a red house in a field", "blurry", "a blue boat on the sea"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, steps=3, guidance=6.0, seed=7,
                  model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def left_half(height=64, width=64) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[:, : width // 2] = 1.0
    return mask


@pytest.mark.parametrize("model", ["smoke", "smoke-sdxl"])
def test_without_regions_the_call_is_diffusers_own_before_and_after_a_regional_one(smoke_engine, model_cache,
                                                                                    model):
    pipe = plain_pipe(model_cache, "sdxl" if model == "smoke-sdxl" else "sd15")
    expected = pipe(PROMPT, negative_prompt=NEGATIVE, width=64, height=64, num_inference_steps=3, guidance_scale=6.0,
                    generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    before = smoke_engine.generate(make_request(model=model)).images[0]
    smoke_engine.generate(make_request(model=model, regions=(RegionPrompt(OTHER, left_half()),)))
    after = smoke_engine.generate(make_request(model=model)).images[0]
    np.testing.assert_array_equal(before, expected)
    np.testing.assert_array_equal(after, expected)  # the layers' own processors are back


@pytest.mark.parametrize("model", ["smoke", "smoke-sdxl"])
def test_a_region_over_everything_is_attention_over_both_prompts(smoke_engine, model_cache, model):
    family = "sdxl" if model == "smoke-sdxl" else "sd15"
    pipe = plain_pipe(model_cache, family)
    if family == "sdxl":
        main, negative, pooled, negative_pooled = pipe.encode_prompt(PROMPT, negative_prompt=NEGATIVE)
        region = pipe.encode_prompt(OTHER, do_classifier_free_guidance=False)[0]
        extra = dict(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
    else:
        main, negative = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=NEGATIVE)
        region = pipe.encode_prompt(OTHER, "cpu", 1, False)[0]
        extra = {}
    expected = pipe(prompt_embeds=torch.cat([main, region], dim=1),
                    negative_prompt_embeds=torch.cat([negative, negative], dim=1), **extra,
                    width=64, height=64, num_inference_steps=3, guidance_scale=6.0,
                    generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    everywhere = np.ones((64, 64), np.float32)
    got = smoke_engine.generate(make_request(model=model, regions=(RegionPrompt(OTHER, everywhere),))).images[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    plain = smoke_engine.generate(make_request(model=model)).images[0]
    assert np.abs(got - plain).max() > 0.005  # the region's words do steer


@pytest.mark.parametrize("model", ["smoke", "smoke-sdxl"])
def test_a_region_with_the_main_prompt_or_an_empty_mask_changes_nothing(smoke_engine, model, ):
    plain = smoke_engine.generate(make_request(model=model)).images[0]
    same_words = smoke_engine.generate(make_request(model=model, regions=(RegionPrompt(PROMPT, left_half()),)))
    nowhere = smoke_engine.generate(make_request(
        model=model, regions=(RegionPrompt(OTHER, np.zeros((64, 64), np.float32)),)))
    np.testing.assert_allclose(same_words.images[0], plain, atol=1e-4)
    np.testing.assert_allclose(nowhere.images[0], plain, atol=1e-4)


def test_in_one_attention_layer_each_pixel_sees_the_main_prompt_and_its_regions(smoke_engine):
    """One cross-attention layer (diffusers' Attention, random weights): inside a region a
    pixel's output is diffusers' AttnProcessor2_0 over the main and the region's tokens,
    outside it over the main tokens only; the unconditional half sees the negative only."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from engine.regions import RegionMasks, RegionalAttnProcessor

    torch.manual_seed(3)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8).eval()
    pixels = torch.randn(2, 4 * 6, 16)  # [unconditional, conditional], a 4x6 level
    main, region, negative = torch.randn(1, 5, 12), torch.randn(1, 3, 12), torch.randn(1, 5, 12)
    tokens = torch.cat([torch.cat([negative, torch.zeros(1, 3, 12)], 1), torch.cat([main, region], 1)])
    mask = np.zeros((8, 12), np.float32)
    mask[:, :6] = 1.0  # the left half of the 8x12 latent: columns 0..2 of the 4x6 level
    masks = RegionMasks([mask], [(5, 8)], 5, 8, (8, 12), lambda: True)
    with torch.no_grad():
        got = RegionalAttnProcessor(masks)(attn, pixels, tokens).reshape(2, 4, 6, 16)
        stock = AttnProcessor2_0()
        both = stock(attn, pixels[1:], torch.cat([main, region], 1)).reshape(4, 6, 16)
        alone = stock(attn, pixels[1:], main).reshape(4, 6, 16)
        unconditional = stock(attn, pixels[:1], negative).reshape(4, 6, 16)
    torch.testing.assert_close(got[1, :, :3], both[:, :3], atol=1e-6, rtol=0)
    torch.testing.assert_close(got[1, :, 3:], alone[:, 3:], atol=1e-6, rtol=0)
    torch.testing.assert_close(got[0], unconditional, atol=1e-6, rtol=0)
    assert (both[:, :3] - alone[:, :3]).abs().max() > 0.01


def test_a_region_steers_its_own_area_more_than_the_rest(smoke_engine):
    """Left half 'boat': the picture changes more there than on the right (not nothing on the
    right: the UNet's group norms and convolutions carry some of it across)."""
    plain = smoke_engine.generate(make_request(width=256)).images[0]
    mask = left_half(64, 256)
    steered = smoke_engine.generate(make_request(width=256, regions=(RegionPrompt(OTHER, mask),))).images[0]
    change = np.abs(steered - plain).mean(axis=2)
    assert change[:, :96].mean() > 1.3 * change[:, 160:].mean()


def test_several_regions_with_a_controlnet_and_odd_attention_sizes(smoke_engine, model_cache, control_image):
    """64x96 with a depth ControlNet: latent 8x12, attention at 4x6 (its cross-attention is
    masked as well); an 80x72 picture has a 10x9 latent, attention at 5x5."""
    ensure_smoke_controlnet(model_cache, "sd15", "depth")
    unit = ControlUnit("depth", control_image)
    plain = smoke_engine.generate(make_request(width=96, controls=(unit,))).images[0]
    top, bottom = np.zeros((64, 96), np.float32), np.zeros((64, 96), np.float32)
    top[:32], bottom[32:] = 1.0, 1.0
    same = smoke_engine.generate(make_request(width=96, controls=(unit,), regions=(
        RegionPrompt(PROMPT, top), RegionPrompt(PROMPT + ", " + PROMPT, bottom * 0.0)))).images[0]
    np.testing.assert_allclose(same, plain, atol=1e-4)
    two = smoke_engine.generate(make_request(width=96, controls=(unit,), regions=(
        RegionPrompt(OTHER, top), RegionPrompt("a green tree", bottom)))).images[0]
    assert np.abs(two - plain).max() > 0.005
    odd = smoke_engine.generate(make_request(width=80, height=72, regions=(
        RegionPrompt(OTHER, left_half(72, 80)),))).images[0]
    assert odd.shape == (72, 80, 3) and np.isfinite(odd).all()


def test_attention_levels_halve_rounding_up():
    assert level_size((9, 7), 63) == (9, 7)
    assert level_size((9, 7), 20) == (5, 4)
    assert level_size((9, 7), 6) == (3, 2)
    with pytest.raises(ValueError):
        level_size((9, 7), 21)


@pytest.mark.parametrize("region, words", [
    (RegionPrompt(OTHER, np.ones((8, 8, 3), np.float32), "Cube"), "region 'Cube' needs an HxW float mask"),
    (RegionPrompt(OTHER, np.full((8, 8), 2.0, np.float32)), "outside 0..1"),
    (RegionPrompt("  ", np.ones((8, 8), np.float32), "Cube"), "empty prompt"),
])
def test_bad_regions_are_refused_before_loading(smoke_engine, region, words):
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match=words):
        smoke_engine.generate(make_request(model="smoke-sdxl", regions=(region,)))
    assert smoke_engine.loads == loads


def test_with_a_lora_a_region_of_the_main_words_changes_nothing(smoke_engine, model_cache, tmp_path):
    """The LoRA's layers sit inside the attention's projections: masked attention goes through them."""
    from checkpoint_files import make_lora

    from engine import LoraSpec
    from engine.smoke_model import ensure_smoke_pipeline
    lora = LoraSpec(make_lora(ensure_smoke_pipeline(model_cache, "sd15"), str(tmp_path / "style.safetensors"), seed=5),
                    0.9)
    plain = smoke_engine.generate(make_request(loras=(lora,))).images[0]
    same = smoke_engine.generate(make_request(loras=(lora,), regions=(RegionPrompt(PROMPT, left_half()),))).images[0]
    other = smoke_engine.generate(make_request(loras=(lora,), regions=(RegionPrompt(OTHER, left_half()),))).images[0]
    np.testing.assert_allclose(same, plain, atol=1e-4)
    assert np.abs(other - plain).max() > 0.005
    assert np.abs(plain - smoke_engine.generate(make_request()).images[0]).max() > 0.005  # the LoRA does act
