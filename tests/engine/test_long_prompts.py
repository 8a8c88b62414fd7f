# SPDX-License-Identifier: GPL-3.0-or-later
"""Prompts as artists write them, on the smoke SD 1.5 and SDXL models: long prompts are
not cut, weights change the embeddings as A1111 does, and plain prompts still give
exactly diffusers' image.

The expected embeddings are built here from the tokenizers and text encoders called
directly, not through engine.text_encoding."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

from engine import ControlUnit, GenerationRequest
from engine.pipelines import PIPELINE_CLASSES
from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline
from engine.text_encoding import TokenChunk, chunk_input_ids, prompt_embeddings, text_arguments, weighted

MODELS = {"sd15": "smoke", "sdxl": "smoke-sdxl"}
WORDS = ("a lighthouse on a rocky cliff at dusk, crashing waves, seagulls, dramatic clouds, "
         "golden hour, volumetric light, highly detailed, oil painting, by the sea, storm").split()


def long_prompt(tokenizer, at_least: int = 200) -> str:
    """Words of WORDS, in turn, until the prompt has `at_least` tokens."""
    words = []
    while len(tokens_of(tokenizer, " ".join(words))) < at_least:
        words.append(WORDS[len(words) % len(WORDS)])
    return " ".join(words)


def tokens_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False).input_ids


def encoders(pipe) -> list[tuple]:
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if hasattr(pipe, "text_encoder_2"):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def encode_alone(pipe, tokenizer, encoder, tokens: list[int]):
    """(hidden states 1 x 77 x width, pooled or None) of `tokens` as a prompt of their own,
    tokenized as diffusers tokenizes one, read from the layer diffusers takes for the family."""
    ids = tokenizer(tokenizer.decode(tokens), padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True).input_ids
    assert ids[1:1 + len(tokens)] == tokens  # the text gives the same tokens back
    with torch.no_grad():
        if hasattr(pipe, "text_encoder_2"):
            output = encoder(torch.tensor([ids]), output_hidden_states=True)
            return output.hidden_states[-2], getattr(output, "text_embeds", None)
        return encoder(torch.tensor([ids])).last_hidden_state, None


def split_by_encoder(pipe, embeds: torch.Tensor) -> list[torch.Tensor]:
    """The columns of each encoder in SDXL's side-by-side embeddings (SD 1.5: all of them)."""
    widths = [encoder.config.hidden_size for _, encoder in encoders(pipe)]
    return list(torch.split(embeds, widths, dim=-1))


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def plain_pipes(model_cache) -> dict:
    """Each family's base pipeline, loaded apart from the engine."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    pipes = {
        "sd15": StableDiffusionPipeline.from_pretrained(
            ensure_smoke_pipeline(model_cache, "sd15"), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False),
        "sdxl": StableDiffusionXLPipeline.from_pretrained(ensure_smoke_pipeline(model_cache, "sdxl")),
    }
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    return pipes


@pytest.fixture
def pipe(plain_pipes, family):
    return plain_pipes[family]


def make_request(family: str, prompt: str, **changes) -> GenerationRequest:
    fields = dict(prompt=prompt, negative_prompt="blurry", width=64, height=64, steps=3, guidance=6.0, seed=99,
                  model=MODELS[family])
    fields.update(changes)
    return GenerationRequest(**fields)


def plain_images(pipe, **arguments) -> np.ndarray:
    """The images of a plain diffusers call with the requests' settings: N x H x W x 3."""
    return pipe(width=64, height=64, num_inference_steps=3, guidance_scale=6.0,
                generator=torch.Generator().manual_seed(99), output_type="np", **arguments).images


def plain_image(pipe, **arguments) -> np.ndarray:
    return plain_images(pipe, **arguments)[0]


# Plain prompts: text, as before.

@pytest.mark.parametrize("typed, plain", [
    ("a red house", "a red house"),
    ("a (red:1.0) house", "a red house"),
    ("a \\(red\\) house", "a (red) house"),
])
def test_a_plain_prompt_gives_diffusers_image_bit_for_bit(smoke_engine, pipe, family, typed, plain):
    assert text_arguments(pipe, typed, "blurry") == {"prompt": plain, "negative_prompt": "blurry"}
    result = smoke_engine.generate(make_request(family, typed))
    assert np.array_equal(result.images[0], plain_image(pipe, prompt=plain, negative_prompt="blurry"))


def test_an_empty_negative_prompt_is_none_as_before(pipe):
    assert text_arguments(pipe, "a red house", "") == {"prompt": "a red house", "negative_prompt": None}


