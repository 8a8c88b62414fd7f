"""Run Blender's own extension tool (validate, build) from the bpy wheel's copy.

Usage: python scripts/blender_ext.py validate . | build --source-dir . --output-dir dist
"""
import glob
import importlib.util
import os
import runpy
import sys


def find_tool() -> str:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bpy is not installed: run 'make setup' first")
    root = spec.submodule_search_locations[0]
    # The wheel keeps Blender's scripts in a folder named for its version, e.g. bpy/5.0/.
    found = glob.glob(os.path.join(root, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py"))
    if not found:
        sys.exit(f"Blender's extension tool was not found under {root}")
    return found[0]


def main() -> None:
    tool = find_tool()
    sys.argv = [tool] + sys.argv[1:]
    runpy.run_path(tool, run_name="__main__")


if __name__ == "__main__":
    main()
