# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception type for problems a person can fix, and the cancellation signal."""


class DiffusionError(Exception):
    """Something the person can fix: `what` went wrong, `fix` says what to do.

    Operators turn it into ``self.report({'ERROR'}, str(error))``.
    """

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}: {fix}" if fix else what)


class NothingInView(DiffusionError):
    """A camera sees no geometry at all (for callers that can do without that view)."""


class Cancelled(Exception):
    """The job was cancelled by the person; nothing was produced."""
