# SPDX-License-Identifier: GPL-3.0-or-later
"""Render Animation end to end: real Blender, real Cycles captures, real diffusers (smoke).

References built apart from the code under test: the PNGs on disk read with PIL, Blender's
movie clip reader for the video, and an uninterrupted run for a resumed one."""
import math
import os
from importlib import import_module

import numpy as np
import pytest
from PIL import Image
from test_generate_image import datablocks, jobs_module
from test_texturing import message, run


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


@pytest.fixture
def shot(empty_scene, tmp_path):
    """Frames 1-6, a camera trucking right past a floor, a box and a wall; 64x64, smoke, 4 steps."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 6
    bpy.ops.mesh.primitive_plane_add(size=30.0)
    bpy.ops.mesh.primitive_cube_add(size=1.5, location=(0.0, 0.0, 0.75))
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 6.0, 2.0))
    bpy.context.active_object.scale = (12.0, 0.5, 4.0)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.rotation_euler = (math.radians(80), 0.0, 0.0)
    for frame, x in ((1, -0.6), (6, 0.6)):
        camera.location = (x, -7.0, 1.5)
        camera.keyframe_insert("location", frame=frame)
    scene.camera = camera
    scene.frame_set(1)
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed, settings.prompt = "smoke", 4, 9, "a cobbled street"
    settings.show_previews = False
    anim = settings.animation
    anim.output_dir = str(tmp_path / "out")
    anim.strength_schedule, anim.steps_schedule, anim.diffusion_cadence = "0:(0.5)", "0:(4)", 1
    anim.video = False
    return scene


def frames(scene):
    folder = os.path.join(scene.scene_diffusion.animation.output_dir, scene.name)
    return folder, sorted(name for name in os.listdir(folder) if name.endswith(".png"))


def test_six_frames_on_disk_with_their_recipes_and_a_sequence_datablock(shot, ext):
    assert run("render_animation") == {'FINISHED'}, message()
    folder, names = frames(shot)
    assert names == [f"{frame:04d}.png" for frame in range(1, 7)]
    recipes = [ext("engine.frame_files").read_recipe(os.path.join(folder, name)) for name in names]
    assert [r["frame"] for r in recipes] == list(range(1, 7))
    assert {r["settings_hash"] for r in recipes} == {recipes[0]["settings_hash"]}
    assert [r["seed"] for r in recipes] == [9, 10, 11, 12, 13, 14]  # ITER
    assert all(r["diffused"] == 1 for r in recipes) and recipes[0]["prompt"] == "a cobbled street"
    pixels = [np.asarray(Image.open(os.path.join(folder, name))) for name in names]
    assert all(p.shape == (64, 64, 3) for p in pixels)
    assert not np.array_equal(pixels[0], pixels[1])
    import bpy
    sequences = [image for image in bpy.data.images if image.source == 'SEQUENCE']
    assert len(sequences) == 1 and "Rendered 6 frames (1–6)" in message()
    # The sequence's recipe: the animation's first seed and the panel's settings (Use These Settings).
    recipe = sequences[0]["scene_diffusion"].to_dict()
    assert recipe["seed"] == 9 and '"prompt": "a cobbled street"' in recipe["settings"]


def test_strength_one_from_an_init_image_is_the_warp_alone(shot, ext):
    """Every frame keeps all of the previous one: frame 2 is frame 1 (the init image) warped
    by the camera's motion, and no diffusion runs."""
    import bpy
    anim = shot.scene_diffusion.animation
    picture = bpy.data.images.new("init", 64, 64)
    rgba = np.zeros((64, 64, 4), np.float32)
    rgba[..., 0] = np.linspace(0, 1, 64)[None, :]
    rgba[..., 1] = np.linspace(0, 1, 64)[:, None]
    rgba[..., 3] = 1
    picture.pixels.foreach_set(rgba.ravel())
    anim.use_init, anim.init_image = True, picture
    anim.strength_schedule, anim.color_coherence = "0:(1.0)", 'NONE'
    anim.noise_schedule, anim.amount_schedule, anim.contrast_schedule = "0:(0)", "0:(0)", "0:(1)"
    jobs = jobs_module()
    calls = []
    original = jobs.engine
    jobs.engine = lambda *args: calls.append(args) or original(*args)
    try:
        assert run("render_animation") == {'FINISHED'}, message()
    finally:
        jobs.engine = original
    assert calls == []
    folder, names = frames(shot)
    first = np.asarray(Image.open(os.path.join(folder, names[0]))).astype(np.float32) / 255
    second = np.asarray(Image.open(os.path.join(folder, names[1]))).astype(np.float32) / 255
    init = ext("scene.images").display_rgb(picture)
    assert np.abs(first - init).max() <= 1 / 255 + 1e-6
    # The reference warp: frame 1 warped into frame 2 with Blender's own geometry of both frames.
    motion = ext("scene.motion")
    warped = ext("engine.warp").warp(first, motion.frame_geometry(shot, 1, 64, 64),
                                     motion.frame_geometry(shot, 2, 64, 64))
    valid = warped.valid
    assert valid.mean() > 0.5
    assert np.abs(second[valid] - warped.image[valid]).max() <= 1 / 255 + 1e-6


