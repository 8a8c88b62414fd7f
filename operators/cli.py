# SPDX-License-Identifier: GPL-3.0-or-later
"""Command-line commands: `blender -b scene.blend -c scene_diffusion <command> [options]`.

Each command presses one of the panel's buttons through its operator (the same checks, the
same job, run to the end headless), after applying the options to the scene's settings,
then saves what it made: images and textures packed into the .blend (in place, or to
`--output-blend`), frames to the output folder. Exit codes: 0 done, 1 refused (one line on
stderr saying what to do), 2 bad arguments. Progress goes to stdout as plain lines, or one
JSON object per line with `--json` (farm logs).

Two commands serve farms (farm/*.openjd.yaml): `plan` prints how the work splits (the
objects to texture, the shots between camera markers) as the templates' parameter values, and
`gather` brings what the tasks saved in their own copies of the .blend into one file.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import time
from collections.abc import Callable

import bpy

from ..engine.errors import DiffusionError
from ..engine.shots import shots_between
from . import jobs
from .animation import can_write

COMMAND_ID = "scene_diffusion"
# Command -> (operator, what it does).
COMMANDS = {
    "image": ("generate_image", "Generate Image from the scene camera"),
    "capture": ("capture_conditions", "Capture the enabled conditions at the current frame (or --frames)"),
    "texture": ("generate_texture", "Generate Texture on --objects"),
    "world": ("generate_world", "Generate World (a 360° panorama)"),
    "backdrop": ("generate_backdrop", "Generate Backdrop behind --objects"),
    "animation": ("render_animation", "Render Animation over --frames to the output folder"),
    "plan": ("", "Print how the work splits for a farm (--for texture: the objects; --for animation: the shots "
                 "between camera markers) as JSON parameter values for farm/*.openjd.yaml"),
    "gather": ("", "Bring what farm tasks saved in their own .blend files (--from FOLDER) into this one"),
}
SAVES_BLEND = {"image", "capture", "texture", "world", "backdrop", "gather"}


class ArgumentError(Exception):
    """Bad command-line arguments (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit the whole of Blender
        raise ArgumentError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"blender -b FILE.blend -c {COMMAND_ID}",
                     description="Scene Diffusion from the command line: one button of the sidebar per command.")
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{name}: {text}"
                                                                      for name, (_, text) in COMMANDS.items()))
    parser.add_argument("--prompt", help="the prompt")
    parser.add_argument("--negative-prompt", help="the negative prompt")
    parser.add_argument("--seed", type=int, help="the seed (a fixed one: Random Seed is turned off)")
    parser.add_argument("--model", help="the model: a hub id, a local folder, a .safetensors file, or smoke")
    parser.add_argument("--steps", type=int, help="denoising steps")
    parser.add_argument("--guidance", type=float, help="guidance (CFG)")
    parser.add_argument("--frames", help="a frame (12) or a range (1-48): where to capture, or what to animate")
    parser.add_argument("--objects", help="comma-separated object names: what to texture, or the foreground")
    parser.add_argument("--output", help="the animation's output folder")
    parser.add_argument("--resume", action="store_true", help="continue an animation after its last frame on disk")
    parser.add_argument("--output-blend", help="save the .blend here instead of in place")
    parser.add_argument("--no-save", action="store_true", help="do not save the .blend")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="any other setting under scene.scene_diffusion, e.g. animation.strength_schedule=0:(0.6)")
    parser.add_argument("--options", metavar="TEXT",
                        help="more options as one shell-quoted string (what farm templates pass through), "
                             "e.g. \"--prompt 'old oak' --steps 30\"")
    parser.add_argument("--for", dest="plan_for", choices=("texture", "animation"),
                        help="plan: which command's work to split")
    parser.add_argument("--from", dest="gather_from", metavar="FOLDER",
                        help="gather: the folder of .blend files the farm tasks saved")
    parser.add_argument("--json", action="store_true", help="progress and the result as one JSON object per line")
    return parser


def main(argv: list[str]) -> int:
    """What Blender calls for `-c scene_diffusion ...`: the exit code."""
    out = Output(json_lines="--json" in argv)
    try:
        args = build_parser().parse_args(expand_options(argv))
        out.start(args.command)
        check_outputs(args)
    except ArgumentError as error:
        out.error(str(error), code=2)
        return 2
    except DiffusionError as error:
        out.error(str(error), code=1)
        return 1
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    try:
        apply_options(bpy.context.scene, args)
        if args.command == "plan":
            out.plan(plan(bpy.context.scene, args))
            return 0
        gathered = gather(args) if args.command == "gather" else None
    except ArgumentError as error:
        out.error(str(error), code=2)
        return 2
    except DiffusionError as error:
        out.error(str(error), code=1)
        return 1
    if gathered is not None:
        return finish(out, args, gathered.describe())
    jobs.progress_listeners.append(out.progress)
    try:
        outcome = run(args)
    finally:
        jobs.progress_listeners.remove(out.progress)
    if outcome.level == 'ERROR':
        out.error(outcome.message, code=1)
        return 1
    return finish(out, args, outcome.message)


