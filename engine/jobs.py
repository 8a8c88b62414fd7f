# SPDX-License-Identifier: GPL-3.0-or-later
"""One worker thread that runs jobs in order and reports through an event queue.

The worker never sees Blender: a job is a plain function of (report, cancel) that returns
a result. The main thread reads `Job.events` (see operators/jobs.py) and is the only one
that touches bpy.
"""
from __future__ import annotations

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


Event = Progress | Finished | Failed | WasCancelled

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
