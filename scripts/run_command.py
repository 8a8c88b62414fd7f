# SPDX-License-Identifier: GPL-3.0-or-later
"""`blender -b FILE.blend -c scene_diffusion COMMAND ...` where Blender is the `bpy` module
(as in this repository's environment, and on farm workers that run Python, not Blender):

    python scripts/run_command.py FILE.blend COMMAND [options]
    python scripts/run_command.py -b FILE.blend -c scene_diffusion COMMAND [options]

It enables the extension from this folder (its Blender user folders in a temporary
sandbox, so nothing of a person's setup is touched), opens the file and runs the same
function Blender's `-c scene_diffusion` runs, exiting with its code.
"""
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "bl_ext.command.scene_diffusion"


def main(argv: list[str]) -> int:
    if argv[:1] == ["-b"]:  # Blender's own spelling: -b FILE.blend -c scene_diffusion COMMAND ...
        if len(argv) < 4 or argv[2] not in ("-c", "--command") or argv[3] != "scene_diffusion":
            print("usage: ... -b FILE.blend -c scene_diffusion COMMAND [options]", file=sys.stderr)
            return 2
        argv = [argv[1], *argv[4:]]
    if len(argv) < 2:
        print("usage: python scripts/run_command.py FILE.blend COMMAND [options]", file=sys.stderr)
        return 2
    blend, arguments = argv[0], argv[1:]
    home = tempfile.mkdtemp(prefix="scene_diffusion_command_")
    for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
        os.environ[f"BLENDER_USER_{name}"] = os.path.join(home, name.lower())
    import bpy
    import addon_utils

    repo = os.path.join(home, "repo")
    os.makedirs(repo)
    os.symlink(REPO_ROOT, os.path.join(repo, "scene_diffusion"))
    bpy.context.preferences.extensions.repos.new(name="command", module="command", custom_directory=repo,
                                                 source='USER')
    if addon_utils.enable(MODULE, default_set=True) is None:
        print("Scene Diffusion could not be enabled", file=sys.stderr)
        return 1
    if not os.path.isfile(blend):
        print(f"No .blend file at {blend}", file=sys.stderr)
        return 2
    bpy.ops.wm.open_mainfile(filepath=blend)
    return sys.modules[f"{MODULE}.operators.cli"].main(arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
