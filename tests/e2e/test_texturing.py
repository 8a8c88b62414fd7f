# SPDX-License-Identifier: GPL-3.0-or-later
"""Textures end to end: real Blender, real Cycles captures, real diffusers (smoke model).

References built apart from the code under test: Cycles renders of the textured objects
(an emission material reading the written texture through its UV map), UV islands drawn
with PIL from the mesh's own UV coordinates, and images made by formula.
"""
import json
import math
from importlib import import_module

import numpy as np
import pytest
from test_generate_image import cancel_during_generation, datablocks, jobs_module


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


@pytest.fixture
def stage(empty_scene):
    """A camera at (0, -6, 0) looking along +Y; render 64x64; the smoke model, 2 steps."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed = "smoke", 2, 5
    settings.prompt = "a wooden crate"
    settings.texture.texture_size = 512
    return scene


def select(*objects):
    import bpy
    bpy.ops.object.select_all(action='DESELECT')
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def run(operator, **arguments):
    """Run an operator; a refusal ({'CANCELLED'} with its message) is told from a crash."""
    import bpy
    try:
        return getattr(bpy.ops.scene_diffusion, operator)(**arguments)
    except RuntimeError as error:
        outcome = jobs_module().last_outcome()
        if outcome is None or outcome.level != 'ERROR' or outcome.message not in str(error):
            raise
        return {'CANCELLED'}


def message():
    return jobs_module().last_outcome().message


def picture(name, width, height):
    """A smooth image the person made: colours varying slowly across it (by formula)."""
    import bpy
    y, x = (np.mgrid[0:height, 0:width] + 0.5) / np.array([height, width])[:, None, None]
    rgb = np.stack([0.2 + 0.6 * x, 0.2 + 0.6 * y, 0.5 + 0.3 * np.sin(2 * math.pi * (x + y) / 2)], axis=2)
    image = bpy.data.images.new(name, width, height)
    rgba = np.concatenate([rgb[::-1], np.ones((height, width, 1))], axis=2).astype(np.float32)
    image.pixels.foreach_set(rgba.ravel())
    return image, rgb.astype(np.float32)


def render_textured(ext, scene, obj, image, uv_map, size):
    """Cycles' view of `obj` showing `image` through `uv_map` as pure emission: sRGB pixels, and
    the mask of pixels whose whole 5x5 neighbourhood sees the object (2 px from silhouettes)."""
    import bpy
    material = bpy.data.materials.new("emit")
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    coordinates, texture = nodes.new("ShaderNodeUVMap"), nodes.new("ShaderNodeTexImage")
    emission, output = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    coordinates.uv_map, texture.image = uv_map, image
    links.new(coordinates.outputs["UV"], texture.inputs["Vector"])
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    rendered = ext("scene.render").render_passes(scene, ("combined", "cryptomatte"), width=size[0], height=size[1],
                                                 material_override=material)
    bpy.data.materials.remove(material)
    linear = np.clip(rendered.images["combined"][..., :3], 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    names = ext("scene.segmentation").cryptomatte_names(rendered.metadata)
    code = next(value for value, name in names.items() if name == obj.name)
    hashes = np.ascontiguousarray(rendered.images["cryptomatte"][..., 0]).view(np.uint32)
    mine = (hashes == code) & (rendered.images["cryptomatte"][..., 1] > 0.99)
    import cv2
    interior = cv2.erode(mine.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return srgb, interior


def psnr(a, b):
    return 10 * math.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12))


def add_plane(size=4.0, location=(0.0, 0.0, 0.0), rotation=(math.pi / 2, 0.0, 0.0), cuts=0):
    import bpy
    bpy.ops.mesh.primitive_plane_add(size=size, location=location, rotation=rotation)
    plane = bpy.context.active_object
    if cuts:
        with bpy.context.temp_override(active_object=plane, object=plane, edit_object=plane):
            bpy.ops.object.mode_set(mode='EDIT')
            bpy.ops.mesh.subdivide(number_cuts=cuts)
            bpy.ops.object.mode_set(mode='OBJECT')
    return plane


@pytest.mark.parametrize("case", ["plane head-on", "plane at 70 degrees", "subdivided sphere"])
def test_a_projected_image_renders_back_as_itself(stage, ext, case):
    import bpy
    if case == "subdivided sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(radius=1.6, segments=48, ring_count=24)
        target = bpy.context.active_object
        target.modifiers.new("Subdivision", 'SUBSURF').levels = 1
    elif case == "plane at 70 degrees":
        # A large quad seen at 70° from its normal, two triangles only: an error of
        # interpolation (not perspective-correct) would show here.
        target = add_plane(size=6.0, rotation=(math.pi / 2, 0.0, math.radians(70.0)))
    else:
        target = add_plane(size=3.0)
    select(target)
    image, _ = picture("photo", 128, 128)
    stage.scene_diffusion.texture.texture_size = 2048
    assert run("project_image", image=image.name) == {'FINISHED'}, message()
    texture = ext("scene.materials").texture_of(target)
    assert texture["scene_diffusion"]["kind"] == "texture"
    seen, interior = render_textured(ext, stage, target, texture, texture["scene_diffusion"]["uv_map"], (128, 128))
    expected = ext("scene.images").display_rgb(image)
    assert interior.mean() > 0.1
    assert psnr(seen[interior], expected[interior]) >= 40.0


def test_what_an_occluder_hides_receives_nothing_and_the_occluder_is_untouched(stage, ext):
    wall = add_plane(size=3.0)
    blocker = add_plane(size=1.0, location=(0.0, -2.0, 0.0))  # in front of the wall's centre, not selected
    select(wall)
    image, _ = picture("photo", 128, 128)
    blocker_state = (blocker.data.name, list(blocker.material_slots), len(blocker.data.uv_layers))
    assert run("project_image", image=image.name) == {'FINISHED'}, message()
    texture = ext("scene.materials").texture_of(wall)
    rgb = ext("scene.images").get_pixels(texture)[..., :3]
    size = rgb.shape[0]
    # The wall's UVs span the texture; its middle (behind the blocker) got nothing: black.
    middle = rgb[size * 2 // 5: size * 3 // 5, size * 2 // 5: size * 3 // 5]
    ring = rgb[size // 10: size // 5, size // 10: size * 9 // 10]
    assert middle.max() < 1e-6 and ring.min() > 0.1
    assert (blocker.data.name, list(blocker.material_slots), len(blocker.data.uv_layers)) == blocker_state
    assert ext("scene.materials").texture_of(blocker) is None


def uv_islands(obj, uv_map, size):
    """Texel centres inside the mesh's UV faces, drawn with PIL from the UV coordinates."""
    from PIL import Image, ImageDraw
    canvas = Image.new("L", (size * 4, size * 4), 0)  # 4x supersampled, then texel centres taken
    draw = ImageDraw.Draw(canvas)
    layer = obj.data.uv_layers[uv_map]
    for polygon in obj.data.polygons:
        points = [(layer.data[i].uv[0] * size * 4, (1.0 - layer.data[i].uv[1]) * size * 4)
                  for i in polygon.loop_indices]
        draw.polygon(points, fill=255)
    return np.array(canvas)[2::4, 2::4] > 0


