# SPDX-License-Identifier: GPL-3.0-or-later
"""Seed behaviours against the seeds Deforum's own `next_seed` (seed.py) gave in its render
loop, 12 frames each (data/deforum/seeds.json, made by scripts/deforum_reference.py)."""
import json
import random
from pathlib import Path

import pytest

from engine.errors import DiffusionError
from engine.schedules import parse_schedule
from engine.seeds import SEED_BEHAVIOURS, frame_seeds

DATA = json.loads((Path(__file__).parent / "data" / "deforum" / "seeds.json").read_text())


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: f"{c['behaviour']}-{c['seed']}-N{c['seed_iter_n']}")
def test_seeds_match_deforum(case):
    seeds = frame_seeds(case["behaviour"].upper(), case["seed"], len(case["seeds"]), case["seed_iter_n"])
    assert seeds == case["seeds"]


def test_the_reference_covers_every_deterministic_behaviour():
    covered = {case["behaviour"].upper() for case in DATA["cases"]}
    assert covered == set(SEED_BEHAVIOURS) - {"RANDOM", "SCHEDULE"}
    assert all(len(case["seeds"]) >= 8 for case in DATA["cases"])
    assert {case["seed_iter_n"] for case in DATA["cases"] if case["behaviour"] == "iter"} >= {1, 2, 3}


def test_random_is_python_random_seeded_by_the_first_seed():
    draws = random.Random(1234)
    assert frame_seeds("RANDOM", 1234, 10) == [1234] + [draws.randint(0, 2**32 - 1) for _ in range(9)]
    assert frame_seeds("RANDOM", 1234, 10) != frame_seeds("RANDOM", 1235, 10)


def test_schedule_follows_deforums_seed_schedule():
    """Deforum's default seed schedule: the seed at both ends, -1 (a random seed to the webui)
    between; the -1 frames draw from random.Random(first seed) here."""
    reference = DATA["schedule"]
    schedule = parse_schedule(reference["text"], reference["max_frames"], reference["seed"])
    assert [int(value) for value in schedule] == reference["seeds"]
    seeds = frame_seeds("SCHEDULE", reference["seed"], reference["max_frames"], schedule=schedule)
    draws = random.Random(reference["seed"])
    expected = [draws.randint(0, 2**32 - 1) if seed == -1 else seed for seed in reference["seeds"]]
    assert seeds == expected and seeds[0] == seeds[-1] == reference["seed"]
    assert frame_seeds("SCHEDULE", 1, 3, schedule=[5.9, -5.9, 7.0]) == [5, -5, 7]  # int() truncates


@pytest.mark.parametrize("behaviour", SEED_BEHAVIOURS)
def test_a_resumed_run_gets_the_same_seeds(behaviour):
    schedule = [float(frame % 4 - 1) for frame in range(30)]
    whole = frame_seeds(behaviour, 99, 30, 2, schedule)
    assert frame_seeds(behaviour.lower(), 99, 12, 2, schedule) == whole[:12]


@pytest.mark.parametrize("args, message", [
    (("SPIRAL", 1, 3), "Unknown seed behaviour 'SPIRAL'"),
    (("ITER", -1, 3), "The first seed is -1"),
    (("ITER", 1, 3, 0), "Seed iter N is 0"),
    (("FIXED", 1, -2), "-2 frames"),
    (("SCHEDULE", 1, 3), "got no seed schedule"),
    (("SCHEDULE", 1, 3, 1, [1.0, 2.0]), "got a seed schedule of 2 frames"),
    (("SCHEDULE", 1, 2, 1, [1.0, float("nan")]), "gives nan at frame 1"),
])
def test_bad_input_is_refused(args, message):
    with pytest.raises(DiffusionError, match=message) as raised:
        frame_seeds(*args)
    assert raised.value.fix
