# SPDX-License-Identifier: GPL-3.0-or-later
"""Test harness: real Blender (the bpy module) with this checkout loaded as a real extension.

Blender's user folders and HOME point into a temporary folder before bpy is imported, so
tests never read or write the developer's own Blender configuration.
"""
import os
import sys
import tempfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSION_ID = "scene_diffusion"
MODULE = f"bl_ext.dev.{EXTENSION_ID}"

_SANDBOX = tempfile.mkdtemp(prefix="scene_diffusion_tests_")
os.environ["HOME"] = _SANDBOX
for _name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ[f"BLENDER_USER_{_name}"] = os.path.join(_SANDBOX, _name.lower())
# No model hub here or in CI: make every Hugging Face call fail fast instead of retrying.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_SANDBOX, "huggingface")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Engine tests import the engine as a plain library.
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope="session")
def sandbox() -> str:
    """The session's temporary HOME."""
    return _SANDBOX


@pytest.fixture(scope="session")
def model_cache(sandbox) -> str:
    """Where the smoke models are written once per test session."""
    path = os.path.join(sandbox, "models")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def extension(sandbox, model_cache):
    """The checkout, enabled in real Blender as the extension `bl_ext.dev.scene_diffusion`."""
    import bpy  # first: it puts Blender's own modules (addon_utils) on sys.path
    import addon_utils

    repo_dir = os.path.join(sandbox, "dev_repo")
    os.makedirs(repo_dir, exist_ok=True)
    link = os.path.join(repo_dir, EXTENSION_ID)
    if not os.path.exists(link):
        os.symlink(REPO_ROOT, link)
    prefs = bpy.context.preferences
    if "dev" not in {repo.module for repo in prefs.extensions.repos}:
        prefs.extensions.repos.new(name="dev", module="dev", custom_directory=repo_dir, source='USER')
    module = addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
    assert module is not None, f"{MODULE} did not load"
    addon_prefs = prefs.addons[MODULE].preferences
    if hasattr(addon_prefs, "model_cache_dir"):
        addon_prefs.model_cache_dir = model_cache
    yield module


def _raise(error: BaseException) -> None:
    raise error


@pytest.fixture
def empty_scene(extension):
    """A fresh, empty file with the extension still enabled."""
    import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def ext_module(extension):
    """A submodule of the loaded extension, e.g. ext_module("operators.jobs")."""
    return lambda name: sys.modules[f"{extension.__name__}.{name}"]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """bpy 4.2 and 4.5 do not leave quietly after a full run: 4.2 segfaulted (exit 139) and 4.5
    spun for minutes printing leak-detector lines, both after every test had passed and the
    summary was printed (make test-blender-versions). So on those, the process ends here with
    pytest's own exit status. bpy 5.0 exits normally and is left alone."""
    bpy = sys.modules.get("bpy")
    if bpy is None or bpy.app.version >= (5, 0, 0):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(getattr(config, "_scene_diffusion_status", 1)))


def pytest_sessionfinish(session, exitstatus):
    session.config._scene_diffusion_status = exitstatus
