# SPDX-License-Identifier: GPL-3.0-or-later
"""Hub downloads into the standard Hugging Face cache, reported as progress events.

huggingface_hub's own `snapshot_download` does the work (parallel files, resume of
interrupted downloads, Xet). A dry run first gives the bytes still to fetch, so the
person sees "Downloading owner/name: 1.2 of 4.3 GB" from the start; the byte counts come
from the progress bars huggingface_hub drives through `tqdm_class`, and the cancel token
is checked at each update, so a cancelled download stops within a chunk (the partial
file stays in the cache and the next download resumes it).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Callable

from .errors import Cancelled, DiffusionError
from .requests import CancelToken, Progress

ProgressCallback = Callable[[Progress], None]

REPORT_INTERVAL = 0.25  # seconds between progress events (the first and the last always go out)


def download_snapshot(repo_id: str, allow_patterns: list[str], ignore_patterns: list[str],
                      on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> str:
    """The repository's snapshot folder, fetching what is missing. Network errors are raised as they come."""
    from huggingface_hub import snapshot_download

    from huggingface_hub.errors import DryRunError

    try:
        files = snapshot_download(repo_id, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns,
                                  dry_run=True, tqdm_class=_Reporter(repo_id, 0, None, None).bar_class())
    except DryRunError as error:
        # It wraps why the hub could not be asked (no such repository, gated, no connection).
        raise (error.__cause__ or error) from None
    total = sum(f.file_size or 0 for f in files if f.will_download)
    reporter = _Reporter(repo_id, total, on_progress, cancel)
    reporter.report(force=True)
    folder = snapshot_download(repo_id, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns,
                               tqdm_class=reporter.bar_class())
    reporter.finish()
    return folder


def network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed download raises: OSError and the HTTP client's own errors
    (huggingface_hub's client is httpx2 here; its connection errors are not OSErrors)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


CONNECTION_FIX = ("check the internet connection and try again (a partial download resumes), "
                  "or put the files in the Hugging Face cache")


@contextlib.contextmanager
def hub_errors(subject: str, fix: str = CONNECTION_FIX) -> Iterator[None]:
    """The hub's failures inside the block as DiffusionErrors about `subject` ("The model
    owner/name"): the one path every download takes (models, ControlNets, preview decoders,
    detector weights). `fix` is what to do when the hub cannot be reached."""
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    try:
        yield
    except DiffusionError:
        raise
    except GatedRepoError:  # before its base class, RepositoryNotFoundError
        raise DiffusionError(f"{subject} is gated on the hub: it needs its licence accepted and a login",
                             "accept its licence on huggingface.co and log in (hf auth login), "
                             "or pick another") from None
    except RepositoryNotFoundError:
        raise DiffusionError(f"{subject} does not exist on the hub (or it is private)",
                             "check its name, or pick a local folder") from None
    except EntryNotFoundError as error:
        raise DiffusionError(f"{subject} lacks a file it needs on the hub ({error})",
                             "check the name, or put the files in the Hugging Face cache") from None
    except network_errors() as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DiffusionError(f"{subject} is not in the local cache and the hub cannot be reached ({reason})",
                             fix) from None


def format_bytes_of(done: int, total: int) -> str:
    """'1.2 of 4.3 GB': both in the unit that suits the total."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if total >= size:
            return f"{done / size:.1f} of {total / size:.1f} {unit}"
    return f"{done} of {total} bytes"


class _Reporter:
    """Sums the byte counts of huggingface_hub's progress bars and reports them, throttled.

    Bars are updated from the download threads; a lock keeps the sums and reports in order.
    """

    def __init__(self, repo_id: str, total: int, on_progress: ProgressCallback | None,
                 cancel: CancelToken | None) -> None:
        self.repo_id = repo_id
        self.total = total
        self.on_progress = on_progress
        self.cancel = cancel
        self.started = time.perf_counter()
        self.last_report = 0.0
        self.byte_bars: list[_Bar] = []
        self.lock = threading.Lock()

    @property
    def done(self) -> int:
        # The bytes written to disk and the bytes received both count the download; the larger
        # is the one that has moved furthest (Xet may receive fewer bytes than it writes).
        return min(self.total, max((bar.n for bar in self.byte_bars), default=0))

    def bar_class(self) -> type:
        reporter = self

        class Bar(_Bar):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(reporter, **kwargs)

        return Bar

    def moved(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled()  # raised in a download thread; snapshot_download re-raises it here
        self.report()

    def report(self, force: bool = False) -> None:
        with self.lock:
            now = time.perf_counter()
            if self.on_progress is None or (not force and now - self.last_report < REPORT_INTERVAL):
                return
            self.last_report = now
            done, elapsed = self.done, now - self.started
            eta = elapsed / done * (self.total - done) if done else 0.0
            self.on_progress(Progress(step=0, total=0, elapsed=elapsed, eta=eta,
                                      message=f"Downloading {self.repo_id}: {format_bytes_of(done, self.total)}"))

    def finish(self) -> None:
        for bar in self.byte_bars:
            bar.n = max(bar.n, self.total)  # what was in the cache already counts as done
        self.report(force=True)


class _Bar:
    """Enough of tqdm's interface for huggingface_hub to drive; nothing is printed."""

    def __init__(self, reporter: _Reporter, total: float | None = None, initial: float = 0, unit: str = "it",
                 **_display_options) -> None:
        self.reporter = reporter
        self.total = total
        self.n = initial or 0
        self.counts_bytes = unit == "B"  # the other bar counts files
        if self.counts_bytes:
            with reporter.lock:
                reporter.byte_bars.append(self)

    def update(self, n: float | None = 1) -> None:
        self.n += n or 0
        if self.counts_bytes:
            self.reporter.moved()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    @property
    def format_dict(self) -> dict:
        return {"n": self.n, "total": self.total, "rate": None}

    # The display calls a tqdm bar receives; there is nothing to display here.
    def refresh(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def set_description(self, *args, **kwargs) -> None:
        pass

    set_description_str = set_postfix = set_postfix_str = clear = set_description
