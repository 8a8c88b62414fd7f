# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender's side of running engine jobs: start, drain on the main thread, cancel.

A job's work runs on the engine's worker thread (engine/jobs.py). Its events are drained
here on the main thread, by a `bpy.app.timers` function in the UI, or right away by
`execute` in headless runs (timers never fire in the bpy module). Only the drain touches
bpy. Opening another file or quitting cancels the job and drops its result, so nothing
freed is ever written to.

Every job is a `Steps`: `count` items (one for an image; a frame, a view or a tile each
in the jobs that make many). The main thread prepares each item's input (its captures)
and hands it to the worker, up to `ahead` items before the previous result is written, so
frame N+1 is captured while frame N diffuses; each result is written by `write` the
moment it is drained. A cancel or a failure keeps every result written before it, and
nothing after it is written.
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
from ..engine.jobs import Failed, Feed, Finished, ItemDone, ItemWork, Job, WasCancelled, Worker, for_each
from ..engine.requests import Progress
from ..scene import images, windows

log = logging.getLogger(__name__)

DRAIN_INTERVAL = 0.1  # seconds between drains while a job runs in the UI
# The areas that show a job's progress or its results.
PROGRESS_AREAS = {'VIEW_3D', 'IMAGE_EDITOR', 'STATUSBAR', 'PROPERTIES'}


@dataclass(frozen=True)
class Steps:
    """A job of `count` results, each prepared on the main thread, made on the worker and
    written on the main thread.

    prepare(i): main thread; item i's input for the worker (captures: bpy is allowed). A
        DiffusionError stops the job after the items already handed over; item 0 is
        prepared before the job starts, so its error is a refusal that changes nothing.
        Careful with renders here: in Blender 5.0.1 a render under a context override
        (every capture render: scene/render.py) while another thread runs torch or numpy
        crashes Blender (reproduced headless). Until that is solved, render ahead only with
        `ahead=0` and the worker idle, or capture before the job.
    work(input, report, cancel): worker thread; item i's result (no bpy).
    write(i, result): main thread; stores result i (datablocks, files) as it arrives.
    finish(written): main thread, after every item was written; the message for the person.
    noun: what an item is ("frame", "view", "tile"), for "frame 3/48 · step 12/20".
    ahead: how many items may be prepared before the previous result is written (0 when
        an item's captures read what earlier results wrote).
    kept: what a cancel or a failure after `written` items leaves, for the message
        (default: those items are kept).
    live: a Live View generation (operators/live.py): any other job cancels it and starts
        once it has stopped; it pushes no undo step and reports only a failure.
    """
    label: str
    work: ItemWork
    write: Callable[[int, Any], None]
    finish: Callable[[int], str]
    count: int = 1
    prepare: Callable[[int], Any] = lambda index: None
    noun: str = "item"
    ahead: int = 1
    kept: Callable[[int], str] | None = None
    live: bool = False


@dataclass
class JobStatus:
    """What the panels draw about the running job."""
    label: str
    step: int = 0
    total: int = 0
    eta: float = 0.0
    item: int = 0
    items: int = 0
    noun: str = ""
    message: str = "Starting…"
    started: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        step = self.step / self.total if self.total else 0.0
        if self.items > 1 and self.item:
            return (self.item - 1 + step) / self.items
        return step

    def text(self) -> str:
        if not self.total:
            return f"{self.label}: {self.message}"
        steps = f"step {self.step}/{self.total}"
        if self.items > 1:
            steps = f"{self.noun} {self.item}/{self.items} · {steps}"
            pace = self.pace()
            if pace:
                steps += f" · {pace:.1f} s/{self.noun}"
        return f"{self.label}: {steps}, {format_seconds(self.remaining())} left"

    def pace(self) -> float:
        """Seconds per item so far (0 until a first item is done)."""
        if self.items <= 1 or self.item <= 1:
            return 0.0
        done = self.fraction * self.items
        return (time.monotonic() - self.started) / done if done > 0 else 0.0

    def remaining(self) -> float:
        """Seconds left: this item's estimate, plus the items after it at the pace so far."""
        if self.items <= 1 or not self.item:
            return self.eta
        done = self.fraction
        elapsed = time.monotonic() - self.started
        later = elapsed / done * (self.items - self.item) / self.items if done > 0 else 0.0
        return self.eta + later


class NothingToDo(Exception):
    """Raised by a job's preparation when everything it would make is made already (a resumed
    animation whose frames are all on disk): reported as information, not as a failure."""


@dataclass(frozen=True)
class Outcome:
    """How a job ended: `level` is a Blender report type, `message` what to tell the person."""
    level: str  # 'INFO', 'WARNING' or 'ERROR'
    message: str
    result: Any = None


