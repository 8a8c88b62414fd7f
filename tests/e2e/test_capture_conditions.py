# SPDX-License-Identifier: GPL-3.0-or-later
"""Capture Conditions through the operator: one image per kind, replaced in place, per frame."""
import numpy as np
import pytest

from test_generate_image import generate

ALL_BUT_POSE = {'DEPTH', 'CANNY', 'NORMAL', 'SEGMENTATION', 'LINEART'}


def captures(kind=None):
    import bpy
    found = [i for i in bpy.data.images if i.get("scene_diffusion", {}).get("capture")]
    return [i for i in found if kind is None or i["scene_diffusion"]["kind"] == kind]


def run_capture(**arguments):
    import bpy
    try:
        return bpy.ops.scene_diffusion.capture_conditions(**arguments)
    except RuntimeError:
        return {'CANCELLED'}


def test_each_kind_becomes_a_tagged_image_of_the_output_size(demo_scene, ext_module):
    assert run_capture(kinds=ALL_BUT_POSE) == {'FINISHED'}
    images = ext_module("scene.images")
    for kind in ALL_BUT_POSE:
        (image,) = captures(kind.lower())
        recipe = image["scene_diffusion"].to_dict()
        assert recipe["frame"] == demo_scene.frame_current
        assert recipe["camera"] == demo_scene.camera.name
        assert tuple(image.size) == (96, 64)
        assert image.colorspace_settings.name == "Non-Color"
        assert images.condition_pixels(image).max() > 0, kind  # something was seen
    depth = images.condition_pixels(captures("depth")[0])
    assert depth[0, 0].max() == 0  # the sky above the floor is background: black


def test_without_kinds_the_panels_enabled_ones_are_captured(demo_scene):
    demo_scene.scene_diffusion.conditions.enabled_kinds = {'DEPTH', 'NORMAL'}
    assert run_capture() == {'FINISHED'}
    assert sorted(i["scene_diffusion"]["kind"] for i in captures()) == ["depth", "normal"]


def test_a_new_capture_replaces_only_its_own_earlier_one(demo_scene, ext_module):
    import bpy
    theirs = bpy.data.images.new("Depth 0001", 8, 8)  # the person's image, with the name we would use
    run_capture(kinds={'DEPTH'})
    (first,) = captures("depth")
    assert first != theirs
    before = ext_module("scene.images").condition_pixels(first)
    demo_scene.objects["Cube"].location.x += 1.0
    run_capture(kinds={'DEPTH'})
    (second,) = captures("depth")
    assert second == first  # replaced in place
    assert not np.array_equal(ext_module("scene.images").condition_pixels(second), before)
    assert tuple(theirs.size) == (8, 8) and "scene_diffusion" not in theirs


def test_capture_at_another_frame_sees_that_frame_and_keeps_the_current_one(demo_scene, ext_module):
    demo_scene.objects["Plane"].hide_render = True  # only the cube is seen
    cube = demo_scene.objects["Cube"]
    cube.location.x = -2.0
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 2.0
    cube.keyframe_insert("location", frame=20)
    demo_scene.frame_set(1)
    run_capture(kinds={'DEPTH'}, frame=20)
    run_capture(kinds={'DEPTH'})
    images = ext_module("scene.images")
    at_20 = images.condition_pixels(images.find_capture("depth", 20))
    at_1 = images.condition_pixels(images.find_capture("depth", 1))
    assert demo_scene.frame_current == 1
    assert cube.location.x == pytest.approx(-2.0)
    # The cube is left of centre at frame 1 and right of it at frame 20.
    def columns(depth):
        return np.nonzero(depth[..., 0].max(axis=0) > 0)[0].mean()

    assert columns(at_1) < 48 < columns(at_20)


def test_openpose_writes_its_json_for_other_tools(demo_scene):
    import json
    import addon_utils
    import bpy
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    assert run_capture(kinds={'OPENPOSE'}) == {'FINISHED'}
    (pose,) = captures("openpose")
    text = next(t for t in bpy.data.texts if t.get("scene_diffusion", {}).get("kind") == "openpose_json")
    data = json.loads(text.as_string())
    assert len(data["people"]) == 1 and len(data["people"][0]["pose_keypoints_2d"]) == 18 * 3
    assert data["canvas_width"] == 96 and data["canvas_height"] == 64
    assert pose["scene_diffusion"]["armatures"]


