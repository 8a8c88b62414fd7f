# SPDX-License-Identifier: GPL-3.0-or-later
"""A frame-sized backdrop image shown behind the rendered objects.

In the viewport: a background image entry on the camera (ours is recognised by its image's
recipe kind "backdrop"). In renders: Film > Transparent, and an Alpha Over in the compositor
just before its output, the render over the backdrop. Our compositor nodes are named
"Scene Diffusion Backdrop" (Image), "Scene Diffusion Backdrop Size" (Scale to the render size)
and "Scene Diffusion Alpha Over"; a second run points them at the new image instead of stacking.

Compositor APIs: Blender 5.0 keeps the tree in `scene.compositing_node_group` (a node group
whose Group Output is the result); 4.2–4.5 in `scene.node_tree` after `scene.use_nodes = True`,
with a Composite node as the result. Only finding the tree and its output differs; the editing
is shared.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import bpy

from . import images

__all__ = ["show_in_camera", "composite", "make_shadow_catchers", "leaving_out",
           "IMAGE_NODE", "SIZE_NODE", "OPAQUE_NODE", "ALPHA_OVER_NODE"]

IMAGE_NODE = "Scene Diffusion Backdrop"
SIZE_NODE = "Scene Diffusion Backdrop Size"
STRAIGHT_NODE = "Scene Diffusion Backdrop Straight"  # 4.2–4.5 only: see _add_nodes
OPAQUE_NODE = "Scene Diffusion Backdrop Opaque"  # 4.2–4.5 only
ALPHA_OVER_NODE = "Scene Diffusion Alpha Over"
_TREE_NAME = "Compositor"
_KIND = "backdrop"


def show_in_camera(camera_object: bpy.types.Object, image: bpy.types.Image) -> None:
    """Show `image` behind everything in the camera view: our earlier background image entry
    is reused, the person's entries are left as they are."""
    camera = camera_object.data
    entry = next((entry for entry in camera.background_images
                  if entry.image is not None and images.get_recipe(entry.image).get("kind") == _KIND), None)
    if entry is None:
        entry = camera.background_images.new()
    entry.source = 'IMAGE'
    entry.image = image
    entry.display_depth = 'BACK'
    entry.alpha = 1.0
    entry.frame_method = 'STRETCH'  # the same fill as the compositor's Scale node below
    entry.show_background_image = True
    camera.show_background_images = True


def composite(scene: bpy.types.Scene, image: bpy.types.Image) -> str:
    """Render `scene` over `image`: Film > Transparent, and an Alpha Over (backdrop underneath,
    the render on top) just before the compositor's output. Returns a note of what changed."""
    notes = []
    if not scene.render.film_transparent:
        scene.render.film_transparent = True
        notes.append("turned on Film > Transparent")
    tree, made = _compositor_tree(scene)
    if made:
        notes.append(f"made the compositor node tree '{tree.name}'")
    output, target = _output(tree, scene)
    image_node, alpha_over = tree.nodes.get(IMAGE_NODE), tree.nodes.get(ALPHA_OVER_NODE)
    if (image_node is not None and image_node.bl_idname == "CompositorNodeImage"
            and alpha_over is not None and alpha_over.bl_idname == "CompositorNodeAlphaOver"):
        # Ours from an earlier run: only the image changes, no second Alpha Over.
        image_node.image = image
        notes.append("replaced the backdrop image in the compositor")
    else:
        image_node, alpha_over = _add_nodes(tree, image, output)
    background, foreground = _alpha_over_inputs(alpha_over)
    if not background.is_linked:
        last = next((tree.nodes[name] for name in (OPAQUE_NODE, SIZE_NODE) if name in tree.nodes), image_node)
        tree.links.new(last.outputs["Image"], background)
    if not _feeds(alpha_over, target):
        # The one link rerouted: what fed the output now goes over the backdrop.
        link = target.links[0] if target.is_linked else None
        source = link.from_socket if link is not None else _render_layers(tree, scene).outputs["Image"]
        if link is not None:
            tree.links.remove(link)
        tree.links.new(source, foreground)
        tree.links.new(alpha_over.outputs["Image"], target)
        notes.append(f"added the backdrop to the compositor before '{output.name}'")
    if not scene.render.use_compositing:
        scene.render.use_compositing = True  # renders go through the tree only with compositing on
        notes.append("turned on Post Processing > Compositing")
    return "; ".join(notes)


