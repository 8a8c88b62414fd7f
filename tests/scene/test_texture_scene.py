# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender side of texturing: evaluated surfaces, UV maps made only when missing, and
materials wired without touching the person's."""
import math
from importlib import import_module

import numpy as np
import pytest


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


def _cube(location=(0.0, 0.0, 0.0), size=2.0):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    return bpy.context.active_object


def test_a_surface_is_the_evaluated_mesh_in_world_space(scene, ext):
    import bpy
    cube = _cube(location=(1.0, 2.0, 3.0))
    cube.scale = (2.0, 1.0, 1.0)
    cube.modifiers.new("Subdivision", 'SUBSURF').levels = 1
    bpy.context.view_layer.update()
    surface = ext("scene.surfaces").surface_of(cube, bpy.context.evaluated_depsgraph_get(), "UVMap")
    assert len(cube.data.polygons) == 6  # nothing applied to the object
    assert surface.corners.shape == (48, 3, 3)  # 24 quads after one subdivision, two triangles each
    # Reference: the modifier applied on a copy, its vertices moved to world space by Blender.
    applied = cube.copy()
    applied.data = cube.data.copy()
    scene.collection.objects.link(applied)
    with bpy.context.temp_override(object=applied, active_object=applied):
        bpy.ops.object.modifier_apply(modifier="Subdivision")
    applied.data.transform(applied.matrix_world)
    expected = {tuple(np.round(v.co[:], 4)) for v in applied.data.vertices}
    assert {tuple(p) for p in np.round(surface.corners.reshape(-1, 3), 4)} == expected
    assert np.allclose(np.linalg.norm(surface.normals, axis=2), 1.0, atol=1e-5)
    # Normals point away from the centre (outward), in world space despite the scale.
    centre = np.array([1.0, 2.0, 3.0])
    outward = np.einsum("tci,tci->tc", surface.normals, surface.corners - centre)
    assert (outward > 0).all()
    assert surface.uvs.min() >= -1e-6 and surface.uvs.max() <= 1.0 + 1e-6


def test_a_mesh_without_faces_is_refused(scene, ext):
    import bpy
    mesh = bpy.data.meshes.new("Points")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0)], [(0, 1)], [])
    mesh.uv_layers.new(name="UVMap")
    obj = bpy.data.objects.new("Points", mesh)
    scene.collection.objects.link(obj)
    errors = ext("engine.errors")
    with pytest.raises(errors.DiffusionError, match="'Points' has no faces"):
        ext("scene.surfaces").surface_of(obj, bpy.context.evaluated_depsgraph_get(), "UVMap")


def test_an_existing_uv_map_is_used_as_it_is(scene, ext):
    cube = _cube()
    second = cube.data.uv_layers.new(name="Second")
    cube.data.uv_layers.active = second
    before = [(layer.name, np.array([d.uv[:] for d in layer.data])) for layer in cube.data.uv_layers]
    name, made = ext("scene.uv").ensure_uv_map(cube)
    assert (name, made) == ("Second", False)
    after = [(layer.name, np.array([d.uv[:] for d in layer.data])) for layer in cube.data.uv_layers]
    assert [n for n, _ in after] == [n for n, _ in before]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(before, after))


def test_a_mesh_without_uvs_gets_a_smart_uv_project_map_and_keeps_its_mode(scene, ext):
    import bpy
    cube = _cube()
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    cube.data.polygons[0].select = False
    uv = ext("scene.uv")
    name, made = uv.ensure_uv_map(cube)
    assert (name, made) == (uv.UV_MAP_NAME, True)
    assert [layer.name for layer in cube.data.uv_layers] == [uv.UV_MAP_NAME]
    coords = np.array([d.uv[:] for d in cube.data.uv_layers[0].data])
    assert coords.min() >= 0.0 and coords.max() <= 1.0 and np.ptp(coords) > 0.5  # unwrapped, not all at 0
    assert cube.mode == 'OBJECT' and bpy.context.object == cube
    assert not cube.data.polygons[0].select  # the selection is as it was


def test_a_new_material_goes_on_this_object_only(scene, ext):
    import bpy
    cube = _cube()
    theirs = bpy.data.materials.new("Theirs")
    cube.data.materials.append(theirs)
    twin = bpy.data.objects.new("Twin", cube.data)  # another object using the same mesh
    scene.collection.objects.link(twin)
    image = bpy.data.images.new("texture", 8, 8)
    material = ext("scene.materials").texture_material(cube, image, "UVMap")
    assert cube.material_slots[0].material == material and cube.material_slots[0].link == 'OBJECT'
    assert list(cube.data.materials) == [theirs]  # the mesh's own material is kept
    assert twin.material_slots[0].material == theirs
    nodes = material.node_tree.nodes
    principled = next(n for n in nodes if n.type == 'BSDF_PRINCIPLED')
    texture = principled.inputs["Base Color"].links[0].from_node
    assert texture.type == 'TEX_IMAGE' and texture.image == image
    assert texture.inputs["Vector"].links[0].from_node.uv_map == "UVMap"


def test_a_mesh_without_materials_gets_an_empty_slot_and_an_object_material(scene, ext):
    import bpy
    cube = _cube()
    twin = bpy.data.objects.new("Twin", cube.data)
    scene.collection.objects.link(twin)
    material = ext("scene.materials").texture_material(cube, bpy.data.images.new("t", 8, 8), "UVMap")
    assert cube.active_material == material
    assert list(cube.data.materials) == [None] and twin.active_material is None


def test_the_base_color_of_a_picked_material_is_the_only_change(scene, ext):
    import bpy
    material = bpy.data.materials.new("Picked")
    if material.node_tree is None:
        material.use_nodes = True
    principled = next(n for n in material.node_tree.nodes if n.type == 'BSDF_PRINCIPLED')
    principled.inputs["Roughness"].default_value = 0.3
    before = {n.name for n in material.node_tree.nodes}
    image = bpy.data.images.new("t", 8, 8)
    ext("scene.materials").set_base_color(material, image, "UVMap")
    added = {n.name for n in material.node_tree.nodes} - before
    assert len(added) == 2
    assert principled.inputs["Base Color"].links[0].from_node.image == image
    assert principled.inputs["Roughness"].default_value == pytest.approx(0.3)
    assert math.isclose(principled.inputs["Roughness"].default_value, 0.3, rel_tol=1e-6)
