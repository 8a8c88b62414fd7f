# SPDX-License-Identifier: GPL-3.0-or-later
"""The seed of every diffused frame, by Deforum's seed behaviours.

Deforum (scripts/deforum_helpers/seed.py, `next_seed`) uses the first seed for frame 0
and steps it after every diffused frame (render.py line 638), with a counter that starts
at 0 (args.py line 45). Written here as formulas of the frame's index k, so a resumed
run can compute any frame's seed without replaying the others:

- ITER: seed, then +1 every `seed_iter_n` frames. The first seed lasts one frame only
  (Deforum steps when its counter % N == 0, and the counter is 0 after frame 0):
  N=3 gives s, s+1, s+1, s+1, s+2, ...
- FIXED: seed every frame.
- LADDER: s, s+2, s+1, s+3, s+2, ... (+2 then -1).
- ALTERNATE: s, s+1, s, s+1, ...
- RANDOM: Deforum draws `random.randint(0, 2**32 - 1)` from Python's shared generator,
  which no run can repeat. Here frame 0 keeps the seed and the later frames draw from
  `random.Random(seed)` (Python's Mersenne Twister; the same seed gives the same draws
  on every Python 3), so a run resumed from its first seed gets the same seeds.
- SCHEDULE: `int(schedule[k])` (render.py line 480; int() truncates towards zero). A -1
  means "a random seed" to the webui that Deforum hands it to; here -1 draws from the
  same `random.Random(seed)`.

Seeds are not wrapped: ITER and LADDER may pass 2**32 - 1 as Deforum's do.
With a cadence above 1 only every cadence-th frame is diffused: the k-th seed belongs to
the k-th diffused frame, and a SCHEDULE is passed sampled at those frames.
"""
from __future__ import annotations

import math
import random

from .errors import DiffusionError

SEED_BEHAVIOURS = ("ITER", "FIXED", "RANDOM", "LADDER", "ALTERNATE", "SCHEDULE")
MAX_RANDOM_SEED = 2**32 - 1  # Deforum's randint(0, 2**32 - 1)


def frame_seeds(behaviour: str, seed: int, count: int, seed_iter_n: int = 1,
                schedule: list[float] | None = None) -> list[int]:
    """The seed of each of `count` diffused frames; `behaviour` is one of SEED_BEHAVIOURS
    (any case). `seed` is the first frame's seed, already drawn (not -1)."""
    kind = behaviour.upper()
    if kind not in SEED_BEHAVIOURS:
        raise DiffusionError(f"Unknown seed behaviour '{behaviour}'", f"use one of {', '.join(SEED_BEHAVIOURS)}")
    if seed < 0:
        raise DiffusionError(f"The first seed is {seed}", "draw a seed (0 or more) before listing frame seeds")
    if count < 0:
        raise DiffusionError(f"{count} frames", "ask for 0 or more frames")
    if kind == "ITER":
        if seed_iter_n < 1:
            raise DiffusionError(f"Seed iter N is {seed_iter_n}", "set it to 1 or more (frames per seed)")
        return [seed if k == 0 else seed + 1 + (k - 1) // seed_iter_n for k in range(count)]
    if kind == "FIXED":
        return [seed] * count
    if kind == "LADDER":
        return [seed + k // 2 if k % 2 == 0 else seed + (k + 3) // 2 for k in range(count)]
    if kind == "ALTERNATE":
        return [seed + k % 2 for k in range(count)]
    draws = random.Random(seed)
    if kind == "RANDOM":
        return [seed if k == 0 else draws.randint(0, MAX_RANDOM_SEED) for k in range(count)]
    return _scheduled(schedule, count, draws)


def _scheduled(schedule: list[float] | None, count: int, draws: random.Random) -> list[int]:
    if schedule is None or len(schedule) < count:
        given = "no seed schedule" if schedule is None else f"a seed schedule of {len(schedule)} frames"
        raise DiffusionError(f"Seed behaviour SCHEDULE needs a seed for each of {count} frames, got {given}",
                             "write a seed schedule, e.g. 0:(s), 1:(-1)")
    seeds = []
    for frame, value in enumerate(schedule[:count]):
        if not math.isfinite(value):
            raise DiffusionError(f"The seed schedule gives {value} at frame {frame}", "give whole numbers")
        seeds.append(draws.randint(0, MAX_RANDOM_SEED) if int(value) == -1 else int(value))
    return seeds