def test_unweighted_chunks_are_encoded_as_diffusers_encodes_them(pipe, family):
    # The embedding path itself (used for long or weighted prompts) on a prompt that fits:
    # diffusers' own encode_prompt, bit for bit, negative prompt and pooled embeddings included.
    ours = prompt_embeddings(pipe, "a red house", "blurry")
    if family == "sdxl":
        expected = pipe.encode_prompt("a red house", device=torch.device("cpu"), negative_prompt="blurry")
        names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    else:
        expected = pipe.encode_prompt("a red house", torch.device("cpu"), 1, True, negative_prompt="blurry")
        names = ("prompt_embeds", "negative_prompt_embeds")
    assert set(ours) == set(names)
    for name, tensor in zip(names, expected):
        assert torch.equal(ours[name], tensor), name


def test_an_empty_negative_prompt_is_what_diffusers_makes_of_it(pipe, family):
    ours = prompt_embeddings(pipe, "a (red:1.2) house", "")
    if family == "sdxl":  # force_zeros_for_empty_prompt: zeros, pooled ones too
        assert pipe.config.force_zeros_for_empty_prompt
        assert not ours["negative_prompt_embeds"].any() and not ours["negative_pooled_prompt_embeds"].any()
        assert ours["negative_prompt_embeds"].shape == ours["prompt_embeds"].shape
    else:  # the empty prompt, encoded
        _, expected = pipe.encode_prompt("a red house", torch.device("cpu"), 1, True, negative_prompt=None)
        assert torch.equal(ours["negative_prompt_embeds"], expected)


# Weights.

def test_a_weight_scales_its_tokens_rows_and_the_chunk_keeps_its_mean(pipe):
    embeds = prompt_embeddings(pipe, "a (red:1.5) house", "blurry")["prompt_embeds"]
    assert embeds.shape[1] == 77
    for (tokenizer, encoder), got in zip(encoders(pipe), split_by_encoder(pipe, embeds)):
        a, red, house = (tokens_of(tokenizer, text) for text in ("a ", "red", " house"))
        assert a + red + house == tokens_of(tokenizer, "a red house")  # the spans' tokens are the prompt's
        plain, _ = encode_alone(pipe, tokenizer, encoder, a + red + house)
        factors = torch.ones(77)
        factors[1 + len(a):1 + len(a) + len(red)] = 1.5  # after the start marker and "a"
        expected = plain * factors[None, :, None]
        expected = expected * (plain.mean() / expected.mean())
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(got.mean(), plain.mean())
        assert not torch.allclose(got, plain)


def test_a_weight_changes_the_image(smoke_engine, family):
    plain = smoke_engine.generate(make_request(family, "a red house")).images[0]
    heavier = smoke_engine.generate(make_request(family, "a (red:1.5) house")).images[0]
    lighter = smoke_engine.generate(make_request(family, "a [red] house")).images[0]
    assert not np.array_equal(plain, heavier)
    assert not np.array_equal(plain, lighter)
    assert not np.array_equal(heavier, lighter)


def test_a_mean_of_rounding_noise_is_left_alone():
    # A layer norm without bias gives rows of mean zero: the ratio of two such means is noise.
    hidden = torch.nn.functional.layer_norm(torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(0)),
                                            (32,))
    got = weighted(hidden, (1.5, 1.0))
    factors = torch.ones(77)
    factors[1] = 1.5
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, hidden * factors[None, :, None])


# Long prompts.

def test_a_long_prompt_is_encoded_in_chunks_of_75_tokens(pipe, family):
    prompt = long_prompt(pipe.tokenizer)
    arguments = text_arguments(pipe, prompt, "blurry")
    assert arguments["prompt_embeds"].shape[1] == 3 * 77
    assert arguments["negative_prompt_embeds"].shape == arguments["prompt_embeds"].shape
    for tokenizer, encoder in encoders(pipe):
        tokens = tokens_of(tokenizer, prompt)
        assert 150 < len(tokens) <= 225
        i = encoders(pipe).index((tokenizer, encoder))
        got = split_by_encoder(pipe, arguments["prompt_embeds"])[i]
        negative = split_by_encoder(pipe, arguments["negative_prompt_embeds"])[i]
        for chunk, part in enumerate((tokens[:75], tokens[75:150], tokens[150:])):
            expected, pooled = encode_alone(pipe, tokenizer, encoder, part)
            assert torch.equal(got[:, chunk * 77:(chunk + 1) * 77], expected), chunk
            if chunk == 0 and pooled is not None:  # SDXL's pooled embedding: the first chunk's
                assert torch.equal(arguments["pooled_prompt_embeds"], pooled)
        # The negative prompt, padded with chunks of the empty prompt.
        assert torch.equal(negative[:, :77], encode_alone(pipe, tokenizer, encoder, tokens_of(tokenizer, "blurry"))[0])
        empty = encode_alone(pipe, tokenizer, encoder, [])[0]
        assert torch.equal(negative[:, 77:154], empty) and torch.equal(negative[:, 154:], empty)
    assert ("pooled_prompt_embeds" in arguments) == (family == "sdxl")


