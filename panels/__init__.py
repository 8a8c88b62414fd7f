# SPDX-License-Identifier: GPL-3.0-or-later
"""Panels only draw: no logic, no data changes."""
from . import animation, background, conditions, history, regions, sidebar, texture

_modules = (sidebar, conditions, regions, texture, background, animation, history)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
