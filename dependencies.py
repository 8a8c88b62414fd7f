# SPDX-License-Identifier: GPL-3.0-or-later
"""Python packages Scene Diffusion needs inside Blender: where they live and whether they are there."""
import os
import sys

_added: list[str] = []


def site_packages_dir(package: str) -> str:
    """The extension's own folder for installed packages (created if missing)."""
    import bpy
    return bpy.utils.extension_path_user(package, path="site-packages", create=True)


def activate(package: str) -> None:
    """Put the extension's site-packages on sys.path (after Blender's own, so Blender's numpy wins)."""
    path = site_packages_dir(package)
    if path not in sys.path and os.path.isdir(path):
        sys.path.append(path)
        _added.append(path)


def deactivate() -> None:
    while _added:
        path = _added.pop()
        if path in sys.path:
            sys.path.remove(path)
