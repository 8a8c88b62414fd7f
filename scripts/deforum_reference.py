# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate tests/engine/data/deforum/*.json by running Deforum's own code.

Run by hand in a side environment, outside the repo, with the versions Deforum ran on in
2024 (Deforum pins nothing; pandas 3 refuses its string-into-float assignment):

    python3.11 -m venv /work/side-deforum
    /work/side-deforum/bin/pip install pandas==2.2.1 numexpr==2.9.0 numpy==1.26.4
    /work/side-deforum/bin/python scripts/deforum_reference.py /path/to/sd-webui-deforum.git

The argument is a git directory of https://github.com/deforum-art/sd-webui-deforum (a bare
clone or a mirror: only `git --git-dir=... show HEAD:path` is used). The three source files
needed (`animation_key_frames.py`, `prompt.py`, `seed.py` under scripts/deforum_helpers/)
are copied into a temporary folder at run time and imported from there, so nothing of
Deforum's code (AGPL-3.0) is kept in this repository; only the numbers it computes are.

Stubs: `animation_key_frames.py` does `from modules import scripts, shared` (webui's
package) for classes not used here, so an empty `modules` package with empty `scripts`
and `shared` modules is put beside it. Nothing else is stubbed.

Transcriptions (code that lives inside functions too big to import, copied in meaning with
the source lines named): the per-frame prompt series of `render_animation` (render.py
lines 111-117) and the seed loop around `next_seed` (render.py lines 477-480 and 638).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numexpr
import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "tests" / "engine" / "data" / "deforum"
SOURCES = ("animation_key_frames.py", "prompt.py", "seed.py")

# (text, max_frames, seed); each a behaviour the tests pin.
SCHEDULES = [
    ("0:(1.0)", 8, -1),                                              # a single key
    ("0:(0), 10:(1)", 14, -1),                                       # linear, then held
    ("0:(1.0025+0.002*sin(1.25*3.14*t/30))", 40, -1),                # Deforum's default zoom
    ("0: (0), 5: (-2.5), 20: (10)", 24, -1),                         # spaces, negative values
    ('0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)', 12, 1234),     # Deforum's default seed schedule
    ('0:(0), "max_f/2":(t**2/10), "max_f-1":(3)', 21, -1),          # quoted expression keys
    ("20:(2), 0:(0), 10:(t%3)", 26, -1),                             # keys out of order
    ("0:(t % 7 - 3), 15:(abs(sin(t/5))*2)", 25, -1),                 # %, abs, sin
    ("0:(0 ), 10:( 10 )", 14, -1),                                   # a space inside: an expression
    ("0:(1.), 10:(2)", 14, -1),                                      # "1." is not a number to Deforum
    ("0:(5), 30:(10)", 20, -1),                                      # a key past the end is dropped
    ("0:(1), 5:(2), 5:(3)", 9, -1),                                  # a repeated key: the last wins
    ("-5:(100), 0:(0), 9:(9)", 12, -1),                              # a negative key is dropped
    ("0:(sqrt(t-4)), 10:(1)", 14, -1),                               # NaN frames are interpolated over
    ('0:(0), "s % 10":(1)', 12, 7),                                  # a key that uses the seed
    ('"0":(2), "10":(4)', 12, -1),                                   # quoted number keys
    ("0:(10), 5:(t), 10:(20)", 15, -1),                              # expression, then a number
    ("0:1, 10:2.5", 12, -1),                                         # values without parentheses
    ("0:(3), 1:(5)", 1, -1),                                         # one frame
    ("0:(1e-3*t), 6:(+.5)", 9, -1),                                  # exponent notation, "+.5"
    ("0:(2**(t/4)), 6:(-t**2/100), 9:((t>10)*1.5)", 14, -1),         # powers, unary minus, comparisons
    ("0:(floor(t/3)+ceil(t/4)+arctan(t)+tanh(t/3)+log10(t+1)+log1p(t))", 10, -1),
    ("0:(expm1(t/10)+sinh(t/10)+cosh(t/10)+arcsinh(t)+arccos(t/max_f)+arcsin(t/max_f)+exp(-t)*log(t+1))", 10, -1),
    ("0:(tan(t/20)+arccosh(t+1)+arctanh(t/(max_f+1))+cos(t)**2)", 10, -1),
    ("0:((t-5) % 3 + (5.5-t) % -2)", 11, -1),                        # Python's sign rule for %
    ("0: (0),\n10: (1),\n20: (0)", 24, -1),                          # one key a line
    ('0:(0), "max_f":(1)', 10, -1),                                   # max_f is the last frame
    ("0:(s/1000 + t)", 6, 4294967295),                               # the largest 32-bit seed
    ("0:(t*t*t - 2*t*t + t)", 12, -1),                               # integer arithmetic
    # Deforum crashes without a key at frame 0 (UnboundLocalError): recorded, with the held values.
    ("10:(5), 20:(7)", 25, -1),
    ("5:(t*2), 12:(3)", 16, -1),
]

