# SPDX-License-Identifier: GPL-3.0-or-later
"""Import Deforum Settings: a settings file in Deforum's format sets the Animation panel,
the prompts become a Text, and the fields not supported are listed."""
import json

from test_generate_image import datablocks
from test_texturing import message, run

DEFORUM = {
    "W": 320, "H": 192, "seed": 77, "steps": 30, "scale": 6.5, "max_frames": 48, "sampler": "Euler a",
    "strength_schedule": "0: (0.6), 24: (0.4)", "translation_z": "0: (2.5)", "fov_schedule": "0: (60)",
    "seed_behavior": "fixed", "color_coherence": "Match Frame 0 HSV", "diffusion_cadence": "3",
    "use_depth_warping": True, "prompts": {"0": "a misty forest", "24": "a desert at dusk --neg people"},
}


def test_a_deforum_file_sets_the_panel_and_lists_what_is_not_supported(empty_scene, tmp_path):
    import bpy
    path = tmp_path / "deforum_settings.txt"
    path.write_text(json.dumps(DEFORUM))
    assert run("import_deforum_settings", filepath=str(path)) == {'FINISHED'}
    anim = empty_scene.scene_diffusion.animation
    assert anim.strength_schedule == "0: (0.6), 24: (0.4)" and anim.translation_z == "0: (2.5)"
    assert anim.fov_schedule == "0: (60)" and anim.seed_behavior == 'FIXED' and anim.color_coherence == 'HSV'
    assert anim.diffusion_cadence == 3 and (anim.use_scene_range, anim.frame_start, anim.frame_end) == (False, 1, 48)
    settings = empty_scene.scene_diffusion
    assert (settings.seed, settings.steps, settings.guidance) == (77, 30, 6.5)
    assert (empty_scene.render.resolution_x, empty_scene.render.resolution_y) == (320, 192)
    assert json.loads(anim.prompts.as_string()) == DEFORUM["prompts"]
    assert settings.scheduler == 'euler_a'  # "Euler a"
    assert "not supported: use_depth_warping" in message()
    assert bpy.data.texts[anim.prompts.name] == anim.prompts


def test_a_file_that_is_not_deforums_changes_nothing(empty_scene, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("strength 0.6")
    before = datablocks()
    assert run("import_deforum_settings", filepath=str(path)) == {'CANCELLED'}
    assert "not JSON" in message()
    assert datablocks() == before
