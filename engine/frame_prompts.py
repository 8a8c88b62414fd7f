# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt of every frame from Deforum's prompts JSON: {"0": "a forest", "30": "a desert --neg snow"}.

As Deforum's 2D/3D animation does it (render.py lines 111-117, then prepare_prompt and
split_weighted_subprompts in prompt.py), checked against Deforum's own output
(scripts/deforum_reference.py):

- A key is a frame number, or an expression in `max_f` truncated towards zero
  ("max_f/2"). Deforum's render loop has no `max_f` (such a key raises there) and its
  interpolation mode uses max_frames; here it is max_frames - 1, as in the schedules,
  so "max_f" is the last frame.
- Each frame takes the prompt of the latest key at or before it; frames before the first
  key take the first key's. Keys outside the frames count only when no key is inside
  (Deforum appends them after the last frame, where its backward fill finds them).
- Math between backticks is evaluated per frame in `t` and `max_f` (`(fog:`t/max_f`)`).
- `--neg` splits the negative prompt off; text after a second `--neg` joins the negative
  (Deforum concatenates the parts: "a --neg b --neg c" has the negative "b  c").
- `blend` is how far the frame is from its key towards the next key, as Deforum's
  interpolation mode weighs the next prompt: (1 / (next - key)) * (frame - key).

A text that does not start with "{" is one prompt for every frame.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError
from .schedules import compile_expression, frame_of_key

PROMPTS_HINT = 'write the prompts as JSON, e.g. {"0": "a forest", "30": "a desert --neg snow"}'
KEY_HINT = 'a key is a frame number or an expression in max_f (the last frame), e.g. {"0": "...", "max_f/2": "..."}'
MATH_HINT = "write math between backticks as an expression in t and max_f, e.g. (fog:`0.5+t/max_f`)"
_MATH = re.compile(r"`.*?`")  # Deforum's prepare_prompt pattern


@dataclass(frozen=True)
class FramePrompt:
    """The prompts of one frame. `key` is the key frame whose prompt this is, `next_key`
    the key after it (None after the last), `blend` 0..1 from key to next key."""
    prompt: str
    negative: str
    key: int
    next_key: int | None
    blend: float


def frame_prompts(json_text: str, max_frames: int) -> list[FramePrompt]:
    """One FramePrompt for each frame 0..max_frames-1."""
    if max_frames < 1:
        raise DiffusionError(f"Animation prompts for {max_frames} frames", "animate at least one frame")
    keyed = _prompts_by_key(json_text)
    inside: dict[int, str] = {}
    outside: dict[int, str] = {}
    for key, text in keyed.items():
        frame = _key_frame(key, max_frames)
        (inside if 0 <= frame < max_frames else outside)[frame] = text  # a later repeat wins
    if not inside:
        frame, text = next(iter(outside.items()))
        return [_frame_prompt(text, f, max_frames, frame, None) for f in range(max_frames)]
    keys = sorted(inside)
    result = []
    for frame in range(max_frames):
        at = max((k for k in keys if k <= frame), default=keys[0])
        following = keys.index(at) + 1
        next_key = keys[following] if following < len(keys) else None
        result.append(_frame_prompt(inside[at], frame, max_frames, at, next_key))
    return result


def _prompts_by_key(json_text: str) -> dict[str, str]:
    text = json_text.strip()
    if not text:
        raise DiffusionError("The animation prompts are empty", PROMPTS_HINT)
    if not text.startswith("{"):
        return {"0": text}
    try:
        keyed = json.loads(text)
    except json.JSONDecodeError as error:
        raise DiffusionError(f"The animation prompts are not valid JSON: {error.msg} at line {error.lineno}, "
                             f"column {error.colno}",
                             PROMPTS_HINT + ", with double quotes and a comma between entries") from None
    if not isinstance(keyed, dict) or not keyed:
        raise DiffusionError("The animation prompts hold no frame: prompt entries", PROMPTS_HINT)
    for key, value in keyed.items():
        if not isinstance(value, str):
            raise DiffusionError(f'The prompt of key "{key}" is {json.dumps(value)}, not text',
                                 "put the prompt in double quotes")
    return keyed


def _key_frame(key: str, max_frames: int) -> int:
    if key.isascii() and key.isdigit():
        return int(key)
    return frame_of_key(key, {"max_f": max_frames - 1}, f'animation prompt key "{key}"', hint=KEY_HINT)


def _frame_prompt(text: str, frame: int, max_frames: int, key: int, next_key: int | None) -> FramePrompt:
    text = _MATH.sub(lambda match: _weight(match.group(), frame, max_frames), text)
    positive, *negatives = text.strip().split("--neg")
    blend = 0.0
    if next_key is not None and frame > key:
        blend = (1 / (next_key - key)) * (frame - key)  # Deforum's order of operations, to the last bit
    return FramePrompt(positive.strip(), "".join(negatives).strip(), key, next_key, blend)


def _weight(quoted: str, frame: int, max_frames: int) -> str:
    """The value of one `math` at `frame`, written as numexpr's result prints."""
    expression = compile_expression(quoted[1:-1], ("t", "max_f"), f"animation prompt math {quoted}", hint=MATH_HINT)
    value = expression.evaluate(t=np.int64(frame), max_f=np.int64(max_frames - 1))
    return str(value.item()) if value.dtype.kind in "bi" else repr(float(value))
