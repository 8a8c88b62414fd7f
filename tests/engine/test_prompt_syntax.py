# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt weighting syntax (A1111's): weights, escapes, BREAK, and malformed prompts.

The expected values of the first cases are the examples AUTOMATIC1111 documents for its
`parse_prompt_attention`, floating-point digits included: the weights multiply in the
same order."""
import pytest

from engine.prompt_syntax import ParsedPrompt, Span, parse_prompt


def flat(prompt: str) -> list[list]:
    parsed = parse_prompt(prompt)
    assert len(parsed.sections) == 1
    return [[span.text, span.weight] for span in parsed.sections[0]]


@pytest.mark.parametrize("prompt, expected", [
    ("normal text", [["normal text", 1.0]]),
    ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
    ("(unbalanced", [["unbalanced", 1.1]]),
    ("\\(literal\\]", [["(literal]", 1.0]]),
    ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1], ["hill", 0.55],
      [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]),
])
def test_a1111_documented_examples(prompt, expected):
    assert flat(prompt) == expected


@pytest.mark.parametrize("prompt, expected", [
    ("a (red:1.3) car", [["a ", 1.0], ["red", 1.3], [" car", 1.0]]),
    ("a ( red : 1.3 ) car", [["a ", 1.0], [" red ", 1.3], [" car", 1.0]]),
    ("a [red] car", [["a ", 1.0], ["red", 1 / 1.1], [" car", 1.0]]),
    ("((red))", [["red", 1.1 * 1.1]]),
    ("[[red]]", [["red", 1 / 1.1 / 1.1]]),
    ("((red:1.5))", [["red", 1.5 * 1.1]]),
    ("(red:-0.5)", [["red", -0.5]]),
    ("(red:+2)", [["red", 2.0]]),
    ("[red:1.3]", [["red:1.3", 1 / 1.1]]),  # a weight closes only round brackets
])
def test_weights_multiply_and_nest(prompt, expected):
    assert flat(prompt) == expected


@pytest.mark.parametrize("prompt, expected", [
    ("a red) car", [["a red) car", 1.0]]),            # a closer with nothing open is text
    ("a red] car", [["a red] car", 1.0]]),
    ("red:1.3) car", [["red:1.3) car", 1.0]]),         # a weight with nothing open is text
    ("(word:abc)", [["word:abc", 1.1]]),               # not a number: text in plain parentheses
    ("(word:1.2.3)", [["word:1.2.3", 1.1]]),
    ("a ((red car", [["a ", 1.0], ["red car", 1.1 * 1.1]]),  # both open to the end
    ("a [(red car", [["a red car", 1.0]]),
    ("time: 5pm", [["time: 5pm", 1.0]]),               # a colon alone is text
    ("a\\b \\\\ c", [["a\\b \\ c", 1.0]]),               # a lone backslash is kept; \\ is one
    ("()", [["", 1.0]]),
    ("", [["", 1.0]]),
])
def test_malformed_prompts_are_text_not_errors(prompt, expected):
    assert flat(prompt) == expected


def test_break_starts_a_new_section_and_eats_its_spaces():
    assert parse_prompt("a castle BREAK a (dragon:1.2)").sections == (
        (Span("a castle"),), (Span("a "), Span("dragon", 1.2)))
    # Weights go on across a BREAK; A1111 would read a BREAK inside brackets as the word.
    assert parse_prompt("(a BREAK b)").sections == ((Span("a", 1.1),), (Span("b", 1.1),))


@pytest.mark.parametrize("prompt, sections", [
    ("BREAK a", ((Span(""),), (Span("a"),))),            # a leading BREAK leaves an empty chunk first
    ("a BREAK BREAK b", ((Span("a"),), (Span(""),), (Span("b"),))),
    ("a BREAK", ((Span("a"),),)),                        # a trailing one starts nothing
    ("BREAKFAST BREAK", ((Span("BREAKFAST"),),)),        # only the whole word
    ("a break b", ((Span("a break b"),),)),              # only in capitals
])
def test_break_edge_cases(prompt, sections):
    assert parse_prompt(prompt).sections == sections


@pytest.mark.parametrize("prompt, text, plain", [
    ("a red car", "a red car", True),
    ("a (red:1.0) car", "a red car", True),
    ("a \\(red\\) car", "a (red) car", True),
    ("a ([red]) car", "a red car", True),  # 1.1 / 1.1 is exactly 1 in floating point
    ("a (red) car", "a red car", False),
    ("a red BREAK car", "a red car", False),
])
def test_plain_prompts_are_those_with_no_weight_and_no_break(prompt, text, plain):
    parsed = parse_prompt(prompt)
    assert isinstance(parsed, ParsedPrompt)
    assert parsed.text == text
    assert parsed.plain is plain

