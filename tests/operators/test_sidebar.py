# SPDX-License-Identifier: GPL-3.0-or-later
"""The Diffusion sidebar draws, in every state, only what Blender has (properties, operators, icons)."""
import threading
import types

import pytest
from ui_recorder import RecordingLayout


def draw_all(ext_module, context):
    import bpy
    calls = []
    for cls in (ext_module("panels.sidebar").classes + ext_module("panels.conditions").classes
                + ext_module("panels.texture").classes):
        if not issubclass(cls, bpy.types.Panel) or (hasattr(cls, "poll") and not cls.poll(context)):
            continue
        panel = types.SimpleNamespace(layout=RecordingLayout(calls), draw_size=getattr(cls, "draw_size", None))
        if hasattr(cls, "draw_header"):
            cls.draw_header(panel, context)
        cls.draw(panel, context)
    return calls


def labels(calls):
    return [c[1] for c in calls if c[0] == "label"]


@pytest.fixture
def settings(empty_scene):
    return empty_scene.scene_diffusion


def test_default_state_offers_generate_and_the_settings(settings, ext_module):
    import bpy
    calls = draw_all(ext_module, bpy.context)
    assert ("operator", "scene_diffusion.generate_image", "", 'RENDER_STILL') in calls
    for name in ("model", "prompt", "negative_prompt", "steps", "guidance", "seed", "scheduler",
                 "mode", "tiling", "memory_offload", "memory_vae_tiling", "memory_attention_slicing"):
        assert ("prop", name) in calls, name
    assert any(text.startswith("Size ") for text in labels(calls))


def test_smoke_model_says_random_weights_and_other_models_show_their_family(settings, ext_module, tmp_path):
    import bpy
    settings.model = "smoke"
    assert any("random weights" in text for text in labels(draw_all(ext_module, bpy.context)))
    settings.model = "smoke-sdxl"
    assert any("random weights" in text for text in labels(draw_all(ext_module, bpy.context)))
    settings.model = "nobody/uncached"
    assert "family unknown until downloaded" in labels(draw_all(ext_module, bpy.context))


def test_a_long_prompt_says_how_many_chunks_it_is_read_in(settings, ext_module):
    import bpy
    settings.prompt = "a (red:1.2) chair"
    assert not any("chunks" in text for text in labels(draw_all(ext_module, bpy.context)))
    settings.prompt = ", ".join(["a red chair in a white room"] * 10)  # 70 words and 9 commas
    assert "About 79 tokens, read as 2 chunks of 75" in labels(draw_all(ext_module, bpy.context))


def test_prompt_builder_shows_the_built_prompt_and_its_parts(settings, ext_module):
    import bpy
    settings.use_prompt_builder = True
    settings.prompt_parts.subject = "a lighthouse on a cliff"
    settings.prompt_parts.lighting = "golden hour"
    calls = draw_all(ext_module, bpy.context)
    assert any("a lighthouse on a cliff" in text and "golden hour" in text for text in labels(calls))
    assert ("prop", "subject") in calls and ("prop", "lighting") in calls
    assert ("operator", "scene_diffusion.apply_prompt_preset", "Apply", 'NONE') in calls


@pytest.mark.parametrize("mode, expected", [
    ('TXT2IMG', set()), ('IMG2IMG', {"init_image", "strength"}), ('INPAINT', {"init_image", "strength", "mask_image"}),
])
def test_mode_shows_its_own_inputs(settings, ext_module, mode, expected):
    import bpy
    settings.mode = mode
    calls = draw_all(ext_module, bpy.context)
    shown = {c[1] for c in calls if c[0] in ("template_ID", "prop")} & {"init_image", "strength", "mask_image"}
    assert shown == expected


def test_lora_list_and_its_active_row(settings, ext_module):
    import bpy
    item = settings.loras.add()
    item.path = "/tmp/style.safetensors"
    calls = draw_all(ext_module, bpy.context)
    assert ("template_list", "loras") in calls
    assert ("prop", "few_step") in calls


def test_embedding_list_shows_the_token_prompts_use(settings, ext_module):
    import bpy
    item = settings.embeddings.add()
    item.path = "/tmp/kettle-style.safetensors"
    sidebar = ext_module("panels.sidebar")
    assert sidebar.embedding_token(item) == "<kettle-style>"  # A1111's naming, as the engine's
    item.token = "kettle-ti"
    assert sidebar.embedding_token(item) == "kettle-ti"
    calls = draw_all(ext_module, bpy.context)
    assert ("template_list", "embeddings") in calls and ("prop", "token") in calls