# Deforum crashes on these (recorded so the tests can say what we do instead).
CRASHING_SCHEDULES = [
    ("0:(where(t>5, 1, 0))", 10, -1),                                # a comma inside a value
    ("0:(fmod(t, 4))", 9, -1),                                       # a two-argument function
    ("0:(1),", 5, -1),                                               # a trailing comma
    ("0:(1), 10.5:(2)", 12, -1),                                     # a fractional frame
    ("", 5, -1),                                                     # nothing
]

SEED_CASES = [
    ("iter", 1000, 1), ("iter", 1000, 2), ("iter", 1000, 3), ("fixed", 1000, 1),
    ("ladder", 1000, 1), ("alternate", 1000, 1), ("iter", 0, 1), ("ladder", 4294967295, 1),
]
SEED_FRAMES = 12

PROMPTS = [
    ({"0": "a forest", "30": "a desert --neg snow"}, 40),
    ({"10": "a red barn --neg fog", "5": "a field", "20": "a storm --neg sun --neg rain"}, 26),
    ({"0": "first", "max_f/2": "middle", "max_f": "last"}, 21),
    ({"0": "kept", "60": "past the end"}, 30),
    ({"-3": "before the start", "4": "a lake", "2*4": "a lake at night --neg day"}, 12),
    ({"0": "a cat, (whiskers:`0.5+t/max_f`) --neg dog:`max_f/10`"}, 6),
    ({"3": "  spaced   --neg  ugly  "}, 5),
    ({"60": "only past the end", "-2": "before the start"}, 5),      # no key inside: Deforum's bfill
    ({"0": "a", "2-2": "b", "3": "c"}, 5),                           # two keys for frame 0: the later wins
]
BLEND_PROMPTS = [
    ({"0": "a forest", "8": "a desert --neg snow", "11": "a sea"}, 14),
    ({"2": "a", "7": "b --neg c"}, 10),
]


def load_deforum(git_dir: Path, into: Path):
    """Deforum's three helper modules as the package `deforum_helpers`, plus the stubs."""
    package = into / "deforum_helpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in SOURCES:
        source = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:scripts/deforum_helpers/{name}"],
                                check=True, capture_output=True, text=True).stdout
        (package / name).write_text(source)
    modules = into / "modules"
    modules.mkdir()
    for name in ("__init__.py", "scripts.py", "shared.py"):
        (modules / name).write_text("")
    sys.path.insert(0, str(into))
    commit = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    return (importlib.import_module("deforum_helpers.animation_key_frames"),
            importlib.import_module("deforum_helpers.prompt"),
            importlib.import_module("deforum_helpers.seed"), commit)


def deforum_schedule(keyframes, text: str, max_frames: int, seed: int) -> list[float]:
    interpolater = keyframes.FrameInterpolater(max_frames, seed)
    return [float(v) for v in interpolater.parse_inbetweens(text, "schedule")]


def held_schedule(keyframes, text: str, max_frames: int, seed: int) -> list[float]:
    """What we do where Deforum crashes for want of a key at 0: the first key's value held
    back to frame 0. Computed by Deforum itself on the text with `0:(value)` put first,
    the value being numexpr's own evaluation of the first key at its frame."""
    keys = keyframes.FrameInterpolater(max_frames, seed).parse_key_frames(text)
    first = min(k for k in keys if k >= 0)
    t, max_f, s = first, max_frames - 1, seed  # noqa: F841 (numexpr reads them from this frame)
    value = float(numexpr.evaluate(keys[first]))
    return deforum_schedule(keyframes, f"0:({value!r}), {text}", max_frames, seed)


def schedules(keyframes) -> list[dict]:
    cases = []
    for text, max_frames, seed in SCHEDULES:
        case = {"text": text, "max_frames": max_frames, "seed": seed}
        try:
            case["values"] = deforum_schedule(keyframes, text, max_frames, seed)
        except UnboundLocalError as error:
            case["deforum_error"] = f"{type(error).__name__}: {error}"
            case["values"] = held_schedule(keyframes, text, max_frames, seed)
        case["values"] = [None if math.isnan(v) else v for v in case["values"]]
        cases.append(case)
    for text, max_frames, seed in CRASHING_SCHEDULES:
        try:
            values = deforum_schedule(keyframes, text, max_frames, seed)
        except Exception as error:  # any crash is what is recorded
            cases.append({"text": text, "max_frames": max_frames, "seed": seed,
                          "deforum_error": f"{type(error).__name__}: {error}"})
        else:
            raise SystemExit(f"expected Deforum to fail on {text!r}, it gave {values}")
    return cases


