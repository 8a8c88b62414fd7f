# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt builder: anatomy order, clean joining, presets, and no heavy imports."""
import os
import subprocess
import sys

import pytest

from engine.prompts import (
    CHUNK_TOKENS, FIELD_LABELS, FIELDS, PRESETS, PromptParts, apply_preset, build_prompt, estimated_chunks,
    estimated_tokens, parts_from_mapping, preset_items,
)
from engine.tiling import AXES

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_all_parts_in_anatomy_order():
    parts = PromptParts(subject="a lighthouse on a cliff", medium="oil painting", style="impressionist",
                        artist="Claude Monet", website="artstation", resolution="highly detailed, sharp focus",
                        details="stunningly beautiful", color="iridescent gold", lighting="golden hour")
    assert build_prompt(parts) == ("a lighthouse on a cliff, oil painting, impressionist, by Claude Monet, artstation, "
                                   "highly detailed, sharp focus, stunningly beautiful, iridescent gold, golden hour")
    assert FIELDS == ("subject", "medium", "style", "artist", "website", "resolution", "details", "color", "lighting")
    assert set(FIELD_LABELS) == set(FIELDS)


def test_empty_parts_are_left_out_and_spacing_is_cleaned():
    assert build_prompt(PromptParts()) == ""
    assert build_prompt(PromptParts(subject="  a cat,  asleep ,")) == "a cat, asleep"
    parts = PromptParts(subject="a cat", lighting=" ,rim light,,  soft   light , ")
    assert build_prompt(parts) == "a cat, rim light, soft light"


def test_keywords_are_not_repeated_across_parts():
    parts = PromptParts(subject="a vase", style="Highly Detailed", resolution="highly detailed, 8k",
                        details="8K,  sharp focus")
    assert build_prompt(parts) == "a vase, Highly Detailed, 8k, sharp focus"


def test_artists_read_as_one_by_phrase():
    assert build_prompt(PromptParts(artist="Rembrandt")) == "by Rembrandt"
    assert build_prompt(PromptParts(artist="by Rembrandt, Vermeer")) == "by Rembrandt and Vermeer"


def test_presets_fill_what_the_person_left_empty():
    parts = apply_preset(PromptParts(subject="a ceramic teapot", lighting="candle light"), "product_render")
    prompt = build_prompt(parts)
    assert prompt.startswith("a ceramic teapot, 3d render, product photography")
    assert prompt.endswith("candle light")  # the person's own lighting wins
    assert "studio lighting" not in prompt


def test_every_preset_is_usable():
    assert {"photograph", "oil_painting", "concept_art", "product_render", "low_poly", "texture"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name and preset.label and preset.description
        assert preset.parts.subject == "" and preset.parts.artist == ""
        assert preset.parts.medium and preset.negative
        assert preset.tiling in AXES
        prompt = build_prompt(apply_preset(PromptParts(subject="a stone bridge"), name))
        assert prompt.startswith("a stone bridge, ")
        assert estimated_tokens(prompt) < CHUNK_TOKENS  # room in the first chunk for a longer subject
    assert PRESETS["texture"].tiling == "xy" and PRESETS["panorama"].tiling == "x"
    assert preset_items()[0] == ("photograph", "Photograph", PRESETS["photograph"].description)
    with pytest.raises(KeyError, match="no prompt preset 'anime'"):
        apply_preset(PromptParts(), "anime")


def test_token_estimate_counts_words_digits_and_punctuation():
    assert estimated_tokens("a red chair, 8k") == 6  # a, red, chair, ",", 8, k
    assert estimated_tokens("") == 0


def test_token_estimate_leaves_the_weight_syntax_out_and_counts_chunks():
    assert estimated_tokens("a (red:1.3) [chair], 8k BREAK (((sky)))") == estimated_tokens("a red chair, 8k sky") == 7
    assert estimated_chunks("") == estimated_chunks("a red chair") == 1
    assert estimated_chunks("a red chair BREAK a blue sky") == 2
    assert estimated_chunks(" ".join(["word"] * CHUNK_TOKENS)) == 1
    assert estimated_chunks(" ".join(["word"] * (CHUNK_TOKENS + 1))) == 2


def test_parts_round_trip_through_a_mapping():
    parts = PromptParts(subject="a tree", color="autumn colors")
    stored = {name: getattr(parts, name) for name in FIELDS} | {"unknown": "kept out"}
    assert parts_from_mapping(stored) == parts


def test_importing_prompts_loads_neither_torch_nor_bpy():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from engine.prompts import build_prompt; "
            "assert 'torch' not in sys.modules and 'bpy' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, REPO_ROOT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
