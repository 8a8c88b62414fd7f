# SPDX-License-Identifier: GPL-3.0-or-later
"""Backgrounds end to end: Generate World and Generate Backdrop with real Blender, real Cycles
captures and renders, and real diffusers (smoke model).

References built apart from the code under test: Cycles renders of a World through a
perspective camera, Cycles' own Z pass of the scene with objects hidden by hand, and the
measurements of engine/panorama.py checked against analytic images in tests/engine.
"""
import json
import math
from importlib import import_module

import numpy as np
import pytest
from test_generate_image import cancel_during_generation, datablocks, jobs_module
from test_texturing import message, run, select


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


@pytest.fixture
def stage(empty_scene):
    """A camera at (0, 0, 1) looking along +Y, render 64x64, the smoke model with 2 steps, a
    512x256 World."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, 0.0, 1.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed, settings.prompt = "smoke", 2, 5, "a mountain lake"
    settings.show_previews = False
    settings.world.width = 512
    return scene


def box(location, size=2.0, name=None):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.active_object
    if name:
        obj.name = name
    return obj


def recipe_of(image):
    import sys
    images = next(module for name, module in sys.modules.items() if name.endswith(".scene_diffusion.scene.images"))
    return images.get_recipe(image)


def images_of(kind, view=None):
    import bpy
    return [image for image in bpy.data.images if recipe_of(image).get("kind") == kind
            and (view is None or recipe_of(image).get("view") == view)]


def render_world(scene, world, rotation_z, tmp_path, name="world.png"):
    """Cycles' picture of `world` alone from the scene camera's position turned to `rotation_z`
    (looking level), in a scene of its own, 32x32, sRGB 'Standard' (the pixels as they are)."""
    import bpy
    view = bpy.data.scenes.new("world render")
    try:
        view.render.engine = 'CYCLES'
        view.cycles.samples = 1
        view.render.resolution_x = view.render.resolution_y = 32
        view.view_settings.view_transform = 'Standard'
        world.cycles.sampling_method = 'NONE'  # no importance map: fast, and exact for a camera ray
        view.world = world
        camera = bpy.data.objects.new("world camera", bpy.data.cameras.new("world camera"))
        view.collection.objects.link(camera)
        camera.location = scene.camera.location
        camera.rotation_euler = (math.pi / 2, 0.0, rotation_z)
        camera.data.lens = 50.0
        view.camera = camera
        view.render.filepath = str(tmp_path / name)
        view.render.image_settings.file_format = 'PNG'
        with bpy.context.temp_override(scene=view):
            bpy.ops.render.render(write_still=True, scene=view.name)
        picture = bpy.data.images.load(str(tmp_path / name))
        pixels = np.array(picture.pixels[:], np.float32).reshape(32, 32, 4)[::-1, :, :3]
        bpy.data.images.remove(picture)
        return pixels
    finally:
        for obj in list(view.collection.objects):
            data = obj.data
            bpy.data.objects.remove(obj)
            bpy.data.cameras.remove(data)
        bpy.data.scenes.remove(view)


# ---------------------------------------------------------------------------------------
# Generate World
# ---------------------------------------------------------------------------------------

def test_a_world_lines_up_with_the_scene_around_the_camera(stage, ext, tmp_path):
    """The panorama depth capture, made the World, shows the box where the box is: a camera
    looking from the panorama's centre towards the box (+Y) sees it, one looking away does not."""
    box((0.0, 6.0, 1.0), size=2.0)
    assert run("generate_world") == {'FINISHED'}, message()
    depth = images_of("depth", view="panorama")
    assert len(depth) == 1 and tuple(depth[0].size) == (512, 256)
    world = ext("scene.world").make_world(depth[0], 1.0, 0.0, name="check")
    towards, away = render_world(stage, world, 0.0, tmp_path), render_world(stage, world, math.pi, tmp_path, "b.png")
    # The box spans about ±11° seen from 5 m: the middle of a 40° view is on it, the corners not.
    assert towards[12:20, 12:20].min() > 0.15, towards[12:20, 12:20]
    assert towards[:3, :3].max() < 0.02 and towards[-3:, -3:].max() < 0.02
    assert away.max() < 0.02
    # The generated World is the scene's, with the same layout: its image is the panorama.
    generated = images_of("world")
    assert len(generated) == 1 and stage.world.name == "Scene Diffusion World"
    node = stage.world.node_tree.nodes[ext("scene.world").ENVIRONMENT_NODE]
    assert node.image == generated[0]


