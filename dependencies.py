# SPDX-License-Identifier: GPL-3.0-or-later
"""Python packages Scene Diffusion needs inside Blender: which, where, whether present, installing.

Pure logic: no bpy at module level, so it is unit-tested with plain Python. Only
`site_packages_dir`/`activate` ask Blender (lazily) where the extension's folder is.

The packages live in the extension's own user folder (`.../site-packages`), appended to
sys.path *after* Blender's paths, so Blender's own numpy (and anything else Blender ships)
stays the one imported.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS_FILE = os.path.join(HERE, "requirements.txt")
CONSTRAINTS_FILE = os.path.join(HERE, "constraints.txt")

# Packages Blender ships and the extension must not replace: pinned to Blender's version for
# pip's resolver, then removed from the target so Blender's copy is the only one.
KEPT_FROM_BLENDER = ("numpy",)

# PyTorch's own wheel indexes. Review TORCH_CUDA_INDEX when the torch pin moves: each torch
# release is built for a few CUDA versions only.
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

LOG_TEXT_NAME = "Scene Diffusion pip log"
LOG_FILE_NAME = "pip-install.log"


class DependencyError(Exception):
    """Something the person can fix: `what` went wrong, `fix` says what to do.

    Same shape as engine.DiffusionError (this module is imported without the engine).
    """

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}: {fix}" if fix else what)


# --- The package list -----------------------------------------------------------------

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize_name(name: str) -> str:
    """PEP 503 normalised distribution name: `ControlNet_Aux` -> `controlnet-aux`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: str = REQUIREMENTS_FILE) -> tuple[str, ...]:
    """Distribution names in a requirements file, in order; `-r other.txt` is followed.

    Comments, blank lines and other options are skipped; versions, extras and markers are
    dropped (the versions come from constraints.txt).
    """
    names: list[str] = []
    with open(path, encoding="utf-8") as file:
        for raw in file:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)$", line)
            if include:
                nested = os.path.join(os.path.dirname(path), include.group(1))
                names.extend(requirement_names(nested))
                continue
            if line.startswith("-"):
                continue
            match = _NAME.match(line)
            if match:
                names.append(match.group(1))
    return tuple(dict.fromkeys(names))


# --- Status: present (with version) or missing ----------------------------------------

@dataclass(frozen=True)
class PackageStatus:
    """One needed package: its version and the folder it was found in, or missing (None)."""
    name: str
    version: str | None = None
    location: str | None = None

    @property
    def present(self) -> bool:
        return self.version is not None


def search_path(site_dir: str | None, path: Sequence[str] | None = None) -> list[str]:
    """Where Python finds packages: Blender's own paths first, the extension's folder last."""
    entries = [entry for entry in (sys.path if path is None else path) if entry != site_dir]
    return entries + [site_dir] if site_dir else entries


def package_status(name: str, path: Sequence[str]) -> PackageStatus:
    """The first installed distribution called `name` on `path` (import order), if any."""
    for dist in importlib.metadata.distributions(name=name, path=list(path)):
        if dist.version:  # a dist-info folder without metadata is a broken leftover
            return PackageStatus(name, dist.version, os.path.normpath(str(dist.locate_file(""))))
    return PackageStatus(name)


def package_statuses(names: Iterable[str], path: Sequence[str]) -> tuple[PackageStatus, ...]:
    return tuple(package_status(name, path) for name in names)


# Module state: the extension's folder (set by `activate`) and the cached status, so a
# panel can ask in every redraw without scanning folders.
_site_dir: str | None = None
_statuses: tuple[PackageStatus, ...] | None = None


def statuses() -> tuple[PackageStatus, ...]:
    """Status of every package in requirements.txt (cached; `refresh()` to look again)."""
    global _statuses
    if _statuses is None:
        _statuses = package_statuses(requirement_names(), search_path(_site_dir))
    return _statuses


def missing_packages() -> tuple[str, ...]:
    """Names of needed packages that are not installed; empty when ready to generate."""
    return tuple(status.name for status in statuses() if not status.present)


def refresh() -> None:
    """Forget the cached status (after an install) so the next call looks again."""
    global _statuses
    _statuses = None
    importlib.invalidate_caches()


# --- sys.path --------------------------------------------------------------------------

_added: list[str] = []


def site_packages_dir(package: str) -> str:
    """The extension's own folder for installed packages (created if missing)."""
    import bpy
    return bpy.utils.extension_path_user(package, path="site-packages", create=True)


def activate(package: str) -> None:
    """Put the extension's site-packages on sys.path (after Blender's own, so Blender's numpy wins)."""
    global _site_dir
    path = site_packages_dir(package)
    _site_dir = path
    if path not in sys.path and os.path.isdir(path):
        sys.path.append(path)
        _added.append(path)
    refresh()


def deactivate() -> None:
    global _site_dir
    cancel_running_install()
    while _added:
        path = _added.pop()
        if path in sys.path:
            sys.path.remove(path)
    _site_dir = None
    refresh()


# --- Which torch build -----------------------------------------------------------------

