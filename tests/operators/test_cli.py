# SPDX-License-Identifier: GPL-3.0-or-later
"""Command-line commands through the function Blender calls for `-c scene_diffusion`:
options onto the settings, exit codes, progress lines, JSON events, results saved."""
import io
import json
import math
from importlib import import_module

import pytest


@pytest.fixture
def cli(extension):
    return import_module(f"{extension.__name__}.operators.cli")


@pytest.fixture
def saved(empty_scene, tmp_path):
    """A saved .blend: a camera before a cube, 64x64, the smoke model."""
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -6.0, 0.0), (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    scene.scene_diffusion.model, scene.scene_diffusion.steps = "smoke", 2
    path = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


def run(cli, argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_image_with_options_is_made_saved_and_reported(cli, saved, capsys):
    import bpy
    code, out, err = run(cli, ["image", "--prompt", "a red cube", "--seed", "7", "--set", "guidance=5"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("step 1/") and "Generated" in out and f"saved {saved}" in lines[-1]
    settings = bpy.context.scene.scene_diffusion
    assert (settings.prompt, settings.seed, settings.guidance, settings.randomize_seed) == ("a red cube", 7, 5.0,
                                                                                           False)
    bpy.ops.wm.open_mainfile(filepath=saved)  # the result is in the saved file
    made = [image for image in bpy.data.images if image.get("scene_diffusion", {}).get("kind") == "image"]
    assert len(made) == 1 and made[0].packed_file is not None


def test_json_lines_for_farm_logs(cli, saved, capsys):
    code, out, _ = run(cli, ["image", "--json", "--no-save"], capsys)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 0
    assert [events[0]["event"], events[1]["event"], events[-1]["event"]] == ["start", "progress", "done"]
    times = [event["time"] for event in events]
    assert times == sorted(times)  # wall-clock seconds, in order, for farm logs


@pytest.mark.parametrize("argv, code, words", [
    (["paint"], 2, "invalid choice: 'paint'"),
    (["image", "--steps", "many"], 2, "invalid int value: 'many'"),
    (["animation", "--frames", "9-3"], 2, "ends before it starts"),
    (["animation", "--frames", "200-300"], 1, "outside the scene's frames 1–250"),
    (["image", "--set", "nonsense=1"], 2, "no setting 'nonsense'"),
    (["texture", "--objects", "Chair"], 1, "No object named 'Chair'"),
    (["image", "--model", "no/such-model-here"], 1, "no/such-model-here"),
    (["image", "--options", "--steps 'unclosed"], 2, "No closing quotation"),
    (["image", "--output-blend", "{saved}/inside-a-file.blend"], 1, "is not a folder you can write to"),
    (["gather"], 2, "gather needs --from FOLDER"),
    (["gather", "--from", "{saved}.nowhere"], 1, "is not a folder"),
    (["plan"], 2, "plan needs --for"),
])
def test_bad_input_exits_1_or_2_with_one_line_and_writes_nothing(cli, saved, capsys, argv, code, words):
    import os
    before = os.path.getmtime(saved)
    got, out, err = run(cli, [word.format(saved=saved) for word in argv], capsys)
    assert got == code
    assert words in err and len(err.strip().splitlines()) == 1
    assert os.path.getmtime(saved) == before


def test_help_lists_every_command_and_option(cli, capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("image", "texture", "world", "backdrop", "animation", "capture", "--frames", "--set", "--json"):
        assert word in out


def test_the_command_is_registered_with_blender(cli):
    import bpy
    assert cli._registered  # register_cli_command returned a handle
    assert hasattr(bpy.utils, "register_cli_command")


def test_progress_lines_name_the_item_and_step_once_each(cli, extension):
    jobs = import_module(f"{extension.__name__}.operators.jobs")
    stream = io.StringIO()
    output = cli.Output(json_lines=False, stdout=stream)
    status = jobs.JobStatus("Render Animation", step=12, total=20, item=3, items=48, noun="frame")
    output.progress(status)
    output.progress(status)  # the same again: no new line
    status.step = 13
    output.progress(status)
    assert stream.getvalue().splitlines() == ["frame 3/48 step 12/20", "frame 3/48 step 13/20"]


def test_a_real_process_on_a_saved_file(saved, model_cache, tmp_path):
    """Once through a separate process: the bpy module as Blender, the extension enabled
    from this repository, the command run on the saved file (scripts/run_command.py)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "SCENE_DIFFUSION_MODEL_CACHE": model_cache, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, os.path.join(root, "scripts", "run_command.py"), saved, "image",
                           "--prompt", "a blue cube", "--json"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done" and "Generated" in events[-1]["message"]
    refused = subprocess.run([sys.executable, os.path.join(root, "scripts", "run_command.py"), saved, "texture",
                              "--objects", "Nothing"], capture_output=True, text=True, timeout=600, env=env)
    assert refused.returncode == 1 and "No object named 'Nothing'" in refused.stderr


def test_options_in_one_string_as_farm_templates_pass_them(cli, saved, capsys):
    import bpy
    code, _, err = run(cli, ["image", "--no-save", "--options", "--prompt 'an old oak' --seed 11", "--steps", "2"],
                       capsys)
    assert code == 0, err
    settings = bpy.context.scene.scene_diffusion
    assert (settings.prompt, settings.seed) == ("an old oak", 11)
    assert cli.expand_options(["image", "--options", ""]) == ["image"]  # an empty template parameter


def test_plan_lists_the_selected_meshes_and_the_shots(cli, saved, capsys):
    import bpy
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 48
    camera = scene.camera
    scene.timeline_markers.new("cut", frame=30).camera = camera
    scene.timeline_markers.new("not a cut", frame=10)  # no camera bound: no cut
    code, out, err = run(cli, ["plan", "--for", "animation"], capsys)
    assert code == 0, err
    assert json.loads(out) == {"Shots": ["1-29", "30-48"]}
    code, out, _ = run(cli, ["plan", "--for", "animation", "--frames", "20-40"], capsys)
    assert json.loads(out) == {"Shots": ["20-29", "30-40"]}
    code, out, _ = run(cli, ["plan", "--for", "texture", "--objects", "Cube"], capsys)
    assert json.loads(out) == {"Objects": ["Cube"]}


def test_gather_brings_the_images_each_task_saved_into_one_file(cli, saved, capsys, tmp_path):
    import bpy
    parts = tmp_path / "parts"
    for seed in (4, 5):
        bpy.ops.wm.open_mainfile(filepath=saved)
        code, _, err = run(cli, ["image", "--seed", str(seed), "--output-blend", str(parts / f"seed_{seed}.blend")],
                           capsys)
        assert code == 0, err
    bpy.ops.wm.open_mainfile(filepath=saved)
    code, out, err = run(cli, ["gather", "--from", str(parts), "--output-blend", str(tmp_path / "all.blend")], capsys)
    assert code == 0, err
    said = out
    code, out, err = run(cli, ["gather", "--from", str(parts), "--no-save"], capsys)  # again: nothing new
    assert code == 0 and "Gathered 0 images" in out
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "all.blend"))
    made = [image for image in bpy.data.images if "scene_diffusion" in image]
    assert f"Gathered {len(made)} images from 2 files" in said  # each task's image and its depth condition
    seeds = sorted(image["scene_diffusion"]["seed"] for image in made if image["scene_diffusion"]["kind"] == "image")
    assert seeds == [4, 5] and all(image.packed_file for image in made)


def test_a_finished_animation_resumed_again_has_nothing_to_do(cli, saved, capsys, tmp_path):
    argv = ["animation", "--frames", "1-2", "--output", str(tmp_path / "frames"), "--resume"]
    code, _, err = run(cli, argv, capsys)
    assert code == 0, err
    code, out, err = run(cli, argv, capsys)
    assert code == 0, err
    assert "nothing to do" in out


def test_gather_a_texture_on_the_persons_own_material(cli, saved, capsys, tmp_path):
    """Texture Target: the person's material gets its Base Color re-linked in the task's copy;
    gathered, every user of that material sees it, as when textured here, and nothing is
    left twice."""
    import bpy
    cube = bpy.data.objects["Cube"]
    wood = bpy.data.materials.new("Wood")
    if wood.node_tree is None:
        wood.use_nodes = True
    cube.data.materials.append(wood)
    texture = bpy.context.scene.scene_diffusion.texture
    texture.views, texture.texture_size, texture.target_material = 'CAMERA', 512, wood
    bpy.ops.wm.save_mainfile()
    code, _, err = run(cli, ["texture", "--objects", "Cube", "--output-blend", str(tmp_path / "parts" / "Cube.blend")],
                       capsys)
    assert code == 0, err
    bpy.ops.wm.open_mainfile(filepath=saved)
    assert bpy.data.materials["Wood"].node_tree.nodes["Principled BSDF"].inputs["Base Color"].is_linked is False
    code, out, err = run(cli, ["gather", "--from", str(tmp_path / "parts"), "--no-save"], capsys)
    assert code == 0, err
    assert "textures on Cube" in out
    assert [material.name for material in bpy.data.materials] == ["Wood"]
    base_color = bpy.data.materials["Wood"].node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    image = base_color.links[0].from_node.image
    assert image["scene_diffusion"]["kind"] == "texture" and image["scene_diffusion"]["object"] == "Cube"
    assert bpy.data.objects["Cube"].material_slots[0].material == bpy.data.materials["Wood"]
