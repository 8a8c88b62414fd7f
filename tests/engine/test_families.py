# SPDX-License-Identifier: GPL-3.0-or-later
"""Model families (SD 1.5, SDXL), the SDXL union ControlNet, default and overridden
ControlNets, and wrong-family ControlNets refused before anything is loaded."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from engine import CONTROL_KINDS, ControlUnit, DiffusionError, Engine, GenerationRequest
from engine.models import DEFAULT_CONTROLNETS, UNION_CONTROL_MODES, resolve_base, resolve_controlnet
from engine.pipelines import Plan
from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline, ensure_smoke_union_controlnet

PROMPT = "a lighthouse on a cliff at dusk"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, width=64, height=64, steps=3, guidance=5.0, seed=77, model="smoke-sdxl")
    fields.update(changes)
    return GenerationRequest(**fields)


def sdxl_union_units(depth, edges) -> tuple[ControlUnit, ControlUnit]:
    return (ControlUnit("depth", depth, scale=0.9, guidance_end=0.8),
            ControlUnit("canny", edges, scale=0.5, guidance_start=0.2))


@pytest.fixture
def depth(control_image) -> np.ndarray:
    return np.asarray(Image.fromarray(control_image).resize((64, 64)))


def test_every_kind_has_a_default_controlnet_in_each_family_and_a_union_mode():
    for family in ("sd15", "sdxl"):
        assert set(DEFAULT_CONTROLNETS[family]) == set(CONTROL_KINDS)
    # xinsir's union model has six control modes.
    assert set(UNION_CONTROL_MODES) == set(CONTROL_KINDS)
    assert all(0 <= mode < 6 for mode in UNION_CONTROL_MODES.values())


def test_sdxl_text_to_image(smoke_engine):
    result = smoke_engine.generate(make_request())
    assert result.family == "sdxl"
    assert result.images[0].shape == (64, 64, 3)
    assert any("random weights" in note for note in result.notes)


def test_several_kinds_share_one_union_model_and_equal_plain_diffusers(smoke_engine, model_cache, depth, edges):
    from diffusers import ControlNetUnionModel, StableDiffusionXLControlNetUnionPipeline

    request = make_request(controls=sdxl_union_units(depth, edges))
    result = smoke_engine.generate(request)

    union_path = ensure_smoke_union_controlnet(model_cache)
    pipe = smoke_engine.pipelines.pipeline(smoke_engine.plan(request))
    assert type(pipe.controlnet) is ControlNetUnionModel  # one model, two modes: not a MultiControlNet
    assert smoke_engine.loads.count(union_path) == 1
    assert result.controlnets == ("smoke-controlnet-union", "smoke-controlnet-union")

    plain = StableDiffusionXLControlNetUnionPipeline.from_pretrained(
        ensure_smoke_pipeline(model_cache, "sdxl"), controlnet=ControlNetUnionModel.from_pretrained(union_path))
    plain.set_progress_bar_config(disable=True)
    expected = plain(
        PROMPT, control_image=[Image.fromarray(depth), Image.fromarray(edges)], control_mode=[1, 3],
        width=64, height=64, num_inference_steps=3, guidance_scale=5.0,
        controlnet_conditioning_scale=[0.9, 0.5], control_guidance_start=[0.0, 0.2],
        control_guidance_end=[0.8, 1.0], generator=torch.Generator().manual_seed(77), output_type="np",
    ).images[0]
    assert np.array_equal(result.images[0], expected)


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_sdxl_union_img2img_and_inpaint_equal_plain_diffusers(smoke_engine, model_cache, depth, edges, init_image,
                                                              mask, mode):
    import diffusers
    from diffusers import ControlNetUnionModel

    inpaint = mode == "inpaint"
    result = smoke_engine.generate(make_request(controls=sdxl_union_units(depth, edges), init_image=init_image,
                                                strength=0.8, mask=mask if inpaint else None))

    cls = getattr(diffusers, f"StableDiffusionXLControlNetUnion{'Inpaint' if inpaint else 'Img2Img'}Pipeline")
    plain = cls.from_pretrained(ensure_smoke_pipeline(model_cache, "sdxl"),
                                controlnet=ControlNetUnionModel.from_pretrained(ensure_smoke_union_controlnet(model_cache)))
    plain.set_progress_bar_config(disable=True)
    expected = plain(
        PROMPT, image=init_image, **(dict(mask_image=mask) if inpaint else {}), strength=0.8,
        control_image=[Image.fromarray(depth), Image.fromarray(edges)], control_mode=[1, 3],
        width=64, height=64, num_inference_steps=3, guidance_scale=5.0,
        controlnet_conditioning_scale=[0.9, 0.5], control_guidance_start=[0.0, 0.2],
        control_guidance_end=[0.8, 1.0], generator=torch.Generator().manual_seed(77), output_type="np",
    ).images[0]
    assert result.family == "sdxl" and result.mode == mode
    assert np.array_equal(result.images[0], expected)


def test_each_union_units_scale_start_and_end_change_the_image(smoke_engine, depth, edges, each_unit_change):
    # each_unit_change's windows: unit 0 acts on [0, 0.75], unit 1 on [0.25, 1].
    units = (ControlUnit("depth", depth, scale=0.9, guidance_end=0.75),
             ControlUnit("canny", edges, scale=0.5, guidance_start=0.25))
    changed = each_unit_change(smoke_engine, make_request(controls=units, steps=4))
    assert len(changed) == 6 and all(changed.values()), changed


def test_the_kind_picks_the_union_control_mode(smoke_engine, depth):
    as_depth = smoke_engine.generate(make_request(controls=(ControlUnit("depth", depth),))).images[0]
    as_pose = smoke_engine.generate(make_request(controls=(ControlUnit("openpose", depth),))).images[0]
    assert not np.array_equal(as_depth, as_pose)


def test_sdxl_img2img_with_a_single_kind_controlnet_equals_plain_diffusers(smoke_engine, model_cache, edges,
                                                                           init_image):
    from diffusers import ControlNetModel, StableDiffusionXLControlNetImg2ImgPipeline

    canny_path = ensure_smoke_controlnet(model_cache, "sdxl", "canny")
    result = smoke_engine.generate(make_request(
        controls=(ControlUnit("canny", edges, scale=0.7, model=canny_path),), init_image=init_image, strength=0.7))

    plain = StableDiffusionXLControlNetImg2ImgPipeline.from_pretrained(
        ensure_smoke_pipeline(model_cache, "sdxl"), controlnet=ControlNetModel.from_pretrained(canny_path))
    plain.set_progress_bar_config(disable=True)
    expected = plain(
        PROMPT, image=init_image, control_image=Image.fromarray(edges), strength=0.7, width=64, height=64,
        num_inference_steps=3, guidance_scale=5.0, controlnet_conditioning_scale=0.7,
        generator=torch.Generator().manual_seed(77), output_type="np",
    ).images[0]
    assert result.family == "sdxl" and result.mode == "img2img"
    assert np.array_equal(result.images[0], expected)


def test_sdxl_mode_switches_load_nothing(smoke_engine, depth, edges, init_image, mask):
    units = sdxl_union_units(depth, edges)
    smoke_engine.generate(make_request(controls=units, steps=2))
    loads = list(smoke_engine.loads)
    for changes in (dict(init_image=init_image), dict(init_image=init_image, mask=mask),
                    dict(controls=()), dict(controls=(), init_image=init_image, mask=mask)):
        fields = {"controls": units, "steps": 2, **changes}
        assert smoke_engine.generate(make_request(**fields)).images[0].shape == (64, 64, 3)
    assert smoke_engine.loads == loads


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_sdxl_union_progress_and_cancel_without_decoding(smoke_engine, cancel_at_step_two, depth, edges,
                                                          init_image, mask, mode):
    request = make_request(controls=sdxl_union_units(depth, edges), steps=6, strength=1.0,
                           init_image=None if mode == "txt2img" else init_image,
                           mask=mask if mode == "inpaint" else None)
    events = []
    smoke_engine.generate(request, on_progress=events.append)
    assert [e.step for e in events] == list(range(1, 7))
    steps_seen, decodes = cancel_at_step_two(smoke_engine, request)
    assert steps_seen == [1, 2]
    assert decodes == 0


def test_two_different_union_models_run_together(smoke_engine, model_cache, depth, edges, tmp_path):
    other_union = str(tmp_path / "another-union")
    shutil.copytree(ensure_smoke_union_controlnet(model_cache), other_union)
    units = (ControlUnit("depth", depth), ControlUnit("canny", edges, model=other_union))
    result = smoke_engine.generate(make_request(controls=units))
    assert result.controlnets == ("smoke-controlnet-union", other_union)
    assert other_union in smoke_engine.loads


def sd15_model(cache):
    return ensure_smoke_pipeline(cache, "sd15")


@pytest.mark.parametrize("base, controlnet, words", [
    ("smoke", lambda cache: ensure_smoke_controlnet(cache, "sdxl", "depth"),
     "is for SDXL but the model smoke is SD 1.5"),
    ("smoke", ensure_smoke_union_controlnet, "is for SDXL but the model smoke is SD 1.5"),
    ("smoke-sdxl", lambda cache: ensure_smoke_controlnet(cache, "sd15", "depth"), "is for SD 1.5 but"),
])
def test_a_wrong_family_controlnet_is_refused_before_loading(model_cache, depth, base, controlnet, words):
    engine = Engine(model_cache)
    request = make_request(model=base, controls=(ControlUnit("depth", depth, model=controlnet(model_cache)),))
    with pytest.raises(DiffusionError, match=words) as error:
        engine.generate(request)
    assert "pick a" in error.value.fix
    assert engine.loads == []
    assert engine.pipelines.current_base is None


def test_no_plan_holds_a_wrong_family_controlnet_whatever_the_mode(model_cache):
    base = resolve_base("smoke", model_cache, allow_online=False)
    union = resolve_controlnet(ensure_smoke_union_controlnet(model_cache), "depth", base, model_cache, False)
    for mode in ("txt2img", "img2img", "inpaint"):
        with pytest.raises(DiffusionError, match="is for SDXL"):
            Plan(base, mode, (union,), ("depth",))


def test_a_kind_the_union_model_has_no_mode_for_is_refused(model_cache, depth):
    engine = Engine(model_cache)
    with pytest.raises(DiffusionError, match="has no control mode for 'tile'") as error:
        engine.generate(make_request(controls=(ControlUnit("tile", depth),)))
    assert "single-kind ControlNet for tile" in error.value.fix
    assert engine.loads == []


def test_union_and_single_kind_controlnets_cannot_mix(model_cache, depth, edges):
    engine = Engine(model_cache)
    units = (ControlUnit("depth", depth),  # the union model, by default
             ControlUnit("canny", edges, model=ensure_smoke_controlnet(model_cache, "sdxl", "canny")))
    with pytest.raises(DiffusionError, match="is a union model and the canny ControlNet .* is not"):
        engine.generate(make_request(controls=units))
    assert engine.loads == []


def test_overrides_pick_the_controlnet_per_kind_and_family(smoke_engine, model_cache, depth, edges):
    # A local folder is not the `smoke` spec: it uses the real tables and the overrides.
    depth_path = ensure_smoke_controlnet(model_cache, "sd15", "depth")
    canny_path = ensure_smoke_controlnet(model_cache, "sd15", "canny")
    overrides = {"depth": depth_path, "sd15:canny": canny_path, "canny": "nobody/not-this-one",
                 "sdxl:depth": "nobody/not-for-sd15", "openpose": ""}
    request = make_request(model=sd15_model(model_cache), controlnet_overrides=overrides,
                           controls=(ControlUnit("depth", depth), ControlUnit("canny", edges)))
    result = smoke_engine.generate(request)
    assert result.family == "sd15"
    assert result.controlnets == (depth_path, canny_path)

    # No override for openpose (an empty one counts as none): the family default, not cached here.
    with pytest.raises(DiffusionError, match="lllyasviel/control_v11p_sd15_openpose is not in the local cache"):
        smoke_engine.generate(make_request(model=sd15_model(model_cache), controlnet_overrides=overrides,
                                           controls=(ControlUnit("openpose", depth),)))


def test_the_family_comes_from_the_config_not_the_name(model_cache, tmp_path):
    misnamed_base = tmp_path / "stable-diffusion-v1-5"
    misnamed_base.symlink_to(ensure_smoke_pipeline(model_cache, "sdxl"))
    misnamed_controlnet = tmp_path / "control_v11p_sd15_canny"
    misnamed_controlnet.symlink_to(ensure_smoke_controlnet(model_cache, "sdxl", "canny"))

    base = resolve_base(str(misnamed_base), model_cache, allow_online=False)
    controlnet = resolve_controlnet(str(misnamed_controlnet), "canny", base, model_cache, allow_online=False)
    assert base.family == controlnet.family == "sdxl"
    assert not controlnet.union


def test_a_union_model_is_recognised_by_its_weights_when_its_config_does_not_say(model_cache, tmp_path):
    folder = tmp_path / "union-with-a-plain-config"
    shutil.copytree(ensure_smoke_union_controlnet(model_cache), folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("num_control_type")
    config["_class_name"] = "ControlNetModel"
    config_path.write_text(json.dumps(config))

    base = resolve_base("smoke-sdxl", model_cache, allow_online=False)
    controlnet = resolve_controlnet(str(folder), "depth", base, model_cache, allow_online=False)
    assert controlnet.union and controlnet.control_types == 6
    assert os.path.basename(controlnet.path) == "union-with-a-plain-config"