def finish(out: "Output", args: argparse.Namespace, message: str) -> int:
    """Save what was made (the commands that make datablocks) and report it."""
    try:
        saved = save(args) if args.command in SAVES_BLEND else ""
    except DiffusionError as error:
        out.error(str(error), code=1)
        return 1
    out.done(message + (f"; saved {saved}" if saved else ""))
    return 0


def expand_options(argv: list[str]) -> list[str]:
    """`--options "TEXT"` replaced by the options TEXT holds (shell quoting)."""
    expanded, rest = [], list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--options" or word.startswith("--options="):
            text = word.partition("=")[2] if "=" in word else (rest.pop(0) if rest else "")
            try:
                expanded += shlex.split(text)
            except ValueError as error:
                raise ArgumentError(f"--options {text!r}: {error}") from None
        else:
            expanded.append(word)
    return expanded


def check_outputs(args: argparse.Namespace) -> None:
    """Where results will be written can be written, checked before anything runs."""
    if args.command == "gather" and not args.gather_from:
        raise ArgumentError("gather needs --from FOLDER: where the farm tasks saved their .blend files")
    if args.command == "plan" and not args.plan_for:
        raise ArgumentError("plan needs --for texture or --for animation")
    if args.output_blend:
        folder = os.path.dirname(os.path.abspath(args.output_blend))
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not can_write(existing):
            raise DiffusionError(f"--output-blend {args.output_blend}: {existing} is not a folder you can write to",
                                 "give a path in a folder you can write to")


def apply_options(scene: bpy.types.Scene, args: argparse.Namespace) -> None:
    """The options set on the scene's settings (and the selection); checked before anything runs."""
    settings = scene.scene_diffusion
    for name in ("prompt", "negative_prompt", "model", "steps", "guidance"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.seed is not None:
        settings.seed, settings.randomize_seed = args.seed, False
    if args.frames:
        start, end = parse_frames(args.frames)
        if start < scene.frame_start or end > scene.frame_end:
            raise DiffusionError(f"--frames {args.frames} is outside the scene's frames "
                                 f"{scene.frame_start}–{scene.frame_end}",
                                 "give frames inside the scene's range, or change its Frame Start and End")
        if args.command == "animation" or args.plan_for == "animation":
            settings.animation.use_scene_range = False
            settings.animation.frame_start, settings.animation.frame_end = start, end
        else:
            scene.frame_set(start)
    if args.output:
        settings.animation.output_dir = args.output
    if args.resume:
        settings.animation.resume = True
    if args.objects:
        select(scene, [name.strip() for name in args.objects.split(",") if name.strip()])
    for assignment in args.set:
        set_path(settings, assignment)


def parse_frames(text: str) -> tuple[int, int]:
    try:
        start, _, end = text.partition("-")
        first, last = int(start), int(end or start)
    except ValueError:
        raise ArgumentError(f"--frames {text!r} is not a frame or a range such as 1-48") from None
    if last < first:
        raise ArgumentError(f"--frames {text!r} ends before it starts")
    return first, last


def select(scene: bpy.types.Scene, names: list[str]) -> None:
    missing = [name for name in names if scene.objects.get(name) is None]
    if missing:
        raise DiffusionError(f"No object named {', '.join(repr(name) for name in missing)} in the scene "
                             f"'{scene.name}'", "give the names as the Outliner shows them, comma-separated")
    for obj in scene.objects:
        obj.select_set(obj.name in names)
    bpy.context.view_layer.objects.active = scene.objects[names[0]]


def set_path(settings, assignment: str) -> None:
    """`--set group.name=value` on scene.scene_diffusion, the value converted to the property's type."""
    path, sep, text = assignment.partition("=")
    if not sep:
        raise ArgumentError(f"--set {assignment!r} needs PATH=VALUE, e.g. animation.strength_schedule=0:(0.6)")
    owner, *rest = path.strip().split(".")
    parts = [owner, *rest]
    target = settings
    for part in parts[:-1]:
        target = getattr(target, part, None)
        if target is None:
            raise ArgumentError(f"--set: no setting group '{part}' in {path!r}")
    name = parts[-1]
    prop = target.bl_rna.properties.get(name)
    if prop is None or prop.is_readonly:
        raise ArgumentError(f"--set: no setting '{name}' in {path!r}")
    try:
        if prop.type == 'BOOLEAN':
            value = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}[text.lower()]
        elif prop.type == 'INT':
            value = int(text)
        elif prop.type == 'FLOAT':
            value = float(text)
        elif prop.type in ('STRING', 'ENUM'):
            value = text
        else:
            raise ArgumentError(f"--set: {path!r} cannot be set from the command line")
        setattr(target, name, value)
    except (KeyError, ValueError, TypeError) as error:
        raise ArgumentError(f"--set {assignment!r}: {error}") from None


