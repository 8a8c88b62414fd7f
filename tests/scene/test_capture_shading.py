# SPDX-License-Identifier: GPL-3.0-or-later
"""Captures render unshaded (a fast emission override) only when no material could change
what the passes see; an alpha cut-out keeps every object's own material."""
from importlib import import_module

import numpy as np
import pytest


@pytest.fixture
def render(extension):
    return import_module(f"{extension.__name__}.scene.render")


def _veil(alpha):
    """A plane between the camera and a box, its material's alpha `alpha`."""
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0.0, 4.0, 0.0))
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(0.0, -2.0, 0.0), rotation=(np.pi / 2, 0.0, 0.0))
    plane = bpy.context.active_object
    material = bpy.data.materials.new("veil")
    if material.node_tree is None:
        material.use_nodes = True
    material.node_tree.nodes["Principled BSDF"].inputs["Alpha"].default_value = alpha
    plane.data.materials.append(material)
    bpy.context.view_layer.update()


def test_an_alpha_cut_out_is_seen_through(scene, render):
    _veil(0.0)
    assert render._shading_matters()
    z = render.render_passes(scene, ("z",)).images["z"]
    centre = z[20:28, 28:36]
    assert np.allclose(centre, 13.0, atol=1e-3)  # the box's face at y = 3, the camera at y = -10


def test_an_opaque_scene_renders_unshaded_with_the_same_passes(scene, render):
    import bpy
    _veil(1.0)
    assert not render._shading_matters()
    unshaded = render.render_passes(scene, ("z", "normal", "cryptomatte")).images
    assert ".scene_diffusion_unshaded" not in bpy.data.materials  # removed after
    assert np.allclose(unshaded["z"][20:28, 28:36], 8.0, atol=1e-3)  # the plane at y = -2
    # The same render with the scene's own materials (a Transparent BSDF elsewhere in the file
    # makes shading matter): bit for bit the same Z and objects, normals to float rounding.
    other = bpy.data.materials.new("glass pane")
    other.use_fake_user = True
    if other.node_tree is None:
        other.use_nodes = True
    other.node_tree.nodes.new("ShaderNodeBsdfTransparent")
    assert render._shading_matters()
    shaded = render.render_passes(scene, ("z", "normal", "cryptomatte")).images
    assert np.array_equal(unshaded["z"], shaded["z"])
    assert np.array_equal(unshaded["cryptomatte"], shaded["cryptomatte"])
    assert np.abs(unshaded["normal"] - shaded["normal"]).max() < 1e-5


def test_the_unshaded_render_tells_back_faces(scene, render):
    """The "backfacing" pass: 1 on the back of a face, 0 on front faces and the background;
    left out where the scene's own materials must shade (they would not emit it)."""
    import bpy
    _veil(1.0)  # the plane faces the camera
    images = render.render_passes(scene, ("z", "backfacing")).images
    assert images["backfacing"].shape == images["z"].shape
    assert set(np.unique(images["backfacing"])) == {0.0}
    plane = bpy.context.active_object
    plane.rotation_euler[0] = -np.pi / 2  # now it shows its back
    bpy.context.view_layer.update()
    back = render.render_passes(scene, ("z", "backfacing")).images["backfacing"]
    veil = np.isclose(render.render_passes(scene, ("z",)).images["z"], 8.0, atol=1e-3)
    assert veil.mean() > 0.3 and np.all(back[veil] == 1.0) and np.all(back[~veil] == 0.0)
    other = bpy.data.materials.new("glass pane")
    other.use_fake_user = True
    if other.node_tree is None:
        other.use_nodes = True
    other.node_tree.nodes.new("ShaderNodeBsdfTransparent")
    assert "backfacing" not in render.render_passes(scene, ("z", "backfacing")).images
