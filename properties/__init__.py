# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings saved with the .blend file: scene settings (`scene.scene_diffusion`) and object
settings (`object.scene_diffusion_pose`, `object.scene_diffusion_segment`).

Texture, world and animation settings get a module each here, registered below.
"""
from . import objects, scene

_modules = (scene, objects)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
