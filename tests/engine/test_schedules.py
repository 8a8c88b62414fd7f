# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum schedules: values against those Deforum's own parser computed
(data/deforum/schedules.json, made by scripts/deforum_reference.py from sd-webui-deforum's
animation_key_frames.py with pandas and numexpr), then what we do where Deforum crashes,
the error messages, and the expression sandbox."""
import json
import math
import re
from pathlib import Path

import pytest

from engine.errors import DiffusionError
from engine.schedules import FUNCTIONS, Schedule, parse_keyframes, parse_schedule

DATA = json.loads((Path(__file__).parent / "data" / "deforum" / "schedules.json").read_text())
COMPUTED = [case for case in DATA["cases"] if "values" in case]
CRASHED = {case["text"]: case for case in DATA["cases"] if "values" not in case}


def uses_functions(text: str) -> bool:
    return any(f"{name}(" in text for name in FUNCTIONS)


@pytest.mark.parametrize("case", COMPUTED, ids=[case["text"] for case in COMPUTED])
def test_values_match_deforum(case):
    values = parse_schedule(case["text"], case["max_frames"], case["seed"])
    if uses_functions(case["text"]):
        # numexpr's and numpy's sin, log, ... may differ in the last bits.
        assert values == pytest.approx(case["values"], rel=1e-9, abs=1e-12)
    else:
        assert values == case["values"]  # +, -, *, /, %, ** and pandas' interpolation: bit for bit


def test_the_reference_covers_the_documented_behaviours():
    texts = [case["text"] for case in COMPUTED]
    assert len(texts) >= 12
    assert any('"max_f' in text for text in texts) and any("s %" in text or "(s)" in text for text in texts)
    assert any(case.get("deforum_error", "").startswith("UnboundLocalError") for case in COMPUTED)
    assert DATA["deforum_commit"] and DATA["numexpr"] and DATA["pandas"]


def test_a_missing_key_at_frame_0_holds_the_first_value():
    """Deforum raises UnboundLocalError here; the reference holds the first value (the held
    values come from Deforum itself on the text with 0:(first value) put first)."""
    case = next(case for case in COMPUTED if case["text"] == "10:(5), 20:(7)")
    assert "UnboundLocalError" in case["deforum_error"]
    values = parse_schedule(case["text"], case["max_frames"])
    assert values[:11] == [5.0] * 11 and values[15] == 6.0 and values[-1] == 7.0


@pytest.mark.parametrize("text, expected", [
    # Deforum splits on every comma, so these crash there; here commas in brackets stay.
    ("0:(where(t>5, 1, 0))", [0.0] * 6 + [1.0] * 4),
    ("0:(fmod(t, 4))", [math.fmod(t, 4) for t in range(9)]),
    ("0:(1),", [1.0] * 5),  # a trailing comma is ignored
])
def test_what_deforum_crashes_on_works_here(text, expected):
    case = CRASHED[text]
    assert case["deforum_error"]
    assert parse_schedule(text, case["max_frames"], case["seed"]) == expected


@pytest.mark.parametrize("text, message", [
    ("0:(1), 10.5:(2)", "at character 8, the frame 10.5 is not a whole number"),
    ("", "the schedule is empty"),
])
def test_what_deforum_crashes_on_is_refused_here(text, message):
    case = CRASHED[text]
    assert case["deforum_error"]
    with pytest.raises(DiffusionError, match=message):
        parse_schedule(text, case["max_frames"], case["seed"], name="strength_schedule")


def test_every_crash_in_the_reference_is_tested():
    tested = {"0:(where(t>5, 1, 0))", "0:(fmod(t, 4))", "0:(1),", "0:(1), 10.5:(2)", ""}
    assert set(CRASHED) == tested


@pytest.mark.parametrize("text, message", [
    ("0:(1), 10 (1.5)", "strength_schedule: at character 11, expected ':' after the frame number"),
    ("0:(1) 10:(2)", "at character 7, expected ',' before the next key frame"),
    ("0:(1),,5:(2)", "at character 7, expected a key frame"),
    ("0:(1", "at character 3, this '(' is never closed"),
    ("0:(1))", "at character 6, ')' without an opening '('"),
    ("0:(1 +)", "at character 7, invalid syntax"),
    ("0:(1), :(2)", "at character 8, expected a frame number before ':'"),
    ("0:(1), \"max_f\" (2)", "at character 16, expected ':' after the quoted frame"),
    ("0:(1), 'max_f:(2)", "at character 8, the quote ' is never closed"),
    ("0:(), 5:(1)", "at character 3, expected one value between the brackets"),
    ("0:(1, 2)", "at character 3, expected one value between the brackets"),
    ("0:(+)", "at character 3, expected a number after '+'"),
    ("0:(foo*2)", "at character 4, unknown name 'foo'"),
    ("0:(1), 5:(sin)", "at character 11, 'sin' is a function"),
    ("0:(sin(1, 2))", "at character 4, sin() takes 1 argument, not 2"),
    ("t:(1)", "at character 1, unknown name 't'"),
    ("0:(t/(t-3))", "at character 3, the value '(t/(t-3))' is infinite at frame 3"),
    ("0:(1.5 & 1)", "at character 3, '(1.5 & 1)' & | ~ take comparisons or whole numbers"),
    ("0:(1 if t else 2)", "'if ... else' is not allowed: use where"),
    ("0:(t>1 and t<3)", "'and'/'or' are not allowed"),
    ("0:(log(-1))", "no frame has a value"),
    ("50:(1)", "no key frame within frames 0..9"),
])
def test_errors_say_where_and_what(text, message):
    with pytest.raises(DiffusionError, match=re.escape(message)) as raised:
        parse_schedule(text, 10, name="strength_schedule")
    assert raised.value.fix  # and what to do


@pytest.mark.parametrize("text", [
    "0:(__import__('os').system('echo unsafe'))",
    "0:((1).__class__)",
    "0:(t.real)",
    "0:(open('/etc/passwd'))",
    "0:(eval('1'))",
    "0:([1][0])",
    "0:((lambda: 1)())",
    "0:(sum(x for x in (1, 2)))",
    "0:('text')",
    "0:(1j)",
    "0:(sin(x=1))",
    "0:(sin(*(1,)))",
    "0:(pi.__class__)",
])
def test_only_arithmetic_is_evaluated(text):
    with pytest.raises(DiffusionError, match="at character"):
        parse_schedule(text, 5)


def test_names_and_functions_beyond_numexpr():
    """pi and e are not numexpr names (Deforum writes 3.14); the values are Python's math."""
    expected = [0.0, math.pi, 2 * math.pi, math.e**3, math.e**4]
    assert parse_schedule("0:(pi*t), 3:(e**t)", 5) == pytest.approx(expected, rel=1e-15)
    assert parse_schedule("0:(1<t<4), 5:((t>5)&(t<7)), 8:(~(t>8))", 10) == [0, 0, 1, 1, 0, 0, 1, 0, 1, 0]


def test_keys_use_max_f_and_the_seed():
    frames = [key.frame for key in parse_keyframes('0:(0), "max_f-1":(1), s % 7:(2), "(3)":(3)', 20, seed=16)]
    assert frames == [0, 18, 2, 3]


def test_integer_powers_give_the_true_value():
    """numexpr truncates 2**(t-3) to 0 where t < 3; the mathematical value is meant."""
    assert parse_schedule("0:(2**(t-3))", 4) == [0.125, 0.25, 0.5, 1.0]


def test_schedule_holds_text_and_values():
    schedule = Schedule.parse("zoom", "0:(1), 4:(2)", 6)
    assert schedule.values == (1.0, 1.25, 1.5, 1.75, 2.0, 2.0)
    assert (schedule.name, schedule.text) == ("zoom", "0:(1), 4:(2)")
    assert schedule.at(-3) == 1.0 and schedule.at(2) == 1.5 and schedule.at(99) == 2.0


def test_no_frames_is_refused():
    with pytest.raises(DiffusionError, match="0 frames"):
        parse_schedule("0:(1)", 0)
