# SPDX-License-Identifier: GPL-3.0-or-later
"""3D Viewport sidebar, tab "Diffusion" (placeholder; filled in next)."""


def register() -> None:
    pass


def unregister() -> None:
    pass
