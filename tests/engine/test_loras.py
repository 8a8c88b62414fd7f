# SPDX-License-Identifier: GPL-3.0-or-later
"""LoRAs on the smoke SD 1.5 model: equal to plain diffusers, switched without reloading the
base, off gives the base model's output exactly, few-step LoRAs bring their scheduler, and
LoRAs that do not fit are refused with the base left as it was."""
import os
import shutil

import numpy as np
import pytest
import torch

from checkpoint_files import make_lora
from engine import DiffusionError, GenerationRequest, LoraSpec
from engine.loras import recognise_few_step
from engine.smoke_model import ensure_smoke_pipeline

PROMPT, NEGATIVE = "a copper kettle on a stove", "blurry"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, steps=3, guidance=6.0,
                  seed=42, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


@pytest.fixture(scope="module")
def lora_dir(model_cache, tmp_path_factory) -> str:
    """style-a (UNet and text encoder), style-b (UNet only), the same as a in kohya's format,
    a few-step LoRA named like LCM-LoRA, and an SDXL LoRA."""
    folder = tmp_path_factory.mktemp("loras")
    sd15, sdxl = ensure_smoke_pipeline(model_cache, "sd15"), ensure_smoke_pipeline(model_cache, "sdxl")
    make_lora(sd15, str(folder / "style-a.safetensors"), seed=1)
    make_lora(sd15, str(folder / "style-b.safetensors"), seed=2, text_encoders=False)
    make_lora(sd15, str(folder / "style-a-kohya.safetensors"), seed=1, kohya=True)
    make_lora(sd15, str(folder / "lcm-lora-sdv1-5.safetensors"), seed=3, text_encoders=False)
    make_lora(sdxl, str(folder / "sdxl-style.safetensors"), seed=4, family="sdxl")
    return str(folder)