def test_the_world_wraps_and_its_poles_are_points(stage, ext):
    panorama = ext("engine.panorama")
    box((0.0, 6.0, 1.0))
    assert run("generate_world") == {'FINISHED'}, message()
    pixels = ext("scene.images").display_rgb(images_of("world")[0])
    assert pixels.shape == (256, 512, 3)
    # The measure: the seam is no larger a step than neighbouring interior columns.
    assert panorama.seam_difference(pixels) <= 1.5 * panorama.column_difference(pixels)
    # On the smoke model (random weights, noise at the pixel scale) that step cannot tell a
    # wrap from none (measured: 0.074-0.091 either way), so the wrap is also shown as what
    # zero padding would break: the border columns carry the interior's contrast.
    assert edge_contrast(pixels) > 0.65
    # Poles: each of the top and bottom rows is one colour (8-bit rounding aside).
    assert panorama.pole_spread(pixels) < 0.01


def edge_contrast(image):
    """Contrast along the first and last columns over the median interior column's (zero
    padding flattens the border columns: about 0.5 without a wrap, tests/engine/test_tiling.py)."""
    contrast = image[16:-16].std(axis=0).mean(axis=1)
    return float(min(contrast[0], contrast[-1]) / np.median(contrast[4:-4]))


def test_the_edge_measure_fails_without_the_wrap(ext, model_cache):
    """The control: the same panorama generated without the wrap fails edge_contrast."""
    engine = ext("engine.generate").Engine(model_cache)
    requests = ext("engine.requests")
    untiled = engine.generate(requests.GenerationRequest(prompt="a mountain lake", width=512, height=256, steps=2,
                                                         seed=5, model="smoke")).images[0]
    assert edge_contrast(untiled) < 0.55


def test_world_wiring_keeps_the_previous_world_and_can_replace_only_its_image(stage, ext):
    import bpy
    box((0.0, 6.0, 1.0))
    previous = bpy.data.worlds.new("Person's World")
    stage.world = previous
    snapshot = previous.node_tree is None or [node.name for node in previous.node_tree.nodes]
    world = stage.scene_diffusion.world
    world.strength, world.rotation = 2.5, math.radians(30)
    assert run("generate_world") == {'FINISHED'}, message()
    assert "kept the previous World" in message()
    made = stage.world
    assert made != previous and previous.use_fake_user
    assert (previous.node_tree is None or [node.name for node in previous.node_tree.nodes]) == snapshot
    names = ext("scene.world")
    nodes = made.node_tree.nodes
    assert nodes[names.BACKGROUND_NODE].inputs["Strength"].default_value == pytest.approx(2.5)
    assert nodes[names.MAPPING_NODE].inputs["Rotation"].default_value[2] == pytest.approx(math.radians(30))
    first = nodes[names.ENVIRONMENT_NODE].image
    recipe = recipe_of(first)
    assert first.packed_file is not None
    assert recipe["kind"] == "world" and recipe["width"] == 512 and recipe["tiling"] == "x"
    assert "depth" in recipe["conditions"] and "origin" in recipe

    # Again, into the current World: the same World, only its image changed; the first kept.
    world.target = 'CURRENT'
    count = len(nodes)
    worlds_before = set(bpy.data.worlds)
    assert run("generate_world") == {'FINISHED'}, message()
    assert stage.world == made and set(bpy.data.worlds) == worlds_before and len(made.node_tree.nodes) == count
    assert nodes[names.ENVIRONMENT_NODE].image != first and first.name in bpy.data.images


def test_a_large_world_is_refined_in_windows_with_progress_per_pass(stage, ext, requests_made):
    panorama = ext("engine.panorama")
    box((0.0, 6.0, 1.0))
    stage.scene_diffusion.world.width = 2048
    stage.scene_diffusion.steps = 3  # the windows redraw at 0.35: one step of three
    assert run("generate_world") == {'FINISHED'}, message()
    seen = [(request.width, request.height, request.tiling) for request in requests_made]
    windows = panorama.windows(2048, 1024, 512, 512, 128)
    assert seen[0] == (1024, 512, "x")
    assert seen[1:-2] == [(512, 512, "")] * len(windows)
    assert seen[-2:] == [(512, 512, "")] * 2  # the zenith and the nadir
    pixels = ext("scene.images").display_rgb(images_of("world")[0])
    assert pixels.shape == (1024, 2048, 3)
    assert panorama.seam_difference(pixels) <= 1.5 * panorama.column_difference(pixels)
    assert edge_contrast(pixels) > 0.65
    assert panorama.pole_spread(pixels) < 0.01


