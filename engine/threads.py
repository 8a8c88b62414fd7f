# SPDX-License-Identifier: GPL-3.0-or-later
"""The threads an animation frame's array work shares (engine.warp's bands of rows,
engine.colour's noise beside the colour match): numpy and OpenCV let go of the GIL in
their loops, so parts of one frame run side by side on the cores.

Only ever waited on from outside the pool (a job's worker thread): a task that waited on
another task here could wait for a thread that never comes free.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool", "workers"]


def workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@functools.cache
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="scene_diffusion_frame")
