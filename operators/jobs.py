# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender's side of running engine jobs: start, drain on the main thread, cancel.

A job's work runs on the engine's worker thread (engine/jobs.py). Its events are drained
here on the main thread, by a `bpy.app.timers` function in the UI, or right away by
`execute` in headless runs (timers never fire in the bpy module). Only the drain touches
bpy. Opening another file or quitting cancels the job and drops its result, so nothing
freed is ever written to.
"""
from __future__ import annotations

import atexit
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import bpy
from bpy.app.handlers import persistent

from ..engine.errors import DiffusionError
from ..engine.jobs import Failed, Finished, Job, WasCancelled, Worker
from ..engine.requests import Progress
from ..scene import images, windows

log = logging.getLogger(__name__)

DRAIN_INTERVAL = 0.1  # seconds between drains while a job runs in the UI


@dataclass
class JobStatus:
    """What the panels draw about the running job."""
    label: str
    step: int = 0
    total: int = 0
    eta: float = 0.0
    message: str = "Starting…"
    started: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    def text(self) -> str:
        if not self.total:
            return f"{self.label}: {self.message}"
        return f"{self.label}: step {self.step}/{self.total}, {format_seconds(self.eta)} left"


@dataclass(frozen=True)
class Outcome:
    """How a job ended: `level` is a Blender report type, `message` what to tell the person."""
    level: str  # 'INFO', 'WARNING' or 'ERROR'
    message: str
    result: Any = None


@dataclass
class _Running:
    job: Job
    status: JobStatus
    on_finished: Callable[[Any], str]
    abandoned: bool = False


_worker = Worker()
_engine = None  # created and used on the worker thread only
_placement_asked: tuple[str | None, str | None] = (None, None)
_running: _Running | None = None
_last_outcome: Outcome | None = None


def engine(cache_dir: str, device: str | None = None, dtype: str | None = None):
    """The session's engine (models stay loaded between jobs). Call from the worker thread.

    A new device or precision override makes a new engine (the old one's models are freed).
    """
    global _engine, _placement_asked
    if _engine is None or _placement_asked != (device, dtype):
        from ..engine.generate import Engine
        _engine = None  # let the old models go before new ones load
        _engine = Engine(cache_dir, device, dtype)
        _placement_asked = (device, dtype)
    _engine.cache_dir = cache_dir
    return _engine


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def status() -> JobStatus | None:
    """The running job's status, or None when idle."""
    return _running.status if _running is not None else None


def last_outcome() -> Outcome | None:
    return _last_outcome


def is_running() -> bool:
    return _running is not None


def start(function: Callable, label: str, on_finished: Callable[[Any], str], *,
          blocking: bool) -> Outcome | None:
    """Run `function(report, cancel)` on the worker; `on_finished(result)` runs on the main
    thread, writes the result into Blender and returns the message for the person.

    blocking: wait and drain here (headless `execute`); returns the outcome. Otherwise the
    timer drains it and the outcome is reported when it comes.
    """
    global _running
    if _running is not None and _running.abandoned:
        _running.job.wait()  # cancelled already; it ends at its next step
        drain()
    if _running is not None:
        raise DiffusionError(f"'{_running.status.label}' is still running", "wait for it, or press Cancel")
    _running = _Running(_worker.submit(function, label), JobStatus(label), on_finished)
    if blocking:
        _running.job.wait()
        return drain()
    if not bpy.app.timers.is_registered(_timer):
        # Persistent: after another file is opened the timer still drains (and drops) the result.
        bpy.app.timers.register(_timer, first_interval=DRAIN_INTERVAL, persistent=True)
    return None


def cancel() -> bool:
    """Ask the running job to stop at its next step. Returns whether one was running."""
    if _running is None:
        return False
    _running.job.cancel()
    _running.status.message = "Cancelling…"
    return True


def drain() -> Outcome | None:
    """Apply the running job's pending events on the main thread; the outcome once it ended."""
    global _running, _last_outcome
    running = _running
    if running is None:
        return None
    outcome = None
    preview = None
    while outcome is None and not running.job.events.empty():
        event = running.job.events.get_nowait()
        if isinstance(event, Progress):
            running.status.step, running.status.total = event.step, event.total
            running.status.eta = event.eta
            running.status.message = event.message or running.status.message
            if event.preview is not None:
                preview = event.preview  # only the newest is worth showing
        else:
            outcome = _conclude(running, event)
    if preview is not None and outcome is None and not running.abandoned:
        images.show_preview(preview)
    if outcome is not None:
        _running = None
        _last_outcome = outcome
    _redraw()
    return outcome


def _conclude(running: _Running, event) -> Outcome:
    label = running.status.label
    if isinstance(event, WasCancelled) or running.abandoned:
        return Outcome('WARNING', f"{label}: cancelled, nothing was written")
    if isinstance(event, Failed):
        error = event.error
        if isinstance(error, DiffusionError):
            return Outcome('ERROR', str(error))
        log.error("%s failed:\n%s", label, event.traceback)
        return Outcome('ERROR', f"{label} failed: {error!r} (the system console has the details)")
    assert isinstance(event, Finished)
    try:
        message = running.on_finished(event.result)
    except DiffusionError as error:
        return Outcome('ERROR', str(error))
    return Outcome('INFO', message, event.result)


def _timer() -> float | None:
    outcome = drain()
    if outcome is not None:
        _report(outcome)
        return None
    return DRAIN_INTERVAL if _running is not None else None


def _report(outcome: Outcome) -> None:
    # The operator that started the job has returned; a small operator carries the report.
    try:
        bpy.ops.scene_diffusion.report(level=outcome.level, message=outcome.message)
    except RuntimeError:  # no window context (e.g. while quitting): the log still has it
        log.warning("%s", outcome.message)


def _redraw() -> None:
    windows.redraw({'VIEW_3D', 'IMAGE_EDITOR', 'STATUSBAR', 'PROPERTIES'})


def abandon(reason: str) -> None:
    """Cancel the running job and drop its result (its scene is about to go away)."""
    if _running is not None:
        _running.abandoned = True
        _running.job.cancel()
        log.info("Cancelled '%s': %s", _running.status.label, reason)


@persistent
def _on_load_pre(*_args) -> None:
    abandon("another file is being opened")


def _on_exit() -> None:
    abandon("Blender is quitting")
    if _running is not None:
        _running.job.wait(timeout=10)
    _worker.shutdown(timeout=1)


class SCENE_DIFFUSION_OT_cancel(bpy.types.Operator):
    bl_idname = "scene_diffusion.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running generation after the current step; nothing is written"

    @classmethod
    def poll(cls, context):
        return is_running()

    def execute(self, context):
        cancel()
        return {'FINISHED'}


class SCENE_DIFFUSION_OT_report(bpy.types.Operator):
    bl_idname = "scene_diffusion.report"
    bl_label = "Scene Diffusion Report"
    bl_description = "Show a message from a finished job"
    bl_options = {'INTERNAL'}

    level: bpy.props.EnumProperty(items=[(v, v.title(), "") for v in ('INFO', 'WARNING', 'ERROR')])
    message: bpy.props.StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {'FINISHED'}


def report_outcome(operator: bpy.types.Operator, outcome: Outcome) -> set[str]:
    """Report a blocking job's outcome from its operator; the operator's return value."""
    global _last_outcome
    _last_outcome = outcome
    operator.report({outcome.level}, outcome.message)
    return {'FINISHED'} if outcome.level != 'ERROR' else {'CANCELLED'}


def report_error(operator: bpy.types.Operator, error: DiffusionError) -> set[str]:
    """Report a problem found before a job started; the operator's return value."""
    return report_outcome(operator, Outcome('ERROR', str(error)))


classes = (SCENE_DIFFUSION_OT_cancel, SCENE_DIFFUSION_OT_report)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)
    atexit.register(_on_exit)


def unregister() -> None:
    abandon("the extension is being disabled")
    if _running is not None:
        _running.job.wait(timeout=30)
        drain()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    atexit.unregister(_on_exit)
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
