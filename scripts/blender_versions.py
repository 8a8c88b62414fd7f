# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender-side tests on every Blender the manifest promises: bpy 4.2 LTS, 4.5 LTS and 5.0.

    python scripts/blender_versions.py [4.2 4.5 5.0]     (or an exact release: 4.2.0)

Each version gets a small virtual environment of its own under .venv-blender/ holding only its
`bpy` wheel; everything else (torch, diffusers, pytest, ...) comes from the main .venv through a
.pth file, so torch is installed once. Exit code: 0 when every version passed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The newest patch release of each supported line (PyPI wheels for Python 3.11).
VERSIONS = {"4.2": "4.2.23", "4.5": "4.5.15", "5.0": "5.0.1"}
# The Blender side: everything that runs bpy (engine/ never imports it and is version-free).
TESTS = ["tests/scene", "tests/operators", "tests/e2e", "tests/test_extension.py", "tests/test_preferences.py"]


def environment(line: str) -> str:
    """The interpreter of the environment with bpy `line` (4.2, or an exact 4.2.0), made when missing."""
    version = VERSIONS.get(line, line)
    home = os.path.join(ROOT, ".venv-blender", version)
    python = os.path.join(home, "bin", "python")
    marker = os.path.join(home, ".installed")
    if not os.path.exists(marker):
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", f"bpy=={version}"], check=True)
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        # After the environment's own site-packages: its bpy wins over the main .venv's.
        with open(os.path.join(site, "scene_diffusion_main_venv.pth"), "w", encoding="utf-8") as f:
            f.write(sysconfig.get_paths()["purelib"] + "\n")
        open(marker, "w").close()
    return python


def main(lines: list[str]) -> int:
    unknown = [line for line in lines if line not in VERSIONS and line.rpartition(".")[0] not in VERSIONS]
    if unknown:
        print(f"Unknown Blender version {unknown[0]}; pick from {', '.join(VERSIONS)}", file=sys.stderr)
        return 2
    failed = []
    for line in lines or list(VERSIONS):
        version = VERSIONS.get(line, line)
        python = sys.executable if version == _main_bpy() else environment(line)
        print(f"== Blender {version} ==", flush=True)
        done = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT)
        if done.returncode != 0:
            failed.append(version)
    print("All Blender versions passed" if not failed else f"Failed on Blender {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def _main_bpy() -> str:
    from importlib.metadata import version
    return version("bpy")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
