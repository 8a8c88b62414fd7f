# SPDX-License-Identifier: GPL-3.0-or-later
import sys


def test_extension_enables(extension):
    import bpy
    assert extension.__name__ == "bl_ext.dev.scene_diffusion"
    assert hasattr(bpy.types.Scene, "scene_diffusion")
