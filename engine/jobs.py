# SPDX-License-Identifier: GPL-3.0-or-later
"""One worker thread that runs jobs in order and reports through an event queue.

The worker never sees Blender: a job is a plain function of (report, cancel) that returns
a result. The main thread reads `Job.events` (see operators/jobs.py) and is the only one
that touches bpy.

Jobs that make many results (animation frames, texture views, panorama tiles) are
`for_each` jobs: the main thread hands each item's input (its captures, made with bpy)
through a `Feed`, possibly ahead of the worker, and the worker reports each result as an
`ItemDone` event the moment it is made, so the main thread writes it at once and a cancel
keeps every result made before it.
"""
from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from .errors import Cancelled
from .requests import CancelToken, Progress

Report = Callable[[Progress], None]
JobFunction = Callable[[Report, CancelToken], Any]
ItemWork = Callable[[Any, Report, CancelToken], Any]


@dataclass(frozen=True)
class Finished:
    result: Any


@dataclass(frozen=True)
class Failed:
    error: BaseException
    traceback: str


@dataclass(frozen=True)
class WasCancelled:
    pass


@dataclass(frozen=True)
class ItemDone:
    """One result of a many-result job, reported as soon as it is made (index from 0)."""
    index: int
    result: Any


Event = Progress | ItemDone | Finished | Failed | WasCancelled

_ids = itertools.count(1)


class Job:
    """A submitted job: its events, its cancel token, and whether it has ended."""

    def __init__(self, function: JobFunction, label: str) -> None:
        self.id = next(_ids)
        self.label = label
        self.function = function
        self.cancel_token = CancelToken()
        self.events: queue.Queue[Event] = queue.Queue()
        self.done = threading.Event()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def run(self) -> None:
        """Run on the worker thread; every outcome ends as exactly one final event."""
        try:
            if self.cancel_token.cancelled:
                raise Cancelled()
            result = self.function(self.events.put, self.cancel_token)
            self.events.put(Finished(result))
        except Cancelled:
            self.events.put(WasCancelled())
        except Exception as error:  # noqa: BLE001 - every failure must reach the main thread
            self.events.put(Failed(error, traceback.format_exc()))
        finally:
            self.done.set()


class Worker:
    """A single daemon thread running jobs one after another (models stay loaded in it)."""

    def __init__(self, name: str = "scene-diffusion-worker") -> None:
        self.name = name
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, function: JobFunction, label: str = "") -> Job:
        job = Job(function, label)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # Daemon: quitting Blender must never wait for a generation to finish.
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(job)
        return job

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.run()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread after the current job (cancel jobs first to make that quick)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)


# --- Many-result jobs ----------------------------------------------------------------------

_END = object()


class Feed:
    """The inputs of a many-result job, handed in order from the main thread to the worker.

    The main thread `put`s each item's input (prepared with bpy) and `close`s the feed when
    no more will come (a preparation failed, or the job is cancelled); the worker `get`s
    them, waiting for the next one when it runs ahead of the main thread.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"a job needs at least one item, not {count}")
        self.count = count
        self.given = 0  # how many inputs were put (main thread)
        self.closed = False
        self._queue: queue.Queue = queue.Queue()

    def put(self, item: Any) -> None:
        if self.closed or self.given >= self.count:
            raise RuntimeError("no more inputs fit this feed")
        self.given += 1
        self._queue.put(item)

    def close(self) -> None:
        """No more inputs: the worker ends after the items it has."""
        if not self.closed:
            self.closed = True
            self._queue.put(_END)

    def get(self) -> tuple[bool, Any]:
        """(True, the next input), or (False, None) once the feed is closed and drained."""
        item = self._queue.get()
        return (False, None) if item is _END else (True, item)


def for_each(feed: Feed, work: ItemWork) -> JobFunction:
    """A job running `work(input, report, cancel)` on each input of `feed` in order.

    Each result is reported as an `ItemDone` right away; progress events carry the item
    number (`Progress.item`, `Progress.items`). The job's own result is how many items it
    made: fewer than `feed.count` when the feed was closed early.
    """
    def run(report: Callable[[Any], None], cancel: CancelToken) -> int:
        done = 0
        while done < feed.count:
            more, item = feed.get()
            if cancel.cancelled:
                raise Cancelled()
            if not more:
                break

            def item_report(progress: Progress, number: int = done + 1) -> None:
                report(dataclasses.replace(progress, item=number, items=feed.count))

            report(ItemDone(done, work(item, item_report, cancel)))
            done += 1
        return done

    return run
