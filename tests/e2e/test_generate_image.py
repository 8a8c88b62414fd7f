# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image end to end: real Blender, real depth capture, real diffusers (smoke model)."""
import numpy as np
import pytest


def new_images(before, kind="image"):
    """Images made since `before` whose recipe is of `kind` (generated images; captures are others)."""
    import bpy
    return [image for image in bpy.data.images if image not in before
            and image.get("scene_diffusion", {}).get("kind") == kind]


def generate(scene):
    """Press Generate Image; an operator that reports an error raises RuntimeError in Python."""
    import bpy
    before = set(bpy.data.images)
    try:
        result = bpy.ops.scene_diffusion.generate_image()
    except RuntimeError:
        result = {'CANCELLED'}
    return result, new_images(before)


def test_generate_image_writes_a_new_datablock_with_its_recipe(demo_scene, ext_module, tmp_path):
    import bpy

    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    assert len(made) == 1
    image = made[0]
    assert tuple(image.size) == (96, 64)
    pixels = ext_module("scene.images").get_pixels(image)
    assert pixels[..., :3].std() > 0.01  # an image, not a blank
    recipe = image["scene_diffusion"].to_dict()
    assert recipe["kind"] == "image"
    assert recipe["prompt"] == "a wooden crate on a stone floor"
    assert recipe["seed"] == 7
    assert recipe["model"] == "smoke"
    assert recipe["steps"] == 2
    assert recipe["guidance"] == pytest.approx(7.5)
    assert recipe["frame"] == demo_scene.frame_current
    assert recipe["negative_prompt"] == demo_scene.scene_diffusion.negative_prompt
    assert [c["kind"] for c in recipe["controls"]] == ["depth"]

    # Packed: it survives saving and reopening the file.
    name = image.name
    path = str(tmp_path / "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    reopened = bpy.data.images[name]
    assert reopened.packed_file is not None
    assert reopened["scene_diffusion"]["seed"] == 7
    assert np.abs(ext_module("scene.images").get_pixels(reopened) - pixels).max() < 1 / 255 + 1e-6


def test_generating_again_never_overwrites(demo_scene, ext_module):
    _, first = generate(demo_scene)
    first_pixels = ext_module("scene.images").get_pixels(first[0])
    demo_scene.scene_diffusion.seed = 8
    _, second = generate(demo_scene)
    assert len(second) == 1 and second[0] != first[0]
    assert np.array_equal(ext_module("scene.images").get_pixels(first[0]), first_pixels)
    assert not np.array_equal(ext_module("scene.images").get_pixels(second[0]), first_pixels)


def test_same_settings_give_the_same_image(demo_scene, ext_module):
    _, first = generate(demo_scene)
    _, second = generate(demo_scene)
    images = ext_module("scene.images")
    assert np.array_equal(images.get_pixels(first[0]), images.get_pixels(second[0]))


def test_random_seed_is_drawn_and_recorded(demo_scene):
    demo_scene.scene_diffusion.randomize_seed = True
    _, made = generate(demo_scene)
    assert made[0]["scene_diffusion"]["seed"] == demo_scene.scene_diffusion.seed


def test_size_is_rounded_to_a_multiple_of_8_and_said(demo_scene, ext_module):
    demo_scene.render.resolution_x, demo_scene.render.resolution_y = 100, 61
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    assert tuple(made[0].size) == (104, 64)
    assert "rounded to a multiple of 8" in ext_module("operators.jobs").last_outcome().message


def assert_refused(scene, ext_module, words):
    import bpy
    settings = scene.scene_diffusion
    settings.randomize_seed = True
    seed = settings.seed
    objects = set(bpy.data.objects)
    result, made = generate(scene)
    assert result == {'CANCELLED'}
    assert made == []
    assert settings.seed == seed  # nothing changed, not even the seed
    assert set(bpy.data.objects) == objects
    message = ext_module("operators.jobs").last_outcome().message
    assert words in message, message
    return message


def test_no_camera_is_refused_with_what_to_do(demo_scene, ext_module):
    demo_scene.camera = None
    message = assert_refused(demo_scene, ext_module, "No active camera")
    assert "Shift+A > Camera" in message


@pytest.mark.parametrize("size, words", [((5000, 600), "over 4096"), ((600, 40), "under 64")])
def test_resolution_out_of_range_is_refused(demo_scene, ext_module, size, words):
    demo_scene.render.resolution_x, demo_scene.render.resolution_y = size
    assert_refused(demo_scene, ext_module, words)


def test_nothing_in_view_is_refused(demo_scene, ext_module):
    import math
    demo_scene.camera.rotation_euler = (math.radians(-80), 0, 0)  # looking up at the empty sky
    assert_refused(demo_scene, ext_module, "Nothing is in the camera's view")


def test_uncached_model_with_online_access_off_is_refused(demo_scene, ext_module):
    import bpy
    assert not bpy.app.online_access
    demo_scene.scene_diffusion.model = "someone/not-downloaded-model"
    message = assert_refused(demo_scene, ext_module, "is not in the local cache")
    assert "online access is off" in message
