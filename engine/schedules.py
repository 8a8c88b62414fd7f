# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's keyframe schedules ("0:(1.0), 30:(1.02)") turned into one value per frame.

Compatible with sd-webui-deforum's `FrameInterpolater.parse_key_frames` and
`get_inbetweens` (scripts/deforum_helpers/animation_key_frames.py), checked against
values Deforum itself computed (scripts/deforum_reference.py):

- Key frames are `frame:(value)` separated by commas. A frame is a whole number or an
  expression in `max_f` (max_frames - 1) and `s` (the seed), quoted or not
  (`"max_f-1":(0)`), truncated towards zero. Keys outside 0..max_frames-1 are dropped,
  even as the end of a ramp ("0:(0), 100:(1)" over 50 frames stays 0). A repeated frame
  takes its last value.
- A value is a NUMBER when, with quotes and parentheses removed, it matches Deforum's
  `^[+-]?[0-9]*(\\.[0-9]+)?$`; numbers are interpolated linearly (as pandas does), the
  first and last held beyond the ends. Anything else is an EXPRESSION in `t` (the frame),
  `max_f` and `s`, evaluated at every frame from its key until the next key, with no
  interpolation. So "0:( 0 ), 10:(10)" and "0:(1.), 10:(2)" step rather than ramp, as in
  Deforum. A NaN (sqrt of a negative) counts as missing and is interpolated over.
- Deforum crashes when no key is at frame 0 (UnboundLocalError): here the first value is
  held back to frame 0. Deforum splits on every comma, so `where(a, b, c)` crashes there;
  here commas inside parentheses belong to the value.

