# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker thread: results, failures and cancellation arrive as one final event each."""
import threading

from engine import Cancelled, Progress
from engine.jobs import Failed, Finished, WasCancelled, Worker


def drain(job):
    job.wait(timeout=10)
    events = []
    while not job.events.empty():
        events.append(job.events.get_nowait())
    return events


def test_result_and_progress_arrive_in_order():
    worker = Worker()

    def work(report, cancel):
        for i in range(3):
            report(Progress(step=i + 1, total=3, elapsed=0.0, eta=0.0))
        return threading.current_thread().name

    events = drain(worker.submit(work, "count"))
    assert [e.step for e in events[:-1]] == [1, 2, 3]
    assert isinstance(events[-1], Finished)
    # The work ran on the worker thread, not on the caller's.
    assert events[-1].result == worker.name != threading.current_thread().name
    worker.shutdown()


def test_a_failure_comes_back_with_its_traceback():
    worker = Worker()

    def work(report, cancel):
        raise ValueError("broken on purpose")

    events = drain(worker.submit(work))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert "broken on purpose" in events[0].traceback
    # The worker survives a failed job.
    assert isinstance(drain(worker.submit(lambda report, cancel: 7))[0], Finished)
    worker.shutdown()


def test_cancel_reaches_a_running_job():
    worker = Worker()
    started = threading.Event()

    def work(report, cancel):
        started.set()
        while not cancel.cancelled:
            threading.Event().wait(0.01)
        raise Cancelled()

    job = worker.submit(work)
    assert started.wait(5)
    job.cancel()
    assert [type(e) for e in drain(job)] == [WasCancelled]
    worker.shutdown()


def test_a_job_cancelled_before_it_starts_never_runs():
    worker = Worker()
    gate = threading.Event()
    ran = []
    first = worker.submit(lambda report, cancel: gate.wait(5))
    second = worker.submit(lambda report, cancel: ran.append(1))
    second.cancel()
    gate.set()
    assert isinstance(drain(first)[-1], Finished)
    assert [type(e) for e in drain(second)] == [WasCancelled]
    assert ran == []
    worker.shutdown()
