# SPDX-License-Identifier: GPL-3.0-or-later
"""CameraView: project and unproject against what Cycles renders and what Blender computes.

References built apart from the code under test: Cycles' own Z pass (planar depth, or the
distance along the ray for panoramas) of known geometry, and Blender's own
`bpy_extras.object_utils.world_to_camera_view`.
"""
import math
from importlib import import_module

import numpy as np
import pytest


@pytest.fixture
def camera_module(extension):
    return import_module(f"{extension.__name__}.scene.camera")


@pytest.fixture
def render(extension):
    return import_module(f"{extension.__name__}.scene.render")


def _wall(y: float, size: float = 60.0):
    import bpy
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0.0, y, 0.0), rotation=(math.pi / 2, 0.0, 0.0))
    return bpy.context.active_object


def _centres(width: int, height: int) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width] + 0.5
    return np.stack([columns.ravel(), rows.ravel()], axis=1)


def _unprojected_depth(scene, camera_module, render, camera=None):
    """The Z pass of the scene and every pixel's point unprojected from it (NaN on background)."""
    rendered = render.render_passes(scene, ("z",), camera=camera)
    z = rendered.images["z"].astype(np.float64)
    hit = z < 1e9
    view = camera_module.camera_view(scene, camera)
    points = view.unproject(_centres(view.width, view.height), np.where(hit, z, np.nan).ravel())
    return view, points.reshape(view.height, view.width, 3), hit


@pytest.mark.parametrize("setup", ["plain", "shift and portrait", "orthographic"])
def test_unprojected_depth_lies_on_the_rendered_surface(scene, camera_module, render, setup):
    camera = scene.camera
    if setup == "shift and portrait":
        camera.data.shift_x, camera.data.shift_y = 0.15, -0.1
        camera.data.lens = 35.0
        scene.render.resolution_x, scene.render.resolution_y = 48, 64
    if setup == "orthographic":
        camera.data.type, camera.data.ortho_scale = 'ORTHO', 7.0
    camera.rotation_euler = (math.radians(80), 0.0, math.radians(12))  # the wall is seen at an angle
    _wall(4.0)
    view, points, hit = _unprojected_depth(scene, camera_module, render)
    assert hit.mean() > 0.9
    # Every rendered pixel's point lies on the wall plane y = 4.
    assert np.abs(points[hit][:, 1] - 4.0).max() < 1e-3
    # And projecting it back lands on the pixel centre it came from.
    pixels, depth = view.project(points[hit])
    centres = _centres(view.width, view.height).reshape(view.height, view.width, 2)[hit]
    assert np.abs(pixels - centres).max() < 1e-3


def test_projection_matches_blenders_world_to_camera_view(scene, camera_module):
    import bpy
    from bpy_extras.object_utils import world_to_camera_view

    camera = scene.camera
    camera.data.shift_x, camera.data.lens = -0.2, 28.0
    camera.location = (1.0, -9.0, 2.0)
    camera.rotation_euler = (math.radians(75), math.radians(5), math.radians(-20))
    bpy.context.view_layer.update()
    points = np.array([[0.0, 0.0, 0.0], [2.0, 3.0, -1.0], [-3.0, 5.0, 2.5], [0.5, -2.0, 1.0]])
    view = camera_module.camera_view(scene)
    pixels, depth = view.project(points)
    for point, pixel, distance in zip(points, pixels, depth):
        x, y, z = world_to_camera_view(scene, camera, __import__("mathutils").Vector(point))
        assert pixel == pytest.approx((x * view.width, (1.0 - y) * view.height), abs=1e-4)
        assert distance == pytest.approx(z, abs=1e-4)


@pytest.mark.parametrize("longitude", [(-math.pi, math.pi), (-2.0, 1.2)])
def test_equirectangular_unprojection_lies_on_the_room_around_the_camera(scene, camera_module, render, longitude):
    import bpy

    camera = scene.camera
    camera.data.type = 'PANO'
    camera.data.panorama_type = 'EQUIRECTANGULAR'
    camera.data.longitude_min, camera.data.longitude_max = longitude
    camera.data.latitude_min, camera.data.latitude_max = -1.2, 1.4
    camera.location = (0.5, -0.3, 0.2)
    camera.rotation_euler = (math.radians(90), 0.0, math.radians(90))
    scene.render.resolution_x, scene.render.resolution_y = 64, 32
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.0))
    room = bpy.context.active_object
    room.scale = (6.0, 8.0, 4.0)  # walls at x = +-3, y = +-4, z = +-2
    view, points, hit = _unprojected_depth(scene, camera_module, render)
    assert hit.all()
    on_wall = np.max(np.abs(points) / np.array([3.0, 4.0, 2.0]), axis=2)
    assert np.abs(on_wall - 1.0).max() < 1e-3
    pixels, _ = view.project(points.reshape(-1, 3))
    assert np.abs(pixels - _centres(view.width, view.height)).max() < 1e-3


def test_equirectangular_mapping_is_the_environment_textures(scene, camera_module):
    """Blender's Environment Texture mapping (checked with Cycles in FACTS.md): with the
    camera turned (90°, 0°, 90°) the image centre faces -X, u = 0.75 faces +Y, the top +Z."""
    camera = scene.camera
    camera.data.type, camera.data.panorama_type = 'PANO', 'EQUIRECTANGULAR'
    camera.location = (0.0, 0.0, 0.0)
    camera.rotation_euler = (math.radians(90), 0.0, math.radians(90))
    view = camera_module.camera_view(scene, width=200, height=100)
    pixels, _ = view.project(np.array([[-5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, -5.0, 0.0], [0.0, 0.0, 5.0]]))
    assert pixels[0] == pytest.approx((100.0, 50.0), abs=1e-4)
    assert pixels[1] == pytest.approx((150.0, 50.0), abs=1e-4)
    assert pixels[2] == pytest.approx((50.0, 50.0), abs=1e-4)
    assert pixels[3][1] == pytest.approx(0.0, abs=1e-4)


def test_view_at_another_frame_follows_the_animation_and_changes_nothing(scene, camera_module):
    camera = scene.camera
    camera.location = (0.0, -10.0, 0.0)
    camera.keyframe_insert("location", frame=1)
    camera.location = (4.0, -10.0, 1.0)
    camera.keyframe_insert("location", frame=11)
    scene.frame_set(1)
    camera.location.x = -2.0  # an edit not keyed
    view = camera_module.camera_view(scene, frame=11)
    assert view.origin == pytest.approx((4.0, -10.0, 1.0), abs=1e-4)
    assert view.frame == 11
    assert scene.frame_current == 1
    assert camera.location.x == pytest.approx(-2.0)
    here = camera_module.camera_view(scene)
    assert here.origin == pytest.approx((-2.0, -10.0, 0.0), abs=1e-4)


def test_a_fisheye_panorama_is_refused_with_what_to_do(scene, camera_module):
    errors = import_module(f"{camera_module.__name__.rsplit('.', 2)[0]}.engine.errors")
    scene.camera.data.type, scene.camera.data.panorama_type = 'PANO', 'FISHEYE_EQUISOLID'
    view = camera_module.camera_view(scene)
    with pytest.raises(errors.DiffusionError, match="equirectangular"):
        view.project(np.zeros((1, 3)))
