# SPDX-License-Identifier: GPL-3.0-or-later
"""Jobs seen from Blender: drained on the main thread, cancelled, dropped when a file opens."""
import threading

import pytest


def drain_until_done(jobs, timeout=10.0):
    """The outcome, once the job's worker part has ended (its events are all queued then)."""
    assert jobs.wait(timeout), "the job did not end"
    outcome = jobs.drain()
    assert outcome is not None
    return outcome


def test_async_job_reports_progress_and_applies_its_result(extension, ext_module):
    jobs = ext_module("operators.jobs")
    progress_type = ext_module("engine.requests").Progress
    gate = threading.Event()
    reported = threading.Event()
    applied = []

    def work(report, cancel):
        report(progress_type(step=1, total=4, elapsed=0.5, eta=1.5))
        reported.set()
        gate.wait(5)
        return 42

    def on_finished(result):
        applied.append((result, threading.current_thread() is threading.main_thread()))
        return "the answer"

    assert jobs.start(work, "Test Job", on_finished, blocking=False) is None
    assert jobs.is_running()
    assert reported.wait(5)
    assert jobs.drain() is None
    status = jobs.status()
    assert (status.step, status.total) == (1, 4)
    assert "step 1/4" in status.text() and "2 s left" in status.text()
    gate.set()
    outcome = drain_until_done(jobs)
    assert (outcome.level, outcome.message) == ('INFO', "the answer")
    assert applied == [(42, True)]  # applied once, on the main thread
    assert not jobs.is_running()


def test_only_one_job_at_a_time(extension, ext_module):
    jobs = ext_module("operators.jobs")
    errors = ext_module("engine.errors")
    gate = threading.Event()
    jobs.start(lambda report, cancel: gate.wait(5), "First", lambda r: "ok", blocking=False)
    with pytest.raises(errors.DiffusionError, match="still running"):
        jobs.start(lambda report, cancel: None, "Second", lambda r: "ok", blocking=False)
    gate.set()
    drain_until_done(jobs)


def test_cancel_operator_stops_the_job(extension, ext_module):
    import bpy
    jobs = ext_module("operators.jobs")
    cancelled_type = ext_module("engine.errors").Cancelled
    applied = []

    def work(report, cancel):
        assert cancel.wait(10)
        raise cancelled_type()

    jobs.start(work, "Long Job", applied.append, blocking=False)
    assert bpy.ops.scene_diffusion.cancel() == {'FINISHED'}
    outcome = drain_until_done(jobs)
    assert outcome.level == 'WARNING' and "cancelled" in outcome.message
    assert applied == []
    assert not bpy.ops.scene_diffusion.cancel.poll()


def test_opening_another_file_cancels_and_drops_the_result(empty_scene, ext_module):
    import bpy
    jobs = ext_module("operators.jobs")
    started = threading.Event()
    applied = []

    def work(report, cancel):
        started.set()
        cancel.wait(5)
        return "finished anyway"  # even a result that arrives is dropped

    jobs.start(work, "Doomed Job", applied.append, blocking=False)
    assert started.wait(5)
    bpy.ops.wm.read_homefile(use_empty=True)  # load_pre cancels the job
    outcome = drain_until_done(jobs, timeout=2)
    assert outcome.level == 'WARNING'
    assert applied == []
    assert not jobs.is_running()


QUIT_DURING_A_JOB = r"""
import os, sys, tempfile, time
home = tempfile.mkdtemp()
for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ["BLENDER_USER_" + name] = os.path.join(home, name.lower())
import bpy, addon_utils
repo = os.path.join(home, "repo"); os.makedirs(repo)
os.symlink(sys.argv[1], os.path.join(repo, "scene_diffusion"))
bpy.context.preferences.extensions.repos.new(name="dev", module="dev", custom_directory=repo, source='USER')
addon_utils.enable("bl_ext.dev.scene_diffusion", default_set=True)
jobs = sys.modules["bl_ext.dev.scene_diffusion.operators.jobs"]
marker = sys.argv[2]

import threading
started = threading.Event()

def work(report, cancel):
    open(marker, "w").write("started")
    started.set()
    cancel.wait(60)
    open(marker, "w").write("cancelled" if cancel.cancelled else "never cancelled")

jobs.start(work, "Long Job", lambda result: "done", blocking=False)
started.wait(60)
sys.exit(0)  # quitting while the job runs
"""


def test_quitting_during_a_job_cancels_it(tmp_path):
    import os
    import subprocess
    import sys
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    marker = tmp_path / "marker"
    out = subprocess.run([sys.executable, "-c", QUIT_DURING_A_JOB, repo_root, str(marker)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "cancelled"