def test_cancel_keeps_the_frames_written_and_resume_is_bit_identical(shot, ext, tmp_path):
    import time

    import bpy
    uninterrupted = str(tmp_path / "whole")
    shot.scene_diffusion.animation.output_dir = uninterrupted
    assert run("render_animation") == {'FINISHED'}, message()
    whole_folder, whole = frames(shot)

    shot.scene_diffusion.animation.output_dir = str(tmp_path / "cut")
    jobs = jobs_module()
    operator = ext("operators.animation").SCENE_DIFFUSION_OT_render_animation
    jobs.start_steps(operator.prepare(None, bpy.context), blocking=False)
    deadline = time.monotonic() + 120
    folder = os.path.join(shot.scene_diffusion.animation.output_dir, shot.name)
    while not (os.path.isdir(folder) and len(os.listdir(folder)) >= 4):  # 3 frames and the settings file
        jobs.drain()
        assert time.monotonic() < deadline
        jobs.wait(0.02)
    assert jobs.cancel()
    assert jobs.wait(60)
    outcome = jobs.drain()
    assert outcome.level == 'WARNING' and "written are kept" in outcome.message
    _, cut = frames(shot)
    assert 3 <= len(cut) < 6 and cut == whole[:len(cut)]

    shot.scene_diffusion.animation.resume = True
    assert run("render_animation") == {'FINISHED'}, message()
    assert f"resumed after frame {len(cut)}" in message()
    _, resumed = frames(shot)
    assert resumed == whole
    for name in whole:
        a = np.asarray(Image.open(os.path.join(whole_folder, name)))
        b = np.asarray(Image.open(os.path.join(folder, name)))
        assert np.array_equal(a, b), name


def test_cadence_three_diffuses_frames_one_and_four(shot, ext):
    shot.scene_diffusion.animation.diffusion_cadence = 3
    assert run("render_animation") == {'FINISHED'}, message()
    folder, names = frames(shot)
    recipes = [ext("engine.frame_files").read_recipe(os.path.join(folder, name)) for name in names]
    assert [r["frame"] for r in recipes if r["diffused"]] == [1, 4] and len(recipes) == 6


def test_the_video_has_as_many_frames_as_the_pngs(shot):
    import bpy
    shot.scene_diffusion.animation.video = True
    assert run("render_animation") == {'FINISHED'}, message()
    folder, names = frames(shot)
    clip = bpy.data.movieclips.load(os.path.join(folder, "animation.mp4"))
    assert clip.frame_duration == len(names) == 6


@pytest.mark.parametrize("case, expected", [
    ("schedule", "strength_schedule"),
    ("range", "has no frames"),
    ("folder", "cannot be written"),
    ("camera", "Frame 1 has no camera"),
])
def test_bad_settings_are_refused_before_anything_is_written(shot, case, expected):
    import bpy
    anim = shot.scene_diffusion.animation
    if case == "schedule":
        anim.strength_schedule = "0:(0.5), 2:"
    elif case == "range":
        anim.use_scene_range, anim.frame_start, anim.frame_end = False, 5, 3
    elif case == "folder":
        anim.output_dir = "/proc/nope"
    else:
        bpy.data.objects.remove(shot.camera)
    before = datablocks()
    assert run("render_animation") == {'CANCELLED'}
    assert expected in message()
    assert datablocks() == before
    assert not os.path.exists(os.path.join(anim.output_dir, shot.name))


def test_deforum_motion_keys_a_copy_of_the_camera_that_the_scene_then_follows(shot):
    import bpy
    from mathutils import Vector
    original = shot.camera
    before = (tuple(original.matrix_world.translation), original.animation_data.action.name)
    anim = shot.scene_diffusion.animation
    anim.translation_z, anim.rotation_3d_y, anim.fov_schedule = "0:(200)", "0:(0), 2:(10)", "0:(40)"
    shot.frame_set(1)
    assert bpy.ops.scene_diffusion.key_deforum_motion() == {'FINISHED'}
    moving = shot.camera
    assert moving != original and moving.name == "Camera Deforum"
    assert (tuple(original.matrix_world.translation), original.animation_data.action.name) == before
    start = original.matrix_world.copy()
    forward = -(start.to_3x3() @ Vector((0.0, 0.0, 1.0)))
    shot.frame_set(2)
    # One Blender unit forward by frame 2 (200 Deforum units x 0.005), no turn yet.
    assert (moving.matrix_world.translation - (start.translation + forward)).length < 1e-4
    shot.frame_set(4)
    turned = -(moving.matrix_world.to_3x3() @ Vector((0.0, 0.0, 1.0)))
    assert math.degrees(forward.angle(turned)) == pytest.approx(5 + 10, abs=1e-3)  # frames 2 and 3's turns
    assert moving.data.lens == pytest.approx(18.0 / math.tan(math.radians(20)), rel=1e-4)
    shot.frame_set(1)
    assert run("render_animation") == {'FINISHED'}, message()


def test_one_render_for_conditions_and_geometry_gives_the_geometry_of_its_own_render(shot, ext):
    """A resumed run recaptures the previous frame's geometry alone (frame_geometry); the
    uninterrupted run had it from the render that made the conditions: they must agree bit
    for bit, whatever other passes that render had."""
    capture = ext("operators.capture")
    motion = ext("scene.motion")
    camera_module = ext("scene.camera")
    size = camera_module.output_size(shot)
    captured = capture.capture(shot, {"depth", "normal", "segmentation", "lineart"}, size, 3, motion=True)
    view = captured.geometry
    combined = motion.geometry_of(shot, shot.camera, view.view, view.z, view.vector)
    alone = motion.frame_geometry(shot, 3, size.width, size.height)
    assert np.array_equal(combined.depth, alone.depth)
    assert np.array_equal(combined.to_previous, alone.to_previous) and np.array_equal(combined.to_next, alone.to_next)
    assert np.abs(combined.to_previous).max() > 0.5  # the camera moves: there is motion to compare
