# SPDX-License-Identifier: GPL-3.0-or-later
"""Modes on the smoke SD 1.5 model: text-to-image, image-to-image and inpainting, each
with zero, one or two ControlNets; equal to plain diffusers, sharing the loaded weights."""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from engine import ControlUnit, DiffusionError, GenerationRequest
from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline

PROMPT, NEGATIVE = "a wooden cabin in a pine forest", "blurry"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, steps=4, guidance=6.0,
                  seed=321, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def two_units(depth, edges) -> tuple[ControlUnit, ControlUnit]:
    # Each unit with its own scale and guidance range, none of them the pipelines' defaults.
    return (ControlUnit("depth", depth, scale=0.8, guidance_start=0.0, guidance_end=0.75),
            ControlUnit("canny", edges, scale=0.6, guidance_start=0.25, guidance_end=1.0))


def plain_pipeline(cls, model_cache, kinds=()):
    """A diffusers pipeline loaded the ordinary way, with a list of ControlNets if any."""
    from diffusers import ControlNetModel

    extra = {}
    if kinds:
        controlnets = [ControlNetModel.from_pretrained(ensure_smoke_controlnet(model_cache, "sd15", kind))
                       for kind in kinds]
        extra["controlnet"] = controlnets[0] if len(controlnets) == 1 else controlnets
    pipe = cls.from_pretrained(ensure_smoke_pipeline(model_cache, "sd15"), safety_checker=None,
                               feature_extractor=None, requires_safety_checker=False, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_mode_follows_the_inputs(init_image, mask):
    assert make_request().mode == "txt2img"
    assert make_request(init_image=init_image).mode == "img2img"
    assert make_request(init_image=init_image, mask=mask).mode == "inpaint"


def test_txt2img_with_two_controlnets_equals_plain_diffusers(smoke_engine, model_cache, control_image, edges):
    from diffusers import StableDiffusionControlNetPipeline

    depth = np.asarray(Image.fromarray(control_image).resize((64, 64)))
    result = smoke_engine.generate(make_request(controls=two_units(depth, edges)))

    pipe = plain_pipeline(StableDiffusionControlNetPipeline, model_cache, ("depth", "canny"))
    expected = pipe(
        PROMPT, negative_prompt=NEGATIVE, image=[Image.fromarray(depth), Image.fromarray(edges)],
        width=64, height=64, num_inference_steps=4, guidance_scale=6.0,
        controlnet_conditioning_scale=[0.8, 0.6], control_guidance_start=[0.0, 0.25],
        control_guidance_end=[0.75, 1.0], generator=torch.Generator().manual_seed(321), output_type="np",
    ).images[0]

    assert result.mode == "txt2img"
    assert np.array_equal(result.images[0], expected)


def test_img2img_with_two_controlnets_equals_plain_diffusers(smoke_engine, model_cache, control_image, edges,
                                                             init_image):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    depth = np.asarray(Image.fromarray(control_image).resize((64, 64)))
    result = smoke_engine.generate(make_request(controls=two_units(depth, edges), init_image=init_image,
                                                strength=0.6))

    pipe = plain_pipeline(StableDiffusionControlNetImg2ImgPipeline, model_cache, ("depth", "canny"))
    expected = pipe(
        PROMPT, negative_prompt=NEGATIVE, image=init_image,
        control_image=[Image.fromarray(depth), Image.fromarray(edges)], strength=0.6,
        width=64, height=64, num_inference_steps=4, guidance_scale=6.0,
        controlnet_conditioning_scale=[0.8, 0.6], control_guidance_start=[0.0, 0.25],
        control_guidance_end=[0.75, 1.0], generator=torch.Generator().manual_seed(321), output_type="np",
    ).images[0]

    assert result.mode == "img2img"
    assert np.array_equal(result.images[0], expected)


def test_inpaint_with_two_controlnets_equals_plain_diffusers(smoke_engine, model_cache, control_image, edges,
                                                             init_image, mask):
    from diffusers import StableDiffusionControlNetInpaintPipeline

    depth = np.asarray(Image.fromarray(control_image).resize((64, 64)))
    result = smoke_engine.generate(make_request(controls=two_units(depth, edges), init_image=init_image, mask=mask,
                                                strength=0.8))

    pipe = plain_pipeline(StableDiffusionControlNetInpaintPipeline, model_cache, ("depth", "canny"))
    expected = pipe(
        PROMPT, negative_prompt=NEGATIVE, image=init_image, mask_image=mask,
        control_image=[Image.fromarray(depth), Image.fromarray(edges)], strength=0.8,
        width=64, height=64, num_inference_steps=4, guidance_scale=6.0,
        controlnet_conditioning_scale=[0.8, 0.6], control_guidance_start=[0.0, 0.25],
        control_guidance_end=[0.75, 1.0], generator=torch.Generator().manual_seed(321), output_type="np",
    ).images[0]

    assert result.mode == "inpaint"
    assert np.array_equal(result.images[0], expected)


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_each_units_scale_start_and_end_change_the_image(smoke_engine, control_image, edges, init_image, mask, mode,
                                                         each_unit_change):
    # Equal to plain diffusers above shows the values arrive in the right places; this that each arrives at all.
    depth = np.asarray(Image.fromarray(control_image).resize((64, 64)))
    request = make_request(controls=two_units(depth, edges), strength=1.0,
                           init_image=None if mode == "txt2img" else init_image,
                           mask=mask if mode == "inpaint" else None)
    changed = each_unit_change(smoke_engine, request)
    assert len(changed) == 6 and all(changed.values()), changed
    # One unit alone goes through its own path to diffusers (not a list of one).
    changed = each_unit_change(smoke_engine, dataclasses.replace(request, controls=request.controls[:1]))
    assert len(changed) == 3 and all(changed.values()), changed


@pytest.mark.parametrize("pipeline, kinds", [
    ("StableDiffusionControlNetInpaintPipeline", ("depth",)),
    ("StableDiffusionInpaintPipeline", ()),
    ("StableDiffusionImg2ImgPipeline", ()),
])
def test_other_modes_equal_plain_diffusers(smoke_engine, model_cache, edges, init_image, mask, pipeline, kinds):
    import diffusers

    inpaint = "Inpaint" in pipeline
    controls = tuple(ControlUnit(kind, edges, scale=0.7) for kind in kinds)
    result = smoke_engine.generate(make_request(controls=controls, init_image=init_image, strength=0.75,
                                                mask=mask if inpaint else None))

    pipe = plain_pipeline(getattr(diffusers, pipeline), model_cache, kinds)
    # The smoke UNet is a plain 4-channel one, not an inpainting UNet: diffusers inpaints with it.
    assert pipe.unet.config.in_channels == 4
    arguments = dict(image=init_image, strength=0.75, width=64, height=64, num_inference_steps=4,
                     guidance_scale=6.0, generator=torch.Generator().manual_seed(321), output_type="np")
    if inpaint:
        arguments.update(mask_image=mask)
    if kinds:
        arguments.update(control_image=Image.fromarray(edges), controlnet_conditioning_scale=0.7)
    expected = pipe(PROMPT, negative_prompt=NEGATIVE, **arguments).images[0]

    assert result.mode == ("inpaint" if inpaint else "img2img")
    assert np.array_equal(result.images[0], expected)


def test_switching_modes_loads_nothing_and_shares_the_weights(smoke_engine, control_image, edges, init_image,
                                                             mask):
    units = two_units(control_image, edges)
    smoke_engine.generate(make_request(controls=units, steps=2))
    loads = list(smoke_engine.loads)

    requests = [
        make_request(controls=units, init_image=init_image, steps=2),
        make_request(controls=units, init_image=init_image, mask=mask, steps=2),
        make_request(controls=units[:1], init_image=init_image, mask=mask, steps=2),
        make_request(steps=2),
        make_request(init_image=init_image, steps=2),
        make_request(init_image=init_image, mask=mask, steps=2),
    ]
    modes = [smoke_engine.generate(request).mode for request in requests]

    assert modes == ["img2img", "inpaint", "inpaint", "txt2img", "img2img", "inpaint"]
    assert smoke_engine.loads == loads
    base = smoke_engine.pipelines.current_base
    for request in requests:
        variant = smoke_engine.pipelines.pipeline(smoke_engine.plan(request))
        assert variant.unet is base.unet and variant.vae is base.vae and variant.text_encoder is base.text_encoder


def test_init_image_strength_and_mask_change_the_result(smoke_engine, init_image, mask):
    def image(**changes):
        fields = {"init_image": init_image, "strength": 0.5, **changes}
        return smoke_engine.generate(make_request(**fields)).images[0]

    first = image()
    other_mask = np.zeros_like(mask)
    other_mask[:, :32] = 1.0
    assert not np.array_equal(first, image(strength=1.0))
    assert not np.array_equal(first, image(init_image=init_image[::-1].copy()))
    assert not np.array_equal(first, image(mask=mask))
    assert not np.array_equal(image(mask=mask), image(mask=other_mask))


def test_progress_counts_the_steps_that_run(smoke_engine, init_image, mask, edges):
    # Image-to-image runs about steps x strength steps (PNDM adds one): the progress shows those.
    for request in (make_request(init_image=init_image, steps=8, strength=0.5),
                    make_request(init_image=init_image, mask=mask, steps=8, strength=0.5,
                                 controls=(ControlUnit("canny", edges),))):
        events = []
        smoke_engine.generate(request, on_progress=events.append)
        total = events[-1].total
        assert 4 <= total < 8
        assert [e.step for e in events] == list(range(1, total + 1))
        assert {e.total for e in events} == {total}
        assert events[-1].eta == 0


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_cancel_stops_without_decoding(smoke_engine, cancel_at_step_two, init_image, mask, edges, mode):
    request = make_request(init_image=init_image, mask=mask if mode == "inpaint" else None, steps=10,
                           strength=1.0, controls=(ControlUnit("canny", edges),))
    steps_seen, decodes = cancel_at_step_two(smoke_engine, request)
    assert steps_seen == [1, 2]
    assert decodes == 0


@pytest.mark.parametrize("size, note", [
    ((128, 128), "init image resized from 128x128 to 64x64"),
    ((32, 48), "init image resized from 48x32 to 64x64 (stretched: another aspect ratio)"),
])
def test_an_init_image_of_another_size_is_resized_saying_so(smoke_engine, init_image, size, note):
    other = np.asarray(Image.fromarray((init_image * 255).astype(np.uint8)).resize(size[::-1]),
                       dtype=np.float32) / 255
    for mask in (None, np.ones(size, dtype=np.float32)):
        result = smoke_engine.generate(make_request(init_image=other, mask=mask, steps=2))
        assert result.images[0].shape == (64, 64, 3)
        assert (note + (", its mask too" if mask is not None else "")) in result.notes


# What is wrong -> (the request's inputs, given the good init image and mask; words of the error).
BAD_INPUTS = {
    "mask without init image": (lambda init, mask: dict(mask=mask), "mask needs an init image"),
    "8-bit init image": (lambda init, mask: dict(init_image=(init * 255).astype(np.uint8)), "floats in 0..1"),
    "RGBA init image": (lambda init, mask: dict(init_image=np.dstack([init, init[..., :1]])), "alpha channel"),
    "grey init image": (lambda init, mask: dict(init_image=init[..., 0]), "must be an HxWx3 array"),
    "init image over 1": (lambda init, mask: dict(init_image=init * 2), "outside 0..1"),
    "NaN init image": (lambda init, mask: dict(init_image=np.full_like(init, np.nan)), "outside 0..1"),
    "RGB mask": (lambda init, mask: dict(init_image=init, mask=np.dstack([mask] * 3)), "one channel"),
    "8-bit mask": (lambda init, mask: dict(init_image=init, mask=(mask * 255).astype(np.uint8)), "floats in 0..1"),
    "mask of another size": (lambda init, mask: dict(init_image=init, mask=mask[:32]),
                             "paint the mask at the init image's size"),
    "empty mask": (lambda init, mask: dict(init_image=init, mask=np.zeros_like(mask)), "mask is empty"),
    "mask under 0.5": (lambda init, mask: dict(init_image=init, mask=np.full_like(mask, 0.4)), "mask is empty"),
    "strength 0": (lambda init, mask: dict(init_image=init, strength=0.0), "Strength 0 is outside"),
    "strength over 1": (lambda init, mask: dict(init_image=init, strength=1.5), "Strength 1.5 is outside"),
    "no step runs": (lambda init, mask: dict(init_image=init, steps=3, strength=0.3), "raise Steps to 4"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_are_refused_before_loading(smoke_engine, init_image, mask, case):
    changes, words = BAD_INPUTS[case]
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match=words) as error:
        smoke_engine.generate(make_request(**changes(init_image, mask)))
    assert error.value.fix  # every refusal says what to do
    assert smoke_engine.loads == loads


def test_mode_switches_keep_the_weights_in_their_precision(model_cache, init_image, mask, edges):
    # from_pipe casts to float32 unless told: a half-precision GPU model would double in memory.
    from engine import Engine

    engine = Engine(model_cache, device="cpu", dtype="bfloat16")
    units = (ControlUnit("canny", edges),)
    for changes in (dict(), dict(init_image=init_image), dict(init_image=init_image, mask=mask)):
        image = engine.generate(make_request(controls=units, steps=2, **changes)).images[0]
        assert image.dtype == np.float32 and np.isfinite(image).all()
    base = engine.pipelines.current_base
    variant = engine.pipelines.pipeline(engine.plan(make_request(controls=units, init_image=init_image, mask=mask)))
    assert {base.unet.dtype, base.vae.dtype, base.text_encoder.dtype, variant.controlnet.dtype} == {torch.bfloat16}
