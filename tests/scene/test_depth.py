# SPDX-License-Identifier: GPL-3.0-or-later
"""Exact depth from the scene camera, in real Blender (Cycles), against known geometry.

The camera sits at (0, -10, 0) looking along +Y (world X = image right, world Z = image
up), lens 50 mm on a 36 mm sensor, so at 64x48 a pixel centre (i, j) lies on the camera ray
x = (2 (j + 0.5) / 64 - 1) * 0.36, y = (1 - 2 (i + 0.5) / 48) * 0.27, forward 1.
"""
import math
import warnings

import numpy as np
import pytest

W, H = 64, 48
HALF_W, HALF_H = 0.36, 0.27  # tangent of the half field of view, horizontally and vertically


@pytest.fixture
def depth(extension):
    from importlib import import_module
    return import_module(f"{extension.__name__}.scene.depth")


@pytest.fixture
def errors(extension):
    from importlib import import_module
    return import_module(f"{extension.__name__}.engine.errors")


@pytest.fixture
def conditions(extension):
    from importlib import import_module
    return import_module(f"{extension.__name__}.engine.conditions")


def _add(kind: str, location, collection=None, **options):
    """A mesh primitive, linked to `collection` instead of the active one when given."""
    import bpy
    getattr(bpy.ops.mesh, f"primitive_{kind}_add")(location=location, **options)
    obj = bpy.context.active_object
    if collection is not None:
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        collection.objects.link(obj)
    return obj


def _wall(y: float = 0.0, size: float = 40.0):
    """A plane facing the camera at world y, filling the view."""
    return _add("plane", (0.0, y, 0.0), size=size, rotation=(math.pi / 2, 0.0, 0.0))


def _pixel(x: float, y: float, z: float) -> tuple[int, int]:
    """Row and column of world point (x, y, z) for the perspective test camera."""
    distance = y + 10.0
    column = ((x / distance) / HALF_W + 1) / 2 * W
    row = (1 - (z / distance) / HALF_H) / 2 * H
    return int(row), int(column)


def _ray_x() -> np.ndarray:
    """Camera-space x of each column's pixel-centre ray (forward component 1)."""
    return (2 * (np.arange(W) + 0.5) / W - 1) * HALF_W


def _snapshot(scene) -> dict:
    """Every plain setting a capture could touch, and the names of all datablocks."""
    import bpy

    def values(struct) -> dict:
        result = {}
        for prop in struct.bl_rna.properties:
            if prop.identifier == "rna_type" or prop.type in {'POINTER', 'COLLECTION'}:
                continue
            with warnings.catch_warnings():  # reading deprecated settings is fine here
                warnings.simplefilter("ignore", DeprecationWarning)
                value = getattr(struct, prop.identifier)
            result[prop.identifier] = value if isinstance(value, (str, int, float, bool)) else tuple(value)
        return result

    def layer_flags(layer_collection) -> list:
        flags = [(layer_collection.name, layer_collection.exclude, layer_collection.holdout,
                  layer_collection.indirect_only, layer_collection.hide_viewport)]
        for child in layer_collection.children:
            flags += layer_flags(child)
        return flags

    snapshot = {
        "scene": values(scene), "render": values(scene.render),
        "image_settings": values(scene.render.image_settings), "cycles": values(scene.cycles),
        "view_settings": values(scene.view_settings),
        "camera": scene.camera.name if scene.camera else None,
        "world": scene.world.name if scene.world else None,
        "compositor": getattr(scene, "compositing_node_group", None),
        "objects": {obj.name: (tuple(obj.location), tuple(map(tuple, obj.matrix_world)), obj.hide_render,
                               tuple(c.name for c in obj.users_collection)) for obj in bpy.data.objects},
        "cameras": {cam.name: (cam.type, cam.lens, cam.dof.use_dof, cam.ortho_scale) for cam in bpy.data.cameras},
    }
    for layer in scene.view_layers:
        snapshot[f"layer {layer.name}"] = (values(layer), values(layer.cycles), layer_flags(layer.layer_collection))
    for name in ("scenes", "objects", "meshes", "cameras", "collections", "images", "materials",
                 "node_groups", "worlds", "actions"):
        snapshot[f"data {name}"] = sorted(block.name for block in getattr(bpy.data, name))
    return snapshot