def make_shadow_catchers(objects: Iterable[bpy.types.Object]) -> list[str]:
    """Make `objects` (the set behind the foreground) shadow catchers, so the foreground's
    shadows fall onto the backdrop; returns the names changed (ones already on are skipped)."""
    changed = []
    for obj in objects:
        if not obj.is_shadow_catcher:
            obj.is_shadow_catcher = True
            changed.append(obj.name)
    return changed


@contextmanager
def leaving_out(objects: Iterable[bpy.types.Object]) -> Iterator[None]:
    """Leave `objects` out of renders for the duration of the block (a capture).

    The capture render works on a copy of the scene that shares its objects, so a per-object
    flag is the one way to leave an object out of that one render: `hide_render` is set for
    the block and every object's own previous value is put back in `finally`, even on error,
    before the operator returns.
    """
    previous = {}
    for obj in objects:
        previous.setdefault(obj, obj.hide_render)  # the first value seen is the person's own
    try:
        for obj in previous:
            obj.hide_render = True
        yield
    finally:
        for obj, hidden in previous.items():
            try:
                obj.hide_render = hidden
            except ReferenceError:  # removed inside the block: nothing left to restore
                pass


def _compositor_tree(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, bool]:
    """The scene's compositor node tree, made (Render Layers → output) when there is none."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
        tree = scene.compositing_node_group
        if tree is not None:
            return tree, False
        tree = bpy.data.node_groups.new(_TREE_NAME, "CompositorNodeTree")
        scene.compositing_node_group = tree
        output = _group_output(tree)
        layers = _render_layers(tree, scene)
        layers.location = (output.location.x - 600.0, output.location.y)
        tree.links.new(layers.outputs["Image"], output.inputs[0])
        return tree, True
    made = scene.node_tree is None
    scene.use_nodes = True  # 4.2–4.5: makes the default Render Layers → Composite tree when missing
    return scene.node_tree, made


def _output(tree: bpy.types.NodeTree, scene: bpy.types.Scene) -> tuple[bpy.types.Node, bpy.types.NodeSocket]:
    """The node whose Image input is the compositor's result, and that input."""
    if hasattr(scene, "compositing_node_group"):
        output = _group_output(tree)
        return output, output.inputs[0]
    composites = [node for node in tree.nodes if node.bl_idname == "CompositorNodeComposite"]
    output = next((node for node in composites if getattr(node, "is_active_output", False)),
                  composites[0] if composites else None)
    if output is None:
        output = tree.nodes.new("CompositorNodeComposite")
        output.location = (400.0, 0.0)
    return output, output.inputs["Image"]


def _group_output(tree: bpy.types.NodeTree) -> bpy.types.Node:
    """Blender 5.0: the active Group Output, whose first input is the result (made if missing)."""
    if not any(item.item_type == 'SOCKET' and item.in_out == 'OUTPUT' for item in tree.interface.items_tree):
        tree.interface.new_socket("Image", in_out='OUTPUT', socket_type='NodeSocketColor')
    outputs = [node for node in tree.nodes if node.bl_idname == "NodeGroupOutput"]
    output = next((node for node in outputs if node.is_active_output), outputs[0] if outputs else None)
    if output is None:
        output = tree.nodes.new("NodeGroupOutput")
        output.location = (400.0, 0.0)
    return output


