# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image with the sidebar's engine settings: modes, LoRAs, scheduler, seamless, builder."""
import os
import sys

import numpy as np
import pytest

from test_generate_image import generate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "engine"))


def pixels(ext_module, image):
    return ext_module("scene.images").get_pixels(image)[..., :3]


def a_picture(ext_module, name="photo", size=(96, 64)):
    """An image datablock the person made (a gradient), to start from."""
    import bpy
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width, y / height, np.full_like(x, 0.5, dtype=float)], axis=2).astype(np.float32)
    image = bpy.data.images.new(name, width, height)
    ext_module("scene.images").set_pixels(image, rgb)
    return image, rgb


def test_image_to_image_starts_from_the_picked_image_and_leaves_it_alone(demo_scene, ext_module):
    settings = demo_scene.scene_diffusion
    _, txt2img = generate(demo_scene)
    photo, rgb = a_picture(ext_module)
    settings.mode = 'IMG2IMG'
    settings.init_image = photo
    settings.strength = 0.5
    settings.steps = 4
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    recipe = made[0]["scene_diffusion"].to_dict()
    assert recipe["mode"] == "img2img" and recipe["strength"] == pytest.approx(0.5)
    assert not np.array_equal(pixels(ext_module, made[0]), pixels(ext_module, txt2img[0]))
    assert np.allclose(pixels(ext_module, photo), rgb, atol=1 / 255)  # the person's image is untouched


def test_inpainting_keeps_the_unmasked_part(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    photo, rgb = a_picture(ext_module)
    mask = bpy.data.images.new("mask", 96, 64)
    mask_rgb = np.zeros((64, 96, 3), np.float32)
    mask_rgb[:, 48:] = 1.0  # redraw the right half
    ext_module("scene.images").set_pixels(mask, mask_rgb)
    settings.mode, settings.init_image, settings.mask_image = 'INPAINT', photo, mask
    settings.strength, settings.steps = 1.0, 2
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    out = pixels(ext_module, made[0])
    assert made[0]["scene_diffusion"]["mode"] == "inpaint"
    # The smoke VAE does not reproduce an image exactly, but the kept half stays far closer to it.
    kept, redrawn = np.abs(out - rgb)[:, :40].mean(), np.abs(out - rgb)[:, 56:].mean()
    assert kept < redrawn


@pytest.mark.parametrize("mode, words", [('IMG2IMG', "needs an image to start from"), ('INPAINT', "needs an image")])
def test_modes_without_their_image_are_refused(demo_scene, ext_module, mode, words):
    demo_scene.scene_diffusion.mode = mode
    result, made = generate(demo_scene)
    assert result == {'CANCELLED'} and made == []
    assert words in ext_module("operators.jobs").last_outcome().message


def test_inpainting_with_an_empty_mask_is_refused_with_what_to_do(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    photo, _ = a_picture(ext_module)
    settings.mode, settings.init_image = 'INPAINT', photo
    settings.mask_image = bpy.data.images.new("blank mask", 96, 64)
    ext_module("scene.images").set_pixels(settings.mask_image, np.zeros((64, 96, 3), np.float32))
    result, made = generate(demo_scene)
    assert result == {'CANCELLED'} and made == []
    assert "mask is empty" in ext_module("operators.jobs").last_outcome().message


def test_a_lora_from_the_list_changes_the_image_and_is_recorded(demo_scene, ext_module, model_cache, tmp_path):
    from checkpoint_files import make_lora
    from engine.smoke_model import ensure_smoke_pipeline

    settings = demo_scene.scene_diffusion
    _, plain = generate(demo_scene)
    path = make_lora(ensure_smoke_pipeline(model_cache, "sd15"), str(tmp_path / "style.safetensors"), seed=3)
    item = settings.loras.add()
    item.path, item.weight = path, 0.8
    _, with_lora = generate(demo_scene)
    assert not np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, with_lora[0]))
    assert with_lora[0]["scene_diffusion"]["loras"][0]["weight"] == pytest.approx(0.8)
    item.enabled = False
    _, off = generate(demo_scene)
    assert np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, off[0]))


