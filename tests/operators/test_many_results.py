# SPDX-License-Identifier: GPL-3.0-or-later
"""Jobs that make many results (frames, views, tiles): prepared ahead on the main thread,
made on the worker, written one by one; a cancel or a failure keeps what was written."""
import threading
import time

import numpy as np
import pytest

DEADLINE = 30.0  # seconds; only reached when something is broken


@pytest.fixture
def jobs(extension, ext_module):
    module = ext_module("operators.jobs")
    yield module
    if module.is_running():  # a failed test must not leave a job behind for the next one
        module.cancel()
        module.wait(DEADLINE)
        module.drain()


def pump_until(jobs, event, deadline=DEADLINE):
    """Drain on this (the main) thread, as the UI's timer does, until `event` is set."""
    import time
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        jobs.drain()
        if event.wait(0.02):
            return True
    return False


def log_steps(jobs, count, ahead=1, work=None, prepare=None, noun="frame", written=None, log=None):
    """Steps whose every call is logged as (what, index, on the main thread)."""
    log = [] if log is None else log
    written = [] if written is None else written

    def main(what, index):
        log.append((what, index, threading.current_thread() is threading.main_thread()))

    def do_prepare(index):
        main("prepare", index)
        return prepare(index) if prepare else index

    def do_work(item, report, cancel):
        log.append(("work", item, threading.current_thread() is threading.main_thread()))
        return work(item, report, cancel) if work else item * 10

    def write(index, result):
        main("write", index)
        written.append((index, result))

    steps = jobs.Steps("Many", work=do_work, write=write, finish=lambda count: f"{count} written", count=count,
                       prepare=do_prepare, noun=noun, ahead=ahead)
    return steps, log, written


def test_each_result_is_written_in_order_on_the_main_thread(jobs):
    steps, log, written = log_steps(jobs, 4)
    outcome = jobs.start_steps(steps, blocking=True)
    assert (outcome.level, outcome.message) == ('INFO', "4 written")
    assert written == [(0, 0), (1, 10), (2, 20), (3, 30)]
    assert all(on_main for what, _, on_main in log if what in ("prepare", "write"))
    assert not any(on_main for what, _, on_main in log if what == "work")


def test_the_next_item_is_captured_while_the_previous_one_is_made(jobs):
    """ahead=1: item i+1 is prepared before item i's result exists. Item i's work waits for
    that preparation, so without running ahead the job could not go on."""
    prepared = [threading.Event() for _ in range(4)]

    def prepare(index):
        prepared[index].set()
        return index

    def work(item, report, cancel):
        if item + 1 < len(prepared):
            assert prepared[item + 1].wait(DEADLINE), f"item {item + 1} was not prepared while {item} was made"
        return item

    steps, _, written = log_steps(jobs, 4, ahead=1, work=work, prepare=prepare)
    outcome = jobs.start_steps(steps, blocking=True)
    assert outcome.level == 'INFO', outcome.message
    assert [index for index, _ in written] == [0, 1, 2, 3]


def test_ahead_zero_prepares_an_item_only_after_the_previous_one_is_written(jobs):
    steps, log, _ = log_steps(jobs, 3, ahead=0)
    assert jobs.start_steps(steps, blocking=True).level == 'INFO'
    main = [(what, index) for what, index, _ in log if what != "work"]
    assert main == [("prepare", 0), ("write", 0), ("prepare", 1), ("write", 1), ("prepare", 2), ("write", 2)]


def test_progress_shows_the_item_and_the_step(jobs, ext_module):
    progress = ext_module("engine.requests").Progress
    shown = threading.Event()
    release = threading.Event()

    def work(item, report, cancel):
        report(progress(step=2, total=5, elapsed=1.0, eta=3.0))
        if item == 1:
            shown.set()
            assert release.wait(DEADLINE)
        return item

    steps, _, _ = log_steps(jobs, 3, work=work)
    jobs.start_steps(steps, blocking=False)
    assert shown.wait(DEADLINE)
    jobs.drain()
    status = jobs.status()
    assert "frame 2/3 · step 2/5 · " in status.text() and " s/frame, " in status.text()
    assert status.fraction == pytest.approx((1 + 2 / 5) / 3)
    # The pace: the time so far over the frames done (1.4 of them).
    assert status.pace() == pytest.approx((time.monotonic() - status.started) / 1.4, rel=0.05)
    release.set()
    assert jobs.wait(DEADLINE)
    while (outcome := jobs.drain()) is None:
        assert jobs.wait(DEADLINE)
    assert outcome.level == 'INFO'


def test_a_preparation_that_fails_midway_keeps_what_was_made_and_says_which(jobs, ext_module):
    errors = ext_module("engine.errors")

    def prepare(index):
        if index == 3:
            raise errors.DiffusionError("No active camera at this frame", "bind a camera with a marker")
        return index

    steps, log, written = log_steps(jobs, 6, prepare=prepare)
    outcome = jobs.start_steps(steps, blocking=True)
    assert outcome.level == 'ERROR'
    assert outcome.message.startswith("frame 4: No active camera at this frame")
    # The items handed over before the failure were made and written; nothing after.
    assert [index for index, _ in written] == [0, 1, 2]
    assert "the 3 of 6 frames written before are kept" in outcome.message
    assert not jobs.is_running()


