# SPDX-License-Identifier: GPL-3.0-or-later
"""The checkout as a real Blender extension: manifest, enable/disable, and what enabling costs."""
import json
import os
import subprocess
import sys


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def registered_names():
    import bpy
    return {name for name in dir(bpy.types) if name.startswith(("SCENE_DIFFUSION", "SceneDiffusion"))}


PROPERTIES = (("Scene", "scene_diffusion"), ("Object", "scene_diffusion_pose"), ("Object", "scene_diffusion_segment"),
              ("Object", "scene_diffusion"), ("Collection", "scene_diffusion"))
HANDLERS = ("load_pre", "depsgraph_update_post", "frame_change_post")


def our_handlers(module: str) -> list[str]:
    import bpy
    return sorted(f"{kind}:{handler.__module__}.{handler.__name__}" for kind in HANDLERS
                  for handler in getattr(bpy.app.handlers, kind) if handler.__module__.startswith(module))


def test_enable_disable_enable_leaves_nothing_behind(extension):
    import threading

    import addon_utils
    import bpy

    module = extension.__name__
    jobs = sys.modules[f"{module}.operators.jobs"]
    site_packages = sys.modules[f"{module}.dependencies"].site_packages_dir(module)
    names = registered_names()
    assert "SCENE_DIFFUSION_PT_generate" in names
    assert "SCENE_DIFFUSION_OT_generate_image" in names
    assert all(hasattr(getattr(bpy.types, owner), name) for owner, name in PROPERTIES)
    assert site_packages in sys.path
    handlers = our_handlers(module)
    assert len(handlers) == 2  # the jobs' and Live View's load_pre (Live View's others only while it is on)
    # A job running in the background has its drain timer registered (timers never fire here).
    gate = threading.Event()
    jobs.start(lambda report, cancel: gate.wait(30), "Background Job", lambda result: "done", blocking=False)
    assert bpy.app.timers.is_registered(jobs._timer)

    addon_utils.disable(module, default_set=True)
    try:
        assert registered_names() == set()
        assert [f"{owner}.{name}" for owner, name in PROPERTIES if hasattr(getattr(bpy.types, owner), name)] == []
        assert our_handlers(module) == []
        assert not bpy.app.timers.is_registered(jobs._timer)
        assert site_packages not in sys.path
        assert not jobs.is_running()  # disabling cancelled the job
    finally:
        gate.set()
        assert addon_utils.enable(module, default_set=True) is not None
    assert registered_names() == names
    assert our_handlers(module) == handlers
    assert hasattr(bpy.context.scene, "scene_diffusion")
    assert site_packages in sys.path


EXIT_HOOK_AFTER_DISABLE = r"""
import atexit, os, sys, tempfile
home = tempfile.mkdtemp()
for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ["BLENDER_USER_" + name] = os.path.join(home, name.lower())
import bpy, addon_utils
repo = os.path.join(home, "repo"); os.makedirs(repo)
os.symlink(sys.argv[1], os.path.join(repo, "scene_diffusion"))
bpy.context.preferences.extensions.repos.new(name="dev", module="dev", custom_directory=repo, source='USER')
addon_utils.enable("bl_ext.dev.scene_diffusion", default_set=True)
if sys.argv[2] == "disable":
    addon_utils.disable("bl_ext.dev.scene_diffusion", default_set=True)
called = []
sys.setprofile(lambda frame, event, arg: called.append(frame.f_globals.get("__name__"))
               if event == "call" and frame.f_code.co_name == "_on_exit" else None)
atexit._run_exitfuncs()  # what quitting runs
sys.setprofile(None)
print("called" if "bl_ext.dev.scene_diffusion.operators.jobs" in called else "not called")
"""


def test_the_quit_hook_is_gone_after_disable():
    """Quitting runs the hook that cancels a running job while the extension is enabled, and
    nothing of the extension once it is disabled."""
    said = {}
    for step in ("keep", "disable"):
        out = subprocess.run([sys.executable, "-c", EXIT_HOOK_AFTER_DISABLE, REPO_ROOT, step],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        said[step] = out.stdout.strip().splitlines()[-1]
    assert said == {"keep": "called", "disable": "not called"}


ENABLE_IN_A_FRESH_PROCESS = r"""
import os, sys, time, tempfile, json
home = tempfile.mkdtemp()
for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ["BLENDER_USER_" + name] = os.path.join(home, name.lower())
import bpy, addon_utils
repo = os.path.join(home, "repo"); os.makedirs(repo)
os.symlink(sys.argv[1], os.path.join(repo, "scene_diffusion"))
bpy.context.preferences.extensions.repos.new(name="dev", module="dev", custom_directory=repo, source='USER')
start = time.perf_counter()
module = addon_utils.enable("bl_ext.dev.scene_diffusion", default_set=True)
seconds = time.perf_counter() - start
print(json.dumps({"loaded": module is not None, "seconds": seconds,
                  "heavy": sorted(m for m in ("torch", "diffusers", "transformers", "cv2") if m in sys.modules)}))
"""


def test_enabling_imports_no_torch():
    out = subprocess.run([sys.executable, "-c", ENABLE_IN_A_FRESH_PROCESS, REPO_ROOT],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"], out.stderr
    assert report["heavy"] == []  # how long it takes is a row of `make bench`


def test_manifest_passes_blenders_validator():
    tool = os.path.join(REPO_ROOT, "scripts", "blender_ext.py")
    out = subprocess.run([sys.executable, tool, "validate", REPO_ROOT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout, out.stdout


def test_build_makes_a_zip_without_dev_files(tmp_path):
    import zipfile
    tool = os.path.join(REPO_ROOT, "scripts", "blender_ext.py")
    out = subprocess.run([sys.executable, tool, "build", "--source-dir", REPO_ROOT, "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (archive,) = tmp_path.glob("scene_diffusion-*.zip")
    names = zipfile.ZipFile(archive).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "constraints.txt", "requirements.txt",
                   "engine/generate.py", "operators/image.py"):
        assert needed in names
    dev = [n for n in names if n.split("/")[0] in {"tests", "scripts", ".ci", ".venv", ".git", "Makefile", "out"}
           or n.endswith(".pyc")]
    assert dev == []


INSTALL_THE_ZIP = r"""
import os, sys, tempfile, json
home = tempfile.mkdtemp()
for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
    os.environ["BLENDER_USER_" + name] = os.path.join(home, name.lower())
import bpy
result = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
print(json.dumps({"result": sorted(result),
                  "enabled": "bl_ext.user_default.scene_diffusion" in bpy.context.preferences.addons,
                  "settings": hasattr(bpy.types.Scene, "scene_diffusion"),
                  "torch": "torch" in sys.modules}))
"""


def test_the_zip_installs_and_enables_with_blenders_own_installer(tmp_path):
    tool = os.path.join(REPO_ROOT, "scripts", "blender_ext.py")
    subprocess.run([sys.executable, tool, "build", "--source-dir", REPO_ROOT, "--output-dir", str(tmp_path)],
                   capture_output=True, text=True, timeout=120, check=True)
    (archive,) = tmp_path.glob("scene_diffusion-*.zip")
    out = subprocess.run([sys.executable, "-c", INSTALL_THE_ZIP, str(archive)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"result": ["FINISHED"], "enabled": True, "settings": True, "torch": False}