def test_scheduler_and_seamless_reach_the_engine(demo_scene, ext_module):
    settings = demo_scene.scene_diffusion
    _, plain = generate(demo_scene)
    settings.scheduler = 'euler_a'
    _, euler = generate(demo_scene)
    assert euler[0]["scene_diffusion"]["scheduler"] == "euler_a"
    assert not np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, euler[0]))
    settings.scheduler, settings.tiling = 'default', 'X'
    _, seamless = generate(demo_scene)
    assert seamless[0]["scene_diffusion"]["tiling"] == "x"
    assert not np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, seamless[0]))


def test_prompt_builder_and_preset_make_the_recorded_prompt(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    settings.prompt_parts.subject = "an old lighthouse"
    settings.prompt_parts.style = "my own style"
    settings.prompt_preset = "photograph"
    assert bpy.ops.scene_diffusion.apply_prompt_preset() == {'FINISHED'}
    assert settings.use_prompt_builder
    assert settings.prompt_parts.style == "my own style"  # what was typed stays
    assert settings.prompt_parts.medium  # an empty part was filled
    _, made = generate(demo_scene)
    prompt = made[0]["scene_diffusion"]["prompt"]
    assert prompt.startswith("an old lighthouse") and "my own style" in prompt


def test_preset_keeps_a_negative_prompt_the_person_wrote(demo_scene):
    import bpy
    settings = demo_scene.scene_diffusion
    settings.negative_prompt = "no cats please"
    bpy.ops.scene_diffusion.apply_prompt_preset()
    assert settings.negative_prompt == "no cats please"


def test_step_previews_go_to_one_preview_image_not_the_persons(empty_scene, ext_module):
    import bpy
    jobs = ext_module("operators.jobs")
    progress = ext_module("engine.requests").Progress
    theirs = bpy.data.images.new("Diffusion Preview", 4, 4)  # the person's image of that name
    previews = [np.full((8, 12, 3), value, np.float32) for value in (0.2, 0.7)]
    import threading
    gate, reported = threading.Event(), threading.Event()

    def work(report, cancel):
        report(progress(step=1, total=2, elapsed=0.1, eta=0.1, preview=previews[0]))
        report(progress(step=2, total=2, elapsed=0.2, eta=0.0, preview=previews[1]))
        reported.set()
        gate.wait(5)
        return None

    jobs.start(work, "Previews", lambda result: "done", blocking=False)
    assert reported.wait(10)
    jobs.drain()
    ours = [i for i in bpy.data.images if i.get("scene_diffusion", {}).get("kind") == "preview"]
    assert len(ours) == 1 and ours[0] != theirs
    assert tuple(ours[0].size) == (12, 8)
    assert np.allclose(pixels(ext_module, ours[0]), 0.7, atol=1 / 255)  # the newest one
    assert tuple(theirs.size) == (4, 4)
    gate.set()
    assert jobs.wait(10)
    assert jobs.drain() is not None


def test_an_embedding_from_the_list_changes_the_image_and_is_recorded(demo_scene, ext_module, model_cache, tmp_path):
    """A token in the prompt is the embedding's learned vector once the embedding is listed;
    unticked, the same prompt reads the token as plain text again."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig

    from engine.smoke_model import ensure_smoke_pipeline

    settings = demo_scene.scene_diffusion
    settings.prompt = "a <kettle-style> crate"
    _, plain = generate(demo_scene)
    config = CLIPTextConfig.from_pretrained(ensure_smoke_pipeline(model_cache, "sd15"), subfolder="text_encoder")
    path = str(tmp_path / "kettle-style.safetensors")
    save_file({"<kettle-style>": 3 * torch.randn(1, config.hidden_size, generator=torch.Generator().manual_seed(1))},
              path)
    item = settings.embeddings.add()
    item.path = path
    _, with_embedding = generate(demo_scene)
    assert not np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, with_embedding[0]))
    assert with_embedding[0]["scene_diffusion"]["embeddings"][0]["path"] == path
    item.enabled = False
    _, off = generate(demo_scene)
    assert np.array_equal(pixels(ext_module, plain[0]), pixels(ext_module, off[0]))
