# SPDX-License-Identifier: GPL-3.0-or-later
"""Installing the Python packages Scene Diffusion needs, with Blender's own Python and pip.

execute: blocking (scripts, tests, background mode). invoke: pip on a worker thread, a
modal timer shows its progress. Both end in `finish_install`.
"""
import functools
import os

import bpy
from bpy.props import StringProperty

from .. import dependencies, preferences
from ..dependencies import DependencyError, InstallOptions, InstallResult
from ..scene import windows

# The areas that show the package list: the preferences and the sidebar's install button.
PACKAGE_LISTS = {'PREFERENCES', 'VIEW_3D'}

ADDON_PACKAGE = preferences.__package__


def install_options(context, wheel_dir: str = "", requirements: str = "") -> InstallOptions:
    """What to install and how, checked: refuses the network when Blender is offline.

    wheel_dir: overrides the preference; requirements: a requirements file other than
    the extension's own.
    """
    prefs = preferences.addon_preferences(context)
    wheel_dir = wheel_dir or prefs.wheel_dir
    wheel_dir = os.path.normpath(bpy.path.abspath(wheel_dir)) if wheel_dir else ""
    if wheel_dir and not os.path.isdir(wheel_dir):
        raise DependencyError(f"Local wheel folder not found: {wheel_dir}",
                              "choose the folder that holds the .whl files")
    if not wheel_dir and not bpy.app.online_access:
        raise offline_error(getattr(bpy.app, "online_access_override", False))
    target = dependencies.site_packages_dir(ADDON_PACKAGE)
    return InstallOptions(
        target=target,
        requirements=requirements or dependencies.REQUIREMENTS_FILE,
        wheel_dir=wheel_dir,
        torch_index=None if wheel_dir else dependencies.choose_torch_index(prefs.torch_build),
        kept=dependencies.blender_versions(dependencies.KEPT_FROM_BLENDER, target),
    )


def offline_error(from_command_line: bool) -> DependencyError:
    if from_command_line:
        return DependencyError("Blender was started offline (--offline-mode)",
                               "restart it without that option, or install from a local wheel folder")
    return DependencyError("Allow Online Access is off",
                           "turn it on in Edit > Preferences > System, or install from a local wheel folder")


def finish_install(result: InstallResult) -> tuple[str, str]:
    """Main thread, after pip: log kept, status refreshed. Returns (report type, message)."""
    log_path = preferences.log_file_path()
    dependencies.write_log(log_path, result.log)
    dependencies.activate(ADDON_PACKAGE)  # the folder may be new: make sure it is on sys.path
    if result.ok:
        return 'INFO', f"Dependencies installed ({len(installed_names(result))} packages)"
    text = write_log_text(result.log)
    return 'ERROR', (f"Installing dependencies failed: {result.summary}. Full pip log: the text "
                     f"\"{text.name}\" (Text Editor) and {log_path}")


def installed_names(result: InstallResult) -> list[str]:
    """The name-version tokens of pip's "Successfully installed ..." line."""
    prefix = "Successfully installed"
    lines = [line for line in result.log if line.startswith(prefix)]
    return lines[-1][len(prefix):].split() if lines else []


def write_log_text(log) -> bpy.types.Text:
    """The pip log as a text datablock, readable in the Text Editor (replaced on each failure)."""
    text = bpy.data.texts.get(dependencies.LOG_TEXT_NAME) or bpy.data.texts.new(dependencies.LOG_TEXT_NAME)
    text.clear()
    text.write("\n".join(log) + "\n")
    return text


def job_finished(job: dependencies.InstallJob) -> bool:
    """Collect the worker's new lines (main thread); True once pip is done and all are in."""
    if not job.done:
        job.drain()
        return False
    job.drain()  # lines queued between the last poll and the end
    return True


def finish_detached(job: dependencies.InstallJob) -> float | None:
    """bpy.app.timers function finishing an install whose window closed; None when done."""
    if not job_finished(job):
        return 0.5
    kind, message = finish_install(job.result)
    print(f"Scene Diffusion: {kind}: {message}")
    windows.redraw(PACKAGE_LISTS)
    return None


def show_progress(context, message: str | None) -> None:
    """Progress in the status bar and a redraw of the places that show the package list."""
    if context.workspace is not None:
        context.workspace.status_text_set(message)
    windows.redraw(PACKAGE_LISTS)


class SCENE_DIFFUSION_OT_install_dependencies(bpy.types.Operator):
    bl_idname = "scene_diffusion.install_dependencies"
    bl_label = "Install Dependencies"
    bl_description = ("Install the Python packages Scene Diffusion needs (pinned versions) into "
                      "its own folder, with Blender's Python")

    wheel_dir: StringProperty(
        name="Local Wheel Folder",
        description="Install offline from the .whl files in this folder (overrides the preference)",
        subtype='DIR_PATH', options={'SKIP_SAVE'},
    )
    requirements_file: StringProperty(
        name="Requirements File",
        description="Install these requirements instead of the extension's own requirements.txt",
        subtype='FILE_PATH', options={'SKIP_SAVE', 'HIDDEN'},
    )

    _job = None  # the background install, while modal
    _timer = None

    @classmethod
    def poll(cls, context):
        if dependencies.install_running():
            cls.poll_message_set("An install is already running")
            return False
        return True

    def execute(self, context):
        try:
            options = install_options(context, self.wheel_dir, self.requirements_file)
        except DependencyError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        return self._report(dependencies.install(options))

    def invoke(self, context, event):
        try:
            options = install_options(context, self.wheel_dir, self.requirements_file)
            self._job = dependencies.start_install(options)
        except DependencyError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.25, window=context.window)
        window_manager.modal_handler_add(self)
        show_progress(context, "Installing dependencies: starting pip")
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        if not job_finished(self._job):
            show_progress(context, f"Installing dependencies: {self._job.progress_text}")
            return {'RUNNING_MODAL'}
        self._stop(context)
        return self._report(self._job.result)

    def cancel(self, context):
        # Blender ends modal operators when their window (e.g. Preferences) closes: pip goes
        # on, and a timer finishes the install (log, status) without a window to report to.
        context.window_manager.event_timer_remove(self._timer)
        bpy.app.timers.register(functools.partial(finish_detached, self._job), first_interval=0.5)

    def _stop(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        show_progress(context, None)

    def _report(self, result: InstallResult) -> set[str]:
        kind, message = finish_install(result)
        self.report({kind}, message)
        return {'FINISHED'} if result.ok else {'CANCELLED'}


classes = (SCENE_DIFFUSION_OT_install_dependencies,)
register, unregister = bpy.utils.register_classes_factory(classes)