def test_nearer_objects_are_brighter_and_background_black(scene, depth, conditions):
    _add("cube", (-1.5, -5.0, 0.0))  # front face 4 from the camera
    _add("uv_sphere", (1.5, 0.0, 0.0), radius=1.0)  # about 9 away
    _wall(5.0, size=6.0)  # 15 away, smaller than the view: background around it
    capture = depth.capture_depth(scene)
    assert capture.z.shape == (H, W) and capture.z.dtype == np.float32
    assert capture.mask.shape == (H, W) and capture.mask.dtype == bool
    assert capture.camera == "Camera" and capture.camera_type == 'PERSP'
    assert capture.near == pytest.approx(4.0, abs=1e-3) and capture.far == pytest.approx(15.0, abs=1e-3)
    assert np.all(np.isinf(capture.z[~capture.mask]))
    image = conditions.depth_to_control(capture.z, capture.mask)
    cube, sphere, wall = image[_pixel(-0.8, -6.0, 0.0)], image[_pixel(1.5, -1.0, 0.0)], image[_pixel(0.0, 5.0, 2.5)]
    assert cube[0] == 255 and cube[0] > sphere[0] > wall[0] > 0
    assert np.all(image[0, 0] == 0) and np.all(image[~capture.mask] == 0)


def test_depth_is_exact_planar_camera_z(scene, depth):
    _wall(0.0)  # facing the camera: planar depth is 10 at every pixel, not the ray length
    capture = depth.capture_depth(scene)
    assert capture.mask.all()
    np.testing.assert_allclose(capture.z, 10.0, atol=1e-3)


def test_tilted_plane_matches_ray_plane_intersection_at_pixel_centres(scene, depth):
    angle = math.radians(30.0)
    _add("plane", (0.0, 0.0, 0.0), size=60.0, rotation=(math.pi / 2, 0.0, angle))
    capture = depth.capture_depth(scene)
    assert capture.mask.all()
    # Plane through the origin with normal (sin a, -cos a, 0): z = 10 / (1 - x tan a).
    expected = 10.0 / (1.0 - _ray_x() * math.tan(angle))
    np.testing.assert_allclose(capture.z, np.broadcast_to(expected, (H, W)), atol=1e-3)


def test_rows_are_top_down(scene, depth):
    _add("cube", (0.0, 0.0, 2.0), size=1.0)  # above the view axis
    capture = depth.capture_depth(scene)
    rows = np.nonzero(capture.mask.any(axis=1))[0]
    assert rows.max() < H / 2


def test_orthographic_camera(scene, depth):
    scene.camera.data.type = 'ORTHO'
    scene.camera.data.ortho_scale = 8.0  # 8 wide, 6 high
    _wall(0.0)
    _add("cube", (2.0, -5.0, 1.5), size=2.0)  # front face 4 from the camera, x 1..3, z 0.5..2.5
    capture = depth.capture_depth(scene)
    assert capture.camera_type == 'ORTHO'
    assert capture.near == pytest.approx(4.0, abs=1e-3) and capture.far == pytest.approx(10.0, abs=1e-3)
    columns = (np.arange(W) + 0.5) / W * 8.0 - 4.0
    rows = 3.0 - (np.arange(H) + 0.5) / H * 6.0
    inside = (np.abs(columns - 2.0)[None, :] < 1.0) & (np.abs(rows - 1.5)[:, None] < 1.0)
    np.testing.assert_allclose(capture.z[inside], 4.0, atol=1e-3)
    np.testing.assert_allclose(capture.z[~inside], 10.0, atol=1e-3)