def test_orbit_views_texture_a_cube_everywhere_with_padding(stage, ext):
    import bpy
    import cv2
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    select(cube)
    texture_settings = stage.scene_diffusion.texture
    texture_settings.views, texture_settings.view_count = 'ORBIT', 4
    texture_settings.include_top = texture_settings.include_bottom = True
    assert run("generate_texture") == {'FINISHED'}, message()
    assert "6 views" in message()
    texture = ext("scene.materials").texture_of(cube)
    recipe = texture["scene_diffusion"].to_dict()
    assert recipe["kind"] == "texture" and recipe["uv_map"] == "UVMap" and len(recipe["views"]) == 6
    assert recipe["covered"] > 0.95  # six views around a cube see nearly all of it (the rims fade out)
    # The panel's settings kept whole, for Use These Settings.
    assert json.loads(recipe["settings"])["texture"]["view_count"] == 4
    rgb = ext("scene.images").get_pixels(texture)[..., :3]
    islands = uv_islands(cube, "UVMap", 512)
    written = rgb.max(axis=2) > 0
    assert written[islands].all()  # 100 % of the texels inside islands
    # Padding: every texel within 8 texels of an island is written too.
    near = cv2.dilate(islands.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert written[near].all()


def test_an_object_with_modifiers_is_textured_as_evaluated_and_left_as_it_was(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_monkey_add(size=2.0, calc_uvs=False)
    suzanne = bpy.context.active_object
    suzanne.modifiers.new("Subdivision", 'SUBSURF').levels = 1
    select(suzanne)
    before = (len(suzanne.data.vertices), [m.name for m in suzanne.modifiers], len(suzanne.data.uv_layers))
    stage.scene_diffusion.texture.view_count = 4
    assert run("generate_texture") == {'FINISHED'}, message()
    made_uv = ext("scene.uv").UV_MAP_NAME
    assert f"made the UV map '{made_uv}' on 'Suzanne'" in message()
    assert (len(suzanne.data.vertices), [m.name for m in suzanne.modifiers]) == before[:2]
    assert [layer.name for layer in suzanne.data.uv_layers] == [made_uv]
    texture = ext("scene.materials").texture_of(suzanne)
    assert texture["scene_diffusion"]["uv_map"] == made_uv
    assert texture["scene_diffusion"]["covered"] > 0.5


def test_uv_maps_materials_and_other_objects_stay_as_they_were(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    theirs = bpy.data.materials.new("Theirs")
    cube.data.materials.append(theirs)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(3.0, 2.0, 0.0))
    other = bpy.context.active_object
    uv_before = np.array([d.uv[:] for d in cube.data.uv_layers["UVMap"].data])
    other_before = (other.matrix_world.copy(), list(other.material_slots), other.data.name)
    select(cube)
    assert run("generate_texture") == {'FINISHED'}, message()
    assert np.array_equal(np.array([d.uv[:] for d in cube.data.uv_layers["UVMap"].data]), uv_before)
    assert [layer.name for layer in cube.data.uv_layers] == ["UVMap"]
    assert list(cube.data.materials) == [theirs]  # the mesh keeps its material; the object shows the new one
    assert cube.active_material != theirs and theirs.node_tree is None or theirs.users >= 1
    assert (other.matrix_world, list(other.material_slots), other.data.name) == other_before


def test_the_same_seed_gives_the_same_texture_and_a_rerun_never_overwrites(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    select(cube)
    stage.scene_diffusion.texture.view_count = 2
    assert run("generate_texture") == {'FINISHED'}, message()
    first = ext("scene.materials").texture_of(cube)
    first_pixels = ext("scene.images").get_pixels(first)
    assert run("generate_texture") == {'FINISHED'}, message()
    second = ext("scene.materials").texture_of(cube)
    assert second != first
    assert np.array_equal(ext("scene.images").get_pixels(first), first_pixels)  # kept as it was
    assert np.array_equal(ext("scene.images").get_pixels(second), first_pixels)  # the same seed: the same texture


def test_cancel_writes_no_texture_and_says_so(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    select(cube)
    stage.scene_diffusion.texture.view_count = 3
    before = datablocks()
    outcome = cancel_during_generation(ext("operators.texture").SCENE_DIFFUSION_OT_generate_texture, 2)
    assert outcome.level == 'WARNING'
    assert "nothing was written: a texture is written once its last view is blended" in outcome.message
    after = datablocks()
    added = {kind: after[kind] - before.get(kind, set()) for kind in after if after[kind] - before.get(kind, set())}
    assert added == {"images": {"Diffusion Preview"}}  # only the view previews
    assert ext("scene.materials").texture_of(cube) is None


def stage_cube(ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    return bpy.context.active_object


def _select_nothing(scene, ext):
    select()


def _select_a_camera(scene, ext):
    select(scene.camera)


def _a_mesh_without_faces(scene, ext):
    import bpy
    mesh = bpy.data.meshes.new("Edges")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0)], [(0, 1)], [])
    obj = bpy.data.objects.new("Edges", mesh)
    scene.collection.objects.link(obj)
    select(obj)


def _out_of_view(scene, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 10.0, 40.0))
    select(bpy.context.active_object)
    scene.scene_diffusion.texture.views = 'CAMERA'


def _hidden_behind(scene, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(0.0, 3.0, 0.0))
    hidden = bpy.context.active_object
    add_plane(size=4.0, location=(0.0, 0.0, 0.0))
    select(hidden)
    scene.scene_diffusion.texture.views = 'CAMERA'


def _texture_size(scene, ext):
    select(stage_cube(ext))
    # The property clamps what the panel sets; a script writing the stored value can still ask.
    scene.scene_diffusion.texture["texture_size"] = 100


def _camera_inside(scene, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=20.0, location=scene.camera.location)
    select(bpy.context.active_object)
    scene.scene_diffusion.texture.views = 'CAMERA'


def _no_cameras_in_the_collection(scene, ext):
    import bpy
    select(stage_cube(ext))
    scene.scene_diffusion.texture.views = 'CAMERAS'
    scene.scene_diffusion.texture.camera_collection = bpy.data.collections.new("Empty")


TEXTURE_REFUSALS = {
    "nothing selected": (_select_nothing, "Nothing is selected"),
    "no mesh selected": (_select_a_camera, "No mesh is selected"),
    "a mesh without faces": (_a_mesh_without_faces, "'Edges' has no faces"),
    "an object out of view": (_out_of_view, "is not visible from the view"),
    "an object behind another": (_hidden_behind, "is not visible from the view"),
    "a texture size out of range": (_texture_size, "Texture size 100 is outside 512..8192"),
    "a camera inside the mesh": (_camera_inside, "is inside"),
    "a camera collection without cameras": (_no_cameras_in_the_collection, "holds no camera"),
}


@pytest.mark.parametrize("case", list(TEXTURE_REFUSALS))
def test_every_texture_refusal_changes_nothing(stage, ext, case):
    setup, words = TEXTURE_REFUSALS[case]
    setup(stage, ext)
    before = datablocks()
    seed = stage.scene_diffusion.seed
    assert run("generate_texture") == {'CANCELLED'}
    assert words in message(), message()
    assert datablocks() == before and stage.scene_diffusion.seed == seed


def test_projecting_an_image_without_pixels_is_refused(stage, ext):
    import bpy
    select(stage_cube(ext))
    image = bpy.data.images.new("photo", 8, 8)
    image.source, image.filepath = 'FILE', "/nonexistent/photo.png"  # its file is gone
    before = datablocks()
    assert run("project_image", image=image.name) == {'CANCELLED'}
    assert "has no pixels" in message()
    assert datablocks() == before


def test_a_seamless_material_wraps_at_its_borders(stage, ext):
    select(stage_cube(ext))
    stage.scene_diffusion.texture.material_mapping = 'BOX'
    assert run("generate_material") == {'FINISHED'}, message()
    import bpy
    cube = bpy.context.view_layer.objects.active
    material = cube.active_material
    image = next(n.image for n in material.node_tree.nodes if n.type == 'TEX_IMAGE')
    assert image["scene_diffusion"]["tiling"] == "xy" and image["scene_diffusion"]["kind"] == "material"
    rgb = ext("scene.images").get_pixels(image)[..., :3]
    # The seam measures of tests/engine/test_tiling.py (why they work on the smoke model's
    # noise is said there): zero-padded edges come out washed out (contrast < 0.55 of an
    # interior column's); wrapped edges are like any other, and so is the step across them.
    for columns_first in (rgb, rgb.transpose(1, 0, 2)):
        contrast = columns_first.std(axis=0).mean(axis=1)
        assert min(contrast[0], contrast[-1]) / np.median(contrast[4:-4]) > 0.65
        interior = np.abs(np.diff(columns_first, axis=1)).mean(axis=(0, 2))
        assert np.abs(columns_first[:, 0] - columns_first[:, -1]).mean() / np.median(interior) < 1.5


def test_several_objects_each_get_their_own_texture_also_with_several_materials(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=1.5, location=(-1.2, 0.0, 0.0))
    left = bpy.context.active_object
    for name in ("Wood", "Metal"):
        left.data.materials.append(bpy.data.materials.new(name))
    left.data.polygons[0].material_index = 1
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.8, location=(1.2, 0.0, 0.0))
    right = bpy.context.active_object
    select(left, right)
    image, _ = picture("photo", 64, 64)
    assert run("project_image", image=image.name) == {'FINISHED'}, message()
    materials = ext("scene.materials")
    left_texture, right_texture = materials.texture_of(left), materials.texture_of(right)
    assert left_texture is not None and right_texture is not None and left_texture != right_texture
    assert {slot.material for slot in left.material_slots} == {left.active_material}  # one material shows it
    assert [m.name for m in left.data.materials] == ["Wood", "Metal"]  # the mesh keeps both