Expressions are parsed with `ast` and evaluated with numpy, never with eval: numbers,
the names above, `pi`, `e`, numexpr's functions (FUNCTIONS), arithmetic, comparisons
and `& | ~`. Integers stay integers as in numexpr (`t/2` is a float, `t%3` an integer),
so results match to the last bit or two of the floating-point functions. Where numexpr
truncates an integer power (`2**(t-10)` gives 0 there) we give the true value (0.125).
A value that comes out infinite is refused (it would ruin every frame after it).
"""
from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError

SCHEDULE_HINT = "write key frames as frame:(value) separated by commas, e.g. 0:(1.0), 30:(1.0+0.5*sin(t/10))"

# ---------------------------------------------------------------- Safe expressions

# name: (numpy function, number of arguments); numexpr's own set, less complex numbers,
# strings and the reductions (which do nothing on one value).
FUNCTIONS: dict[str, tuple[Callable, int]] = {
    **{name: (getattr(np, name), 1) for name in (
        "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
        "arctanh", "log", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "floor", "ceil")},
    "arctan2": (np.arctan2, 2),
    "fmod": (np.fmod, 2),
    "where": (lambda condition, a, b: np.where(np.asarray(condition, dtype=bool), a, b), 3),
}
CONSTANTS = {"pi": np.float64(math.pi), "e": np.float64(math.e)}

_ARITHMETIC = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.remainder, ast.Pow: np.power,
}
_LOGICAL = {ast.BitAnd: np.bitwise_and, ast.BitOr: np.bitwise_or}  # logical on comparisons
_COMPARE = {
    ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
    ast.Gt: np.greater, ast.GtE: np.greater_equal,
}
_REFUSED = {
    ast.Attribute: "attribute access ('.') is not allowed",
    ast.Subscript: "indexing ('[...]') is not allowed",
    ast.BoolOp: "'and'/'or' are not allowed: use & and | between comparisons in parentheses",
    ast.IfExp: "'if ... else' is not allowed: use where(condition, a, b)",
    ast.Lambda: "'lambda' is not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.Tuple: "expected one value between the brackets",
}


@dataclass(frozen=True)
class Expression:
    """A checked expression: only numbers, `names`, CONSTANTS, FUNCTIONS and operators.
    `where` and `position` (0-based, in the person's whole text) locate it in errors."""
    text: str
    tree: ast.expr
    names: frozenset[str]
    where: str = "expression"
    position: int = 0
    hint: str = SCHEDULE_HINT

    def evaluate(self, **variables) -> np.ndarray:
        """The value for numpy `variables` (arrays broadcast: pass `t` as an int64 array to
        get every frame at once). Integers stay int64, comparisons bool, the rest float64."""
        with np.errstate(all="ignore"):  # numexpr's way: sqrt(-1) is NaN, t/0 infinite
            try:
                return np.asarray(_evaluate(self.tree, variables))
            except (TypeError, ValueError, OverflowError) as error:
                problem = ("& | ~ take comparisons or whole numbers" if "bitwise" in str(error)
                           else f"cannot be evaluated ({error})")
                raise _error(self.where, self.position, f"'{self.text}' {problem}", self.hint) from error


def compile_expression(text: str, names: Iterable[str], where: str, position: int = 0,
                       hint: str = SCHEDULE_HINT) -> Expression:
    """Parse and check `text`; `where` and `position` (0-based index of `text` in the
    person's whole text) say where an error is, as "{where}: at character N, ...: {hint}"."""
    allowed = frozenset(names)
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        column = _column(text.strip(), error.lineno or 1, (error.offset or 1) - 1, in_bytes=False)
        raise _error(where, position + _lead(text) + column, f"{error.msg} in '{text.strip()}'", hint) from None
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        problem = "" if id(node) in called else _refusal(node, allowed)
        if problem:
            column = _column(text.strip(), node.lineno, node.col_offset, in_bytes=True)
            raise _error(where, position + _lead(text) + column, f"{problem} in '{text.strip()}'", hint)
    return Expression(text.strip(), tree, allowed, where, position + _lead(text), hint)


def _refusal(node: ast.AST, allowed: frozenset[str]) -> str:
    """Why `node` is not allowed, or "" when it is."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float)):
            return ""
        return f"{node.value!r} is not a number"
    if isinstance(node, ast.Name):
        if node.id in allowed or node.id in CONSTANTS:
            return ""
        known = ", ".join(sorted(allowed | CONSTANTS.keys()))
        if node.id in FUNCTIONS:
            return f"'{node.id}' is a function: write {node.id}(...)"
        return f"unknown name '{node.id}' (known here: {known})"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            return f"'{called}' is not a known function (known: {', '.join(sorted(FUNCTIONS))})"
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            return f"{node.func.id}() takes plain arguments"
        count = FUNCTIONS[node.func.id][1]
        if len(node.args) != count:
            return f"{node.func.id}() takes {count} argument{'s' if count > 1 else ''}, not {len(node.args)}"
        return ""
    if isinstance(node, ast.BinOp):
        if type(node.op) in _ARITHMETIC or type(node.op) in _LOGICAL:
            return ""
        return f"the operator {type(node.op).__name__} is not allowed"
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return "'not' is not allowed: use ~(comparison)"
        return ""
    if isinstance(node, ast.Compare):
        if all(type(op) in _COMPARE for op in node.ops):
            return ""
        return "only the comparisons == != < <= > >= are allowed"
    if isinstance(node, (ast.Load, ast.operator, ast.unaryop, ast.cmpop)):
        return ""
    return _REFUSED.get(type(node), f"{type(node).__name__} is not allowed")


def _evaluate(node: ast.expr, variables: dict):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) >= 2**63:
            return np.float64(node.value)  # past int64, as a float
        return np.asarray(node.value)
    if isinstance(node, ast.Name):
        return variables[node.id] if node.id in variables else CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, variables)
        if isinstance(node.op, ast.Invert):
            return np.invert(operand)
        operand = _numeric(operand)
        return np.negative(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, variables), _evaluate(node.right, variables)
        if type(node.op) in _LOGICAL:
            return _LOGICAL[type(node.op)](left, right)
        left, right = _numeric(left), _numeric(right)
        if isinstance(node.op, ast.Pow) and _is_int(left) and _is_int(right) and np.any(right < 0):
            left = np.asarray(left, dtype=np.float64)  # 2**-1 is 0.5, as Python (numexpr truncates)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        result, left = None, _evaluate(node.left, variables)
        for op, comparator in zip(node.ops, node.comparators):  # 1 < t < 5 means both
            right = _evaluate(comparator, variables)
            step = _COMPARE[type(op)](left, right)
            result = step if result is None else np.logical_and(result, step)
            left = right
        return result
    if isinstance(node, ast.Call):
        function, _ = FUNCTIONS[node.func.id]
        return function(*(_evaluate(arg, variables) for arg in node.args))
    raise AssertionError(f"unchecked node {type(node).__name__}")  # compile_expression refuses it


def _numeric(value):
    """Booleans count as 0 and 1 in arithmetic (numpy would add them as 'or')."""
    value = np.asarray(value)
    return value.astype(np.int64) if value.dtype == bool else value


def _is_int(value) -> bool:
    return np.issubdtype(np.asarray(value).dtype, np.integer)


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def _column(text: str, line: int, offset: int, in_bytes: bool) -> int:
    """0-based character index in `text` of (1-based line, offset); ast counts UTF-8 bytes."""
    lines = text.split("\n")
    before = sum(len(previous) + 1 for previous in lines[:line - 1])
    current = lines[line - 1] if line - 1 < len(lines) else ""
    if in_bytes:
        offset = len(current.encode()[:offset].decode(errors="ignore"))
    return before + min(offset, len(current))


def _error(where: str, index: int, problem: str, hint: str = SCHEDULE_HINT) -> DiffusionError:
    return DiffusionError(f"{where}: at character {index + 1}, {problem}", hint)


# ---------------------------------------------------------------- Key frames

# Deforum's check_is_number (prompt.py), applied after removing quotes and parentheses.
_DEFORUM_NUMBER = re.compile(r"^(?=.)([+-]?([0-9]*)(\.([0-9]+))?)$")


@dataclass(frozen=True)
class Keyframe:
    """One `frame:(value)` of a schedule. `number` is set when Deforum reads the value as a
    plain number (interpolated), `expression` otherwise (evaluated per frame)."""
    frame: int
    text: str
    position: int
    number: float | None
    expression: Expression | None


def is_deforum_number(text: str) -> bool:
    """Deforum's test: the text without quotes and parentheses is a plain decimal."""
    return bool(_DEFORUM_NUMBER.match(_without_brackets(text)))


def _without_brackets(text: str) -> str:
    return text.replace("'", "").replace('"', "").replace("(", "").replace(")", "")


def frame_of_key(text: str, names: dict, where: str, position: int = 0, hint: str = SCHEDULE_HINT) -> int:
    """A key's frame: an expression in `names` (a dict of values), truncated towards zero
    as Deforum's int() does."""
    expression = compile_expression(text, names, where, position, hint)
    value = expression.evaluate(**{name: np.int64(value) for name, value in names.items()})
    if not np.isfinite(value):
        raise _error(where, position + _lead(text), f"the frame '{text.strip()}' is not a number ({value})", hint)
    return int(value)


def parse_keyframes(text: str, max_frames: int, seed: int = -1, name: str = "schedule") -> list[Keyframe]:
    """The key frames of `text` in the order written (out-of-range frames included)."""
    if not text.strip():
        raise DiffusionError(f"{name}: the schedule is empty", SCHEDULE_HINT)
    keyframes = []
    pieces = _split_entries(text, name)
    for index, (start, piece) in enumerate(pieces):
        if not piece.strip():
            if index == len(pieces) - 1:
                continue  # a trailing comma (Deforum fails on it; it is harmless)
            raise _error(name, start + len(piece), "expected a key frame such as 0:(1.0) before ','")
        key_text, key_start, value_start = _split_key(piece, start, name)
        frame = _key_frame(key_text, key_start, max_frames, seed, name)
        value = text[value_start:start + len(piece)]
        if not value.strip():
            raise _error(name, value_start, "expected a value after ':', such as (1.0)")
        value_at = value_start + _lead(value)
        if is_deforum_number(value.strip()):
            number = _without_brackets(value.strip())
            if number in ("+", "-"):
                raise _error(name, value_at, f"expected a number after '{number}'")
            keyframes.append(Keyframe(frame, value.strip(), value_at, float(number), None))
        else:
            colon = value.find(":")
            if colon >= 0:  # "0:(1) 10:(2)": the next key frame has no comma before it
                before = value[:colon].rstrip()
                if not before.strip():
                    raise _error(name, value_start + colon, "a second ':' (expected a value)")
                raise _error(name, value_start + len(before) - len(before.split()[-1]),
                             "expected ',' before the next key frame")
            expression = compile_expression(value, ("t", "max_f", "s"), name, value_start)
            keyframes.append(Keyframe(frame, value.strip(), value_at, None, expression))
    return keyframes


def _split_entries(text: str, name: str) -> list[tuple[int, str]]:
    """(start, text) of each comma-separated entry; commas inside brackets or quotes stay."""
    pieces, depth, start, quote, opened = [], 0, 0, "", []
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote, quote_at = char, index
        elif char == "(":
            depth += 1
            opened.append(index)
        elif char == ")":
            if not depth:
                raise _error(name, index, "')' without an opening '('")
            depth -= 1
            opened.pop()
        elif char == "," and not depth:
            pieces.append((start, text[start:index]))
            start = index + 1
    if quote:
        raise _error(name, quote_at, f"the quote {quote} is never closed")
    if depth:
        raise _error(name, opened[-1], "this '(' is never closed: expected ')'")
    pieces.append((start, text[start:]))
    return pieces


def _split_key(piece: str, start: int, name: str) -> tuple[str, int, int]:
    """(key text without quotes, its start, the start of the value) of one entry."""
    lead = _lead(piece)
    at = start + lead
    body = piece[lead:]
    if body[0] in "'\"":
        end = body.index(body[0], 1)  # _split_entries saw it closed
        after = body[end + 1:]
        gap = _lead(after)
        if not after[gap:].startswith(":"):
            raise _error(name, at + end + 1 + gap, "expected ':' after the quoted frame")
        return body[1:end], at + 1, at + end + 1 + gap + 1
    colon = body.find(":")  # Deforum takes the text before the first ':' as the frame
    if colon < 0:
        number = re.match(r"[+-]?[0-9]+(\.[0-9]*)?", body)
        if number:
            gap = _lead(body[number.end():])
            raise _error(name, at + number.end() + gap, "expected ':' after the frame number")
        raise _error(name, at + len(body.rstrip()), "expected ':' after the frame")
    return body[:colon], at, at + colon + 1


def _key_frame(key: str, start: int, max_frames: int, seed: int, name: str) -> int:
    if not key.strip():
        raise _error(name, start, "expected a frame number before ':'")
    if is_deforum_number(key.strip()):
        value = float(_without_brackets(key.strip()))
        if not value.is_integer():
            raise _error(name, start + _lead(key), f"the frame {key.strip()} is not a whole number")
        return int(value)
    return frame_of_key(key, {"max_f": max_frames - 1, "s": seed}, name, start)


# ---------------------------------------------------------------- Values per frame

def parse_schedule(text: str, max_frames: int, seed: int = -1, *, name: str = "schedule") -> list[float]:
    """One value per frame 0..max_frames-1, as Deforum computes them (see the module's notes).
    `name` starts every error message ("strength_schedule: at character 12, ...")."""
    if max_frames < 1:
        raise DiffusionError(f"{name}: {max_frames} frames", "animate at least one frame")
    keys = {key.frame: key for key in parse_keyframes(text, max_frames, seed, name)
            if 0 <= key.frame < max_frames}  # a later repeat of a frame wins, as in a dict
    if not keys:
        raise DiffusionError(f"{name}: no key frame within frames 0..{max_frames - 1}",
                             f"put the first key at frame 0, e.g. 0:(1.0), {text.strip()}")
    values = np.full(max_frames, np.nan)
    frames = sorted(keys)
    for key, end in zip(frames, frames[1:] + [max_frames]):
        keyframe = keys[key]
        if keyframe.expression is None:
            values[key] = keyframe.number
            continue
        # Deforum keeps evaluating the last expression at every frame until the next key.
        result = keyframe.expression.evaluate(t=np.arange(key, end, dtype=np.int64),
                                              max_f=np.int64(max_frames - 1), s=np.int64(seed))
        values[key:end] = np.broadcast_to(np.asarray(result, dtype=np.float64), (end - key,))
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        frame = int(infinite[0])
        source = keys[max(k for k in frames if k <= frame)]
        raise _error(name, source.position, f"the value '{source.text}' is infinite at frame {frame} "
                                            "(a division by zero or an overflow?)")
    known = ~np.isnan(values)
    if not known.any():
        raise DiffusionError(f"{name}: no frame has a value (every expression gives NaN)",
                             "check for sqrt or log of negative numbers")
    # pandas' linear interpolate is np.interp over the known points; the ends are held.
    index = np.arange(max_frames)
    values[~known] = np.interp(index[~known], index[known], values[known])
    return values.tolist()


@dataclass(frozen=True)
class Schedule:
    """A schedule as written and its value at every frame."""
    name: str
    text: str
    values: tuple[float, ...]

    @classmethod
    def parse(cls, name: str, text: str, max_frames: int, seed: int = -1) -> Schedule:
        return cls(name, text, tuple(parse_schedule(text, max_frames, seed, name=name)))

    def at(self, frame: int) -> float:
        """The value at `frame`; frames past the end keep the last value."""
        return self.values[min(max(frame, 0), len(self.values) - 1)]