def torch_index_url(platform: str, has_nvidia: bool) -> str | None:
    """The extra wheel index for torch, or None for PyPI's default build.

    platform is `sys.platform`. macOS: PyPI's wheels (Metal). Linux/Windows: PyTorch's CUDA
    index with an NVIDIA GPU (PyPI's Windows wheels are CPU-only), else the CPU index
    (PyPI's Linux wheels pull ~5 GB of CUDA libraries that would never run).
    """
    if platform == "darwin":
        return None
    return TORCH_CUDA_INDEX if has_nvidia else TORCH_CPU_INDEX


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver is installed (its tool or its kernel module is there)."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    if shutil.which("nvidia-smi"):
        return True
    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    return sys.platform == "win32" and os.path.exists(os.path.join(system_root, "System32", "nvidia-smi.exe"))


TORCH_BUILDS = ("AUTO", "CUDA", "CPU")


def choose_torch_index(torch_build: str = "AUTO", platform: str = sys.platform) -> str | None:
    """torch_index_url for a preference: AUTO detects an NVIDIA GPU, CUDA/CPU force one."""
    if torch_build not in TORCH_BUILDS:
        raise ValueError(f"torch_build must be one of {TORCH_BUILDS}, not {torch_build!r}")
    has_nvidia = has_nvidia_gpu() if torch_build == "AUTO" else torch_build == "CUDA"
    return torch_index_url(platform, has_nvidia)


# --- The pip command ---------------------------------------------------------------------

@dataclass(frozen=True)
class InstallOptions:
    """One pip install into the extension's folder.

    wheel_dir: install only from wheels in this folder (offline); "" uses the indexes.
    torch_index: extra index for torch (see torch_index_url); ignored with wheel_dir.
    kept: (name, version) of packages Blender already has; pinned, then removed from target.
    """
    target: str
    requirements: str = REQUIREMENTS_FILE
    constraints: str = CONSTRAINTS_FILE
    wheel_dir: str = ""
    torch_index: str | None = None
    kept: tuple[tuple[str, str], ...] = ()
    python: str = sys.executable


def blender_versions(names: Iterable[str], site_dir: str | None) -> tuple[tuple[str, str], ...]:
    """(name, version) of each package Blender itself provides (not the extension's copy)."""
    path = [entry for entry in sys.path if entry != site_dir]
    found = (package_status(name, path) for name in names)
    return tuple((status.name, status.version) for status in found if status.present)


def pip_launcher(python: str) -> list[str]:
    """How to run pip with `python`: its own pip, else the pip wheel ensurepip bundles.

    Some Blender builds ship without pip; pip runs straight from its wheel, so nothing has
    to be written into Blender's own folders.
    """
    if importlib.util.find_spec("pip") is not None:
        return [python, "-m", "pip"]
    wheel = bundled_pip_wheel()
    if wheel is None:
        raise DependencyError(
            "Blender's Python has neither pip nor ensurepip",
            "install the packages from requirements.txt into the extension's site-packages folder by hand",
        )
    return [python, os.path.join(wheel, "pip")]


def bundled_pip_wheel() -> str | None:
    if importlib.util.find_spec("ensurepip") is None:
        return None
    import ensurepip
    bundled = os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")
    wheels = sorted(name for name in os.listdir(bundled) if name.startswith("pip-")) if os.path.isdir(bundled) else []
    return os.path.join(bundled, wheels[-1]) if wheels else None


def kept_constraints_text(kept: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in kept)


def pip_install_command(options: InstallOptions, launcher: Sequence[str],
                        kept_constraints_file: str | None = None) -> list[str]:
    """The full pip command line for `options` (launcher: see pip_launcher)."""
    command = [
        *launcher, "install",
        "--target", options.target,
        "--upgrade",  # replace what an earlier install left; --target skips existing folders otherwise
        "--no-input", "--progress-bar", "off", "--disable-pip-version-check",
        "-c", options.constraints,
    ]
    if kept_constraints_file:
        command += ["-c", kept_constraints_file]
    if options.wheel_dir:
        command += ["--no-index", "--find-links", options.wheel_dir]
    elif options.torch_index:
        command += ["--extra-index-url", options.torch_index]
    command += ["-r", options.requirements]
    return command


# pip settings from the environment that would fight --target or Blender's Python.
_PIP_ENV_DROPPED = ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV",
                    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")


def pip_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment for the pip subprocess: unbuffered UTF-8 lines, no user site."""
    env = {key: value for key, value in base.items() if key not in _PIP_ENV_DROPPED}
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PYTHONNOUSERSITE="1")
    return env


# --- Running pip -------------------------------------------------------------------------

@dataclass(frozen=True)
class InstallResult:
    """What one install did. log: every line pip printed (and the command, first)."""
    returncode: int
    log: tuple[str, ...]
    removed: tuple[str, ...] = ()
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled

    @property
    def summary(self) -> str:
        """The line that says what happened: pip's last ERROR, or its success line."""
        if self.cancelled:
            return "Install cancelled"
        wanted = "ERROR" if self.returncode else "Successfully installed"
        for line in reversed(self.log):
            if line.startswith(wanted):
                return line
        meaningful = [line for line in self.log if line.strip()]
        return meaningful[-1] if meaningful else f"pip exited with code {self.returncode}"


