# SPDX-License-Identifier: GPL-3.0-or-later
"""Textual inversion embeddings on the smoke SD 1.5 and SDXL models: equal to plain diffusers
with `load_textual_inversion`, one and several vectors, in the plain and the chunked prompt
path; a prompt without the token is unchanged; files that do not fit are refused."""
import numpy as np
import pytest
import torch
from plain_diffusers import plain_pipe
from safetensors.torch import save_file

from engine import DiffusionError, EmbeddingSpec, GenerationRequest
from engine.text_encoding import prompt_embeddings

PROMPT, NEGATIVE = "a <kettle-style> on a stove", "<blur> blurry"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, steps=3, guidance=6.0, seed=42,
                  model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def width(pipe, second=False) -> int:
    encoder = pipe.text_encoder_2 if second else pipe.text_encoder
    return encoder.get_input_embeddings().weight.shape[1]


@pytest.fixture(scope="module")
def files(model_cache, tmp_path_factory):
    """kettle-style (one vector, diffusers' format), blur (three vectors, A1111's emb_params),
    an SDXL pair, one of the wrong width, and a pickle file."""
    folder = tmp_path_factory.mktemp("embeddings")
    sd15, sdxl = plain_pipe(model_cache), plain_pipe(model_cache, "sdxl")
    generator = torch.Generator().manual_seed(5)
    paths = {
        "kettle": folder / "kettle-style.safetensors",
        "blur": folder / "blur.safetensors",
        "sdxl": folder / "kettle-xl.safetensors",
        "wide": folder / "wide.safetensors",
        "pickle": folder / "old.pt",
    }
    save_file({"<kettle-style>": torch.randn(1, width(sd15), generator=generator)}, str(paths["kettle"]))
    save_file({"emb_params": torch.randn(3, width(sd15), generator=generator)}, str(paths["blur"]))
    save_file({"clip_l": torch.randn(2, width(sdxl), generator=generator),
               "clip_g": torch.randn(2, width(sdxl, second=True), generator=generator)}, str(paths["sdxl"]))
    save_file({"<wide>": torch.randn(1, width(sd15) + 8, generator=generator)}, str(paths["wide"]))
    torch.save({"string_to_param": {"*": torch.randn(1, width(sd15), generator=generator)}}, str(paths["pickle"]))
    return {name: str(path) for name, path in paths.items()}


def reference(pipe, prompt=PROMPT, negative=NEGATIVE) -> np.ndarray:
    return pipe(prompt, negative_prompt=negative, width=64, height=64, num_inference_steps=3, guidance_scale=6.0,
                generator=torch.Generator().manual_seed(42), output_type="np").images[0]


def test_equal_to_diffusers_load_textual_inversion(smoke_engine, model_cache, files):
    pipe = plain_pipe(model_cache)
    pipe.load_textual_inversion(files["kettle"])  # diffusers reads the token from the file
    pipe.load_textual_inversion(files["blur"], token="<blur>")
    expected = reference(pipe)
    got = smoke_engine.generate(make_request(embeddings=(EmbeddingSpec(files["kettle"]),
                                                         EmbeddingSpec(files["blur"]))))
    np.testing.assert_allclose(got.images[0], expected, atol=1e-6)


def test_the_chunked_prompt_path_spells_out_every_vector(model_cache, files):
    """A weighted or long prompt is encoded by our own chunked path: an unweighted chunk with a
    three-vector token equals diffusers' encode_prompt of it."""
    pipe = plain_pipe(model_cache)
    pipe.load_textual_inversion(files["blur"], token="<blur>")
    ours = prompt_embeddings(pipe, "a <blur> kettle", "")["prompt_embeds"]
    theirs = pipe.encode_prompt("a <blur> kettle", "cpu", 1, False)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    without = prompt_embeddings(pipe, "a <unknown> kettle", "")["prompt_embeds"]
    assert not torch.allclose(ours, without)


def test_sdxl_pairs_load_into_both_text_encoders(smoke_engine, model_cache, files):
    pipe = plain_pipe(model_cache, "sdxl")
    from safetensors.torch import load_file
    state = load_file(files["sdxl"])
    pipe.load_textual_inversion(state["clip_l"], token="<kettle-xl>", text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(state["clip_g"], token="<kettle-xl>", text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    prompt = "a <kettle-xl> on a stove"
    expected = reference(pipe, prompt, "blurry")
    got = smoke_engine.generate(make_request(model="smoke-sdxl", prompt=prompt, negative_prompt="blurry",
                                             embeddings=(EmbeddingSpec(files["sdxl"]),)))
    np.testing.assert_allclose(got.images[0], expected, atol=1e-6)


def test_an_embedding_no_longer_asked_for_is_unloaded(smoke_engine, files):
    """Its token reads as plain text again: the same pixels as before it was ever loaded."""
    request = make_request(embeddings=())
    before = smoke_engine.generate(request).images[0]
    with_both = smoke_engine.generate(make_request(embeddings=(EmbeddingSpec(files["kettle"]),
                                                               EmbeddingSpec(files["blur"]))))
    assert not np.array_equal(before, with_both.images[0])
    np.testing.assert_array_equal(smoke_engine.generate(request).images[0], before)


def test_a_prompt_without_the_token_is_unchanged(smoke_engine, files):
    request = make_request(prompt="a kettle on a stove", negative_prompt="blurry")
    before = smoke_engine.generate(request).images[0]
    after = smoke_engine.generate(make_request(prompt="a kettle on a stove", negative_prompt="blurry",
                                               embeddings=(EmbeddingSpec(files["kettle"]),))).images[0]
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name, token, allow_pickle, words", [
    ("sdxl", "", False, "made for SDXL"),
    ("wide", "", False, "has vectors of width"),
    ("pickle", "", False, "pickle"),
    ("kettle", "a", False, "is a word"),
    ("kettle", "two words", False, "has spaces"),
])
def test_embeddings_that_do_not_fit_are_refused(smoke_engine, files, name, token, allow_pickle, words):
    with pytest.raises(DiffusionError, match=words):
        smoke_engine.generate(make_request(prompt="a kettle", embeddings=(EmbeddingSpec(files[name], token),),
                                           allow_pickle=allow_pickle))
    # The model is still there and unchanged: the same request without it works.
    smoke_engine.generate(make_request(prompt="a kettle", negative_prompt=""))


def test_a_pickle_embedding_loads_when_allowed(smoke_engine, files):
    got = smoke_engine.generate(make_request(prompt="a <old> kettle", negative_prompt="", allow_pickle=True,
                                             embeddings=(EmbeddingSpec(files["pickle"]),)))
    assert got.images[0].shape == (64, 64, 3)