@dataclass
class _Running:
    job: Job
    steps: Steps
    feed: Feed
    status: JobStatus
    written: int = 0
    failure: DiffusionError | None = None  # a preparation or a write refused: the job stops
    failed_item: int = 0  # the index of the item it refused
    write_failed: bool = False
    abandoned: bool = False


_worker = Worker()
_engine = None  # created and used on the worker thread only
_placement_asked: tuple[str | None, str | None] = (None, None)
_running: _Running | None = None
_last_outcome: Outcome | None = None
_last_ended: tuple[str, int] = ("", 0)  # the label of the job that ended last, and how many results it wrote
_last_live = False  # whether the job that ended last was a Live View generation


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


def wait(timeout: float | None = None) -> bool:
    """Block until the running job's worker part has ended (its events are then waiting to
    be drained); True when it has, or when no job runs."""
    return _running is None or _running.job.wait(timeout)


def start(function: Callable, label: str, on_finished: Callable[[Any], str], *,
          blocking: bool) -> Outcome | None:
    """Run `function(report, cancel)` on the worker; `on_finished(result)` runs on the main
    thread, writes the result into Blender and returns the message for the person.

    The one-result case of `start_steps`.
    """
    results: list[Any] = []
    return start_steps(Steps(label, work=lambda _input, report, cancel: function(report, cancel),
                             write=lambda _index, result: results.append(result),
                             finish=lambda _written: on_finished(results[0])), blocking=blocking)


def start_steps(steps: Steps, *, blocking: bool) -> Outcome | None:
    """Run `steps` (see Steps). Raises DiffusionError, having started nothing, when another
    job runs or item 0 cannot be prepared.

    blocking: wait and drain here (headless `execute`); returns the outcome. Otherwise the
    timer drains it and the outcome is reported when it comes.
    """
    global _running
    if not steps.live:
        yield_live()
    if _running is not None and _running.abandoned:
        _running.job.wait()  # cancelled already; it ends at its next step
        drain()
    if _running is not None:
        raise DiffusionError(f"'{_running.status.label}' is still running", "wait for it, or press Cancel")
    feed = Feed(steps.count)
    feed.put(steps.prepare(0))  # before the job exists: a refusal here starts nothing
    _running = _Running(_worker.submit(for_each(feed, steps.work), steps.label), steps, feed,
                        JobStatus(steps.label, noun=steps.noun))
    _feed(_running)
    if blocking:
        while (outcome := drain(block=True)) is None:
            pass
        return outcome
    if not bpy.app.timers.is_registered(_timer):
        # Persistent: after another file is opened the timer still drains (and drops) the result.
        bpy.app.timers.register(_timer, first_interval=DRAIN_INTERVAL, persistent=True)
    return None


def cancel() -> bool:
    """Ask the running job to stop at its next step. Returns whether one was running."""
    if _running is None:
        return False
    _stop(_running)
    _running.status.message = "Cancelling…"
    return True


def _stop(running: _Running) -> None:
    running.job.cancel()
    running.feed.close()  # wakes a worker waiting for its next input


def drain(block: bool = False) -> Outcome | None:
    """Apply the running job's pending events on the main thread, writing each result as
    it comes, and prepare the next inputs; the outcome once the job ended.

    block: wait for at least one event first (headless runs; the worker always ends with one).
    """
    global _running, _last_outcome, _last_ended, _last_live
    running = _running
    if running is None:
        return None
    outcome = None
    preview = None
    events = running.job.events
    pending = [events.get()] if block else []
    while outcome is None and (pending or not events.empty()):
        event = pending.pop(0) if pending else events.get_nowait()
        if isinstance(event, Progress):
            _show_progress(running.status, event)
            if event.preview is not None:
                preview = event.preview  # only the newest is worth showing
        elif isinstance(event, ItemDone):
            _write(running, event)
        else:
            outcome = _conclude(running, event)
    if outcome is None:
        _feed(running)
    if preview is not None and outcome is None and not running.abandoned:
        images.show_preview(preview)
    if outcome is not None:
        _running = None
        _last_outcome = outcome
        _last_ended = (running.steps.label, running.written if not running.abandoned else 0)
        _last_live = running.steps.live
    windows.redraw(PROGRESS_AREAS)
    return outcome


def _show_progress(status: JobStatus, event: Progress) -> None:
    status.step, status.total, status.eta = event.step, event.total, event.eta
    status.item, status.items = event.item, event.items
    status.message = event.message or status.message
    for listener in list(progress_listeners):
        listener(status)


# Called on the main thread with the job's status at every progress event (the command
# line prints them; the panels read `status()` instead).
progress_listeners: list[Callable[[JobStatus], None]] = []


def _write(running: _Running, event: ItemDone) -> None:
    if running.abandoned or running.write_failed:
        return  # its scene is going away, or an earlier result could not be written (no gaps)
    try:
        running.steps.write(event.index, event.result)
    except DiffusionError as error:
        running.failure, running.failed_item = error, event.index
    except Exception as error:  # noqa: BLE001 - a bug in a writer must not leave the job running forever
        log.exception("Writing the result of '%s' failed", running.status.label)
        running.failure = DiffusionError(f"Writing the result failed: {error!r}",
                                         "the system console has the details")
        running.failed_item = event.index
    else:
        running.written += 1
        return
    running.write_failed = True
    _stop(running)


