# SPDX-License-Identifier: GPL-3.0-or-later
"""Region prompts end to end: real Blender, the capture's object cryptomatte, the smoke model.

The reference for a region's mask is analytic: the cube's eight corners projected with the
camera (bpy_extras' world_to_camera_view) span a convex polygon, filled by point-in-polygon
tests at the pixel centres; the floor is flat behind it, so nothing hides the cube."""
import numpy as np
from test_generate_image import generate, jobs_module
from ui_recorder import RecordingLayout


def projected_cube(scene) -> np.ndarray:
    """HxW bool: the pixels whose centre falls inside the cube's projected outline."""
    import bpy
    from bpy_extras.object_utils import world_to_camera_view

    cube = bpy.data.objects["Cube"]
    width, height = scene.render.resolution_x, scene.render.resolution_y
    corners = [world_to_camera_view(scene, scene.camera, cube.matrix_world @ v.co) for v in cube.data.vertices]
    points = np.array([(c.x * width, (1 - c.y) * height) for c in corners])
    hull = convex_hull(points)
    y, x = np.mgrid[0:height, 0:width] + 0.5
    inside = np.ones((height, width), bool)
    for (x0, y0), (x1, y1) in zip(hull, np.roll(hull, -1, axis=0)):
        inside &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) >= 0
    return inside


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain, counter-clockwise in image coordinates (y down)."""
    points = sorted(map(tuple, points))

    def half(sequence):
        chain = []
        for p in sequence:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain
    lower, upper = half(points), half(points[::-1])
    return np.array(lower[:-1] + upper[:-1])


def pixels(ext_module, image):
    return ext_module("scene.images").get_pixels(image)[..., :3]


def test_a_prompt_on_the_cube_steers_exactly_the_pixels_it_covers(demo_scene, ext_module, requests_made):
    import bpy
    bpy.data.objects["Cube"].scene_diffusion.region_prompt = "a red door"
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    (region,) = requests_made[-1].regions
    assert (region.prompt, region.name) == ("a red door", "Cube")
    expected = projected_cube(demo_scene)
    mask = region.mask >= 0.5
    assert mask.shape == (64, 96)
    assert (mask & expected).sum() / (mask | expected).sum() > 0.95
    recipe = made[0]["scene_diffusion"].to_dict()
    assert recipe["regions"] == [{"prompt": "a red door", "objects": "Cube"}]
    assert "regions: Cube 'a red door'" in jobs_module().last_outcome().message


def test_no_regions_is_the_image_as_before_and_the_main_prompt_as_a_region_changes_nothing(
        demo_scene, ext_module, requests_made):
    import bpy
    _, (before,) = generate(demo_scene)
    cube = bpy.data.objects["Cube"]
    cube.scene_diffusion.region_prompt = "a red door"
    demo_scene.scene_diffusion.use_regions = False
    _, (off,) = generate(demo_scene)
    assert requests_made[-1].regions == ()
    np.testing.assert_array_equal(pixels(ext_module, off), pixels(ext_module, before))
    demo_scene.scene_diffusion.use_regions = True
    cube.scene_diffusion.region_prompt = demo_scene.scene_diffusion.prompt
    _, (same,) = generate(demo_scene)
    assert len(requests_made[-1].regions) == 1
    assert np.abs(pixels(ext_module, same) - pixels(ext_module, before)).max() <= 1 / 255 + 1e-6
    cube.scene_diffusion.region_prompt = "a red door"
    _, (steered,) = generate(demo_scene)
    assert not np.array_equal(pixels(ext_module, steered), pixels(ext_module, before))


def test_a_collection_prompt_is_the_fallback_and_objects_out_of_view_are_skipped_and_said(
        demo_scene, ext_module, requests_made):
    import bpy
    props = bpy.data.collections.new("Props")
    demo_scene.collection.children.link(props)
    cube, plane = bpy.data.objects["Cube"], bpy.data.objects["Plane"]
    props.objects.link(cube)
    props.objects.link(plane)
    props.scene_diffusion.region_prompt = "old props"
    cube.scene_diffusion.region_prompt = "a red door"  # its own wins over the collection's
    bpy.ops.mesh.primitive_uv_sphere_add(location=(0, -20, 3))  # behind the camera
    bpy.context.object.scene_diffusion.region_prompt = "a moon"
    result, _ = generate(demo_scene)
    assert result == {'FINISHED'}
    regions = {region.name: region.prompt for region in requests_made[-1].regions}
    assert regions == {"Cube": "a red door", "Plane": "old props"}
    message = jobs_module().last_outcome().message
    assert "region prompts not in view (skipped): Sphere" in message


def test_use_these_settings_puts_the_region_prompts_back(demo_scene, ext_module):
    import bpy
    cube = bpy.data.objects["Cube"]
    cube.scene_diffusion.region_prompt = "a red door"
    _, (first,) = generate(demo_scene)
    cube.scene_diffusion.region_prompt = "a blue window"
    bpy.data.objects["Plane"].scene_diffusion.region_prompt = "grass"
    assert bpy.ops.scene_diffusion.use_recipe(image=first.name) == {'FINISHED'}
    assert cube.scene_diffusion.region_prompt == "a red door"
    assert bpy.data.objects["Plane"].scene_diffusion.region_prompt == ""
    _, (again,) = generate(demo_scene)
    np.testing.assert_array_equal(pixels(ext_module, again), pixels(ext_module, first))


def test_the_regions_panel_lists_every_prompt_and_the_property_panels_edit_them(demo_scene, ext_module):
    import types

    import bpy
    panels = {cls.__name__: cls for cls in ext_module("panels.regions").classes}

    def draw(name):
        calls = []
        panel = types.SimpleNamespace(layout=RecordingLayout(calls))
        panels[name].draw(panel, bpy.context)
        return calls

    def labels(calls):
        return [call[1] for call in calls if call[0] == "label"]

    assert "No object has a region prompt" in labels(draw("SCENE_DIFFUSION_PT_regions"))
    props = bpy.data.collections.new("Props")
    demo_scene.collection.children.link(props)
    props.objects.link(bpy.data.objects["Plane"])
    props.scene_diffusion.region_prompt = "old props"
    bpy.data.objects["Cube"].scene_diffusion.region_prompt = "a red door"
    calls = draw("SCENE_DIFFUSION_PT_regions")
    assert "Plane" in labels(calls) and "old props" in labels(calls)
    assert ("prop", "region_prompt") in calls
    assert ("prop", "region_prompt") in draw("SCENE_DIFFUSION_PT_object_region")


def behind_the_camera_with_a_prompt():
    import bpy
    bpy.ops.mesh.primitive_uv_sphere_add(location=(0, -20, 3))
    bpy.context.object.scene_diffusion.region_prompt = "a moon"


def test_a_texture_view_carries_the_regions_it_sees(demo_scene, ext_module, requests_made):
    import bpy
    cube = bpy.data.objects["Cube"]
    cube.scene_diffusion.region_prompt = "rusty metal"
    expected = projected_cube(demo_scene)
    behind_the_camera_with_a_prompt()

    # A texture from the scene camera: its one view sees the cube where the camera does.
    bpy.ops.object.select_all(action='DESELECT')
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube
    texture = demo_scene.scene_diffusion.texture
    texture.views, texture.texture_size = 'CAMERA', 256
    assert bpy.ops.scene_diffusion.generate_texture() == {'FINISHED'}
    (region,) = requests_made[-1].regions
    assert region.name == "Cube"
    mask = region.mask >= 0.5
    assert (mask & expected).sum() / (mask | expected).sum() > 0.95
    textured = ext_module("scene.materials").texture_of(cube)
    assert textured["scene_diffusion"].to_dict()["regions"] == [{"prompt": "rusty metal", "objects": "Cube"}]
    assert "region prompts in no view (skipped): Sphere" in jobs_module().last_outcome().message



def test_a_world_panorama_carries_the_regions_around_the_camera(demo_scene, requests_made):
    """The cube is ahead (+Y) and below the horizon; in the panorama +Y is u = 0.25
    (u = 0.5 - atan2(y, x) / 2pi)."""
    import math

    import bpy
    bpy.data.objects["Cube"].scene_diffusion.region_prompt = "rusty metal"
    demo_scene.scene_diffusion.world.width = 1024
    assert bpy.ops.scene_diffusion.generate_world() == {'FINISHED'}
    (region,) = requests_made[0].regions
    height, width = region.mask.shape
    rows, columns = np.nonzero(region.mask >= 0.5)
    direction = math.atan2(math.hypot(0, 6), 3)  # the cube's centre seen from (0, -6, 3): below by this
    assert abs(columns.mean() / width - 0.25) < 0.02
    assert abs(rows.mean() / height - (0.5 + (math.pi / 2 - direction) / math.pi)) < 0.05
    assert all(r.name == "Cube" for request in requests_made[1:] for r in request.regions)



def test_animation_frames_carry_the_regions_each_frame_sees(demo_scene, ext_module, requests_made, tmp_path):
    import os

    import bpy
    bpy.data.objects["Cube"].scene_diffusion.region_prompt = "rusty metal"
    behind_the_camera_with_a_prompt()
    demo_scene.frame_start, demo_scene.frame_end = 1, 2
    anim = demo_scene.scene_diffusion.animation
    anim.output_dir, anim.video = str(tmp_path / "frames"), False
    anim.strength_schedule, anim.diffusion_cadence = "0:(0.5)", 1
    assert bpy.ops.scene_diffusion.render_animation() == {'FINISHED'}
    assert [[r.name for r in request.regions] for request in requests_made] == [["Cube"], ["Cube"]]
    folder = os.path.join(anim.output_dir, demo_scene.name)
    recipe = ext_module("engine.frame_files").read_recipe(os.path.join(folder, "0002.png"))
    assert recipe["regions"] == [{"prompt": "rusty metal", "objects": "Cube"}]
    assert "region prompts in no frame rendered (skipped): Sphere" in jobs_module().last_outcome().message
