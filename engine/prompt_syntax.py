# SPDX-License-Identifier: GPL-3.0-or-later
"""Prompt weighting as artists write it (AUTOMATIC1111's syntax), parsed into weighted text.

- `(text)` multiplies the weight of `text` by 1.1, `[text]` divides it by 1.1, and
  `(text:1.3)` multiplies it by 1.3; nested groups multiply.
- `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are the characters themselves.
- `BREAK` (in capitals, a word of its own) ends the text encoder's current chunk of 75
  tokens: what follows starts a new one.

Nothing is an error, as in A1111, because prompts are pasted from model sites as they are:
a group left open weighs on the rest of the prompt, a closing bracket with nothing open is
text, and `(text:abc)` is the text `text:abc` in plain parentheses. Two departures from
A1111, where its behaviour is an accident: a BREAK inside brackets still breaks (A1111
reads it as the word "BREAK"), and a backslash before any other character is kept
(A1111 drops it).

Pure Python, no torch: the sidebar estimates token counts with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1

_TOKENS = re.compile(r"""
      \\(?P<escaped>[()\[\]\\])                   # an escaped bracket or backslash
    | (?P<weight>:\s*(?P<number>[+-]?[.\d]+)\s*)\)  # ":1.3)": closes a weighted round group
    | (?P<open>[(\[])
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+|[\\:])                # a run of text, or a lone ':' or '\'
""", re.VERBOSE)

# The whitespace around a BREAK goes with it, as in A1111.
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


@dataclass(frozen=True)
class Span:
    """A run of prompt text and the weight its tokens' embeddings are multiplied by."""
    text: str
    weight: float = 1.0


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt's text as sections (split at each BREAK), each a tuple of spans.

    Neighbouring spans of one section have different weights; every section has at least
    one span (an empty section is one empty span, and starts a chunk of its own).
    """
    sections: tuple[tuple[Span, ...], ...]

    @property
    def text(self) -> str:
        """The text with the syntax taken out (sections joined by a space)."""
        return " ".join("".join(span.text for span in section) for section in self.sections)

    @property
    def plain(self) -> bool:
        """No weight but 1 and no BREAK: the same prompt as `text` written plainly."""
        return len(self.sections) == 1 and all(span.weight == 1.0 for span in self.sections[0])


class _Break:
    """Where a BREAK stood in the flat list of pieces (weights never apply to it)."""


def parse_prompt(prompt: str) -> ParsedPrompt:
    """The weighted sections of `prompt` (see the module's docstring for the syntax)."""
    # [text, weight] pieces, and breaks; a closed group multiplies the pieces added since
    # it opened, so nested weights multiply in the order the groups close, as in A1111.
    pieces: list[list | _Break] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def multiply_since(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            if not isinstance(piece, _Break):
                piece[1] *= factor

    def add_text(text: str) -> None:
        for i, part in enumerate(_BREAK.split(text)):
            if i:
                pieces.append(_Break())
            pieces.append([part, 1.0])

    for match in _TOKENS.finditer(prompt):
        if match["escaped"] is not None:
            pieces.append([match["escaped"], 1.0])
        elif match["weight"] is not None:
            factor = _number(match["number"])
            if not open_round:
                add_text(match[0])
            elif factor is None:  # "(word:1.2.3)": the weight is text, the bracket a plain one
                add_text(match["weight"])
                multiply_since(open_round.pop(), ROUND_FACTOR)
            else:
                multiply_since(open_round.pop(), factor)
        elif match["open"] is not None:
            (open_round if match["open"] == "(" else open_square).append(len(pieces))
        elif match["close"] is not None:
            stack, factor = (open_round, ROUND_FACTOR) if match["close"] == ")" else (open_square, SQUARE_FACTOR)
            if stack:
                multiply_since(stack.pop(), factor)
            else:
                add_text(match["close"])
        else:
            add_text(match["text"])
    # Groups left open weigh on everything after them: round ones first, outermost first.
    for start in open_round:
        multiply_since(start, ROUND_FACTOR)
    for start in open_square:
        multiply_since(start, SQUARE_FACTOR)
    return ParsedPrompt(_sections(pieces))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "1.2.3", "."
        return None


def _sections(pieces: list[list | _Break]) -> tuple[tuple[Span, ...], ...]:
    sections: list[list[Span]] = [[]]
    for piece in pieces:
        if isinstance(piece, _Break):
            sections.append([])
            continue
        text, weight = piece
        section = sections[-1]
        if section and section[-1].weight == weight:
            section[-1] = Span(section[-1].text + text, weight)
        elif text:
            section.append(Span(text, weight))
    # A BREAK at the very end starts nothing (A1111 adds no empty chunk for it).
    if len(sections) > 1 and not sections[-1]:
        sections.pop()
    return tuple(tuple(section) or (Span(""),) for section in sections)