def test_show_coverage_paints_what_no_view_sees_red(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    select(cube)
    stage.scene_diffusion.texture.views = 'CAMERA'
    before = datablocks()
    assert run("show_coverage") == {'FINISHED'}, message()
    (made,) = datablocks()["images"] - before["images"]
    rgb = ext("scene.images").get_pixels(bpy.data.images[made])[..., :3]
    islands = uv_islands(cube, "UVMap", rgb.shape[0])
    red = (rgb[..., 0] > 0.99) & (rgb[..., 1] < 0.01) & (rgb[..., 2] < 0.01)
    # One camera in front sees one face of six: most of the islands are red, some are grey.
    assert 0.6 < red[islands].mean() < 0.95
    assert datablocks()["materials"] == before["materials"]  # it only writes the image


def test_overlapping_uvs_are_said_and_a_target_material_gets_only_its_base_color(stage, ext):
    import bpy
    plane = add_plane(size=3.0, cuts=1)  # four quads
    layer = plane.data.uv_layers.active
    for polygon in plane.data.polygons:  # every quad over the whole UV square
        corners = [plane.data.vertices[plane.data.loops[i].vertex_index].co for i in polygon.loop_indices]
        low_x, high_x = min(c.x for c in corners), max(c.x for c in corners)
        low_y, high_y = min(c.y for c in corners), max(c.y for c in corners)
        for index, corner in zip(polygon.loop_indices, corners):
            layer.data[index].uv = ((corner.x - low_x) / (high_x - low_x), (corner.y - low_y) / (high_y - low_y))
    target = bpy.data.materials.new("Target")
    if target.node_tree is None:
        target.use_nodes = True
    plane.data.materials.append(target)
    select(plane)
    texture_settings = stage.scene_diffusion.texture
    texture_settings.views, texture_settings.target_material = 'CAMERA', target
    assert run("generate_texture") == {'FINISHED'}, message()
    assert "'Plane' has overlapping UVs" in message()
    principled = next(n for n in target.node_tree.nodes if n.type == 'BSDF_PRINCIPLED')
    linked = principled.inputs["Base Color"].links[0].from_node
    assert linked.image["scene_diffusion"]["kind"] == "texture"
    assert plane.active_material == target  # no new material


def test_cameras_of_a_collection_paint_and_a_rerun_can_start_from_the_texture(stage, ext):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    rig = bpy.data.collections.new("Texture Cameras")
    stage.collection.children.link(rig)
    for angle in (0.0, 90.0):
        camera = bpy.data.objects.new(f"View {angle:g}", bpy.data.cameras.new(f"View {angle:g}"))
        rig.objects.link(camera)
        a = math.radians(angle)
        camera.location = (6 * math.sin(a), -6 * math.cos(a), 1.0)
        camera.rotation_euler = (math.radians(80), 0.0, a)
    select(cube)
    texture_settings = stage.scene_diffusion.texture
    texture_settings.views, texture_settings.camera_collection = 'CAMERAS', rig
    assert run("generate_texture") == {'FINISHED'}, message()
    first = ext("scene.materials").texture_of(cube)
    assert [view["name"] for view in first["scene_diffusion"]["views"]] == ["View 0", "View 90"]
    texture_settings.from_current, texture_settings.current_strength = True, 0.5
    assert run("generate_texture") == {'FINISHED'}, message()
    second = ext("scene.materials").texture_of(cube)
    assert second != first and second["scene_diffusion"]["from_current"] == 1
    assert second["scene_diffusion"]["strength"] == pytest.approx(0.5)
    images = ext("scene.images")
    assert not np.array_equal(images.get_pixels(first), images.get_pixels(second))