def _render_layers(tree: bpy.types.NodeTree, scene: bpy.types.Scene) -> bpy.types.Node:
    """A Render Layers node of this scene, the person's if there is one."""
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeRLayers" and node.scene in (None, scene):
            return node
    node = tree.nodes.new("CompositorNodeRLayers")
    node.scene = scene
    return node


def _add_nodes(tree: bpy.types.NodeTree, image: bpy.types.Image,
               output: bpy.types.Node) -> tuple[bpy.types.Node, bpy.types.Node]:
    """Our Image → Scale (render size) → Alpha Over nodes, placed left of the output."""
    x, y = output.location.x, output.location.y
    alpha_over = tree.nodes.new("CompositorNodeAlphaOver")
    alpha_over.name = alpha_over.label = ALPHA_OVER_NODE
    alpha_over.location = (x - 220.0, y)
    image_node = tree.nodes.new("CompositorNodeImage")
    image_node.name = image_node.label = IMAGE_NODE
    # A display (sRGB) image: the Image node and Blender's colour management bring it into the
    # compositor's scene-linear space; no pixels are converted here.
    image_node.image = image
    image_node.location = (x - 700.0, y + 300.0)
    # A backdrop made at the diffusion size (a multiple of 8) fills the frame at any render size.
    size = tree.nodes.new("CompositorNodeScale")
    size.name = size.label = SIZE_NODE
    size.location = (x - 460.0, y + 300.0)
    if "Type" in size.inputs:  # 5.0: options are menu inputs
        size.inputs["Type"].default_value = "Render Size"
        size.inputs["Frame Type"].default_value = "Stretch"
        # Clip would blend the edge pixels with transparency outside the image: see-through borders.
        size.inputs["Extension X"].default_value = size.inputs["Extension Y"].default_value = "Extend"
    else:  # 4.2–4.5: node properties
        size.space = 'RENDER_SIZE'
        size.frame_method = 'STRETCH'
    tree.links.new(image_node.outputs["Image"], size.inputs["Image"])
    if "Type" not in size.inputs:
        # 4.2–4.5 have no Extend: the stretched edges blend with transparency outside the image
        # (premultiplied: alpha and colour down to 0.24 on the border, measured). The backdrop
        # is opaque by design: un-premultiply the edge back to its colour, then alpha 1.
        straight = tree.nodes.new("CompositorNodePremulKey")
        straight.name = straight.label = STRAIGHT_NODE
        straight.mapping = 'PREMUL_TO_STRAIGHT'
        straight.location = (x - 460.0, y + 120.0)
        opaque = tree.nodes.new("CompositorNodeSetAlpha")
        opaque.name = opaque.label = OPAQUE_NODE
        opaque.mode = 'REPLACE_ALPHA'
        opaque.inputs["Alpha"].default_value = 1.0
        opaque.location = (x - 340.0, y + 120.0)
        tree.links.new(size.outputs["Image"], straight.inputs["Image"])
        tree.links.new(straight.outputs["Image"], opaque.inputs["Image"])
    return image_node, alpha_over


def _feeds(node: bpy.types.Node, socket: bpy.types.NodeSocket) -> bool:
    """Whether `node` is upstream of `socket` (so a person's nodes after ours are kept as they are)."""
    seen, sockets = set(), [socket]
    while sockets:
        for link in sockets.pop().links:
            if link.from_node == node:
                return True
            if link.from_node.name not in seen:
                seen.add(link.from_node.name)
                sockets.extend(link.from_node.inputs)
    return False


def _alpha_over_inputs(node: bpy.types.Node) -> tuple[bpy.types.NodeSocket, bpy.types.NodeSocket]:
    """(underneath, on top): 5.0 names them Background and Foreground; 4.x has Fac, Image, Image."""
    if "Background" in node.inputs and "Foreground" in node.inputs:
        return node.inputs["Background"], node.inputs["Foreground"]
    colours = [socket for socket in node.inputs if socket.type == 'RGBA']
    return colours[0], colours[1]
