# SPDX-License-Identifier: GPL-3.0-or-later
"""The install operator in real Blender, running the real pip on wheels built by the test."""
import importlib.metadata
import importlib.util
import os
import sys
import time

import pytest

from wheel_builder import write_wheel

PACKAGE = "bl_ext.dev.scene_diffusion"
TEST_DISTS = ("sd-scene-pkg", "numpy")


@pytest.fixture
def installer(empty_scene):
    """(dependencies module, operator module, the extension's site-packages), cleaned up after."""
    import bpy
    deps = sys.modules[f"{PACKAGE}.dependencies"]
    ops = sys.modules[f"{PACKAGE}.operators.dependencies"]
    site = deps.site_packages_dir(PACKAGE)
    prefs = bpy.context.preferences
    yield deps, ops, site
    prefs.system.use_online_access = False
    prefs.addons[PACKAGE].preferences.wheel_dir = ""
    for name in TEST_DISTS:
        deps.remove_distribution(site, name)
    sys.modules.pop("sd_scene_pkg", None)
    deps.refresh()


def _snapshot(folder: str) -> list[tuple[str, int, int]]:
    """Every file under folder with its size and mtime: to show nothing changed."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            stat = os.stat(os.path.join(dirpath, name))
            found.append((os.path.join(dirpath, name), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def test_refuses_when_online_access_is_off_and_changes_nothing(installer, tmp_path):
    import bpy
    deps, ops, site = installer
    bpy.context.preferences.system.use_online_access = False
    assert bpy.app.online_access is False
    user_dir = os.path.dirname(site)
    before = _snapshot(user_dir)
    with pytest.raises(RuntimeError, match=r"Allow Online Access is off: turn it on in Edit > Preferences > System"):
        # A made-up package: were the refusal broken, pip would fail fast instead of downloading.
        bpy.ops.scene_diffusion.install_dependencies(requirements_file=_requirements(tmp_path, "sd-no-such-pkg"))
    assert _snapshot(user_dir) == before
    assert deps.LOG_TEXT_NAME not in bpy.data.texts


def test_refuses_a_wheel_folder_that_does_not_exist(installer, tmp_path):
    import bpy
    missing = str(tmp_path / "no-wheels-here")
    with pytest.raises(RuntimeError, match="Local wheel folder not found: .*no-wheels-here: choose the folder"):
        bpy.ops.scene_diffusion.install_dependencies(wheel_dir=missing)


def test_online_access_preference_lifts_the_refusal(installer):
    import bpy
    deps, ops, site = installer
    system = bpy.context.preferences.system
    system.use_online_access = True
    assert bpy.app.online_access is True  # the preference drives bpy.app.online_access live
    options = ops.install_options(bpy.context)
    assert (options.target, options.wheel_dir) == (site, "")
    assert options.torch_index == deps.choose_torch_index("AUTO")
    assert options.requirements == deps.REQUIREMENTS_FILE
    assert options.kept == (("numpy", importlib.metadata.version("numpy")),)
    system.use_online_access = False
    with pytest.raises(deps.DependencyError, match="Allow Online Access is off"):
        ops.install_options(bpy.context)


def _wheel_folder(tmp_path) -> str:
    """sd-scene-pkg needing numpy; numpy both at Blender's version and a newer 1.x."""
    wheels = str(tmp_path / "wheels")
    write_wheel(wheels, "sd_scene_pkg", "1.2.3", {"sd_scene_pkg/__init__.py": "VERSION = '1.2.3'\n"},
                requires=["numpy"])
    fake_numpy = {"numpy/__init__.py": "FAKE = True\n"}
    write_wheel(wheels, "numpy", importlib.metadata.version("numpy"), fake_numpy)
    write_wheel(wheels, "numpy", "1.99.0", fake_numpy)  # pip would take this without the pin
    return wheels


def _requirements(tmp_path, *names: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(f"{name}\n" for name in names))
    return str(path)