def test_hidden_from_render_is_absent(scene, depth):
    _wall(0.0)
    blocker = _add("cube", (0.0, -5.0, 0.0))
    assert depth.capture_depth(scene).near == pytest.approx(4.0, abs=1e-3)
    blocker.hide_render = True
    capture = depth.capture_depth(scene)
    np.testing.assert_allclose(capture.z, 10.0, atol=1e-3)
    assert blocker.hide_render


def test_excluded_and_render_disabled_collections_are_absent(scene, depth):
    import bpy
    _wall(0.0)
    excluded = bpy.data.collections.new("Excluded")
    scene.collection.children.link(excluded)
    _add("cube", (0.0, -5.0, 0.0), collection=excluded)
    assert depth.capture_depth(scene).near == pytest.approx(4.0, abs=1e-3)
    layer_collection = bpy.context.view_layer.layer_collection.children["Excluded"]
    layer_collection.exclude = True
    np.testing.assert_allclose(depth.capture_depth(scene).z, 10.0, atol=1e-3)
    assert layer_collection.exclude
    layer_collection.exclude = False
    excluded.hide_render = True
    np.testing.assert_allclose(depth.capture_depth(scene).z, 10.0, atol=1e-3)


def test_capture_at_another_frame_sees_that_frame_and_changes_nothing(scene, depth):
    cube = _add("cube", (-3.0, 0.0, 0.0), size=1.0)
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 3.0
    cube.keyframe_insert("location", frame=11)
    scene.frame_set(1)
    assert cube.location.x == pytest.approx(-3.0)
    before = _snapshot(scene)
    capture = depth.capture_depth(scene, frame=11)
    assert capture.frame == 11
    columns = np.nonzero(capture.mask.any(axis=0))[0]
    assert columns.min() > W / 2  # the cube is at x = +3 at frame 11
    assert capture.near == pytest.approx(9.5, abs=1e-3)
    assert scene.frame_current == 1 and cube.location.x == pytest.approx(-3.0)
    assert _snapshot(scene) == before
    columns = np.nonzero(depth.capture_depth(scene).mask.any(axis=0))[0]
    assert columns.max() < W / 2  # and at x = -3 at the current frame


def test_unkeyed_edits_of_animated_values_survive_a_capture(scene, depth):
    cube = _add("cube", (-3.0, 0.0, 0.0), size=1.0)
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 3.0
    cube.keyframe_insert("location", frame=11)
    scene.frame_set(1)
    cube.location.x = 0.5  # moved by hand, not keyed yet
    depth.capture_depth(scene)
    depth.capture_depth(scene, frame=11)
    assert cube.location.x == pytest.approx(0.5)


def test_the_scene_camera_follows_camera_markers_like_a_render(scene, depth):
    import bpy
    _wall(0.0)
    near = bpy.data.objects.new("Near", bpy.data.cameras.new("Near"))
    scene.collection.objects.link(near)
    near.location = (0.0, -4.0, 0.0)
    near.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.timeline_markers.new("far", frame=1).camera = scene.camera
    scene.timeline_markers.new("near", frame=10).camera = near
    assert depth.capture_depth(scene, frame=5).camera == "Camera"
    capture = depth.capture_depth(scene, frame=12)
    assert capture.camera == "Near" and capture.near == pytest.approx(4.0, abs=1e-3)
    assert scene.camera.name == "Camera" and len(scene.timeline_markers) == 2


def test_the_persons_render_settings_are_exactly_as_before(scene, depth):
    import bpy
    _wall(0.0)
    render = scene.render
    render.engine = 'BLENDER_WORKBENCH'
    render.resolution_x, render.resolution_y, render.resolution_percentage = 320, 240, 20
    render.filepath = "//renders/person_"
    render.image_settings.file_format = 'PNG'
    render.image_settings.color_depth = '16'
    render.use_compositing = True
    scene.cycles.samples = 64
    scene.cycles.filter_width = 2.0
    bpy.context.view_layer.use_pass_normal = True
    bpy.context.view_layer.use_pass_z = False
    scene.world = bpy.data.worlds.new("World")
    before = _snapshot(scene)
    capture = depth.capture_depth(scene)
    assert (capture.width, capture.height) == (64, 48)  # the scene's size at its percentage
    assert render.engine == 'BLENDER_WORKBENCH' and render.filepath == "//renders/person_"
    assert (render.resolution_x, render.resolution_y, render.resolution_percentage) == (320, 240, 20)
    assert render.image_settings.file_format == 'PNG'
    assert _snapshot(scene) == before