def plan(scene: bpy.types.Scene, args: argparse.Namespace) -> dict:
    """The templates' parameter values: the objects to texture (the selection, or --objects),
    or the shots: the animation range cut at camera markers."""
    if args.plan_for == "texture":
        from .texture import selected_meshes
        return {"Objects": [obj.name for obj in selected_meshes(bpy.context)]}
    anim = scene.scene_diffusion.animation
    start, end = ((scene.frame_start, scene.frame_end) if anim.use_scene_range
                  else (anim.frame_start, anim.frame_end))
    cuts = [marker.frame for marker in scene.timeline_markers if marker.camera is not None]
    return {"Shots": [shot.frames for shot in shots_between(start, end, cuts)]}


def gather(args: argparse.Namespace):
    from ..scene.gather import gather as gather_files
    folder = args.gather_from
    if not os.path.isdir(folder):
        raise DiffusionError(f"--from {folder} is not a folder", "give the folder the farm tasks saved into")
    paths = sorted(glob.glob(os.path.join(glob.escape(folder), "*.blend")))
    if not paths:
        raise DiffusionError(f"No .blend files in {folder}", "run the tasks first, with --output-blend in that folder")
    return gather_files(paths)


def run(args: argparse.Namespace) -> jobs.Outcome:
    operator, _ = COMMANDS[args.command]
    try:
        getattr(bpy.ops.scene_diffusion, operator)()
    except RuntimeError as error:
        outcome = jobs.last_outcome()
        if outcome is not None and outcome.level == 'ERROR':
            return outcome
        return jobs.Outcome('ERROR', f"{operator} failed: {error}")
    return jobs.last_outcome() or jobs.Outcome('INFO', f"{operator} done")


def save(args: argparse.Namespace) -> str:
    if args.no_save:
        return ""
    try:
        if args.output_blend:
            os.makedirs(os.path.dirname(os.path.abspath(args.output_blend)), exist_ok=True)
            bpy.ops.wm.save_as_mainfile(filepath=args.output_blend, copy=True)
            return args.output_blend
        if not bpy.data.filepath:
            return ""
        bpy.ops.wm.save_mainfile()
    except (OSError, RuntimeError) as error:
        raise DiffusionError(f"The .blend could not be saved: {str(error).strip()}",
                             "free some disk space or give --output-blend in a folder you can write to") from None
    return bpy.data.filepath


class Output:
    """Lines for a person (progress on stdout, the refusal on stderr) or JSON for farm logs."""

    def __init__(self, json_lines: bool, stdout=None, stderr=None) -> None:
        self.json_lines = json_lines
        self.stdout, self.stderr = stdout or sys.stdout, stderr or sys.stderr
        self._last = ""

    def progress(self, status: jobs.JobStatus) -> None:
        if self.json_lines:
            self._json({"event": "progress", "job": status.label, "item": status.item, "items": status.items,
                        "step": status.step, "steps": status.total})
            return
        line = f"step {status.step}/{status.total}"
        if status.items > 1:
            line = f"{status.noun} {status.item}/{status.items} {line}"
        if line != self._last:
            print(line, file=self.stdout, flush=True)
            self._last = line

    def done(self, message: str) -> None:
        if self.json_lines:
            self._json({"event": "done", "message": message})
        else:
            print(message, file=self.stdout, flush=True)

    def error(self, message: str, code: int) -> None:
        if self.json_lines:
            self._json({"event": "error", "message": message, "exit_code": code})
        else:
            print(message.replace("\n", " "), file=self.stderr, flush=True)

    def plan(self, values: dict) -> None:
        """Always JSON: it is read by a submitter (openjd run -p file://plan.json)."""
        print(json.dumps(values), file=self.stdout, flush=True)

    def _json(self, event: dict) -> None:
        # The wall clock, for farm logs (and the startup bench: when the command began, where
        # its time went).
        print(json.dumps({**event, "time": round(time.time(), 3)}), file=self.stdout, flush=True)

    def start(self, command: str) -> None:
        if self.json_lines:
            self._json({"event": "start", "command": command})


_registered: list[Callable] = []


def register() -> None:
    if hasattr(bpy.utils, "register_cli_command"):  # Blender 4.2 and later
        _registered.append(bpy.utils.register_cli_command(COMMAND_ID, main))


def unregister() -> None:
    while _registered:
        bpy.utils.unregister_cli_command(_registered.pop())