def _feed(running: _Running) -> None:
    """Prepare the next inputs while the job may run ahead (main thread: captures use bpy)."""
    steps, feed = running.steps, running.feed
    while (not feed.closed and feed.given < steps.count and running.failure is None
           and not running.job.cancel_token.cancelled and feed.given < running.written + 1 + steps.ahead):
        try:
            item = steps.prepare(feed.given)
        except DiffusionError as error:
            running.failure, running.failed_item = error, feed.given
            feed.close()  # the worker finishes the items it has, then ends
            return
        feed.put(item)


def _kept(running: _Running) -> str:
    steps = running.steps
    if steps.kept is not None:
        return steps.kept(running.written)
    if steps.count == 1:
        return "nothing was written"
    if running.written == 0:
        return f"no {steps.noun} was written"
    return f"the {running.written} of {steps.count} {steps.noun}s written before are kept"


def _conclude(running: _Running, event) -> Outcome:
    label = running.status.label
    many = running.steps.count > 1
    if running.abandoned:
        return Outcome('WARNING', f"{label}: cancelled, nothing {'more ' if many else ''}was written")
    if running.failure is not None:
        if not many:
            return Outcome('ERROR', str(running.failure))
        return Outcome('ERROR', f"{running.steps.noun} {running.failed_item + 1}: {running.failure}; {_kept(running)}")
    if isinstance(event, WasCancelled):
        return Outcome('WARNING', f"{label}: cancelled, {_kept(running)}")
    if isinstance(event, Failed):
        error = event.error
        kept = f"; {_kept(running)}" if many else ""
        if isinstance(error, DiffusionError):
            return Outcome('ERROR', f"{error}{kept}")
        log.error("%s failed:\n%s", label, event.traceback)
        return Outcome('ERROR', f"{label} failed: {error!r} (the system console has the details){kept}")
    assert isinstance(event, Finished)
    try:
        message = running.steps.finish(running.written)
    except DiffusionError as error:
        return Outcome('ERROR', str(error))
    except Exception as error:  # noqa: BLE001 - as in _write: the job must end
        log.exception("Finishing '%s' failed", label)
        return Outcome('ERROR', f"{label} failed: {error!r} (the system console has the details)")
    return Outcome('INFO', message, event.result)


def _timer() -> float | None:
    outcome = drain_and_report()
    if outcome is not None:
        return None
    return DRAIN_INTERVAL if _running is not None else None


def drain_and_report() -> Outcome | None:
    """`drain`, and once the job ended, its undo step and its report (a Live View
    generation's only when it failed); the outcome, or None while it runs."""
    outcome = drain()
    if outcome is not None and not (_last_live and outcome.level != 'ERROR'):
        if not _last_live:
            _push_undo(outcome)
        _report(outcome)
    return outcome


def busy() -> bool:
    """Whether a job runs that another may not interrupt (a Live View generation may be)."""
    return _running is not None and not _running.steps.live


def yield_live() -> None:
    """Stop a running Live View generation and wait for it (before another job's captures:
    no render may run beside the worker)."""
    if _running is not None and _running.steps.live:
        _stop(_running)
        _running.job.wait()
        drain_and_report()


def running_is_live() -> bool:
    """Whether a Live View generation runs now."""
    return _running is not None and _running.steps.live


def report(outcome: Outcome) -> None:
    """Tell the person `outcome` from outside an operator (a timer)."""
    _report(outcome)


def last_was_live() -> bool:
    """Whether the job that ended last was a Live View generation."""
    return _last_live


def _push_undo(outcome: Outcome) -> None:
    """An undo step for what a background job wrote. Blender pushed the operator's own step
    when `invoke` returned, before anything was written; without this one, Ctrl+Z after
    the job would jump past its results and Redo could not bring them back."""
    label, written = _last_ended
    if written == 0 and outcome.level != 'INFO':
        return
    try:
        bpy.ops.ed.undo_push(message=label)
    except RuntimeError:  # no window to push from (e.g. while quitting)
        log.warning("No undo step for '%s'", label)


def _report(outcome: Outcome) -> None:
    # The operator that started the job has returned; a small operator carries the report.
    try:
        bpy.ops.scene_diffusion.report(level=outcome.level, message=outcome.message)
    except RuntimeError:  # no window context (e.g. while quitting): the log still has it
        log.warning("%s", outcome.message)


def abandon(reason: str) -> None:
    """Cancel the running job and drop its results (its scene is about to go away)."""
    if _running is not None:
        _running.abandoned = True
        _stop(_running)
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
