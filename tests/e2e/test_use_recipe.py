# SPDX-License-Identifier: GPL-3.0-or-later
"""Use These Settings: every setting put back from a result's recipe, so generating again
makes the same pixels; older recipes, recipes from newer versions, and missing files."""
import json

import numpy as np
import pytest

from test_generate_image import generate


def pixels(ext_module, image):
    return ext_module("scene.images").get_pixels(image)[..., :3]


def test_generating_again_from_a_recipe_gives_the_same_pixels(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    settings.prompt, settings.steps, settings.guidance, settings.randomize_seed = "a brass lantern", 3, 4.5, True
    settings.conditions.enabled_kinds = {'DEPTH', 'CANNY'}
    settings.conditions.canny.scale = 0.6
    settings.scheduler = 'euler'
    _, made = generate(demo_scene)
    first = made[0]
    before = ext_module("scene.settings").snapshot(settings)
    # The person moves on: other prompt, conditions, steps, a random seed.
    settings.prompt, settings.steps, settings.guidance = "a red bicycle", 2, 7.0
    settings.conditions.enabled_kinds = {'DEPTH'}
    settings.conditions.canny.scale = 1.0
    settings.scheduler = 'default'
    assert bpy.ops.scene_diffusion.use_recipe(image=first.name) == {'FINISHED'}
    after = ext_module("scene.settings").snapshot(settings)
    assert settings.randomize_seed is False and settings.seed == first["scene_diffusion"]["seed"]
    assert {k: v for k, v in after.items() if k not in ("seed", "randomize_seed")} == \
        {k: v for k, v in before.items() if k not in ("seed", "randomize_seed")}
    _, again = generate(demo_scene)
    np.testing.assert_array_equal(pixels(ext_module, again[0]), pixels(ext_module, first))


def test_an_older_recipe_gives_back_what_it_names(demo_scene, ext_module):
    import bpy
    image = bpy.data.images.new("Old result", 8, 8)
    image["scene_diffusion"] = {"kind": "image", "prompt": "a clay teapot", "negative_prompt": "blurry",
                                "model": "smoke", "steps": 5, "guidance": 3.5, "scheduler": "ddim", "seed": 99,
                                "loras": [{"path": "/nowhere/style.safetensors", "weight": 0.7, "few_step": "auto"}]}
    assert bpy.ops.scene_diffusion.use_recipe(image=image.name) == {'FINISHED'}
    settings = demo_scene.scene_diffusion
    assert (settings.prompt, settings.negative_prompt, settings.steps, settings.guidance, settings.scheduler,
            settings.seed, settings.randomize_seed) == ("a clay teapot", "blurry", 5, 3.5, "ddim", 99, False)
    assert [(item.path, item.weight) for item in settings.loras] == [("/nowhere/style.safetensors",
                                                                      settings.loras[0].weight)]
    message = ext_module("operators.recipes").missing_files(settings)
    assert message == ["the LoRA /nowhere/style.safetensors is not on this computer: copy it there, or pick it "
                       "again in the LoRAs list"]


def test_a_recipe_from_a_newer_version_uses_what_is_known(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    snapshot = ext_module("scene.settings").snapshot(settings)
    snapshot["prompt"] = "a glass vase"
    snapshot["regional_magic"] = 3
    snapshot["texture"]["future_knob"] = True
    image = bpy.data.images.new("Newer result", 8, 8)
    image["scene_diffusion"] = {"kind": "image", "prompt": "a glass vase", "seed": 5,
                                "settings": json.dumps(snapshot)}
    notes = ext_module("operators.recipes").apply_recipe(demo_scene, image["scene_diffusion"].to_dict())
    assert settings.prompt == "a glass vase" and settings.seed == 5
    assert sorted(notes) == ["unknown setting 'regional_magic' (from a newer version?) skipped",
                             "unknown setting 'texture.future_knob' (from a newer version?) skipped"]


def test_an_image_without_a_recipe_is_refused_and_nothing_changes(demo_scene):
    import bpy
    settings = demo_scene.scene_diffusion
    prompt = settings.prompt
    image = bpy.data.images.new("A photo", 8, 8)
    with pytest.raises(RuntimeError, match="has no Scene Diffusion recipe"):
        bpy.ops.scene_diffusion.use_recipe(image=image.name)
    assert settings.prompt == prompt


def test_the_history_lists_results_newest_first_and_offers_their_settings(demo_scene, ext_module):
    import types

    import bpy
    from ui_recorder import RecordingLayout

    history = ext_module("panels.history")
    bpy.data.images.new("A photo", 8, 8)  # the person's: not a result
    _, first = generate(demo_scene)
    _, second = generate(demo_scene)
    shown = types.SimpleNamespace(bitflag_filter_item=1 << 30)  # what Blender gives a UIList
    flags, order = history.SCENE_DIFFUSION_UL_history.filter_items(shown, bpy.context, bpy.data, "images")
    listed = [image.name for image, flag in zip(bpy.data.images, flags) if flag]
    assert sorted(listed) == sorted([first[0].name, second[0].name])  # not the photo, not the captures
    by_position = {order[i]: bpy.data.images[i].name for i in range(len(order)) if flags[i]}
    assert [by_position[p] for p in sorted(by_position)] == [second[0].name, first[0].name]

    bpy.context.window_manager.scene_diffusion_history = list(bpy.data.images).index(first[0])
    calls = []
    history.SCENE_DIFFUSION_PT_history.draw(types.SimpleNamespace(layout=RecordingLayout(calls)), bpy.context)
    assert ("template_list", "images") in calls
    assert ("operator", "scene_diffusion.use_recipe", "", 'RECOVER_LAST') in calls
    assert any(call[0] == "label" and call[1].startswith(f"Seed {first[0]['scene_diffusion']['seed']}")
               for call in calls)


def test_variations_are_the_seeds_after_a_result_in_one_job(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    settings.prompt, settings.randomize_seed, settings.seed = "a tin robot", False, 40
    _, made = generate(demo_scene)
    settings.prompt, settings.seed = "something else", 3
    before = set(bpy.data.images)
    assert bpy.ops.scene_diffusion.recipe_variations(image=made[0].name, count=3) == {'FINISHED'}
    results = [image for image in set(bpy.data.images) - before if image["scene_diffusion"]["kind"] == "image"]
    recipes = sorted((image["scene_diffusion"].to_dict() for image in results), key=lambda recipe: recipe["seed"])
    assert [recipe["seed"] for recipe in recipes] == [41, 42, 43]
    assert {recipe["prompt"] for recipe in recipes} == {"a tin robot"}
    assert "Generated 3 variations" in ext_module("operators.jobs").last_outcome().message
    # Each is the image Generate Image makes from that seed.
    settings.seed = 42
    _, single = generate(demo_scene)
    same = next(image for image in results if image["scene_diffusion"]["seed"] == 42)
    np.testing.assert_array_equal(pixels(ext_module, single[0]), pixels(ext_module, same))


def test_variations_refused_leave_the_panel_as_it_was(demo_scene, ext_module):
    import bpy
    settings = demo_scene.scene_diffusion
    _, made = generate(demo_scene)
    settings.prompt = "what I was writing"
    demo_scene.camera = None  # Generate Image refuses without a camera
    with pytest.raises(RuntimeError):
        bpy.ops.scene_diffusion.recipe_variations(image=made[0].name, count=2)
    assert settings.prompt == "what I was writing"


def test_a_result_appended_from_another_file_brings_its_settings(demo_scene, ext_module, tmp_path):
    import bpy
    settings = demo_scene.scene_diffusion
    settings.prompt, settings.steps, settings.randomize_seed, settings.seed = "a stone bridge", 3, False, 12
    _, made = generate(demo_scene)
    name = made[0].name
    other = str(tmp_path / "other.blend")
    bpy.ops.wm.save_as_mainfile(filepath=other)
    bpy.ops.wm.read_homefile(use_empty=True)  # another file, with the panel at its defaults
    with bpy.data.libraries.load(other, link=False) as (source, loaded):
        loaded.images = [name]
    assert bpy.ops.scene_diffusion.use_recipe(image=name) == {'FINISHED'}
    restored = bpy.context.scene.scene_diffusion
    assert (restored.prompt, restored.steps, restored.seed) == ("a stone bridge", 3, 12)
