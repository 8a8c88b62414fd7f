# SPDX-License-Identifier: GPL-3.0-or-later
"""Running engine jobs from Blender (placeholder; filled in next)."""


def register() -> None:
    pass


def unregister() -> None:
    pass
