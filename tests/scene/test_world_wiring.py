# SPDX-License-Identifier: GPL-3.0-or-later
"""World panoramas and camera backdrops wired into the scene, with the person's World,
compositor nodes, camera background images and render visibility kept as they were."""
import math
from importlib import import_module

import numpy as np
import pytest

RED, GREEN, BLUE = (0.8, 0.1, 0.1), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


@pytest.fixture
def world(ext):
    return ext("scene.world")


@pytest.fixture
def backdrop(ext):
    return ext("scene.backdrop")


def _image(ext, name, rgb, kind="world"):
    return ext("scene.images").new_image(name, np.ascontiguousarray(rgb, dtype=np.float32), {"kind": kind})


def _panorama(ext, width=256):
    """2:1; u < 0.5 red, u in [0.7, 0.8] green, the rest blue."""
    u = (np.arange(width) + 0.5) / width
    row = np.where((u < 0.5)[:, None], RED, np.where(((u >= 0.7) & (u <= 0.8))[:, None], GREEN, BLUE))
    return _image(ext, "Panorama", np.broadcast_to(row, (width // 2, width, 3)))


def _flat(ext, colour, size=(16, 16), kind="backdrop", name="Backdrop"):
    return _image(ext, name, np.broadcast_to(colour, (*size, 3)), kind=kind)


def _person_world(bpy, name="Person's Sky"):
    """A World the person made: a Sky Texture, strength 2.5, an extra unlinked Value node."""
    person = bpy.data.worlds.new(name)
    if person.node_tree is None:
        person.use_nodes = True
    tree = person.node_tree
    sky = tree.nodes.new("ShaderNodeTexSky")
    tree.links.new(sky.outputs["Color"], tree.nodes["Background"].inputs["Color"])
    tree.nodes["Background"].inputs["Strength"].default_value = 2.5
    tree.nodes.new("ShaderNodeValue").outputs[0].default_value = 0.25
    person.color = (0.1, 0.2, 0.3)
    return person


def _snapshot(tree) -> dict:
    """Every node (name, type, location, input/output values), every link."""
    if tree is None:  # Blender 4.x: a world without nodes
        return {"nodes": {}, "links": []}

    def value(socket):
        raw = getattr(socket, "default_value", None)
        return tuple(raw) if hasattr(raw, "__len__") and not isinstance(raw, str) else raw

    def image(node):
        return getattr(node, "image", None) and node.image.name

    nodes = {node.name: (node.bl_idname, tuple(node.location), node.mute, image(node),
                         [(s.identifier, value(s)) for s in node.inputs],
                         [(s.identifier, value(s)) for s in node.outputs]) for node in tree.nodes}
    links = sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
                   for link in tree.links)
    return {"nodes": nodes, "links": links}


# --- World ---------------------------------------------------------------------------------------

def test_make_world_builds_the_named_chain(empty_scene, ext, world):
    import bpy
    image = _panorama(ext)
    made = world.make_world(image, 1.7, 0.4)
    tree = made.node_tree
    assert made.name == "Scene Diffusion World"
    assert {node.name for node in tree.nodes} == {world.COORDINATES_NODE, world.MAPPING_NODE, world.ENVIRONMENT_NODE,
                                                  world.BACKGROUND_NODE, world.OUTPUT_NODE}
    links = {(link.from_node.name, link.from_socket.name, link.to_node.name, link.to_socket.name)
             for link in tree.links}
    assert links == {
        (world.COORDINATES_NODE, "Generated", world.MAPPING_NODE, "Vector"),
        (world.MAPPING_NODE, "Vector", world.ENVIRONMENT_NODE, "Vector"),
        (world.ENVIRONMENT_NODE, "Color", world.BACKGROUND_NODE, "Color"),
        (world.BACKGROUND_NODE, "Background", world.OUTPUT_NODE, "Surface"),
    }
    mapping, environment = tree.nodes[world.MAPPING_NODE], tree.nodes[world.ENVIRONMENT_NODE]
    assert mapping.vector_type == 'POINT'
    assert tuple(mapping.inputs["Rotation"].default_value) == pytest.approx((0.0, 0.0, 0.4))
    assert environment.image == image and environment.projection == 'EQUIRECTANGULAR'
    assert tree.nodes[world.BACKGROUND_NODE].inputs["Strength"].default_value == pytest.approx(1.7)
    assert world.environment_node(made) == environment and world.world_image(made) == image
    # A second one never takes over the first's name.
    assert world.make_world(image, 1.0, 0.0).name == "Scene Diffusion World.001"
    assert bpy.data.worlds["Scene Diffusion World"].node_tree.nodes[world.ENVIRONMENT_NODE].image == image


def test_set_world_keeps_the_previous_world_through_save_and_reload(empty_scene, ext, world, tmp_path):
    import bpy
    person = _person_world(bpy)
    empty_scene.world = person
    before = _snapshot(person.node_tree)
    made = world.make_world(_panorama(ext), 1.0, 0.0)
    note = world.set_world(empty_scene, made)
    assert note == "kept the previous World 'Person's Sky' (fake user)"
    assert empty_scene.world == made
    path = str(tmp_path / "kept.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    kept = bpy.data.worlds.get("Person's Sky")
    assert kept is not None and kept.use_fake_user and kept.users == 1  # only the fake user
    assert _snapshot(kept.node_tree) == before
    assert tuple(kept.color) == pytest.approx((0.1, 0.2, 0.3))
    assert bpy.context.scene.world.name == "Scene Diffusion World"
    # No previous World: nothing to say.
    bpy.context.scene.world = None
    assert world.set_world(bpy.context.scene, bpy.data.worlds["Scene Diffusion World"]) is None


def test_replace_environment_changes_only_image_strength_and_rotation(empty_scene, ext, world):
    import bpy
    old, new = _panorama(ext), _flat(ext, RED, kind="world", name="New")
    person = bpy.data.worlds.new("Person's HDRI")
    if person.node_tree is None:
        person.use_nodes = True
    tree = person.node_tree
    # The person's own wiring: an Environment Texture through a Reroute, a TEXTURE-type Mapping.
    environment = tree.nodes.new("ShaderNodeTexEnvironment")
    environment.image = old
    reroute = tree.nodes.new("NodeReroute")
    tree.links.new(environment.outputs["Color"], reroute.inputs[0])
    tree.links.new(reroute.outputs[0], tree.nodes["Background"].inputs["Color"])
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.vector_type = 'TEXTURE'
    mapping.inputs["Location"].default_value = (1.0, 2.0, 3.0)
    mapping.inputs["Rotation"].default_value = (0.1, 0.2, 0.3)
    tree.links.new(tree.nodes.new("ShaderNodeTexCoord").outputs["Generated"], mapping.inputs["Vector"])
    tree.links.new(mapping.outputs["Vector"], environment.inputs["Vector"])
    before = _snapshot(tree)
    assert world.world_image(person) == old
    assert world.replace_environment(person, new, 3.0, 0.5)
    after = _snapshot(tree)
    changed = {name for name in before["nodes"] if before["nodes"][name] != after["nodes"][name]}
    assert changed == {environment.name, "Background", mapping.name}
    assert after["links"] == before["links"]
    assert environment.image == new
    assert tree.nodes["Background"].inputs["Strength"].default_value == pytest.approx(3.0)
    # A TEXTURE mapping turns the picture the other way: the same turn is -rotation there.
    assert tuple(mapping.inputs["Rotation"].default_value) == pytest.approx((0.1, 0.2, -0.5))
    assert tuple(mapping.inputs["Location"].default_value) == pytest.approx((1.0, 2.0, 3.0))
    assert world.world_image(person) == new


def test_replace_environment_refuses_a_sky_an_rgb_or_no_nodes(empty_scene, ext, world):
    import bpy
    image = _panorama(ext)
    sky = _person_world(bpy)
    rgb = bpy.data.worlds.new("RGB")
    if rgb.node_tree is None:
        rgb.use_nodes = True
    rgb.node_tree.links.new(rgb.node_tree.nodes.new("ShaderNodeRGB").outputs[0],
                            rgb.node_tree.nodes["Background"].inputs["Color"])
    # An Environment Texture that is there but not wired to the Background does not count.
    unlinked = bpy.data.worlds.new("Unlinked")
    if unlinked.node_tree is None:
        unlinked.use_nodes = True
    unlinked.node_tree.nodes.new("ShaderNodeTexEnvironment")
    bare = bpy.data.worlds.new("Bare")
    if bare.node_tree is not None:
        bare.node_tree.nodes.clear()
    for person in (sky, rgb, unlinked, bare):
        before = _snapshot(person.node_tree)
        assert world.environment_node(person) is None and world.world_image(person) is None
        assert world.replace_environment(person, image, 4.0, 1.0) is False
        assert _snapshot(person.node_tree) == before
    assert world.world_image(None) is None


# --- Renders -------------------------------------------------------------------------------------

def _render_setup(scene, size=(64, 64)):
    import bpy
    scene.render.engine = 'CYCLES'
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.cycles.device = 'CPU'
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = 'Standard'  # display values back out as they went in
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # at the origin, facing +Y
    scene.camera = camera
    return camera


def _render(scene, path) -> np.ndarray:
    """Render to a PNG (background mode has no Render Result pixels) and read it back: HxWx4, top row first."""
    import bpy
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGBA'
    with bpy.context.temp_override(scene=scene):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    loaded = bpy.data.images.load(str(path))
    try:
        width, height = loaded.size
        flat = np.empty(width * height * 4, dtype=np.float32)
        loaded.pixels.foreach_get(flat)
        return flat.reshape(height, width, 4)[::-1].copy()
    finally:
        bpy.data.images.remove(loaded)


def test_a_world_panorama_renders_the_way_it_faces_and_turns(empty_scene, ext, world, tmp_path):
    camera = _render_setup(empty_scene)
    made = world.make_world(_panorama(ext), 1.0, 0.0)
    made.cycles.sampling_method = 'NONE'  # no importance map to build: only camera rays see the world
    world.set_world(empty_scene, made)
    # Measured here (bpy 5.0.1, a u-coded float panorama, Closest): Blender's equirectangular
    # lookup is u = 0.5 - atan2(d.y, d.x)/2π, so u = 0.25 faces +Y, u = 0.5 faces +X, u = 0.75
    # faces -Y, u = 0 (and 1) faces -X. (FACTS' "u = 0.75 faces +Y" did not hold.)
    pixels = _render(empty_scene, tmp_path / "plus_y.png")
    assert np.allclose(pixels[32, 32, :3], RED, atol=0.03)  # facing +Y: u = 0.25, the red half
    camera.rotation_euler = (math.pi / 2, 0.0, math.pi)  # facing -Y: u = 0.75, the green band
    pixels = _render(empty_scene, tmp_path / "minus_y.png")
    assert np.allclose(pixels[32, 32, :3], GREEN, atol=0.03)
    # The Mapping (Point) turns the looked-up direction d by +π/2 about Z (counter-clockwise,
    # (x, y) → (-y, x); checked by experiment, -π/2 gives the mirror image). Facing -Y, a pixel
    # left of the centre looks along (s, -1) → (1, s): u just below 0.5, red; right of the
    # centre (-s, -1) → (1, -s): u just above 0.5, blue. The centre sits on u = 0.5.
    assert world.replace_environment(made, made.node_tree.nodes[world.ENVIRONMENT_NODE].image, 1.0, math.pi / 2)
    pixels = _render(empty_scene, tmp_path / "turned.png")
    assert not np.allclose(pixels[32, 32, :3], GREEN, atol=0.2)
    assert np.allclose(pixels[32, 12, :3], RED, atol=0.03)
    assert np.allclose(pixels[32, 52, :3], BLUE, atol=0.03)


def _emissive_block(colour, location=(0.0, 6.0, 0.0), size=1.0):
    """A small cube of pure emission straight ahead of the camera."""
    import bpy
    mesh = bpy.data.meshes.new("Block")
    half = size / 2
    verts = [(x * half, y * half, z * half) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh.from_pydata(verts, [], faces)
    block = bpy.data.objects.new("Block", mesh)
    block.location = location
    material = bpy.data.materials.new("Glow")
    if material.node_tree is None:
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    tree.links.new(emission.outputs[0], tree.nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    mesh.materials.append(material)
    bpy.context.scene.collection.objects.link(block)
    return block


# --- Backdrop: compositor ------------------------------------------------------------------------

def _compositor(scene):
    """The scene's compositor tree: 5.0 a node group, 4.2–4.5 scene.node_tree (with use_nodes)."""
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def _result(tree):
    """The compositor's result node: 5.0 the Group Output, 4.2–4.5 the Composite node."""
    return next(node for node in tree.nodes if node.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))


def _layers_under(node):
    """What feeds the backdrop input of our Alpha Over: the Scale node (4.x: through Alpha
    Convert and Set Alpha)."""
    while node.bl_idname in ("CompositorNodeSetAlpha", "CompositorNodePremulKey"):
        node = node.inputs[0].links[0].from_node
    return node


def test_composite_on_a_scene_without_a_compositor(empty_scene, ext, backdrop):
    image = _flat(ext, BLUE)
    assert _compositor(empty_scene) is None and not empty_scene.render.film_transparent
    note = backdrop.composite(empty_scene, image)
    tree = _compositor(empty_scene)
    assert empty_scene.render.film_transparent and empty_scene.render.use_compositing
    assert note.startswith("turned on Film > Transparent; made the compositor node tree")
    output = _result(tree)
    assert note.endswith(f"added the backdrop to the compositor before '{output.name}'")
    over = tree.nodes[backdrop.ALPHA_OVER_NODE]
    background, foreground = backdrop._alpha_over_inputs(over)
    assert output.inputs[0].links[0].from_node == over
    assert _layers_under(background.links[0].from_node).name == backdrop.SIZE_NODE
    assert tree.nodes[backdrop.SIZE_NODE].inputs["Image"].links[0].from_node.name == backdrop.IMAGE_NODE
    assert tree.nodes[backdrop.IMAGE_NODE].image == image
    source = foreground.links[0].from_node
    while source.bl_idname == "NodeReroute":  # 4.5's default tree routes the render through one
        source = source.inputs[0].links[0].from_node
    assert source.bl_idname == "CompositorNodeRLayers"


def test_composite_inserts_before_the_output_of_the_persons_tree(empty_scene, ext, backdrop):
    import bpy
    if hasattr(empty_scene, "compositing_node_group"):  # 5.0: a node group with a Group Output
        tree = bpy.data.node_groups.new("Person's Compositor", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out='OUTPUT', socket_type='NodeSocketColor')
        output = tree.nodes.new("NodeGroupOutput")
    else:  # 4.2–4.5: the scene's own tree, with a Composite node
        empty_scene.use_nodes = True
        tree = empty_scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite")
    layers = tree.nodes.new("CompositorNodeRLayers")
    glare = tree.nodes.new("CompositorNodeGlare")
    blur = tree.nodes.new("CompositorNodeBlur")  # a side branch, not on the way to the output
    tree.links.new(layers.outputs["Image"], glare.inputs["Image"])
    tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
    tree.links.new(glare.outputs["Image"], output.inputs["Image"])
    if hasattr(empty_scene, "compositing_node_group"):
        empty_scene.compositing_node_group = tree
    before = _snapshot(tree)
    first, second = _flat(ext, BLUE), _flat(ext, RED, name="Second")
    note = backdrop.composite(empty_scene, first)
    assert note == f"turned on Film > Transparent; added the backdrop to the compositor before '{output.name}'"
    after = _snapshot(tree)
    assert _compositor(empty_scene) == tree
    # Every node of the person's kept as it was; only the Glare → output link rerouted.
    assert {name: after["nodes"][name] for name in before["nodes"]} == before["nodes"]
    rerouted = (glare.name, "Image", output.name, output.inputs["Image"].identifier)
    assert set(before["links"]) - set(after["links"]) == {rerouted}
    over = tree.nodes[backdrop.ALPHA_OVER_NODE]
    assert backdrop._alpha_over_inputs(over)[1].links[0].from_node == glare
    assert output.inputs["Image"].links[0].from_node == over
    # Again, with a new backdrop: the image is swapped in our node, nothing is stacked.
    again = _snapshot(tree)
    note = backdrop.composite(empty_scene, second)
    assert note == "replaced the backdrop image in the compositor"
    assert [node.bl_idname for node in tree.nodes].count("CompositorNodeAlphaOver") == 1
    assert tree.nodes[backdrop.IMAGE_NODE].image == second
    assert _snapshot(tree)["links"] == again["links"]
    assert empty_scene.render.film_transparent


def test_a_composited_render_shows_the_object_over_the_backdrop(empty_scene, ext, backdrop, tmp_path):
    _render_setup(empty_scene)
    _emissive_block((1.0, 0.0, 0.0))
    # A backdrop of another size than the render: it is stretched to fill the frame.
    note = backdrop.composite(empty_scene, _flat(ext, (0.2, 0.4, 0.9), size=(24, 40)))
    assert "Film > Transparent" in note
    pixels = _render(empty_scene, tmp_path / "composited.png")
    for y, x in ((0, 0), (0, 63), (63, 0), (63, 63), (32, 4)):
        assert np.allclose(pixels[y, x, :3], (0.2, 0.4, 0.9), atol=0.02), (y, x, pixels[y, x])
    assert np.allclose(pixels[32, 32, :3], (1.0, 0.0, 0.0), atol=0.02)
    assert pixels[..., 3].min() > 0.99  # opaque: the backdrop fills what was transparent


# --- Backdrop: camera, shadow catchers, leaving out ------------------------------------------------

def test_show_in_camera_keeps_the_persons_entries_and_reuses_ours(empty_scene, ext, backdrop):
    import bpy
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    persons = camera.data.background_images.new()
    persons.image = _flat(ext, RED, kind="reference", name="Reference")
    persons.alpha, persons.display_depth = 0.3, 'FRONT'
    first, second = _flat(ext, BLUE), _flat(ext, GREEN, name="Second")
    backdrop.show_in_camera(camera, first)
    backdrop.show_in_camera(camera, second)
    entries = list(camera.data.background_images)
    assert len(entries) == 2 and camera.data.show_background_images
    assert entries[0].image.name == "Reference" and entries[0].alpha == pytest.approx(0.3)
    assert entries[0].display_depth == 'FRONT'
    assert entries[1].image == second and entries[1].display_depth == 'BACK'
    assert entries[1].alpha == pytest.approx(1.0) and entries[1].show_background_image


def test_make_shadow_catchers_names_only_the_ones_changed(empty_scene, backdrop):
    import bpy
    floor, wall = (bpy.data.objects.new(name, bpy.data.meshes.new(name)) for name in ("Floor", "Wall"))
    wall.is_shadow_catcher = True
    assert backdrop.make_shadow_catchers([floor, wall]) == ["Floor"]
    assert floor.is_shadow_catcher and wall.is_shadow_catcher


def test_leaving_out_restores_each_objects_own_value_even_on_error(empty_scene, backdrop):
    import bpy
    shown, hidden, other = (bpy.data.objects.new(name, None) for name in ("Shown", "Hidden", "Other"))
    hidden.hide_render = True
    with backdrop.leaving_out([shown, hidden, shown]):
        assert shown.hide_render and hidden.hide_render and not other.hide_render
    assert (shown.hide_render, hidden.hide_render, other.hide_render) == (False, True, False)
    with pytest.raises(ValueError, match="capture failed"), backdrop.leaving_out([shown, hidden]):
        assert shown.hide_render
        raise ValueError("capture failed")
    assert (shown.hide_render, hidden.hide_render, other.hide_render) == (False, True, False)