def test_explicit_size_and_camera(scene, depth):
    import bpy
    _wall(0.0)
    other = bpy.data.objects.new("Other", bpy.data.cameras.new("Other"))
    scene.collection.objects.link(other)
    other.location = (0.0, -4.0, 0.0)
    other.rotation_euler = (math.pi / 2, 0.0, 0.0)
    capture = depth.capture_depth(scene, camera=other, width=40, height=30)
    assert capture.z.shape == (30, 40) and capture.camera == "Other"
    np.testing.assert_allclose(capture.z, 4.0, atol=1e-3)
    assert scene.camera.name == "Camera"


def test_depth_of_field_does_not_blur_depth_and_stays_on(scene, depth):
    camera = scene.camera.data
    camera.dof.use_dof = True
    camera.dof.focus_distance = 1.0
    camera.dof.aperture_fstop = 0.1  # a huge blur if it were applied
    _wall(0.0)
    before = _snapshot(scene)
    capture = depth.capture_depth(scene)
    np.testing.assert_allclose(capture.z, 10.0, atol=1e-3)
    assert camera.dof.use_dof and _snapshot(scene) == before


def test_no_camera_is_an_error_that_says_what_to_do(empty_scene, depth, errors):
    import bpy
    _wall(0.0)
    before = _snapshot(empty_scene)
    with pytest.raises(errors.DiffusionError, match="No active camera") as raised:
        depth.capture_depth(empty_scene)
    assert "Shift+A > Camera" in str(raised.value)
    assert _snapshot(empty_scene) == before and len(bpy.data.scenes) == 1


def test_a_non_camera_object_is_refused(scene, depth, errors):
    cube = _add("cube", (0.0, 0.0, 0.0))
    with pytest.raises(errors.DiffusionError, match="not a camera"):
        depth.capture_depth(scene, camera=cube)


def test_nothing_in_view_is_an_error_and_changes_nothing(scene, depth, errors):
    import bpy
    _add("cube", (0.0, -20.0, 0.0))  # behind the camera
    hidden = _wall(0.0)
    hidden.hide_render = True
    before = _snapshot(scene)
    with pytest.raises(errors.DiffusionError, match="Nothing is in the camera's view"):
        depth.capture_depth(scene)
    assert _snapshot(scene) == before and len(bpy.data.scenes) == 1


def test_a_failing_capture_leaves_no_temporary_data(scene, depth, errors):
    """Cycles switched off makes the render fail halfway: everything made is removed."""
    import addon_utils
    import bpy
    _wall(0.0)
    before = _snapshot(scene)
    addon_utils.disable("cycles", default_set=False)
    try:
        with pytest.raises(errors.DiffusionError, match="Cycles is not available"):
            depth.capture_depth(scene)
    finally:
        addon_utils.enable("cycles", default_set=False)
    assert len(bpy.data.scenes) == 1 and _snapshot(scene) == before
    np.testing.assert_allclose(depth.capture_depth(scene).z, 10.0, atol=1e-3)


def _render_engines() -> int:
    """How many render engines Python can reach (Cycles' engine is one while it lives)."""
    import gc

    import bpy
    gc.collect()
    return sum(isinstance(item, bpy.types.RenderEngine) for item in gc.get_objects())


def test_a_capture_leaves_no_render_engine_alive(scene, depth):
    """Captures keep Cycles' scene data between a session's renders (persistent data); the
    engine holding it goes with the temporary scene instead of staying in Blender's list of
    renders, where it would hold data of a scene that no longer exists."""
    _wall(0.0)
    before = _render_engines()
    np.testing.assert_allclose(depth.capture_depth(scene).z, 10.0, atol=1e-3)
    assert _render_engines() == before

