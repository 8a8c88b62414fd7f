# SPDX-License-Identifier: GPL-3.0-or-later
"""The dependency logic without Blender: package list, status, torch build, pip command, runs."""
import importlib.metadata
import os
import sys
import time
import zipfile

import pytest

import dependencies
from dependencies import InstallOptions, InstallResult
from wheel_builder import write_wheel


# --- The package list ----------------------------------------------------------------

def test_requirement_names_of_the_extension_are_the_runtime_set():
    names = dependencies.requirement_names()
    assert names[:2] == ("torch", "torchvision")
    assert {"diffusers", "transformers", "controlnet-aux", "opencv-python-headless"} <= set(names)
    assert "numpy" not in names  # Blender's own numpy is used
    assert not any(name.startswith(("#", "-")) for name in names)


def test_requirement_names_skip_comments_options_versions_and_follow_includes(tmp_path):
    (tmp_path / "base.txt").write_text("alpha==1.0\nshared\n")
    (tmp_path / "req.txt").write_text(
        "# a comment\n"
        "\n"
        "--extra-index-url https://example.invalid/simple\n"
        "-c constraints.txt\n"
        "Beta_Pkg[extra]>=2 ; python_version >= '3.8'  # trailing comment\n"
        "-r base.txt\n"
        "gamma.pkg<3\n"
        "shared\n"
    )
    assert dependencies.requirement_names(str(tmp_path / "req.txt")) == (
        "Beta_Pkg", "alpha", "shared", "gamma.pkg")


def test_normalize_name():
    assert dependencies.normalize_name("ControlNet_Aux") == "controlnet-aux"
    assert dependencies.normalize_name("zope.interface") == "zope-interface"


# --- Status ---------------------------------------------------------------------------

def test_package_status_present_with_version_and_missing():
    status = dependencies.package_status("pytest", sys.path)
    assert status.present and status.version == importlib.metadata.version("pytest")
    assert os.path.isdir(status.location)
    missing = dependencies.package_status("scene-diffusion-no-such-package", sys.path)
    assert not missing.present and missing.version is None and missing.location is None