@pytest.fixture(scope="module")
def plain_pipe(model_cache):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(ensure_smoke_pipeline(model_cache, "sd15"), safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def plain_call(pipe, steps=3, guidance=6.0) -> np.ndarray:
    return pipe(PROMPT, negative_prompt=NEGATIVE, width=64, height=64, num_inference_steps=steps,
                guidance_scale=guidance, generator=torch.Generator().manual_seed(42), output_type="np").images[0]


def plain_with_lora(pipe, path: str, weight: float, **load_options) -> np.ndarray:
    """plain_call with one LoRA file loaded by diffusers' own load_lora_weights, then removed."""
    folder, file_name = os.path.split(path)
    pipe.load_lora_weights(folder, weight_name=file_name, adapter_name="reference", **load_options)
    try:
        pipe.set_adapters(["reference"], [weight])
        return plain_call(pipe)
    finally:
        pipe.delete_adapters(["reference"])


def test_two_loras_with_weights_equal_plain_diffusers(smoke_engine, plain_pipe, lora_dir):
    a, b = os.path.join(lora_dir, "style-a.safetensors"), os.path.join(lora_dir, "style-b.safetensors")
    result = smoke_engine.generate(make_request(loras=(LoraSpec(a, 0.7), LoraSpec(b, -0.4))))

    plain_pipe.load_lora_weights(a, adapter_name="a")
    plain_pipe.load_lora_weights(b, adapter_name="b")
    try:
        plain_pipe.set_adapters(["a", "b"], [0.7, -0.4])
        expected = plain_call(plain_pipe)
    finally:
        plain_pipe.delete_adapters(["a", "b"])
    assert np.array_equal(result.images[0], expected)


def test_loras_switch_without_reloading_the_base_and_off_is_the_base_exactly(smoke_engine, lora_dir):
    a, b = os.path.join(lora_dir, "style-a.safetensors"), os.path.join(lora_dir, "style-b.safetensors")
    base = smoke_engine.generate(make_request()).images[0]
    loads = list(smoke_engine.loads)
    base_pipe = smoke_engine.pipelines.current_base

    with_a = smoke_engine.generate(make_request(loras=(LoraSpec(a),))).images[0]
    half_a = smoke_engine.generate(make_request(loras=(LoraSpec(a, 0.5),))).images[0]
    both = smoke_engine.generate(make_request(loras=(LoraSpec(a), LoraSpec(b)))).images[0]
    off = smoke_engine.generate(make_request()).images[0]
    zero_weight = smoke_engine.generate(make_request(loras=(LoraSpec(a, 0.0),))).images[0]
    again_a = smoke_engine.generate(make_request(loras=(LoraSpec(a),))).images[0]

    # Each LoRA file was read at most once (earlier tests may have loaded them); the base model never again.
    read = smoke_engine.loads[len(loads):]
    assert set(read) <= {a, b} and len(read) == len(set(read))
    assert smoke_engine.pipelines.current_base is base_pipe
    assert len({arr.tobytes() for arr in (base, with_a, half_a, both)}) == 4
    assert np.array_equal(off, base)
    assert np.array_equal(zero_weight, base)
    assert np.array_equal(again_a, with_a)


def test_loras_beyond_the_kept_ones_are_let_go_and_come_back_the_same(model_cache, lora_dir, monkeypatch):
    from engine import Engine, loras

    monkeypatch.setattr(loras, "MAX_KEPT", 1)
    engine = Engine(model_cache)
    a, b = os.path.join(lora_dir, "style-a.safetensors"), os.path.join(lora_dir, "style-b.safetensors")
    first_a = engine.generate(make_request(loras=(LoraSpec(a),))).images[0]
    engine.generate(make_request(loras=(LoraSpec(b),)))
    assert len(engine.pipelines.loras.loaded) == 1  # a was let go to keep one
    again_a = engine.generate(make_request(loras=(LoraSpec(a),))).images[0]
    assert engine.loads[1:] == [a, b, a]
    assert np.array_equal(again_a, first_a)


def test_a_kohya_format_lora_equals_plain_diffusers_loading_it(smoke_engine, plain_pipe, lora_dir):
    kohya = os.path.join(lora_dir, "style-a-kohya.safetensors")
    result = smoke_engine.generate(make_request(loras=(LoraSpec(kohya, 0.8),))).images[0]
    assert np.array_equal(result, plain_with_lora(plain_pipe, kohya, 0.8))
    assert not np.array_equal(result, plain_call(plain_pipe))  # the LoRA does something
    # The test file is style-a under kohya's names: it makes style-a's image (the file is faithful).
    diffusers_format = os.path.join(lora_dir, "style-a.safetensors")
    same_lora = smoke_engine.generate(make_request(loras=(LoraSpec(diffusers_format, 0.8),))).images[0]
    assert np.array_equal(result, same_lora)


def test_an_sdxl_lora_on_sd15_is_refused_and_the_base_is_left_as_it_was(smoke_engine, lora_dir):
    base = smoke_engine.generate(make_request()).images[0]
    loads, adapters = list(smoke_engine.loads), smoke_engine.pipelines.loras.loaded

    with pytest.raises(DiffusionError, match="does not fit the model smoke .SD 1.5.: it looks made for SDXL") as error:
        smoke_engine.generate(make_request(loras=(LoraSpec(os.path.join(lora_dir, "sdxl-style.safetensors")),)))
    assert "use a LoRA made for SD 1.5" in error.value.fix
    assert smoke_engine.loads == loads
    assert smoke_engine.pipelines.loras.loaded == adapters
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], base)


def test_a_few_step_lora_brings_its_scheduler_and_guidance(smoke_engine, plain_pipe, lora_dir):
    from diffusers import LCMScheduler

    lcm = os.path.join(lora_dir, "lcm-lora-sdv1-5.safetensors")
    result = smoke_engine.generate(make_request(steps=4, guidance=7.5, loras=(LoraSpec(lcm),)))
    assert any("LCM LoRA lcm-lora-sdv1-5.safetensors: LCM scheduler, guidance 1 instead of 7.5" in note
               for note in result.notes)

    default_scheduler = plain_pipe.scheduler
    plain_pipe.load_lora_weights(lcm, adapter_name="lcm")
    plain_pipe.scheduler = LCMScheduler.from_config(default_scheduler.config)
    try:
        expected = plain_call(plain_pipe, steps=4, guidance=1.0)
    finally:
        plain_pipe.delete_adapters(["lcm"])
        plain_pipe.scheduler = default_scheduler
    assert np.array_equal(result.images[0], expected)

    # Named an ordinary LoRA, or with a scheduler of the person's choosing, nothing is changed for it.
    ordinary = smoke_engine.generate(make_request(steps=4, guidance=7.5, loras=(LoraSpec(lcm, few_step="none"),)))
    chosen = smoke_engine.generate(make_request(steps=4, guidance=1.5, scheduler="euler", loras=(LoraSpec(lcm),)))
    assert ordinary.notes == chosen.notes == ("smoke model: random weights, for checking the pipeline "
                                              "(its images are noise)",)
    assert not np.array_equal(ordinary.images[0], result.images[0])


