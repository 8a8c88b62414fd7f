# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene Diffusion: Stable Diffusion + ControlNet driven by the 3D scene.

This file only registers; see DESIGN.md for the layers.
"""
from . import dependencies, operators, panels, preferences, properties

_modules = (preferences, properties, operators, panels)


def register() -> None:
    dependencies.activate(__package__)
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
    dependencies.deactivate()