def test_nothing_enabled_or_no_camera_is_refused_and_writes_nothing(demo_scene, ext_module):
    demo_scene.scene_diffusion.conditions.enabled_kinds = set()
    assert run_capture() == {'CANCELLED'}
    assert "No condition is enabled" in ext_module("operators.jobs").last_outcome().message
    demo_scene.camera = None
    assert run_capture(kinds={'DEPTH'}) == {'CANCELLED'}
    assert "No active camera" in ext_module("operators.jobs").last_outcome().message
    assert captures() == []


def test_capturing_from_the_view_needs_a_3d_viewport(demo_scene, ext_module):
    assert run_capture(kinds={'DEPTH'}, from_view=True) == {'CANCELLED'}
    assert "needs a 3D Viewport" in ext_module("operators.jobs").last_outcome().message


def test_generate_uses_and_shows_the_enabled_conditions(demo_scene, ext_module):
    conditions = demo_scene.scene_diffusion.conditions
    conditions.enabled_kinds = {'DEPTH', 'CANNY'}
    conditions.canny.scale = 0.6
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    controls = made[0]["scene_diffusion"].to_dict()["controls"]
    assert [(c["kind"], round(c["scale"], 3)) for c in controls] == [("depth", 1.0), ("canny", 0.6)]
    assert sorted(i["scene_diffusion"]["kind"] for i in captures()) == ["canny", "depth"]
    # Without conditions: a plain text-to-image generation, different from the steered one.
    conditions.enabled_kinds = set()
    _, plain = generate(demo_scene)
    assert plain[0]["scene_diffusion"].to_dict()["controls"] == [] or "controls" not in plain[0]["scene_diffusion"]
    images = ext_module("scene.images")
    assert not np.array_equal(images.get_pixels(made[0]), images.get_pixels(plain[0]))


def test_a_condition_can_come_from_the_persons_image(demo_scene, ext_module):
    import bpy
    images = ext_module("scene.images")
    sketch = bpy.data.images.new("sketch", 96, 64)
    lines = np.zeros((64, 96, 3), np.float32)
    lines[20:22, :] = 1.0
    images.set_pixels(sketch, lines)
    conditions = demo_scene.scene_diffusion.conditions
    conditions.enabled_kinds = {'CANNY'}
    conditions.canny.source = 'IMAGE'
    result, made = generate(demo_scene)
    assert result == {'CANCELLED'}  # no image picked yet
    assert "none is picked" in ext_module("operators.jobs").last_outcome().message
    conditions.canny.image = sketch
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    assert captures() == []  # nothing captured: the sketch was used as it is
    assert made[0]["scene_diffusion"]["controls"][0]["kind"] == "canny"


def test_a_detector_makes_the_condition_from_a_picture(demo_scene, ext_module):
    import bpy
    images = ext_module("scene.images")
    photo = bpy.data.images.new("photo", 96, 64)
    rgb = np.zeros((64, 96, 3), np.float32)
    rgb[16:48, 24:72] = 0.9  # a bright box
    images.set_pixels(photo, rgb)
    control = demo_scene.scene_diffusion.conditions.canny
    control.photo = photo
    control.detector = "canny"
    assert bpy.ops.scene_diffusion.detect_condition(kind="canny") == {'FINISHED'}
    made = control.image
    assert control.source == 'IMAGE' and made is not None and made != photo
    assert made["scene_diffusion"]["detector"] == "canny"
    edges = images.condition_pixels(made)[..., 0]
    assert edges[16:48, 24].max() == 255 and edges[32, 48] == 0  # the box's outline, not its inside
    assert np.allclose(images.get_pixels(photo)[..., :3], rgb, atol=1 / 255)  # the picture is untouched


def test_a_detector_without_its_weights_offline_says_what_to_do(demo_scene, ext_module):
    import bpy
    control = demo_scene.scene_diffusion.conditions.depth
    control.photo = bpy.data.images.new("photo", 64, 64)
    control.detector = "depth_midas"
    try:
        result = bpy.ops.scene_diffusion.detect_condition(kind="depth")
    except RuntimeError:
        result = {'CANCELLED'}
    assert result == {'CANCELLED'}
    message = ext_module("operators.jobs").last_outcome().message
    assert "annotator weights" in message and "Allow Online Access" in message
    assert control.image is None and control.source == 'SCENE'
