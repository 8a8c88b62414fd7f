# SPDX-License-Identifier: GPL-3.0-or-later
"""The World and compositor wiring (scene/world.py, scene/backdrop.py) on Blender 4.2's API,
run by hand in a side environment with `pip install bpy==4.2.0` (the suite runs on 5.0):

    mkdir -p /tmp/sd42/pkg/scene && cp scene/{images,windows,world,backdrop}.py /tmp/sd42/pkg/scene/
    touch /tmp/sd42/pkg/__init__.py /tmp/sd42/pkg/scene/__init__.py
    /path/to/bpy42-venv/bin/python scripts/check_blender42.py /tmp/sd42

It builds a World and a backdrop composite in Blender's default scene, renders through the
compositor, reads the picture back and prints what it checked; it exits 1 on a failure.
"""
import os
import sys
import tempfile

import bpy
import numpy as np

sys.path.insert(0, sys.argv[1])
from pkg.scene import backdrop, images, world  # noqa: E402

failures = []


def check(what: str, ok: bool) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


print("Blender", bpy.app.version_string)
scene = bpy.context.scene
scene.render.engine = 'CYCLES'
scene.cycles.samples = 4
scene.render.resolution_x = scene.render.resolution_y = 64
scene.view_settings.view_transform = 'Standard'
cube = bpy.data.objects["Cube"]
emit = bpy.data.materials.new("red")
emit.use_nodes = True
nodes = emit.node_tree.nodes
nodes.clear()
emission = nodes.new("ShaderNodeEmission")
emission.inputs["Color"].default_value = (1.0, 0.0, 0.0, 1.0)
output = nodes.new("ShaderNodeOutputMaterial")
emit.node_tree.links.new(emission.outputs[0], output.inputs["Surface"])
cube.data.materials.clear()
cube.data.materials.append(emit)
cube.scale = (0.4, 0.4, 0.4)

# An existing compositor tree of the person's: Render Layers -> Blur -> Composite.
scene.use_nodes = True
tree = scene.node_tree
layers = next(node for node in tree.nodes if node.bl_idname == "CompositorNodeRLayers")
composite = next(node for node in tree.nodes if node.bl_idname == "CompositorNodeComposite")
blur = tree.nodes.new("CompositorNodeBlur")
tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
tree.links.new(blur.outputs["Image"], composite.inputs["Image"])
before = {node.name for node in tree.nodes}

picture = bpy.data.images.new("backdrop", 64, 64)
images.set_pixels(picture, np.tile(np.array([0.0, 0.2, 1.0], np.float32), (64, 64, 1)))
images.set_recipe(picture, {"kind": "backdrop"})
note = backdrop.composite(scene, picture)
print("note:", note)
check("film transparent", scene.render.film_transparent)
check("the person's nodes kept", before <= {node.name for node in tree.nodes})
check("an Alpha Over feeds the Composite",
      composite.inputs["Image"].links[0].from_node.name == backdrop.ALPHA_OVER_NODE)
check("the Blur feeds the Alpha Over", any(link.from_node == blur for link in tree.links
                                           if link.to_node.name == backdrop.ALPHA_OVER_NODE))
count = len(tree.nodes)
backdrop.composite(scene, picture)
check("a second run adds nothing", len(tree.nodes) == count)

folder = tempfile.mkdtemp()
scene.render.filepath = os.path.join(folder, "composited.png")
scene.render.image_settings.file_format = 'PNG'
bpy.ops.render.render(write_still=True)
result = bpy.data.images.load(scene.render.filepath)
pixels = np.array(result.pixels[:], np.float32).reshape(64, 64, 4)[::-1]
print("corner", pixels[2, 2].round(3), "centre", pixels[32, 32].round(3))
check("the backdrop shows at the corners", np.allclose(pixels[2, 2, :3], (0.0, 0.2, 1.0), atol=0.06))
check("the object shows over it", pixels[32, 32, 0] > 0.5 and pixels[32, 32, 2] < 0.5)

# A World from a 2:1 image: the node chain, kept previous World, and replace.
sky = bpy.data.images.new("sky", 128, 64)
previous = scene.world
made = world.make_world(sky, 2.0, 0.5)
note = world.set_world(scene, made)
print("note:", note)
check("the new World is the scene's", scene.world == made)
check("the previous World kept with a fake user", previous is None or previous.use_fake_user)
check("its Environment Texture shows the image", world.environment_node(made).image == sky)
check("strength", made.node_tree.nodes[world.BACKGROUND_NODE].inputs["Strength"].default_value == 2.0)
other = bpy.data.images.new("sky 2", 128, 64)
check("replace_environment", world.replace_environment(made, other, 1.0, 0.0) and world.world_image(made) == other)
sys.exit(1 if failures else 0)
