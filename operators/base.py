# SPDX-License-Identifier: GPL-3.0-or-later
"""The one shape of every operator that runs a job: prepare, start, report.

`prepare` runs on the main thread: it checks everything and captures what the job needs,
raising DiffusionError before anything is written (no datablock, no file, no seed).
`execute` runs the job to the end (headless, scripts, tests); `invoke` starts it in the
background, drained by a timer (see operators/jobs.py). Both report the same way.
"""
from __future__ import annotations

import bpy

from ..engine.errors import DiffusionError
from . import jobs


class JobOperator:
    """Mixin for a bpy.types.Operator whose work is a job; subclasses define `prepare`."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not jobs.busy()

    def prepare(self, context: bpy.types.Context) -> jobs.Steps:
        """The job, checked and with its first input ready; raises DiffusionError, changing nothing."""
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        return self.run(context, blocking=True)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return self.run(context, blocking=False)

    def run(self, context: bpy.types.Context, blocking: bool) -> set[str]:
        jobs.yield_live()  # before the captures of `prepare`
        try:
            outcome = jobs.start_steps(self.prepare(context), blocking=blocking)
        except DiffusionError as error:
            return jobs.report_error(self, error)
        except jobs.NothingToDo as done:
            return jobs.report_outcome(self, jobs.Outcome('INFO', str(done)))
        if outcome is not None:
            return jobs.report_outcome(self, outcome)
        return {'FINISHED'}
