# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo`: build a small scene, press Generate Image through the operator, save it all.

Writes out/demo.blend (the generated image packed inside) and the PNGs beside it.
The default model is real SD 1.5 + depth ControlNet from the hub; `--model smoke`
(`make demo MODEL=smoke`) runs offline with random weights.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSION_ID = "scene_diffusion"
MODULE = f"bl_ext.demo.{EXTENSION_ID}"
sys.path.insert(0, REPO_ROOT)
from engine.models import DEFAULT_MODEL  # noqa: E402 - the engine is a plain library beside this script


def sandbox_blender_user(out_dir: str) -> None:
    """Blender's user folders inside out/, so the demo never touches your own Blender setup."""
    user = os.path.abspath(os.path.join(out_dir, ".blender-user"))
    for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
        os.environ[f"BLENDER_USER_{name}"] = os.path.join(user, name.lower())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def enable_extension(out_dir: str):
    import addon_utils
    import bpy

    repo_dir = os.path.abspath(os.path.join(out_dir, ".blender-user", "repo"))
    os.makedirs(repo_dir, exist_ok=True)
    link = os.path.join(repo_dir, EXTENSION_ID)
    if not os.path.islink(link):
        os.symlink(REPO_ROOT, link)
    prefs = bpy.context.preferences
    if "demo" not in {repo.module for repo in prefs.extensions.repos}:
        prefs.extensions.repos.new(name="demo", module="demo", custom_directory=repo_dir, source='USER')
    if addon_utils.enable(MODULE, default_set=True) is None:
        sys.exit(f"could not enable {MODULE}")