def _fake_installed(folder, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_status_follows_import_order_with_the_extension_folder_last(tmp_path):
    blender_dir, site_dir = tmp_path / "blender", tmp_path / "site"
    _fake_installed(blender_dir, "sd_test_dup", "1.0")
    _fake_installed(site_dir, "sd_test_dup", "2.0")
    _fake_installed(site_dir, "sd_test_only", "3.0")
    path = dependencies.search_path(str(site_dir), [str(site_dir), str(blender_dir)])
    assert path == [str(blender_dir), str(site_dir)]
    assert dependencies.package_status("sd-test-dup", path).version == "1.0"
    only = dependencies.package_status("SD.Test-Only", path)  # any spelling of the name
    assert (only.version, only.location) == ("3.0", str(site_dir))


def test_statuses_are_cached_until_refresh():
    first = dependencies.statuses()
    assert [status.name for status in first] == list(dependencies.requirement_names())
    assert dependencies.statuses() is first
    dependencies.refresh()
    assert dependencies.statuses() is not first


def test_dev_environment_has_every_package():
    # The dev .venv is installed from the same requirements: nothing may be reported missing.
    dependencies.refresh()
    assert dependencies.missing_packages() == ()


def test_blender_versions_ignore_the_extension_copy(tmp_path):
    _fake_installed(tmp_path, "numpy", "9.9.9")
    kept = dependencies.blender_versions(["numpy", "scene-diffusion-no-such-package"], str(tmp_path))
    assert kept == (("numpy", importlib.metadata.version("numpy")),)


# --- Which torch build ------------------------------------------------------------------

@pytest.mark.parametrize("platform, has_nvidia, expected", [
    ("linux", True, dependencies.TORCH_CUDA_INDEX),
    ("linux", False, dependencies.TORCH_CPU_INDEX),
    ("win32", True, dependencies.TORCH_CUDA_INDEX),
    ("win32", False, dependencies.TORCH_CPU_INDEX),
    ("darwin", True, None),
    ("darwin", False, None),
])
def test_torch_index_per_platform(platform, has_nvidia, expected):
    assert dependencies.torch_index_url(platform, has_nvidia) == expected


def test_torch_build_preference_overrides_detection():
    assert dependencies.choose_torch_index("CUDA", "linux") == dependencies.TORCH_CUDA_INDEX
    assert dependencies.choose_torch_index("CPU", "win32") == dependencies.TORCH_CPU_INDEX
    assert dependencies.choose_torch_index("CUDA", "darwin") is None
    assert dependencies.choose_torch_index("AUTO", "linux") in (
        dependencies.TORCH_CUDA_INDEX, dependencies.TORCH_CPU_INDEX)
    with pytest.raises(ValueError, match="torch_build"):
        dependencies.choose_torch_index("ROCM", "linux")


# --- The pip command ------------------------------------------------------------------------

def _value_after(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, item in enumerate(command) if item == flag]


def test_online_command_pins_everything_and_adds_the_torch_index():
    options = InstallOptions(target="/ext/site-packages", torch_index=dependencies.TORCH_CUDA_INDEX,
                             kept=(("numpy", "1.26.4"),), python="/blender/python")
    command = dependencies.pip_install_command(options, ["/blender/python", "-m", "pip"], "/tmp/kept.txt")
    assert command[:4] == ["/blender/python", "-m", "pip", "install"]
    assert _value_after(command, "--target") == ["/ext/site-packages"]
    assert _value_after(command, "-c") == [dependencies.CONSTRAINTS_FILE, "/tmp/kept.txt"]
    assert _value_after(command, "-r") == [dependencies.REQUIREMENTS_FILE]
    assert _value_after(command, "--extra-index-url") == [dependencies.TORCH_CUDA_INDEX]
    assert "--no-index" not in command and "--upgrade" in command


def test_wheel_folder_command_is_offline():
    options = InstallOptions(target="/t", requirements="/r.txt", wheel_dir="/wheels",
                             torch_index=dependencies.TORCH_CPU_INDEX)
    command = dependencies.pip_install_command(options, ["py", "-m", "pip"])
    assert "--no-index" in command and _value_after(command, "--find-links") == ["/wheels"]
    assert "--extra-index-url" not in command  # never the network with a local folder
    assert _value_after(command, "-c") == [dependencies.CONSTRAINTS_FILE]
    assert _value_after(command, "-r") == ["/r.txt"]


def test_kept_constraints_pin_blenders_versions():
    assert dependencies.kept_constraints_text([("numpy", "1.26.4")]) == "numpy==1.26.4\n"


def test_pip_environment_drops_settings_that_fight_target():
    env = dependencies.pip_environment({"PIP_USER": "1", "PYTHONPATH": "/x", "PATH": "/bin",
                                        "PIP_INDEX_URL": "https://mirror.invalid"})
    assert "PIP_USER" not in env and "PYTHONPATH" not in env
    assert env["PATH"] == "/bin" and env["PIP_INDEX_URL"] == "https://mirror.invalid"  # mirrors stay
    assert env["PYTHONNOUSERSITE"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_pip_launcher_uses_blenders_python():
    assert dependencies.pip_launcher("/blender/python")[0] == "/blender/python"


def test_bundled_pip_wheel_runs_when_python_has_no_pip():
    # Some Blender builds ship ensurepip but not pip: pip then runs from ensurepip's wheel.
    wheel = dependencies.bundled_pip_wheel()
    if wheel is None:
        pytest.skip("this Python has no ensurepip wheel")
    assert "pip/__main__.py" in zipfile.ZipFile(wheel).namelist()  # what `python wheel/pip` runs
    lines: list[str] = []
    # Importing pip from the wheel (running it is 2 s: nothing in a zip is precompiled).
    code = dependencies.run_command(
        [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {wheel!r}); import pip; print(pip.__file__)"],
        lines.append)
    assert code == 0 and lines[0].startswith(wheel)


# --- Results and runs (real subprocesses, real pip) ----------------------------------------

def test_result_summary_is_the_line_that_matters():
    failed = InstallResult(1, ("$ pip install", "ERROR: first", "detail", "ERROR: No matching distribution", ""))
    assert not failed.ok and failed.summary == "ERROR: No matching distribution"
    done = InstallResult(0, ("Collecting a", "Successfully installed a-1.0", "WARNING: later"))
    assert done.ok and done.summary == "Successfully installed a-1.0"
    assert not InstallResult(0, (), cancelled=True).ok


def test_run_command_streams_every_line():
    lines: list[str] = []
    code = dependencies.run_command(
        [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"],
        lines.append)
    assert code == 3 and lines == ["one", "two"]


def _local_wheels(tmp_path) -> tuple[str, str]:
    wheels = str(tmp_path / "wheels")
    write_wheel(wheels, "sd_job_pkg", "0.4.0", {"sd_job_pkg/__init__.py": "VALUE = 4\n"})
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("sd-job-pkg\n")
    return wheels, str(requirements)


def test_install_job_runs_pip_on_a_worker_thread(tmp_path):
    wheels, requirements = _local_wheels(tmp_path)
    target = str(tmp_path / "site")
    job = dependencies.InstallJob(InstallOptions(target=target, requirements=requirements,
                                                 wheel_dir=wheels)).start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not job.done and time.monotonic() < deadline:
        seen += job.drain()  # what the modal timer does on the main thread, between its ticks
        job.wait(0.05)  # a tick at most: returns as soon as pip is done
    seen += job.drain()
    assert job.result is not None and job.result.ok, "\n".join(seen)
    assert seen == list(job.result.log) and job.line_count == len(seen)
    assert job.result.summary.startswith("Successfully installed") and "sd-job-pkg-0.4.0" in job.result.summary
    assert os.path.isfile(os.path.join(target, "sd_job_pkg", "__init__.py"))
    status = dependencies.package_status("sd-job-pkg", [target])
    assert (status.version, status.location) == ("0.4.0", os.path.normpath(target))


def test_cancelled_install_job_reports_cancelled(tmp_path):
    wheels, requirements = _local_wheels(tmp_path)
    job = dependencies.InstallJob(InstallOptions(target=str(tmp_path / "site"), requirements=requirements,
                                                 wheel_dir=wheels)).start()
    job.cancel()
    result = job.wait(60)
    assert result is not None and result.cancelled and not result.ok
    assert result.summary == "Install cancelled"


def test_remove_distribution_deletes_only_that_distribution(tmp_path):
    wheels, requirements = _local_wheels(tmp_path)
    write_wheel(wheels, "sd_other", "1.0", {"sd_other.py": "X = 1\n"})
    target = tmp_path / "site"
    pip = dependencies.pip_launcher(sys.executable)
    paths = [os.path.join(wheels, wheel) for wheel in sorted(os.listdir(wheels))]
    code = dependencies.run_command([*pip, "install", "--quiet", "--no-index", "--target", str(target), *paths],
                                    print)
    assert code == 0 and os.path.isdir(target / "sd_job_pkg")
    assert dependencies.remove_distribution(str(target), "sd-job-pkg")
    left = sorted(os.listdir(target))
    assert left == ["__pycache__", "sd_other-1.0.dist-info", "sd_other.py"]  # the cache is sd_other's
    assert not dependencies.remove_distribution(str(target), "sd-job-pkg")
