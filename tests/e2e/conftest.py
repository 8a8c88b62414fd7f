# SPDX-License-Identifier: GPL-3.0-or-later
import math
from importlib import import_module

import pytest


def jobs_of(extension):
    """The extension's real operators.jobs module (imported, never replaced)."""
    return import_module(f"{extension.__name__}.operators.jobs")


@pytest.fixture(autouse=True)
def no_outcome_from_an_earlier_test(extension):
    """A test reads the outcome of its own job, never a stale one left by the test before."""
    jobs_of(extension)._last_outcome = None


@pytest.fixture
def requests_made(extension):
    """Every GenerationRequest the jobs hand to the engine, in order: the real engine still makes
    every image (the wrapper only notes the request and calls it)."""
    jobs = jobs_of(extension)
    original = jobs.engine
    made = []

    def engine(*args):
        real = original(*args)

        class Recording:
            def generate(self, request, report=None, cancel=None):
                made.append(request)
                return real.generate(request, report, cancel)
        return Recording()

    jobs.engine = engine
    yield made
    jobs.engine = original


@pytest.fixture
def demo_scene(empty_scene):
    """A floor, a cube and a camera looking at them; 96x64 px; the smoke model, 2 steps."""
    import bpy

    scene = empty_scene
    scene.render.resolution_x, scene.render.resolution_y = 96, 64
    scene.render.resolution_percentage = 100
    bpy.ops.mesh.primitive_plane_add(size=10)
    bpy.ops.mesh.primitive_cube_add(size=1.5, location=(0, 0, 0.75))
    bpy.ops.object.camera_add(location=(0, -6, 3), rotation=(math.radians(65), 0, 0))
    scene.camera = bpy.context.object
    settings = scene.scene_diffusion
    settings.model = "smoke"
    settings.steps = 2
    settings.seed = 7
    settings.prompt = "a wooden crate on a stone floor"
    return scene
