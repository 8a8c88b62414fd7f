# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings saved with the .blend file: scene settings (`scene.scene_diffusion`) and object
settings (`object.scene_diffusion_pose`, `object.scene_diffusion_segment`).

Each output has its group of settings in a module here (texture.py: `scene.scene_diffusion.texture`);
background.py: `scene.scene_diffusion.world` and `.backdrop`; animation.py: `.animation`.
"""
from . import animation, background, objects, scene, texture

# Groups first: the scene settings point at them.
_modules = (texture, background, animation, scene, objects)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