@pytest.mark.parametrize("case, expected", [
    ("width", "1000 pixels wide"),
    ("detail", "run no denoising step"),
    ("current", "has no panorama to start from"),
    ("extend", "Extend needs a picture"),
    ("camera", "No active camera"),
])
def test_bad_input_is_refused_and_changes_nothing(stage, case, expected):
    import bpy
    box((0.0, 6.0, 1.0))
    world = stage.scene_diffusion.world
    if case == "width":
        world.width = 1000
    elif case == "detail":
        world.width, stage.scene_diffusion.steps = 2048, 2
    elif case == "current":
        world.start = 'CURRENT'
    elif case == "extend":
        world.start = 'EXTEND'
    else:
        bpy.data.objects.remove(stage.camera)
    before = datablocks()
    assert run("generate_world") == {'CANCELLED'}
    assert expected in message()
    assert datablocks() == before


def test_a_world_image_that_is_not_2_to_1_is_refused(stage, ext):
    import bpy
    world = bpy.data.worlds.new("Person's World")
    stage.world = world
    image = bpy.data.images.new("square sky", 64, 64)
    names = ext("scene.world")
    made = names.make_world(image, 1.0, 0.0, name="with a square sky")
    stage.world = made
    stage.scene_diffusion.world.start = 'CURRENT'
    before = datablocks()
    assert run("generate_world") == {'CANCELLED'}
    assert "is 64×64, not a 2:1 panorama" in message() and "128×64" in message()
    assert datablocks() == before


def test_nothing_around_the_camera_is_text_to_image(stage):
    assert run("generate_world") == {'FINISHED'}, message()
    assert "nothing is around the camera: the panorama is text to image" in message()
    assert images_of("depth", view="panorama") == []


def test_extending_a_picture_keeps_it_where_the_camera_sees_it(stage, ext):
    import bpy
    picture = bpy.data.images.new("photo", 64, 64)
    rgba = np.zeros((64, 64, 4), np.float32)
    rgba[...] = (0.9, 0.1, 0.1, 1.0)
    picture.pixels.foreach_set(rgba.ravel())
    world = stage.scene_diffusion.world
    world.start, world.extend_image, world.fix_poles = 'EXTEND', picture, False
    assert run("generate_world") == {'FINISHED'}, message()
    pixels = ext("scene.images").display_rgb(images_of("world")[0])
    # The camera looks along +Y (u = 0.25) with a 50 mm lens (about ±20°): its picture is kept
    # there, and the rest of the sphere is painted.
    centre = pixels[118:138, 118:138]
    assert np.allclose(centre, (0.9, 0.1, 0.1), atol=0.02)
    assert not np.allclose(pixels[118:138, 374:394], (0.9, 0.1, 0.1), atol=0.2)


# ---------------------------------------------------------------------------------------
# Generate Backdrop
# ---------------------------------------------------------------------------------------

@pytest.fixture
def set_stage(stage):
    """A floor and a wall behind a cube (the foreground) in front of the camera."""
    import bpy
    stage.camera.location = (0.0, -6.0, 1.0)
    bpy.ops.mesh.primitive_plane_add(size=30.0, location=(0.0, 0.0, 0.0))
    bpy.context.active_object.name = "Floor"
    wall = box((0.0, 5.0, 3.0), size=1.0, name="Wall")
    wall.scale = (20.0, 0.5, 6.0)
    cube = box((0.0, 0.0, 1.0), size=1.5, name="Statue")
    select(cube)
    bpy.context.view_layer.update()
    return cube


def test_a_backdrop_leaves_the_foreground_out_and_shows_behind_it(stage, set_stage, ext):
    import bpy
    cube = set_stage
    # The reference: Cycles' depth with the cube hidden by hand.
    cube.hide_render = True
    reference = ext("scene.conditions").capture_conditions(stage, {"depth"})["depth"].image
    with_cube = ext("scene.conditions").capture_conditions
    cube.hide_render = False
    seen_with_cube = with_cube(stage, {"depth"})["depth"].image
    assert not np.array_equal(reference, seen_with_cube)
    stage.scene_diffusion.backdrop.shadow_catcher = True

    assert run("generate_backdrop") == {'FINISHED'}, message()
    captured = images_of("depth", view="backdrop")
    assert len(captured) == 1
    assert np.array_equal(ext("scene.images").condition_pixels(captured[0]), reference)
    assert cube.hide_render is False
    made = images_of("backdrop")
    assert len(made) == 1 and tuple(made[0].size) == (64, 64) and made[0].packed_file is not None
    recipe = recipe_of(made[0])
    assert json.loads(recipe["foreground"]) == ["Statue"] and recipe["camera"] == "Camera"
    assert json.loads(recipe["settings"])["prompt"] == stage.scene_diffusion.prompt  # for Use These Settings
    # Shown behind: the camera's background image, and the compositor.
    entries = [entry.image for entry in stage.camera.data.background_images]
    assert entries == [made[0]] and stage.camera.data.show_background_images
    assert stage.render.film_transparent
    backdrop = ext("scene.backdrop")
    tree = stage.compositing_node_group if hasattr(stage, "compositing_node_group") else stage.node_tree
    assert tree.nodes[backdrop.IMAGE_NODE].image == made[0] and backdrop.ALPHA_OVER_NODE in tree.nodes
    assert bpy.data.objects["Floor"].is_shadow_catcher and bpy.data.objects["Wall"].is_shadow_catcher
    assert not cube.is_shadow_catcher
    assert "shadow catchers" in message()


