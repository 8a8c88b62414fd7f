# SPDX-License-Identifier: GPL-3.0-or-later
"""Textual inversion embeddings: new words for the prompt, learned vectors in the text encoder.

Each embedding file adds a token (by default `<file name>`, as A1111 names them) to the
loaded base model's tokenizer(s), through diffusers' `load_textual_inversion`; a prompt, or
a negative prompt, uses it by writing the token. An embedding stays loaded while requests
ask for it (no reading it again); one no longer asked for is unloaded, so its token reads as
plain text again, exactly as before it was loaded (tested bit for bit).

Files are read here, not by diffusers, so the rules are ours: `.safetensors`, or a pickle
file (`.pt`, `.bin`) only when allowed, and a vector that does not fit the model's text
encoder is refused by name with the family it was made for, before anything is loaded.
Formats: diffusers' `{token: vectors}`, A1111's `string_to_param` (pickle) and `emb_params`,
and SDXL's `clip_l` + `clip_g` pair.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import weights
from .errors import DiffusionError
from .requests import EmbeddingSpec

__all__ = ["EmbeddingSource", "resolve_embeddings", "Embeddings", "read_vectors"]

_TOKEN = re.compile(r"^\S+$")


@dataclass(frozen=True)
class EmbeddingSource:
    """An embedding file found and checked (no vectors read yet), and its token.

    identity: (size, modification time): a file changed on disk is loaded again.
    """
    path: str
    token: str
    identity: tuple[int, int]
    pickle: bool = False

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def resolve_embeddings(specs: tuple[EmbeddingSpec, ...], allow_pickle: bool) -> tuple[EmbeddingSource, ...]:
    """The embeddings to load, checked on disk; two files with one token are refused."""
    found: dict[str, EmbeddingSource] = {}
    for spec in specs:
        path = os.path.abspath(os.path.expanduser(spec.path.strip()))
        if not spec.path.strip() or not os.path.isfile(path):
            raise DiffusionError(f"The embedding {spec.path or '(empty)'} is not a file",
                                 "pick the embedding's .safetensors file, or remove it from the list")
        pickle = weights.is_pickle(path)
        if pickle and not allow_pickle:
            weights.refuse_pickle(path, "embedding")
        if not pickle:
            if not path.lower().endswith(weights.SAFE_SUFFIXES):
                raise DiffusionError(f"The embedding {os.path.basename(path)} is not a .safetensors file",
                                     "pick the embedding's .safetensors file")
            weights.check_safetensors(path, "embedding")
        token = spec.token.strip() or f"<{os.path.splitext(os.path.basename(path))[0]}>"
        if not _TOKEN.match(token):
            raise DiffusionError(f"The embedding token {token!r} has spaces in it",
                                 "give it a token of one word, such as <my-style>")
        other = found.get(token)
        if other is not None and other.path != path:
            raise DiffusionError(f"Two embeddings use the token {token}: {other.name} and {os.path.basename(path)}",
                                 "give one of them another token")
        stat = os.stat(path)
        found[token] = EmbeddingSource(path, token, (stat.st_size, stat.st_mtime_ns), pickle)
    return tuple(found.values())


def read_vectors(source: EmbeddingSource) -> dict[str, object]:
    """The file's vectors per text encoder: {"clip_l": tensor} for SD 1.5 files, {"clip_l",
    "clip_g"} for SDXL ones (each tensor: vectors x width)."""
    if source.pickle:
        import torch

        state = torch.load(source.path, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(source.path)
    if "string_to_param" in state:  # A1111's .pt
        state = state["string_to_param"]
    if "clip_l" in state and "clip_g" in state:
        return {"clip_l": _rows(state["clip_l"]), "clip_g": _rows(state["clip_g"])}
    if "emb_params" in state:  # A1111's .safetensors
        return {"clip_l": _rows(state["emb_params"])}
    tensors = [value for value in state.values() if hasattr(value, "shape")]
    if len(tensors) != 1:
        raise DiffusionError(f"The embedding {source.name} holds {len(tensors)} tensors "
                             f"({', '.join(list(state)[:4])}), not one vector set",
                             "pick a textual inversion embedding file")
    return {"clip_l": _rows(tensors[0])}


def _rows(tensor):
    return tensor if tensor.ndim == 2 else tensor.reshape(-1, tensor.shape[-1])


class Embeddings:
    """The embeddings loaded into one base pipeline (its tokenizers and text encoders)."""

    def __init__(self, pipe, label: str, family: str) -> None:
        self.pipe, self.label, self.family = pipe, label, family
        # token -> (path, identity), and the tokens each vector took: <t>, <t>_1, ...
        self._loaded: dict[str, tuple[str, tuple[int, int]]] = {}
        self._vector_tokens: dict[str, list[str]] = {}

    @property
    def tokens(self) -> list[str]:
        return list(self._loaded)

    def apply(self, sources: tuple[EmbeddingSource, ...], loads: list[str]) -> None:
        """Load the embeddings not loaded yet (each checked to fit first), a token whose file
        changed again, and unload those not asked for."""
        wanted = {source.token for source in sources}
        for token in [token for token in self._loaded if token not in wanted]:
            self._unload(token)
        for source in sources:
            if self._loaded.get(source.token) == (source.path, source.identity):
                continue
            vectors = read_vectors(source)
            encoders = self._encoders()
            self._check_fits(source, vectors, encoders)
            if source.token in self._loaded:
                self._unload(source.token)
            for key, (tokenizer, encoder) in encoders.items():
                self.pipe.load_textual_inversion(vectors[key].to(encoder.dtype), token=source.token,
                                                 tokenizer=tokenizer, text_encoder=encoder)
            count = next(iter(vectors.values())).shape[0]  # diffusers names the extra vectors <t>_1, ...
            self._vector_tokens[source.token] = [source.token] + [f"{source.token}_{i}" for i in range(1, count)]
            self._loaded[source.token] = (source.path, source.identity)
            loads.append(source.path)

    def _encoders(self) -> dict[str, tuple[object, object]]:
        encoders = {"clip_l": (self.pipe.tokenizer, self.pipe.text_encoder)}
        if getattr(self.pipe, "text_encoder_2", None) is not None:
            encoders["clip_g"] = (self.pipe.tokenizer_2, self.pipe.text_encoder_2)
        return encoders

    def _check_fits(self, source: EmbeddingSource, vectors: dict, encoders: dict) -> None:
        made_for = "SDXL" if "clip_g" in vectors else "SD 1.5"
        if set(vectors) != set(encoders):
            raise DiffusionError(f"The embedding {source.name} was made for {made_for}, not for {self.label}",
                                 f"pick an embedding made for {'SDXL' if 'clip_g' in encoders else 'SD 1.5'} models")
        for key, (tokenizer, encoder) in encoders.items():
            width = encoder.get_input_embeddings().weight.shape[1]
            if vectors[key].shape[1] != width:
                raise DiffusionError(
                    f"The embedding {source.name} has vectors of width {vectors[key].shape[1]}; "
                    f"{self.label}'s text encoder takes {width}",
                    f"pick an embedding made for {'SDXL' if 'clip_g' in encoders else 'SD 1.5'} models like it")
            taken = tokenizer.convert_tokens_to_ids(source.token)
            if source.token not in self._loaded and taken != tokenizer.unk_token_id:
                raise DiffusionError(f"The token {source.token} is a word {self.label} knows already",
                                     "give the embedding another token, such as <" + source.token.strip("<>") + "-ti>")

    def _unload(self, token: str) -> None:
        for tokenizer, encoder in self._encoders().values():
            self.pipe.unload_textual_inversion(self._vector_tokens[token], tokenizer=tokenizer, text_encoder=encoder)
        del self._loaded[token], self._vector_tokens[token]