def build_scene(size: int):
    """A floor, a few objects and a camera looking at them."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(-1.4, 0.6, 0.8), rotation=(0, 0, math.radians(25)))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.9, location=(1.3, -0.3, 0.9), segments=48, ring_count=24)
    bpy.ops.object.shade_smooth()
    bpy.ops.mesh.primitive_cylinder_add(radius=0.4, depth=2.4, location=(0.2, 2.4, 1.2))
    bpy.ops.mesh.primitive_torus_add(location=(-0.2, -1.9, 0.25), major_radius=0.6, minor_radius=0.25)
    bpy.ops.object.light_add(type='SUN', location=(4, -4, 8))
    # A character: Rigify's human metarig (it ships with Blender), for the OpenPose condition.
    import addon_utils
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    character = bpy.context.object
    character.location = (2.4, 2.6, 0.0)
    character.rotation_euler.z = math.radians(-20)
    bpy.ops.object.camera_add(location=(0.0, -8.5, 2.4), rotation=(math.radians(80), 0, 0))
    scene.camera = bpy.context.object
    return scene


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help=f"default: {DEFAULT_MODEL}; 'smoke' works offline")
    parser.add_argument("--out", default="out")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--prompt", default="a sunlit room with a wooden cube, a marble sphere, a lamp post and "
                                            "a donut on a tiled floor, photograph, soft shadows, highly detailed")
    args = parser.parse_args()
    model = args.model or DEFAULT_MODEL
    os.makedirs(args.out, exist_ok=True)
    sandbox_blender_user(args.out)

    import bpy

    enable_extension(args.out)
    # The real model may be downloaded: that needs Blender's "Allow Online Access".
    bpy.context.preferences.system.use_online_access = True
    scene = build_scene(args.size)
    settings = scene.scene_diffusion
    settings.model = model
    settings.prompt = args.prompt
    settings.seed = 42
    if model == "smoke":
        settings.steps = 8

    # Every condition, captured for a look (the generation below uses the panel's: depth).
    bpy.ops.scene_diffusion.capture_conditions(kinds={'DEPTH', 'CANNY', 'OPENPOSE', 'NORMAL', 'SEGMENTATION',
                                                      'LINEART'})
    before = set(bpy.data.images)
    try:
        result = bpy.ops.scene_diffusion.generate_image()
    except RuntimeError:  # the operator reported an error; its message is in the outcome
        result = {'CANCELLED'}
    made = [image for image in bpy.data.images if image not in before]
    made = [image for image in bpy.data.images if image.get("scene_diffusion", {}).get("kind") == "image"
            and image in made]
    if result != {'FINISHED'} or not made:
        jobs = sys.modules[f"{MODULE}.operators.jobs"]
        outcome = jobs.last_outcome()
        message = outcome.message if outcome else "see the error above"
        print(f"\nThe demo stopped: {message}", file=sys.stderr)
        if model != "smoke":
            print("To run the demo offline, with random weights: make demo MODEL=smoke", file=sys.stderr)
        return 1

    regional = two_regions(scene)
    if regional is None:
        return 1
    made.append(regional)

    out = os.path.abspath(args.out)
    textured = texture_the_cube(scene, out)
    if textured is None:
        return 1
    backgrounds = make_backgrounds(scene)
    if backgrounds is None:
        return 1
    if not animate(scene, out):
        return 1
    captured = [image for image in bpy.data.images if image.get("scene_diffusion", {}).get("capture")]
    for image in made + captured + [textured] + backgrounds:
        path = os.path.join(out, f"{bpy.path.clean_name(image.name)}.png")
        image.save(filepath=path)  # a copy beside the .blend; the datablock stays packed
        print(f"wrote {path}")
    blend = os.path.join(out, "demo.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    print(f"wrote {blend} with {', '.join(i.name for i in made + captured + [textured] + backgrounds)} packed inside")
    return 0


def two_regions(scene):
    """The same picture with a region prompt on the sphere: two regions, the sphere's words
    where the sphere is, the main prompt everywhere. None when it stopped."""
    import bpy

    sphere = bpy.data.objects["Sphere"]
    sphere.scene_diffusion.region_prompt = "a polished golden orb, glowing"
    before = set(bpy.data.images)
    try:
        result = bpy.ops.scene_diffusion.generate_image()
    except RuntimeError:
        result = {'CANCELLED'}
    finally:
        sphere.scene_diffusion.region_prompt = ""  # the texture and the animation below go without
    made = [image for image in bpy.data.images if image not in before
            and image.get("scene_diffusion", {}).get("kind") == "image"]
    if result != {'FINISHED'} or not made:
        print(f"\nThe demo stopped at the two-region image: {_outcome()}", file=sys.stderr)
        return None
    made[0].name = "Diffusion with a region on the sphere"
    return made[0]


def _outcome() -> str:
    outcome = sys.modules[f"{MODULE}.operators.jobs"].last_outcome()
    return outcome.message if outcome else "see the error above"


def texture_the_cube(scene, out: str):
    """Generate Texture on the cube from 4 orbit views (and the top), then render the scene
    with it: out/Cube Texture.png and out/textured_render.png. None when it stopped."""
    import bpy

    cube = scene.objects["Cube"]
    bpy.ops.object.select_all(action='DESELECT')
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube
    texture = scene.scene_diffusion.texture
    texture.views, texture.view_count, texture.texture_size = 'ORBIT', 4, 1024
    prompt = scene.scene_diffusion.prompt
    scene.scene_diffusion.prompt = "an old wooden crate with iron corners, photograph, highly detailed"
    try:
        result = bpy.ops.scene_diffusion.generate_texture()
    except RuntimeError:
        result = {'CANCELLED'}
    finally:
        scene.scene_diffusion.prompt = prompt
    if result != {'FINISHED'}:
        outcome = sys.modules[f"{MODULE}.operators.jobs"].last_outcome()
        print(f"\nThe demo stopped at the texture: {outcome.message if outcome else 'see above'}", file=sys.stderr)
        return None
    image = sys.modules[f"{MODULE}.scene.materials"].texture_of(cube)
    scene.render.engine = 'CYCLES'
    scene.cycles.samples, scene.cycles.use_denoising = 16, False
    scene.render.filepath = os.path.join(out, "textured_render.png")
    scene.render.image_settings.file_format = 'PNG'
    bpy.ops.render.render(write_still=True)
    print(f"wrote {scene.render.filepath}")
    return image


def animate(scene, out: str) -> bool:
    """Render Animation over 6 frames of a camera trucking past the objects: PNGs and a
    video in out/animation/<scene>/. False when it stopped."""
    import bpy

    camera = scene.camera
    start = camera.location.copy()
    for frame, x in ((1, -0.8), (6, 0.8)):
        camera.location = (start.x + x, start.y, start.z)
        camera.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, 6
    scene.frame_set(1)
    anim = scene.scene_diffusion.animation
    anim.output_dir = os.path.join(out, "animation")
    anim.strength_schedule, anim.diffusion_cadence = "0:(0.55)", 1
    try:
        result = bpy.ops.scene_diffusion.render_animation()
    except RuntimeError:
        result = {'CANCELLED'}
    outcome = sys.modules[f"{MODULE}.operators.jobs"].last_outcome()
    if result != {'FINISHED'}:
        print(f"\nThe demo stopped at the animation: {outcome.message if outcome else 'see above'}", file=sys.stderr)
        return False
    print(outcome.message)
    return True


def make_backgrounds(scene):
    """Generate World (a 1024x512 panorama lined up with the scene around the camera) and
    Generate Backdrop (the frame behind the sphere and the torus); their images, or None."""
    import bpy

    settings = scene.scene_diffusion
    prompt = settings.prompt
    made = []
    for operator, text, kind in (
            ("generate_world", "a sunlit courtyard with stone walls and trees, blue sky, 360 panorama", "world"),
            ("generate_backdrop", "a sunlit room with tiled floor and plaster walls, photograph", "backdrop")):
        settings.prompt = text
        settings.world.width = 1024
        bpy.ops.object.select_all(action='DESELECT')
        for name in ("Sphere", "Torus"):
            scene.objects[name].select_set(True)
        try:
            result = getattr(bpy.ops.scene_diffusion, operator)()
        except RuntimeError:
            result = {'CANCELLED'}
        finally:
            settings.prompt = prompt
        if result != {'FINISHED'}:
            outcome = sys.modules[f"{MODULE}.operators.jobs"].last_outcome()
            print(f"\nThe demo stopped at {operator}: {outcome.message if outcome else 'see above'}", file=sys.stderr)
            return None
        made += [image for image in bpy.data.images if image.get("scene_diffusion", {}).get("kind") == kind]
    return made


if __name__ == "__main__":
    sys.exit(main())