def test_a_camera_inside_the_foreground_is_refused(stage, set_stage):
    stage.camera.location = (0.0, 0.0, 1.0)  # inside the cube
    before = datablocks()
    assert run("generate_backdrop") == {'CANCELLED'}
    assert "is inside 'Statue', which is in the foreground" in message()
    assert datablocks() == before and set_stage.hide_render is False


def test_with_nothing_behind_the_foreground_the_backdrop_is_text_to_image(stage):
    cube = box((0.0, 6.0, 1.0))
    select(cube)
    assert run("generate_backdrop") == {'FINISHED'}, message()
    assert "nothing is left behind the foreground: the backdrop is text to image" in message()
    assert len(images_of("backdrop")) == 1


def test_a_moving_camera_is_said(stage, set_stage):
    camera = stage.camera
    camera.keyframe_insert("location", frame=1)
    camera.location.x = 2.0
    camera.keyframe_insert("location", frame=20)
    stage.frame_start, stage.frame_end = 1, 20
    stage.frame_set(1)
    assert run("generate_backdrop") == {'FINISHED'}, message()
    assert "the camera moves between frames 1 and 20: this backdrop fits frame 1" in message()


def test_cancel_writes_no_world_and_says_so(stage, ext):
    box((0.0, 6.0, 1.0))
    world_before = stage.world
    before = datablocks()
    # The second pass (the zenith) is cancelled while it denoises.
    outcome = cancel_during_generation(ext("operators.background").SCENE_DIFFUSION_OT_generate_world, 2)
    assert outcome.level == 'WARNING'
    assert "nothing was written: the World is written once its last pass is done" in outcome.message
    after = datablocks()
    added = {kind: after[kind] - before.get(kind, set()) for kind in after if after[kind] - before.get(kind, set())}
    assert added == {"images": {"Diffusion Preview"}}  # the first pass's preview only
    assert stage.world == world_before


def test_starting_from_the_current_world_redraws_it_at_a_strength(stage, requests_made):
    import sys
    images = next(m for n, m in sys.modules.items() if n.endswith(".scene_diffusion.scene.images"))
    stage.scene_diffusion.steps = 4
    assert run("generate_world") == {'FINISHED'}, message()
    first = images_of("world")[0]
    world = stage.scene_diffusion.world
    world.start, world.start_strength = 'CURRENT', 0.5
    requests_made.clear()
    assert run("generate_world") == {'FINISHED'}, message()
    seen = requests_made
    second = [image for image in images_of("world") if image != first]
    assert len(second) == 1
    recipe = recipe_of(second[0])
    assert recipe["start"] == "current" and recipe["mode"] == "img2img" and recipe["strength"] == 0.5
    # The panorama pass redraws the current World (as stored, 8-bit) at the strength.
    panorama = seen[0]
    assert panorama.mode == "img2img" and panorama.strength == 0.5 and panorama.tiling == "x"
    np.testing.assert_allclose(panorama.init_image, images.display_rgb(first), atol=1e-3)


def test_undo_takes_a_world_back_and_redo_brings_it_again(stage, ext):
    """As the button runs it: started in the background (invoke), drained by the timer, which
    pushes an undo step for what the job wrote; then Ctrl+Z and Shift+Ctrl+Z."""
    import time

    import bpy
    box((0.0, 6.0, 1.0))
    stage.world = bpy.data.worlds.new("Person's World")
    bpy.ops.ed.undo_push(message="before the World")
    jobs = jobs_module()
    operator = ext("operators.background").SCENE_DIFFUSION_OT_generate_world
    jobs.start_steps(operator.prepare(None, bpy.context), blocking=False)
    bpy.ops.ed.undo_push(message="Generate World")  # what Blender does when invoke returns
    deadline = time.monotonic() + 120
    while jobs._timer() is not None:  # the timer's own function (timers never fire headless)
        assert time.monotonic() < deadline
        jobs.wait(0.05)
    assert bpy.context.scene.world.name == "Scene Diffusion World"
    bpy.ops.ed.undo()
    # Undo reloads the file's data: earlier Python references are stale.
    assert bpy.context.scene.world.name == "Person's World"
    assert "Scene Diffusion World" not in bpy.data.worlds and images_of("world") == []
    bpy.ops.ed.redo()
    assert bpy.context.scene.world.name == "Scene Diffusion World" and len(images_of("world")) == 1
