# SPDX-License-Identifier: GPL-3.0-or-later
"""Panorama captures: the scene around the camera in the World's own mapping (u = 0.25 is
+Y, the centre +X, the top +Z), checked against analytic directions. That the World made
from such a panorama lines up with the scene is rendered in tests/e2e/test_backgrounds.py."""
from importlib import import_module

import numpy as np
import pytest


@pytest.fixture
def panorama(extension):
    return import_module(f"{extension.__name__}.scene.panorama")


def _box(location, size=1.0, name=None):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.active_object
    if name:
        obj.name = name
    return obj


def _centroid(mask):
    rows, columns = np.nonzero(mask)
    return columns.mean() + 0.5, rows.mean() + 0.5


def test_an_object_at_plus_y_is_at_a_quarter_and_one_above_is_at_the_top(scene, panorama):
    import bpy
    scene.camera.location = (0.0, 0.0, 0.0)
    _box((0.0, 6.0, 0.0))
    bpy.context.view_layer.update()
    captured = panorama.capture_panorama(scene, {"depth"}, 128, scene.frame_current)
    z = captured.z
    assert z.shape == (64, 128)
    x, y = _centroid(np.isfinite(z))
    assert x / 128 == pytest.approx(0.25, abs=0.01) and y / 64 == pytest.approx(0.5, abs=0.02)
    # Its distance is the Euclidean one to the cube's near face.
    assert np.nanmin(np.where(np.isfinite(z), z, np.nan)) == pytest.approx(5.5, abs=0.05)
    assert captured.conditions["depth"].image.shape == (64, 128, 3)

    bpy.data.objects.remove(bpy.data.objects["Cube"])
    _box((0.0, 0.0, 6.0), size=4.0)
    bpy.context.view_layer.update()
    z = panorama.capture_panorama(scene, {"depth"}, 128, scene.frame_current).z
    hit = np.isfinite(z)
    assert hit[0].all() and not hit[-1].any()  # the whole top row sees it, the bottom none
    assert hit[:, 64].sum() < 32


def test_the_panorama_is_seen_from_the_chosen_origin_and_leaves_nothing_behind(scene, panorama):
    import bpy
    marker = bpy.data.objects.new("Origin", None)
    scene.collection.objects.link(marker)
    marker.location = (0.0, 10.0, 0.0)
    _box((4.0, 10.0, 0.0))  # +X of the origin: the panorama's centre
    bpy.context.view_layer.update()
    before = {obj.name for obj in bpy.data.objects}, {cam.name for cam in bpy.data.cameras}
    z = panorama.capture_panorama(scene, {"depth", "normal"}, 128, scene.frame_current, origin=marker).z
    x, y = _centroid(np.isfinite(z))
    assert x / 128 == pytest.approx(0.5, abs=0.01) and y / 64 == pytest.approx(0.5, abs=0.02)
    assert ({obj.name for obj in bpy.data.objects}, {cam.name for cam in bpy.data.cameras}) == before


def test_nothing_around_is_none_and_openpose_is_refused(scene, panorama, extension):
    errors = import_module(f"{extension.__name__}.engine.errors")
    assert panorama.capture_panorama(scene, {"depth"}, 64, scene.frame_current) is None
    with pytest.raises(errors.DiffusionError, match="openpose cannot be captured as a panorama"):
        panorama.capture_panorama(scene, {"openpose", "depth"}, 64, scene.frame_current)
