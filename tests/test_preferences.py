# SPDX-License-Identifier: GPL-3.0-or-later
"""The preferences in real Blender: model folder and what the dependency section draws."""
import os
import sys

import pytest
from ui_recorder import RecordingLayout

PACKAGE = "bl_ext.dev.scene_diffusion"


@pytest.fixture
def prefs(extension):
    import bpy
    addon_prefs = bpy.context.preferences.addons[PACKAGE].preferences
    saved = addon_prefs.model_cache_dir, addon_prefs.wheel_dir
    yield addon_prefs
    addon_prefs.model_cache_dir, addon_prefs.wheel_dir = saved
    bpy.context.preferences.system.use_online_access = False


def _draw(prefs) -> list:
    import bpy
    calls: list = []
    sys.modules[f"{PACKAGE}.preferences"].draw_preferences(RecordingLayout(calls), prefs, bpy.context)
    return calls


def test_draw_lists_each_package_with_its_version_and_the_install_button(prefs):
    import bpy
    deps = sys.modules[f"{PACKAGE}.dependencies"]
    calls = _draw(prefs)
    labels = [call[1:] for call in calls if call[0] == "label"]
    for status in deps.statuses():
        assert (status.name, 'CHECKMARK' if status.present else 'ERROR') in labels
        assert (status.version or "missing", 'NONE') in labels
    operators = [call for call in calls if call[0] == "operator"]
    assert [call[1] for call in operators] == ["scene_diffusion.install_dependencies"]
    assert hasattr(bpy.types, "SCENE_DIFFUSION_OT_install_dependencies")
    assert {("prop", "wheel_dir"), ("prop", "torch_build"), ("prop", "model_cache_dir")} <= set(calls)
    icons = bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys()
    assert all(call[-1] in icons for call in calls if call[0] in ("label", "operator"))


def test_draw_says_how_to_allow_online_access_unless_a_wheel_folder_is_set(prefs, tmp_path):
    import bpy
    bpy.context.preferences.system.use_online_access = False
    prefs.wheel_dir = ""
    assert any("Allow Online Access is off" in call[1] for call in _draw(prefs) if call[0] == "label")
    prefs.wheel_dir = str(tmp_path)
    assert not any("Allow Online Access" in call[1] for call in _draw(prefs) if call[0] == "label")


def test_model_cache_dir_defaults_to_the_extension_user_folder(prefs, tmp_path):
    import bpy
    module = sys.modules[f"{PACKAGE}.preferences"]
    prefs.model_cache_dir = ""
    default = module.model_cache_dir(bpy.context)
    assert default == bpy.utils.extension_path_user(PACKAGE, path="models") and os.path.isdir(default)
    prefs.model_cache_dir = str(tmp_path)
    assert module.model_cache_dir(bpy.context) == str(tmp_path)
