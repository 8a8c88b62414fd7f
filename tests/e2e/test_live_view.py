# SPDX-License-Identifier: GPL-3.0-or-later
"""Live View headless: the real depsgraph handler fires on real scene changes
(view_layer.update()), and the test calls `tick` where the UI's timer would, with a time past
the debounce. The engine is the real one, held at a step where a test needs a generation in
flight."""
import os
import sys
import threading

import numpy as np
import pytest
from test_generate_image import jobs_module

DEADLINE = 60


@pytest.fixture
def live(ext_module):
    module = ext_module("operators.live")
    yield module
    module.stop()


@pytest.fixture
def live_scene(demo_scene, model_cache, tmp_path):
    """The demo scene with a few-step (LCM-named) LoRA for the smoke model, live at 128 px."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine"))
    from checkpoint_files import make_lora
    from engine.smoke_model import ensure_smoke_pipeline

    settings = demo_scene.scene_diffusion
    item = settings.loras.add()
    item.path = make_lora(ensure_smoke_pipeline(model_cache, "sd15"), str(tmp_path / "lcm-lora-smoke.safetensors"),
                          seed=4)
    settings.live_resolution, settings.live_steps = 128, 2
    return demo_scene


class Hold:
    """Where the first generation waits at its first step: until `release` is set (a cancel
    alone does not free it, so a test sees the job still running), or with `until_cancel`
    until it is cancelled."""

    def __init__(self) -> None:
        self.calls = []
        self.reached, self.release = threading.Event(), threading.Event()
        self.until_cancel = False


@pytest.fixture
def held_engine():
    """Records every request; holds the first generation (see Hold)."""
    jobs = jobs_module()
    original = jobs.engine
    hold = Hold()

    def engine(*args):
        real = original(*args)

        class Holding:
            def generate(self, request, report=None, cancel=None):
                hold.calls.append(request)
                number = len(hold.calls)

                def on_progress(progress):
                    if report is not None:
                        report(progress)
                    if number == 1:
                        hold.reached.set()
                        assert (cancel.wait(DEADLINE) if hold.until_cancel else hold.release.wait(DEADLINE))
                return real.generate(request, on_progress, cancel)
        return Holding()

    jobs.engine = engine
    yield hold
    hold.release.set()
    jobs.engine = original


def settle(live):
    """Wait for the generation in flight to end, then tick (as the UI's timer would)."""
    assert jobs_module().wait(DEADLINE)
    live.tick(now=float("inf"))


def depth_at(ext_module, scene, size):
    captured = ext_module("scene.conditions").capture_conditions(scene, {"depth"}, width=size[0], height=size[1])
    return captured["depth"].image


def test_without_a_few_step_model_it_asks_for_one_and_changes_nothing(demo_scene, live):
    import bpy
    camera = demo_scene.camera.data
    with pytest.raises(RuntimeError, match="Live View needs a few-step model.*LCM-LoRA"):
        bpy.ops.scene_diffusion.live_view()
    assert not live.is_on()
    assert len(camera.background_images) == 0 and not camera.show_background_images
    assert "Live View" not in bpy.data.images


def test_the_newest_change_is_drawn_and_no_second_job_runs_beside_the_first(
        live_scene, live, ext_module, held_engine):
    import bpy
    calls, reached, release = held_engine.calls, held_engine.reached, held_engine.release
    jobs = jobs_module()
    assert bpy.ops.scene_diffusion.live_view() == {'FINISHED'}
    camera = live_scene.camera.data
    assert camera.show_background_images and camera.background_images[0].image.name == "Live View"
    live.tick(now=float("inf"))
    assert reached.wait(DEADLINE) and len(calls) == 1  # the first picture, held in flight
    size = (calls[0].width, calls[0].height)
    assert size == (128, 88) and calls[0].steps == 2

    cube = bpy.data.objects["Cube"]
    cube.location.x += 1.0
    bpy.context.view_layer.update()  # the depsgraph handler: a change; the held job is cancelled
    live.tick(now=float("inf"))
    assert jobs.is_running() and len(calls) == 1  # no second job while the first runs
    cube.location.x -= 2.5
    bpy.context.view_layer.update()  # a newer change still
    newest = depth_at(ext_module, live_scene, size)

    release.set()
    settle(live)  # the cancelled picture is never shown; the next one starts from the newest state
    assert live.state().shown == 0 and live.state().generations == 2
    settle(live)
    assert live.state().shown == 1 and len(calls) == 2
    np.testing.assert_array_equal(calls[1].controls[0].image, newest)
    assert not np.array_equal(calls[0].controls[0].image, newest)
    shown = ext_module("scene.images").get_pixels(bpy.data.images["Live View"])[..., :3]
    assert shown.shape == (88, 128, 3) and shown.std() > 0.01
    assert [image.name for image in bpy.data.images if image.name.startswith("Live View")] == ["Live View"]

    # Its own capture's echo, an image update and no change at all start nothing.
    for _ in range(3):
        bpy.context.view_layer.update()
        live.tick(now=float("inf"))
    assert live.state().generations == 2 and not jobs.is_running()
    # A frame change does (the picture depends on it).
    live_scene.frame_set(live_scene.frame_current + 1)
    live.tick(now=float("inf"))
    assert live.state().generations == 3
    settle(live)
    assert len(calls) == 3 and live.state().shown == 2


def test_off_puts_the_camera_back_and_opening_a_file_turns_it_off(live_scene, live, held_engine):
    import bpy
    held_engine.release.set()
    camera = live_scene.camera.data
    assert bpy.ops.scene_diffusion.live_view() == {'FINISHED'}
    live.tick(now=float("inf"))
    settle(live)
    assert bpy.ops.scene_diffusion.live_view() == {'FINISHED'}  # pressed again: off
    assert not live.is_on()
    assert len(camera.background_images) == 0 and not camera.show_background_images
    assert live.on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
    assert bpy.ops.scene_diffusion.live_view() == {'FINISHED'}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert not live.is_on()


def test_another_job_stops_the_live_generation_first(live_scene, live, held_engine):
    import bpy
    held_engine.until_cancel = True  # held until Generate Image cancels it
    assert bpy.ops.scene_diffusion.live_view() == {'FINISHED'}
    live.tick(now=float("inf"))
    assert held_engine.reached.wait(DEADLINE)
    assert bpy.ops.scene_diffusion.generate_image() == {'FINISHED'}
    calls = held_engine.calls
    assert len(calls) == 2 and calls[1].width == 96  # Generate Image's own, at the render size
    assert live.state().shown == 0
