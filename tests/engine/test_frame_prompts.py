# SPDX-License-Identifier: GPL-3.0-or-later
"""Prompts per frame against Deforum's own (data/deforum/prompts.json, made by
scripts/deforum_reference.py with Deforum's prepare_prompt, split_weighted_subprompts and
interpolate_prompts, and its render loop's prompt series transcribed)."""
import json
from pathlib import Path

import pytest

from engine.errors import DiffusionError
from engine.frame_prompts import FramePrompt, frame_prompts

DATA = json.loads((Path(__file__).parent / "data" / "deforum" / "prompts.json").read_text())


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda case: case["json"][:40])
def test_prompts_match_deforum(case):
    frames = frame_prompts(case["json"], case["max_frames"])
    assert [{"prompt": f.prompt, "negative": f.negative} for f in frames] == case["frames"]


@pytest.mark.parametrize("case", DATA["blends"], ids=lambda case: case["json"][:40])
def test_blend_is_deforums_weight_of_the_next_prompt(case):
    assert [f.blend for f in frame_prompts(case["json"], case["max_frames"])] == case["blends"]


def test_keys_and_next_keys():
    frames = frame_prompts('{"2": "a", "max_f": "c", "max_f/2": "b --neg x"}', 7)
    assert [(f.key, f.next_key) for f in frames] == [(2, 3), (2, 3), (2, 3), (3, 6), (3, 6), (3, 6), (6, None)]
    assert frames[4] == FramePrompt("b", "x", 3, 6, 1 / 3)
    assert frames[0].blend == 0.0  # before the first key: its prompt, not blended


def test_plain_text_is_one_prompt_for_every_frame():
    assert frame_prompts("  a forest --neg snow ", 3) == [FramePrompt("a forest", "snow", 0, None, 0.0)] * 3


@pytest.mark.parametrize("text", ['{"0": "a", 30: "b"}', '{"0": "a",\n "30": "b",}', '{"0": "a" "1": "b"}'])
def test_json_errors_give_line_and_column(text):
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(text)
    with pytest.raises(DiffusionError) as raised:
        frame_prompts(text, 5)
    assert f"line {reference.value.lineno}, column {reference.value.colno}" in raised.value.what
    assert "not valid JSON" in raised.value.what and '{"0": ' in raised.value.fix


@pytest.mark.parametrize("text, message", [
    ('{"0": 5}', 'The prompt of key "0" is 5, not text'),
    ("{}", "hold no frame"),
    ("   ", "are empty"),
    ('{"t": "x"}', "unknown name 't'"),
    ('{"0": "a `sqrt(` b"}', "at character 5, '(' was never closed"),
    ('{"0": "a `open(1)` b"}', "'open' is not a known function"),
])
def test_bad_prompts_are_refused(text, message):
    with pytest.raises(DiffusionError, match=message.replace("(", r"\(")) as raised:
        frame_prompts(text, 5)
    assert raised.value.fix


def test_prompt_math_is_evaluated_per_frame():
    frames = frame_prompts('{"0": "fog:`t/max_f` --neg rain:`max_f` `t>1` `sqrt(t)`"}', 5)
    assert [f.prompt for f in frames] == ["fog:0.0", "fog:0.25", "fog:0.5", "fog:0.75", "fog:1.0"]
    assert frames[4].negative == "rain:4 True 2.0"


def test_no_frames_is_refused():
    with pytest.raises(DiffusionError, match="at least one frame"):
        frame_prompts('{"0": "a"}', 0)