def test_an_sdxl_lora_on_sdxl_equals_plain_diffusers(smoke_engine, model_cache, lora_dir):
    from diffusers import StableDiffusionXLPipeline

    sdxl_lora = os.path.join(lora_dir, "sdxl-style.safetensors")
    result = smoke_engine.generate(make_request(model="smoke-sdxl", loras=(LoraSpec(sdxl_lora, 0.9),)))
    plain = StableDiffusionXLPipeline.from_pretrained(ensure_smoke_pipeline(model_cache, "sdxl"))
    plain.set_progress_bar_config(disable=True)
    plain.load_lora_weights(sdxl_lora, adapter_name="style")
    plain.set_adapters(["style"], [0.9])
    expected = plain_call(plain)
    assert set(plain.get_list_adapters()) == {"unet", "text_encoder", "text_encoder_2"}
    assert np.array_equal(result.images[0], expected)


@pytest.mark.parametrize("path, kind", [
    ("/loras/lcm-lora-sdv1-5.safetensors", "lcm"),
    ("/hub/latent-consistency--lcm-lora-sdxl/pytorch_lora_weights.safetensors", "lcm"),
    ("/loras/LCM_LoRA_Weights_SD15.safetensors", "lcm"),
    ("/loras/dmd2_sdxl_4step_lora.safetensors", "lcm"),
    ("/loras/Hyper-SD15-8steps-lora.safetensors", "hyper"),
    ("/loras/Hyper-SDXL-8steps-CFG-lora.safetensors", "hyper_cfg"),
    ("/loras/sdxl_lightning_4step_lora.safetensors", "lightning"),
    ("/loras/TCD-SDXL-LoRA.safetensors", "tcd"),
    ("/loras/watercolor-style.safetensors", ""),
    ("/loras/calcium-crystals.safetensors", ""),  # "lcm" inside a word is not LCM
])
def test_few_step_loras_are_recognised_by_name(path, kind):
    assert recognise_few_step(path) == kind


def test_a_damaged_lora_is_refused_before_anything_loads(smoke_engine, lora_dir, tmp_path):
    base = smoke_engine.generate(make_request()).images[0]
    loads = list(smoke_engine.loads)
    data = open(os.path.join(lora_dir, "style-a.safetensors"), "rb").read()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DiffusionError, match="truncated.safetensors is damaged: .* truncated") as error:
        smoke_engine.generate(make_request(loras=(LoraSpec(str(truncated)),)))
    assert "download it again" in error.value.fix
    assert smoke_engine.loads == loads
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], base)


def test_pickle_loras_need_the_explicit_option(smoke_engine, plain_pipe, lora_dir, tmp_path):
    from safetensors.torch import load_file

    safe = os.path.join(lora_dir, "style-b.safetensors")
    pickled = tmp_path / "style-b.bin"
    torch.save(load_file(safe), pickled)
    with pytest.raises(DiffusionError, match="style-b.bin is a pickle file .pickle files can run any code") as error:
        smoke_engine.generate(make_request(loras=(LoraSpec(str(pickled)),)))
    assert "Allow pickle files" in error.value.fix
    allowed = smoke_engine.generate(make_request(loras=(LoraSpec(str(pickled), 0.6),), allow_pickle=True))
    assert smoke_engine.loads[-1] == str(pickled)
    expected = plain_with_lora(plain_pipe, str(pickled), 0.6, use_safetensors=False)
    assert np.array_equal(allowed.images[0], expected)
    assert not np.array_equal(allowed.images[0], plain_call(plain_pipe))


def test_other_files_as_loras_are_refused(smoke_engine, model_cache, tmp_path):
    full_model = tmp_path / "model.safetensors"
    shutil.copy(os.path.join(ensure_smoke_pipeline(model_cache, "sd15"), "unet", "diffusion_pytorch_model.safetensors"),
                full_model)
    with pytest.raises(DiffusionError, match="does not exist"):
        smoke_engine.generate(make_request(loras=(LoraSpec(str(tmp_path / "missing.safetensors")),)))
    with pytest.raises(DiffusionError, match="Unknown few-step kind 'turbo'"):
        smoke_engine.generate(make_request(loras=(LoraSpec(str(full_model), few_step="turbo"),)))
    with pytest.raises(DiffusionError, match="model.safetensors is not a LoRA: none of its tensors is a LoRA layer"):
        smoke_engine.generate(make_request(loras=(LoraSpec(str(full_model)),)))