def seeds(seed_module) -> list[dict]:
    """The loop of render.py: frame 0 uses args.seed, then `next_seed` after each frame (line 638)."""
    cases = []
    for behaviour, seed, iter_n in SEED_CASES:
        args = SimpleNamespace(seed_behavior=behaviour, seed=seed, seed_iter_N=iter_n)
        root = SimpleNamespace(seed_internal=0)  # args.py line 45
        values = []
        for _ in range(SEED_FRAMES):
            values.append(args.seed)
            args.seed = seed_module.next_seed(args, root)
        cases.append({"behaviour": behaviour, "seed": seed, "seed_iter_n": iter_n, "seeds": values})
    return cases


def seed_schedule(keyframes) -> dict:
    """render.py line 480: in 'schedule' mode each frame's seed is int(seed_schedule_series[frame])."""
    text, max_frames, seed = '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)', 10, 777
    series = keyframes.FrameInterpolater(max_frames, seed).parse_inbetweens(text, "seed_schedule")
    return {"text": text, "max_frames": max_frames, "seed": seed, "seeds": [int(v) for v in series]}


def prompt_series(animation_prompts: dict, max_frames: int) -> list[str]:
    """render.py lines 111-117, transcribed. There `max_f` is not defined (a key such as
    "max_f/2" raises there); we give keys the schedules' max_f = max_frames - 1."""
    max_f = max_frames - 1  # noqa: F841 (numexpr reads it from this frame)
    series = pd.Series([np.nan for _ in range(max_frames)])
    for i, prompt in animation_prompts.items():
        if str(i).isdigit():
            series[int(i)] = prompt
        else:
            series[int(numexpr.evaluate(i))] = prompt
    series = series.ffill().bfill()
    return [series[frame] for frame in range(max_frames)]


def prompts(prompt_module) -> list[dict]:
    cases = []
    for animation_prompts, max_frames in PROMPTS:
        frames = []
        for frame, text in enumerate(prompt_series(animation_prompts, max_frames)):
            with contextlib.redirect_stdout(io.StringIO()):  # it prints every prompt
                prepared = prompt_module.prepare_prompt(text, max_frames, 0, frame)
            positive, negative = prompt_module.split_weighted_subprompts(prepared, frame, max_frames)
            frames.append({"prompt": positive.strip(), "negative": negative.strip()})
        cases.append({"json": json.dumps(animation_prompts), "max_frames": max_frames, "frames": frames})
    return cases


def blends(prompt_module) -> list[dict]:
    """Deforum's interpolation mode (prompt.py interpolate_prompts) writes each in-between
    frame as "(current):w1 AND (next):w2"; w2 is how far the frame is towards the next key."""
    cases = []
    for animation_prompts, max_frames in BLEND_PROMPTS:
        # args.py line 1153 gives every prompt a "--neg" before this runs (it fails without one).
        given = {key: f" {val} {'' if '--neg' in val else '--neg'} " for key, val in animation_prompts.items()}
        series = prompt_module.interpolate_prompts(given, max_frames)
        weights = []
        for frame in range(max_frames):
            found = re.findall(r"\):([0-9.e-]+)", series[frame].split("--neg")[0])
            weights.append(float(found[1]) if len(found) == 2 else 0.0)
        cases.append({"json": json.dumps(animation_prompts), "max_frames": max_frames, "blends": weights})
    return cases


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as folder:
        keyframes, prompt_module, seed_module, commit = load_deforum(Path(sys.argv[1]), Path(folder))
        about = {"deforum_commit": commit, "pandas": pd.__version__, "numexpr": numexpr.__version__,
                 "numpy": np.__version__, "made_by": "scripts/deforum_reference.py"}
        OUT.mkdir(parents=True, exist_ok=True)
        outputs = {
            "schedules.json": {**about, "cases": schedules(keyframes)},
            "seeds.json": {**about, "cases": seeds(seed_module), "schedule": seed_schedule(keyframes)},
            "prompts.json": {**about, "cases": prompts(prompt_module), "blends": blends(prompt_module)},
        }
        for name, data in outputs.items():
            (OUT / name).write_text(json.dumps(data, indent=1) + "\n")
            print("wrote", OUT / name)


if __name__ == "__main__":
    main()
