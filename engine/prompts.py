# SPDX-License-Identifier: GPL-3.0-or-later
"""A prompt builder: the parts of a good prompt, and named presets for common looks.

The parts are the usual anatomy of a Stable Diffusion prompt: subject (what to see),
medium (what it is made with), style, artist (a reference, "by ..."), website (Artstation,
DeviantArt: their look), resolution (how sharp and detailed), additional details,
colour and lighting. `build_prompt` joins the filled ones in that order, subject first:
the CLIP text encoder weighs early words more, and reads a long prompt in chunks of 75
tokens that do not see each other (engine.text_encoding), so the subject and the words
that describe it belong in the first.

The built string is what a generation runs with and what its recipe keeps; the parts are
only an editing aid. Pure Python, no bpy and no torch: the sidebar uses it directly.

No preset names an artist: copying a living artist's style is the field's best-known
controversy, so that choice is left to the person.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from .prompt_syntax import parse_prompt

# The CLIP text encoder reads 77 tokens at a time, two of them start and end markers: longer
# prompts are encoded as chunks of this many tokens (engine.text_encoding).
CHUNK_TOKENS = 75


@dataclass(frozen=True)
class PromptParts:
    """Each field is free text; all but `subject` may list several keywords with commas."""
    subject: str = ""
    medium: str = ""
    style: str = ""
    artist: str = ""
    website: str = ""
    resolution: str = ""
    details: str = ""
    color: str = ""
    lighting: str = ""


FIELDS = tuple(f.name for f in fields(PromptParts))

# Label and tooltip of each field, for the sidebar.
FIELD_LABELS = {
    "subject": ("Subject", "What you want to see in the image, as a short sentence"),
    "medium": ("Medium", "What the artwork is made with: photograph, oil painting, 3D render, watercolor"),
    "style": ("Style", "The artistic style: photorealistic, impressionist, concept art, low poly"),
    "artist": ("Artist", "An artist whose work the image should look like (written as 'by ...')"),
    "website": ("Website", "A site whose look to follow: artstation, deviantart, behance"),
    "resolution": ("Resolution", "How sharp and detailed: highly detailed, sharp focus, 8k"),
    "details": ("Additional details", "More keywords: sci-fi, stunningly beautiful, dystopian, ornate"),
    "color": ("Color", "The overall colours: pastel colors, iridescent gold, monochrome, teal and orange"),
    "lighting": ("Lighting", "Light has a huge effect: studio lighting, golden hour, rim light, volumetric"),
}


def build_prompt(parts: PromptParts) -> str:
    """The prompt: the filled parts in anatomy order, comma-separated, each keyword once.

    The subject is kept as written (it may hold commas of its own). Artists become one
    "by A and B" phrase. A keyword already present (in any case) is not repeated, so a
    preset's "highly detailed" and the person's own do not pile up.
    """
    pieces: list[str] = []
    seen: set[str] = set()

    def add(piece: str) -> None:
        key = " ".join(piece.casefold().split())
        if piece and key not in seen:
            seen.add(key)
            pieces.append(piece)

    add(_clean(parts.subject))
    for name in FIELDS[1:]:
        keywords = split_keywords(getattr(parts, name))
        if name == "artist":
            names = [re.sub(r"^by\s+", "", k, flags=re.IGNORECASE) for k in keywords]
            if names:
                add("by " + " and ".join(names))
            continue
        for keyword in keywords:
            add(keyword)
    return ", ".join(pieces)


def split_keywords(text: str) -> list[str]:
    """'highly detailed,  sharp focus ,' -> ['highly detailed', 'sharp focus']."""
    return [k for k in (_clean(piece) for piece in text.split(",")) if k]


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" ,")


def estimated_tokens(prompt: str) -> int:
    """A lower bound of the CLIP tokens of `prompt`'s text (weight syntax and BREAKs left out):
    each word and each punctuation mark is at least one (rare and long words are several)."""
    return sum(_estimated_tokens(text) for text in _section_texts(prompt))


def estimated_chunks(prompt: str) -> int:
    """About how many chunks of CHUNK_TOKENS the text encoder reads `prompt` in (a BREAK
    starts a new one)."""
    return sum(max(1, math.ceil(_estimated_tokens(text) / CHUNK_TOKENS)) for text in _section_texts(prompt))


def _section_texts(prompt: str) -> list[str]:
    return ["".join(span.text for span in section) for section in parse_prompt(prompt).sections]


def _estimated_tokens(text: str) -> int:
    return len(re.findall(r"[^\W\d_]+|\d|[^\w\s]+", text))


@dataclass(frozen=True)
class PromptPreset:
    """A named look: parts for every field but the subject, a negative prompt, and the
    tiling it is made for ("" none, "x" panoramas, "xy" tileable textures)."""
    name: str
    label: str
    description: str
    parts: PromptParts
    negative: str = ""
    tiling: str = ""


_COMMON_NEGATIVE = "blurry, lowres, jpeg artifacts, watermark, text, signature"

PRESETS: dict[str, PromptPreset] = {preset.name: preset for preset in (
    PromptPreset(
        "photograph", "Photograph", "A realistic photo taken with a good camera",
        PromptParts(medium="photograph", style="photorealistic", resolution="highly detailed, sharp focus, 8k",
                    details="35mm lens, depth of field", lighting="natural lighting"),
        negative=f"painting, drawing, illustration, cartoon, 3d render, {_COMMON_NEGATIVE}, deformed",
    ),
    PromptPreset(
        "oil_painting", "Oil painting", "A classical painting on canvas",
        PromptParts(medium="oil painting on canvas", style="fine art, classical realism",
                    resolution="highly detailed", details="visible brushstrokes, textured canvas",
                    color="rich warm colors", lighting="soft window light, chiaroscuro"),
        negative=f"photo, 3d render, flat colors, {_COMMON_NEGATIVE}",
    ),
    PromptPreset(
        "concept_art", "Concept art", "A painted design of a scene or character, as for a film or game",
        PromptParts(medium="digital painting", style="concept art, matte painting", website="artstation",
                    resolution="highly detailed", details="epic composition",
                    lighting="dramatic lighting, volumetric light"),
        negative=f"photo, {_COMMON_NEGATIVE}",
    ),
    PromptPreset(
        "product_render", "Product render", "A clean studio shot of one object",
        PromptParts(medium="3d render", style="product photography, studio shot",
                    resolution="8k, highly detailed, sharp focus", details="centered, clean background",
                    color="neutral colors", lighting="studio lighting, softbox, rim light"),
        negative=f"cluttered background, people, hands, {_COMMON_NEGATIVE}, deformed",
    ),
    PromptPreset(
        "low_poly", "Low-poly game asset", "A simple stylised 3D model, as for a game",
        PromptParts(medium="3d render", style="low poly, flat shading, stylized",
                    details="game asset, isometric view, simple geometry, clean edges, centered",
                    color="vibrant colors", lighting="soft ambient lighting"),
        negative=f"photorealistic, noisy, cluttered, {_COMMON_NEGATIVE}",
    ),
    PromptPreset(
        "texture", "Texture / material", "A tileable surface for a material: seamless left-right and top-bottom",
        PromptParts(medium="texture", style="seamless tileable texture, top-down view",
                    resolution="4k, highly detailed", details="PBR material, uniform, flat surface",
                    lighting="flat even lighting, no shadows"),
        negative=f"perspective, objects, shadows, vignette, border, frame, {_COMMON_NEGATIVE}",
        tiling="xy",
    ),
    PromptPreset(
        "panorama", "360° panorama", "An equirectangular world background that wraps around",
        PromptParts(medium="360 degree equirectangular panorama", style="photorealistic",
                    resolution="highly detailed", details="wide landscape, level horizon",
                    lighting="natural lighting"),
        negative=f"people, close-up, distorted, frame, {_COMMON_NEGATIVE}",
        tiling="x",
    ),
    PromptPreset(
        "watercolor", "Watercolor", "A light painting on paper",
        PromptParts(medium="watercolor painting", style="loose, wet on wet", details="paper texture, soft edges",
                    color="pastel colors", lighting="soft light"),
        negative=f"photo, 3d render, harsh lines, {_COMMON_NEGATIVE}",
    ),
)}


def apply_preset(parts: PromptParts, name: str) -> PromptParts:
    """`parts` with every field the person left empty taken from the preset `name`."""
    preset = PRESETS.get(name)
    if preset is None:
        raise KeyError(f"no prompt preset {name!r}; there are {', '.join(PRESETS)}")
    filled = {f: getattr(preset.parts, f) for f in FIELDS if not _clean(getattr(parts, f))}
    return replace(parts, **filled)


def preset_items() -> list[tuple[str, str, str]]:
    """(identifier, label, description) of every preset, in order: Blender's EnumProperty items."""
    return [(p.name, p.label, p.description) for p in PRESETS.values()]


def parts_from_mapping(values: Mapping[str, object]) -> PromptParts:
    """PromptParts from a mapping (saved settings, a recipe), ignoring keys it does not know."""
    return PromptParts(**{k: str(v) for k, v in values.items() if k in FIELDS and v is not None})