def test_installs_from_a_local_wheel_folder_with_real_pip(installer, tmp_path):
    import bpy
    deps, ops, site = installer
    assert bpy.app.online_access is False  # a local folder needs no network
    result = bpy.ops.scene_diffusion.install_dependencies(
        wheel_dir=_wheel_folder(tmp_path), requirements_file=_requirements(tmp_path, "sd-scene-pkg"))
    assert result == {'FINISHED'}

    assert os.path.isfile(os.path.join(site, "sd_scene_pkg", "__init__.py"))
    status = deps.package_status("sd-scene-pkg", deps.search_path(site))
    assert (status.present, status.version, status.location) == (True, "1.2.3", os.path.normpath(site))

    # pip was held to Blender's numpy, then its copy was removed: Blender's own stays in use.
    blender_numpy = importlib.metadata.version("numpy")
    with open(ops.preferences.log_file_path(), encoding="utf-8") as file:
        log = file.read()
    assert f"numpy-{blender_numpy}" in log and "numpy-1.99.0" not in log
    assert not any(name.startswith("numpy") for name in os.listdir(site))

    assert site in sys.path and sys.path.index(site) > sys.path.index(os.path.dirname(os.path.dirname(
        importlib.util.find_spec("numpy").origin)))
    import numpy
    import sd_scene_pkg
    assert sd_scene_pkg.VERSION == "1.2.3" and sd_scene_pkg.__file__.startswith(site)
    assert not hasattr(numpy, "FAKE") and not numpy.__file__.startswith(site)
    assert deps.LOG_TEXT_NAME not in bpy.data.texts  # the text is only made for failures


def test_failure_reports_pips_error_and_keeps_the_log(installer, tmp_path):
    import bpy
    deps, ops, site = installer
    # The preference's wheel folder is used when the operator is given none.
    bpy.context.preferences.addons[PACKAGE].preferences.wheel_dir = _wheel_folder(tmp_path)
    before = sorted(os.listdir(site))
    with pytest.raises(RuntimeError, match=r"failed: ERROR: No matching distribution found for sd-not-in-folder\. "
                                           r"Full pip log: the text \"Scene Diffusion pip log\""):
        bpy.ops.scene_diffusion.install_dependencies(requirements_file=_requirements(tmp_path, "sd-not-in-folder"))
    text = bpy.data.texts[deps.LOG_TEXT_NAME].as_string()
    assert "--no-index" in text and "ERROR: Could not find a version" in text
    with open(ops.preferences.log_file_path(), encoding="utf-8") as file:
        assert file.read() == text
    assert sorted(os.listdir(site)) == before


def test_background_install_blocks_a_second_one_and_its_timer_finishes_it(installer, tmp_path):
    # invoke's path without a window: the worker thread, and the main-thread function a timer
    # (bpy.app.timers or the modal timer) calls until the install is done.
    import bpy
    deps, ops, site = installer
    options = ops.install_options(bpy.context, _wheel_folder(tmp_path), _requirements(tmp_path, "sd-scene-pkg"))
    job = deps.start_install(options)
    assert not bpy.ops.scene_diffusion.install_dependencies.poll()
    with pytest.raises(deps.DependencyError, match="already running"):
        deps.start_install(options)
    assert deps.current_install() is job
    deadline = time.monotonic() + 60
    while (delay := ops.finish_detached(job)) is not None and time.monotonic() < deadline:
        assert delay > 0
        job.wait(delay)  # the timer's next call at most `delay` later; sooner when pip is done
    assert delay is None and job.result.ok
    assert job.line_count == len(job.result.log) and job.last_line
    assert deps.package_status("sd-scene-pkg", deps.search_path(site)).version == "1.2.3"
    with open(ops.preferences.log_file_path(), encoding="utf-8") as file:
        assert file.read().splitlines() == list(job.result.log)
    assert bpy.ops.scene_diffusion.install_dependencies.poll()