def test_a_running_job_shows_progress_and_cancel_instead_of_generate(settings, ext_module):
    import bpy
    jobs = ext_module("operators.jobs")
    gate = threading.Event()
    jobs.start(lambda report, cancel: gate.wait(5), "Generate Image", lambda r: "done", blocking=False)
    try:
        calls = draw_all(ext_module, bpy.context)
        assert any(c[0] == "progress" for c in calls)
        assert ("operator", "scene_diffusion.cancel", "", 'CANCEL') in calls
        assert not any(c[0] == "operator" and c[1] == "scene_diffusion.generate_image" for c in calls)
    finally:
        gate.set()
        while jobs.drain() is None:
            pass


def test_resolution_out_of_range_is_said_in_the_panel(settings, ext_module, empty_scene):
    import bpy
    empty_scene.render.resolution_x = 9000
    assert any("over 4096" in text for text in labels(draw_all(ext_module, bpy.context)))


def test_conditions_panel_draws_every_kind_with_its_settings_and_thumbnail(demo_scene_for_panel, ext_module):
    import bpy
    conditions = demo_scene_for_panel.scene_diffusion.conditions
    conditions.enabled_kinds = {identifier for identifier, _, _ in ext_module("properties.scene").KIND_ITEMS}
    conditions.depth_range = 'FIXED'
    bpy.ops.scene_diffusion.capture_conditions(kinds={'DEPTH'})
    calls = draw_all(ext_module, bpy.context)
    for kind in ("DEPTH", "CANNY", "OPENPOSE", "NORMAL", "SEGMENTATION", "LINEART"):
        assert ("prop_enum", "enabled_kinds", kind) in calls
    for name in ("depth_near", "depth_far", "canny_low", "canny_high", "line_thickness", "pose_occlusion",
                 "segment_background", "guidance_start", "guidance_end", "source", "capture_from"):
        assert ("prop", name) in calls, name
    assert any(c[0] == "template_icon" for c in calls)  # the depth capture's thumbnail
    assert ("operator", "scene_diffusion.capture_conditions", "", 'RESTRICT_RENDER_OFF') in calls


def test_pose_override_list_shows_for_an_armature(empty_scene, ext_module):
    import bpy
    bpy.ops.object.armature_add()
    assert bpy.ops.scene_diffusion.pose_override_add() == {'FINISHED'}
    calls = draw_all(ext_module, bpy.context)
    assert ("template_list", "overrides") in calls
    assert bpy.ops.scene_diffusion.pose_override_remove() == {'FINISHED'}
    assert len(bpy.context.object.scene_diffusion_pose.overrides) == 0


@pytest.fixture
def demo_scene_for_panel(empty_scene):
    import math
    import bpy
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.camera_add(location=(0, -6, 2), rotation=(math.radians(80), 0, 0))
    empty_scene.camera = bpy.context.object
    empty_scene.render.resolution_x, empty_scene.render.resolution_y = 96, 64
    return empty_scene


def test_model_field_suggests_models_matching_what_is_typed(settings, ext_module):
    import bpy
    suggest = ext_module("properties.scene")._model_suggestions
    specs = [spec for spec, _ in suggest(settings, bpy.context, "smo")]
    assert specs[:2] == ["smoke", "smoke-sdxl"]  # other tests may have cached more "smo..." models
    assert all("smo" in spec for spec in specs)
    assert any("stable-diffusion-xl" in spec for spec, _ in suggest(settings, bpy.context, "xl"))


@pytest.mark.parametrize("views", ['CAMERA', 'ORBIT', 'CAMERAS'])
def test_the_texture_panel_offers_its_settings_and_buttons(settings, ext_module, views):
    import bpy
    settings.texture.views = views
    calls = draw_all(ext_module, bpy.context)
    for name in ("views", "texture_size", "sequential", "weight_exponent", "discard_angle", "fill",
                 "target_material", "material_mapping", "material_scale"):
        assert ("prop", name) in calls, name
    assert (("prop", "view_count") in calls) == (views == 'ORBIT')
    for operator in ("generate_texture", "show_coverage", "project_image", "generate_material"):
        assert any(c[0] == "operator" and c[1] == f"scene_diffusion.{operator}" for c in calls), operator


@pytest.mark.parametrize("noun, collection, active", [("lora", "loras", "active_lora"),
                                                      ("embedding", "embeddings", "active_embedding")])
def test_file_lists_add_and_remove_rows(settings, noun, collection, active):
    import bpy
    add, remove = getattr(bpy.ops.scene_diffusion, f"{noun}_add"), getattr(bpy.ops.scene_diffusion, f"{noun}_remove")
    assert add(filepath="/tmp/one.safetensors") == {'FINISHED'}
    assert add(filepath="/tmp/two.safetensors") == {'FINISHED'}
    items = getattr(settings, collection)
    assert [item.path for item in items] == ["/tmp/one.safetensors", "/tmp/two.safetensors"]
    assert getattr(settings, active) == 1
    assert remove() == {'FINISHED'}
    assert [item.path for item in items] == ["/tmp/one.safetensors"] and getattr(settings, active) == 0
    assert remove() == {'FINISHED'}
    assert not remove.poll()  # nothing left to remove
