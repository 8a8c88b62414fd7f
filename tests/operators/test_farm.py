# SPDX-License-Identifier: GPL-3.0-or-later
"""The farm templates (farm/*.openjd.yaml) run by the real `openjd` CLI exactly as a farm
worker runs them: every task a separate Blender process (the bpy module behind a `blender`
executable of the same arguments) on a small saved .blend with the smoke model. The results
are read back from the files the tasks and the gather step saved."""
import json
import math
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENJD = [sys.executable, "-m", "openjd"]  # the CLI of this interpreter (also from a version venv)


@pytest.fixture
def blender(tmp_path):
    """`blender -b FILE -c scene_diffusion ...` on this machine, where Blender is the bpy module."""
    path = tmp_path / "blender"
    path.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{ROOT}/scripts/run_command.py' \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def shot(empty_scene, tmp_path):
    """Saved: a floor, a crate (with UVs), a wedge without UVs, two cameras cut by markers at
    frames 1 and 3 of 1-4; 64x64, the smoke model, 2 steps, 512² textures from 2 views."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.frame_start, scene.frame_end = 1, 4
    bpy.ops.mesh.primitive_plane_add(size=10)
    bpy.context.object.name = "Floor"
    bpy.ops.mesh.primitive_cube_add(size=1.5, location=(-1, 0, 0.75))
    bpy.context.object.name = "Crate"
    bpy.ops.mesh.primitive_cone_add(location=(1.5, 0, 1))
    wedge = bpy.context.object
    wedge.name = "Wedge"
    while wedge.data.uv_layers:
        wedge.data.uv_layers.remove(wedge.data.uv_layers[0])
    for index, x in enumerate((0.0, 2.0)):
        camera = bpy.data.objects.new(f"Camera{index}", bpy.data.cameras.new(f"Camera{index}"))
        scene.collection.objects.link(camera)
        camera.location, camera.rotation_euler = (x, -7.0, 3.0), (math.radians(65), 0.0, 0.0)
        marker = scene.timeline_markers.new(f"cut{index}", frame=1 + 2 * index)
        marker.camera = camera
    scene.camera = bpy.data.objects["Camera0"]
    settings = scene.scene_diffusion
    settings.model, settings.steps, settings.seed, settings.prompt = "smoke", 2, 3, "a wooden crate"
    settings.texture.texture_size, settings.texture.view_count, settings.texture.include_top = 512, 2, False
    for obj in scene.objects:
        obj.select_set(obj.name in ("Crate", "Wedge"))
    path = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


def openjd(template, params, model_cache, tmp_path):
    """`openjd run` on a template: (exit code, everything it printed)."""
    values = tmp_path / f"{template}.params.json"
    values.write_text(json.dumps({**params, "ModelCache": model_cache}))
    done = subprocess.run([*OPENJD, "run", os.path.join(ROOT, "farm", f"{template}.openjd.yaml"),
                           "-p", f"file://{values}"], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return done.returncode, done.stdout + done.stderr


def plan(blender, blend, what, model_cache):
    done = subprocess.run([blender, "-b", blend, "-c", "scene_diffusion", "plan", "--for", what],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCENE_DIFFUSION_MODEL_CACHE": model_cache})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_templates_are_valid():
    for name in ("texture", "images", "animation", "command"):
        done = subprocess.run([*OPENJD, "check", os.path.join(ROOT, "farm", f"{name}.openjd.yaml")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_textures_one_task_per_object_then_gathered(shot, blender, model_cache, tmp_path, ext_module):
    import bpy
    objects = plan(blender, shot, "texture", model_cache)
    assert objects == {"Objects": ["Crate", "Wedge"]}  # the selected meshes
    out = tmp_path / "out"
    code, log = openjd("texture", {**objects, "BlendFile": shot, "OutputDir": str(out), "Blender": blender,
                                   "Options": "--prompt 'a mossy stone' --steps 2"}, model_cache, tmp_path)
    assert code == 0, log[-4000:]
    assert sorted(os.listdir(out / "parts")) == ["Crate.blend", "Wedge.blend"]
    before = os.path.getmtime(shot)
    bpy.ops.wm.open_mainfile(filepath=str(out / "textured.blend"))
    materials = ext_module("scene.materials")
    images = ext_module("scene.images")
    for name in ("Crate", "Wedge"):
        obj = bpy.data.objects[name]
        texture = materials.texture_of(obj)
        assert texture is not None and texture.packed_file is not None, name
        recipe = images.get_recipe(texture)
        assert recipe["prompt"] == "a mossy stone" and recipe["uv_map"] in obj.data.uv_layers
    wedge_uv = bpy.data.objects["Wedge"].data.uv_layers[0]
    coordinates = [0.0] * (2 * len(wedge_uv.data))
    wedge_uv.data.foreach_get("uv", coordinates)
    assert max(coordinates) > 0.0  # the unwrap made on the worker came along, not an empty map
    assert materials.texture_of(bpy.data.objects["Floor"]) is None
    assert len([m for m in bpy.data.materials if images.get_recipe(m).get("kind") == "texture_material"]) == 2
    assert os.path.getmtime(shot) == before  # the tasks never write the input file


def test_a_failing_task_fails_the_job_with_its_message(shot, blender, model_cache, tmp_path):
    code, log = openjd("texture", {"Objects": ["Crate", "Chair"], "BlendFile": shot,
                                   "OutputDir": str(tmp_path / "out"), "Blender": blender}, model_cache, tmp_path)
    assert code != 0
    assert "No object named 'Chair'" in log
    assert not (tmp_path / "out" / "textured.blend").exists()  # nothing gathered from a failed step


def test_animation_one_task_per_shot_between_camera_markers(shot, blender, model_cache, tmp_path):
    shots = plan(blender, shot, "animation", model_cache)
    assert shots == {"Shots": ["1-2", "3-4"]}
    out = tmp_path / "frames"
    params = {**shots, "BlendFile": shot, "OutputDir": str(out), "Blender": blender}
    code, log = openjd("animation", params, model_cache, tmp_path)
    assert code == 0, log[-4000:]
    folder = out / "Scene"
    assert sorted(name for name in os.listdir(folder) if name.endswith(".png")) == \
        ["0001.png", "0002.png", "0003.png", "0004.png"]
    made = {name: os.path.getmtime(folder / name) for name in os.listdir(folder)}
    code, log = openjd("animation", params, model_cache, tmp_path)  # a requeue: nothing made again
    assert code == 0, log[-4000:]
    assert all(os.path.getmtime(folder / name) == when for name, when in made.items() if name.endswith(".png"))


def test_images_one_task_per_seed_then_gathered(shot, blender, model_cache, tmp_path, ext_module):
    import bpy
    out = tmp_path / "out"
    code, log = openjd("images", {"BlendFile": shot, "OutputDir": str(out), "Blender": blender, "Seeds": "5-6"},
                       model_cache, tmp_path)
    assert code == 0, log[-4000:]
    bpy.ops.wm.open_mainfile(filepath=str(out / "images.blend"))
    images = ext_module("scene.images")
    made = [images.get_recipe(image) for image in bpy.data.images if images.get_recipe(image).get("kind") == "image"]
    assert sorted(recipe["seed"] for recipe in made) == [5, 6]