def test_a_refusal_of_the_first_item_starts_nothing(jobs, ext_module):
    errors = ext_module("engine.errors")

    def prepare(index):
        raise errors.DiffusionError("Nothing is in the camera's view", "point the camera at something")

    steps, log, written = log_steps(jobs, 3, prepare=prepare)
    with pytest.raises(errors.DiffusionError, match="Nothing is in the camera's view"):
        jobs.start_steps(steps, blocking=True)
    assert not jobs.is_running()
    assert [what for what, _, _ in log] == ["prepare"]


def test_a_worker_failure_midway_keeps_the_results_before_it(jobs, ext_module):
    errors = ext_module("engine.errors")

    def work(item, report, cancel):
        if item == 2:
            raise errors.DiffusionError("Out of memory", "lower the resolution")
        return item

    steps, _, written = log_steps(jobs, 5, work=work)
    outcome = jobs.start_steps(steps, blocking=True)
    assert outcome.level == 'ERROR' and "Out of memory" in outcome.message
    assert [index for index, _ in written] == [0, 1]
    assert "the 2 of 5 frames written before are kept" in outcome.message


def test_a_broken_writer_ends_the_job_instead_of_leaving_it_running(jobs):
    def write(index, result):
        raise KeyError("a bug")

    steps = jobs.Steps("Broken", work=lambda item, report, cancel: item, write=write, finish=lambda count: "done",
                       count=3, prepare=lambda index: index)
    outcome = jobs.start_steps(steps, blocking=True)
    assert outcome.level == 'ERROR' and "KeyError" in outcome.message
    assert not jobs.is_running()


def test_cancelling_a_real_many_image_job_keeps_whole_images_before_it_and_none_after(
        jobs, extension, ext_module, empty_scene, model_cache):
    """Five smoke generations written as image datablocks; Cancel is pressed while the third
    is being denoised. The first two are written whole (equal to an uninterrupted
    generation of the same seed), nothing of the third or later exists, and no other
    datablock was made."""
    import bpy

    # The extension's own engine: its Cancelled is the one the job runner knows.
    GenerationRequest = ext_module("engine.requests").GenerationRequest
    images = ext_module("scene.images")
    engine = __import__("importlib").import_module(f"{extension.__name__}.engine.generate").Engine(model_cache)
    requests = [GenerationRequest("a lighthouse", width=64, height=64, steps=3, seed=seed, model="smoke")
                for seed in range(5)]
    third_started = threading.Event()
    before = {name: len(getattr(bpy.data, name)) for name in ("images", "texts", "objects", "scenes")}
    made = []

    def work(index, report, cancel):
        def on_progress(progress):
            report(progress)
            if index == 2:
                third_started.set()
                assert cancel.wait(DEADLINE), "the cancel did not arrive"
        return engine.generate(requests[index], on_progress, cancel)

    def write(index, result):
        made.append(images.new_image(f"Frame {index}", result.images[0], {"kind": "frame", "index": index}))

    steps = jobs.Steps("Frames", work=work, write=write, finish=lambda count: "done", count=5,
                       prepare=lambda index: index, noun="frame")
    jobs.start_steps(steps, blocking=False)
    assert pump_until(jobs, third_started)
    assert bpy.ops.scene_diffusion.cancel() == {'FINISHED'}
    assert jobs.wait(DEADLINE)
    outcome = jobs.drain()
    assert outcome.level == 'WARNING'
    assert "cancelled, the 2 of 5 frames written before are kept" in outcome.message
    assert [image["scene_diffusion"]["index"] for image in made] == [0, 1]
    assert len(bpy.data.images) == before["images"] + 2
    assert {name: len(getattr(bpy.data, name)) for name in ("texts", "objects", "scenes")} == \
        {name: before[name] for name in ("texts", "objects", "scenes")}
    for index, image in enumerate(made):
        whole = engine.generate(requests[index]).images[0]
        assert np.abs(images.get_pixels(image)[..., :3] - whole).max() <= 0.5 / 255 + 1e-6


def test_opening_another_file_mid_job_writes_nothing_more(jobs, empty_scene):
    import bpy

    second_started = threading.Event()

    def work(item, report, cancel):
        if item == 1:
            second_started.set()
            cancel.wait(DEADLINE)
        return item

    steps, _, written = log_steps(jobs, 4, work=work)
    jobs.start_steps(steps, blocking=False)
    assert second_started.wait(DEADLINE)
    jobs.drain()  # writes item 0
    bpy.ops.wm.read_homefile(use_empty=True)  # load_pre abandons the job
    assert jobs.wait(DEADLINE)
    outcome = jobs.drain()
    assert outcome.level == 'WARNING' and "nothing more was written" in outcome.message
    assert [index for index, _ in written] == [0]
