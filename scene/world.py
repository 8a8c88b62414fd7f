# SPDX-License-Identifier: GPL-3.0-or-later
"""A 2:1 equirectangular image wired into a World, without touching the person's World.

A new World is made with a fixed chain of named nodes:

    Texture Coordinate (Generated) → Mapping (Point, rotation Z) → Environment Texture
    → Background (Strength) → World Output

Node names (so later runs and tests can find them): "Scene Diffusion Coordinates",
"Scene Diffusion Mapping", "Scene Diffusion Environment", "Scene Diffusion Background",
"Scene Diffusion World Output". The person's previous World is kept with a fake user, so it
is still in the file after a save even though no scene shows it any more.

`replace_environment` points an existing World's Environment Texture (ours or the person's)
at a new image instead; it works only where the Background's colour plainly comes from an
Environment Texture, and otherwise changes nothing.
"""
from __future__ import annotations

import bpy

__all__ = ["make_world", "set_world", "environment_node", "replace_environment", "world_image",
           "COORDINATES_NODE", "MAPPING_NODE", "ENVIRONMENT_NODE", "BACKGROUND_NODE", "OUTPUT_NODE"]

COORDINATES_NODE = "Scene Diffusion Coordinates"
MAPPING_NODE = "Scene Diffusion Mapping"
ENVIRONMENT_NODE = "Scene Diffusion Environment"
BACKGROUND_NODE = "Scene Diffusion Background"
OUTPUT_NODE = "Scene Diffusion World Output"

# A "simple chain" between two nodes: at most this many Reroute nodes in a row.
_MAX_REROUTES = 8


def make_world(image: bpy.types.Image, strength: float, rotation: float,
               name: str = "Scene Diffusion World") -> bpy.types.World:
    """A NEW World showing the equirectangular `image` at `strength`, turned `rotation`
    radians about Z (the name gets a .001 suffix when taken: nothing is overwritten)."""
    world = bpy.data.worlds.new(name)
    if world.node_tree is None:  # Blender 4.x makes the node tree on request (5.0 always has one)
        world.use_nodes = True
    tree = world.node_tree
    # The tree is our own, new one: its default Background → Output is replaced by our named chain.
    tree.nodes.clear()
    nodes, links = tree.nodes, tree.links
    coordinates = _named(nodes.new("ShaderNodeTexCoord"), COORDINATES_NODE, (-900.0, 0.0))
    mapping = _named(nodes.new("ShaderNodeMapping"), MAPPING_NODE, (-700.0, 0.0))
    mapping.vector_type = 'POINT'
    environment = _named(nodes.new("ShaderNodeTexEnvironment"), ENVIRONMENT_NODE, (-480.0, 0.0))
    environment.projection = 'EQUIRECTANGULAR'
    environment.image = image
    background = _named(nodes.new("ShaderNodeBackground"), BACKGROUND_NODE, (-200.0, 0.0))
    output = _named(nodes.new("ShaderNodeOutputWorld"), OUTPUT_NODE, (0.0, 0.0))
    links.new(coordinates.outputs["Generated"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], environment.inputs["Vector"])
    links.new(environment.outputs["Color"], background.inputs["Color"])
    links.new(background.outputs["Background"], output.inputs["Surface"])
    background.inputs["Strength"].default_value = strength
    _set_rotation(mapping, rotation)
    return world


def set_world(scene: bpy.types.Scene, world: bpy.types.World) -> str | None:
    """Show `world` in `scene`. The previous World gets a fake user so it survives a save
    and reload with no scene using it; returns a note saying so (None when there was none)."""
    previous = scene.world
    scene.world = world
    if previous is None or previous == world:
        return None
    # A fake user is the only change made to it: its nodes and settings stay as they were.
    previous.use_fake_user = True
    return f"kept the previous World '{previous.name}' (fake user)"


def environment_node(world: bpy.types.World | None) -> bpy.types.ShaderNodeTexEnvironment | None:
    """The Environment Texture whose colour feeds the Background shader on the active World
    Output's Surface (through Reroutes only); None when the colour comes from anything else."""
    background = _background(world)
    if background is None:
        return None
    node = _source(background.inputs["Color"])
    return node if node is not None and node.type == 'TEX_ENVIRONMENT' else None


def replace_environment(world: bpy.types.World, image: bpy.types.Image, strength: float,
                        rotation: float) -> bool:
    """Point `world`'s Environment Texture at `image`, set the Background's strength and a
    Mapping node's rotation Z (if one feeds the texture's Vector). False, with nothing
    changed, when the World's background is not an Environment Texture."""
    environment = environment_node(world)
    if environment is None:
        return False
    environment.image = image
    _background(world).inputs["Strength"].default_value = strength
    mapping = _source(environment.inputs["Vector"])
    if mapping is not None and mapping.type == 'MAPPING':
        _set_rotation(mapping, rotation)
    return True


def world_image(world: bpy.types.World | None) -> bpy.types.Image | None:
    """The image the World's background shows (for "start from the current world")."""
    environment = environment_node(world)
    return environment.image if environment is not None else None


def _named(node: bpy.types.Node, name: str, location: tuple[float, float]) -> bpy.types.Node:
    node.name = node.label = name
    node.location = location
    return node


def _set_rotation(mapping: bpy.types.ShaderNodeMapping, rotation: float) -> None:
    # A 'TEXTURE' mapping applies the inverse transform: the same turn of the picture needs -rotation.
    sign = -1.0 if mapping.vector_type == 'TEXTURE' else 1.0
    mapping.inputs["Rotation"].default_value[2] = sign * rotation


def _background(world: bpy.types.World | None) -> bpy.types.ShaderNodeBackground | None:
    """The Background shader linked to the active World Output's Surface, if that is what it is."""
    if world is None or world.node_tree is None:
        return None
    outputs = [node for node in world.node_tree.nodes if node.type == 'OUTPUT_WORLD']
    # Blender renders through the active output; without one flagged, through the first.
    output = next((node for node in outputs if node.is_active_output), outputs[0] if outputs else None)
    if output is None:
        return None
    node = _source(output.inputs["Surface"])
    return node if node is not None and node.type == 'BACKGROUND' else None


def _source(socket: bpy.types.NodeSocket) -> bpy.types.Node | None:
    """The node whose output feeds `socket`, seen through Reroutes; None when unlinked, muted,
    or the chain is longer than a simple one."""
    for _ in range(_MAX_REROUTES + 1):
        link = next((link for link in socket.links if not link.is_muted), None) if socket.is_linked else None
        if link is None or not link.is_valid:
            return None
        node = link.from_node
        if node.type != 'REROUTE':
            return None if node.mute else node
        socket = node.inputs[0]
    return None
