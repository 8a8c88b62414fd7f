# SPDX-License-Identifier: GPL-3.0-or-later
"""Shots: an animation range cut before each camera marker (what a farm gives one task each)."""
import pytest

from engine.shots import Shot, shots_between


def test_no_markers_is_one_shot():
    assert shots_between(1, 48, []) == [Shot(1, 48)]


def test_cut_before_each_marker_inside_the_range():
    shots = shots_between(1, 48, [25, 1, 40, 100, -5, 25])  # at the start, outside, repeated: no cut
    assert shots == [Shot(1, 24), Shot(25, 39), Shot(40, 48)]
    assert [shot.frames for shot in shots] == ["1-24", "25-39", "40-48"]


def test_a_marker_on_the_last_frame_makes_a_one_frame_shot():
    assert [shot.frames for shot in shots_between(10, 20, [20])] == ["10-19", "20"]


def test_a_backwards_range_is_refused():
    with pytest.raises(ValueError, match="ends before it starts"):
        shots_between(9, 3, [])