def test_a_long_negative_prompt_pads_the_prompt(pipe):
    arguments = text_arguments(pipe, "a red house", long_prompt(pipe.tokenizer))
    assert arguments["prompt_embeds"].shape[1] == arguments["negative_prompt_embeds"].shape[1] == 3 * 77


def test_words_past_75_tokens_change_the_image_where_diffusers_cuts_them(smoke_engine, pipe, family):
    prompt = long_prompt(pipe.tokenizer)
    other_ending = prompt.rsplit(" ", 3)[0] + " snowy forest at midnight"
    assert prompt[:150] == other_ending[:150]  # the two differ after the first chunk only
    ours = smoke_engine.generate(make_request(family, prompt)).images[0]
    ours_other = smoke_engine.generate(make_request(family, other_ending)).images[0]
    assert not np.array_equal(ours, ours_other)
    cut = plain_image(pipe, prompt=prompt, negative_prompt="blurry")  # diffusers reads 75 tokens
    assert np.array_equal(cut, plain_image(pipe, prompt=other_ending, negative_prompt="blurry"))
    assert not np.array_equal(ours, cut)


def test_break_starts_a_new_chunk(pipe):
    embeds = text_arguments(pipe, "a castle BREAK a dragon", "")["prompt_embeds"]
    assert embeds.shape[1] == 2 * 77
    for (tokenizer, encoder), got in zip(encoders(pipe), split_by_encoder(pipe, embeds)):
        assert torch.equal(got[:, :77], encode_alone(pipe, tokenizer, encoder, tokens_of(tokenizer, "a castle"))[0])
        assert torch.equal(got[:, 77:], encode_alone(pipe, tokenizer, encoder, tokens_of(tokenizer, "a dragon"))[0])


def test_a_chunk_is_padded_with_the_tokenizers_own_pad_token(pipe):
    # SDXL's second tokenizer pads with "!", not the end marker; the smoke ones pad with the end marker.
    tokenizer = copy.deepcopy(pipe.tokenizer)
    tokenizer.pad_token = "!"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    chunk = TokenChunk(tuple(tokens_of(tokenizer, "a red house")), (1.0,) * 9)
    assert chunk_input_ids(chunk, tokenizer) == tokenizer("a red house", padding="max_length", max_length=77).input_ids


# Through Engine.generate, in every mode, with a ControlNet.

@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_weighted_long_prompts_in_every_mode_with_a_controlnet(smoke_engine, model_cache, plain_pipes, family, mode,
                                                               edges, init_image, mask):
    import diffusers
    from diffusers import ControlNetModel

    prompt = "(masterpiece:1.2), [blurry], " + long_prompt(plain_pipes[family].tokenizer)
    negative = "(lowres:1.4), watermark"
    controlnet_path = ensure_smoke_controlnet(model_cache, family, "canny")
    request = make_request(family, prompt, negative_prompt=negative, strength=0.75,
                           controls=(ControlUnit("canny", edges, scale=0.7, model=controlnet_path),),
                           init_image=None if mode == "txt2img" else init_image,
                           mask=mask if mode == "inpaint" else None)
    result = smoke_engine.generate(request)
    assert result.mode == mode

    cls = getattr(diffusers, PIPELINE_CLASSES[(family, "single", mode)])
    pipe = cls(**plain_pipes[family].components, controlnet=ControlNetModel.from_pretrained(controlnet_path))
    pipe.set_progress_bar_config(disable=True)
    arguments = dict(controlnet_conditioning_scale=0.7)
    if mode == "txt2img":
        arguments.update(image=Image.fromarray(edges))
    else:
        arguments.update(image=init_image, control_image=Image.fromarray(edges), strength=0.75)
    if mode == "inpaint":
        arguments.update(mask_image=mask)
    embeds = text_arguments(pipe, prompt, negative)
    assert embeds["prompt_embeds"].shape[1] == 3 * 77
    assert np.array_equal(result.images[0], plain_image(pipe, **embeds, **arguments))
    # Not what diffusers makes of the text: cut at 75 tokens and its brackets read as words.
    assert not np.array_equal(result.images[0], plain_image(pipe, prompt=prompt, negative_prompt=negative,
                                                            **arguments))


def test_several_images_of_a_long_prompt(smoke_engine, pipe, family):
    prompt = long_prompt(pipe.tokenizer)
    result = smoke_engine.generate(make_request(family, prompt, num_images=2))
    expected = plain_images(pipe, **text_arguments(pipe, prompt, "blurry"), num_images_per_prompt=2)
    assert len(result.images) == 2
    assert np.array_equal(np.stack(result.images), expected)
