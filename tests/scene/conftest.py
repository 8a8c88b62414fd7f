# SPDX-License-Identifier: GPL-3.0-or-later
import math

import pytest

W, H = 64, 48


@pytest.fixture
def scene(empty_scene):
    """An empty scene at 64x48 with a camera at (0, -10, 0) looking along +Y."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    return scene