def run_command(command: Sequence[str], on_line: Callable[[str], None],
                on_start: Callable[[subprocess.Popen], None] | None = None,
                env: Mapping[str, str] | None = None) -> int:
    """Run `command`, passing each output line (stdout and stderr) to on_line as it comes."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window pops up
    with subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, encoding="utf-8", errors="replace", env=env, creationflags=flags,
    ) as process:
        if on_start:
            on_start(process)
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line.rstrip("\r\n"))
        return process.wait()


def remove_distribution(site_dir: str, name: str) -> bool:
    """Delete an installed distribution's files (per its RECORD) from `site_dir` only.

    True if one was found there. Files of other distributions sharing a folder stay.
    """
    root = os.path.realpath(site_dir)
    found = False
    for dist in list(importlib.metadata.distributions(name=name, path=[site_dir])):
        found = True
        top_levels: set[str] = set()
        for file in dist.files or ():
            path = os.path.realpath(str(dist.locate_file(file)))
            if path == root or os.path.commonpath([root, path]) != root:
                continue  # RECORD can name scripts outside the folder: leave those alone
            top_levels.add(os.path.relpath(path, root).split(os.sep)[0])
            if os.path.isfile(path) or os.path.islink(path):
                os.remove(path)
        for top in top_levels:
            _remove_empty_folders(os.path.join(root, top))
    return found


def _remove_empty_folders(path: str) -> None:
    """Remove folders under `path` (and `path`) left empty, with their __pycache__."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for dirpath, _dirnames, _filenames in os.walk(path, topdown=False):
        if os.path.basename(dirpath) == "__pycache__":
            shutil.rmtree(dirpath)
        elif not os.listdir(dirpath):
            os.rmdir(dirpath)


def install(options: InstallOptions, on_line: Callable[[str], None] = lambda line: None,
            on_start: Callable[[subprocess.Popen], None] | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> InstallResult:
    """Run pip for `options`, blocking, then drop the copies of Blender's own packages.

    Each output line goes to on_line as it arrives (for progress); the result keeps them all.
    """
    log: list[str] = []

    def emit(line: str) -> None:
        log.append(line)
        on_line(line)

    os.makedirs(options.target, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scene_diffusion_pip_") as scratch:
        kept_file = None
        if options.kept:
            kept_file = os.path.join(scratch, "blender-constraints.txt")
            with open(kept_file, "w", encoding="utf-8") as file:
                file.write(kept_constraints_text(options.kept))
        try:
            command = pip_install_command(options, pip_launcher(options.python), kept_file)
            emit("$ " + shlex.join(command))
            code = run_command(command, emit, on_start, pip_environment(os.environ))
        except (OSError, DependencyError) as error:
            emit(f"ERROR: could not run pip: {error}")
            code = -1
    removed = tuple(name for name, _ in options.kept if remove_distribution(options.target, name))
    for name in removed:
        emit(f"Removed {name} from {options.target}: Blender's own copy is used")
    refresh()
    return InstallResult(code, tuple(log), removed, cancelled=cancelled())


def write_log(path: str, log: Iterable[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(log) + "\n")


# --- The same install on a worker thread (interactive) ---------------------------------

class InstallJob:
    """`install` on a worker thread; the main thread calls `drain()` to collect progress.

    The worker never touches bpy: it only fills a queue and, at the end, `result`.
    """

    def __init__(self, options: InstallOptions) -> None:
        self.options = options
        self.result: InstallResult | None = None
        self.last_line = ""
        self.line_count = 0
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="scene_diffusion_pip", daemon=True)

    def start(self) -> InstallJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        self.result = install(self.options, self._lines.put, self._started, self._cancel.is_set)

    def _started(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._process = process
            if self._cancel.is_set():
                process.terminate()

    def cancel(self) -> None:
        with self._lock:
            self._cancel.set()
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()

    def drain(self) -> list[str]:
        """Lines printed since the last call (main thread)."""
        lines: list[str] = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        for line in lines:
            if line.strip():
                self.last_line = line.strip()
        self.line_count += len(lines)
        return lines

    @property
    def done(self) -> bool:
        return self.result is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> InstallResult | None:
        self._thread.join(timeout)
        return self.result

    @property
    def progress_text(self) -> str:
        """A short line for the UI: what pip is doing now."""
        text = self.last_line or "Starting pip"
        return text if len(text) <= 90 else text[:87] + "..."


_job: InstallJob | None = None


def start_install(options: InstallOptions) -> InstallJob:
    """Start an install on a worker thread; only one at a time."""
    global _job
    if _job is not None and not _job.done:
        raise DependencyError("An install is already running", "wait for it to finish")
    _job = InstallJob(options).start()
    return _job


def current_install() -> InstallJob | None:
    """The running (or last) background install, for the UI to show its progress."""
    return _job


def install_running() -> bool:
    return _job is not None and not _job.done


def cancel_running_install() -> None:
    if install_running():
        assert _job is not None
        _job.cancel()
