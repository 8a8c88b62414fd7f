# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: glue between the scene (scene/) and the engine (engine/)."""
from . import (animation, background, capture, cli, deforum_import, dependencies, image, jobs, live, material,
               recipes, settings, texture)

_modules = (jobs, capture, image, texture, material, background, animation, deforum_import, settings, recipes,
            dependencies, live, cli)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
