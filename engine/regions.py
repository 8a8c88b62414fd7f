# SPDX-License-Identifier: GPL-3.0-or-later
"""A prompt per region: attention-masked regional prompting.

Each region is a prompt and a mask (an object's coverage in the view). Its prompt is
encoded like the main prompt and its tokens are put after the main prompt's in the
cross-attention's keys; a query pixel attends to the main prompt's tokens everywhere and
to a region's tokens only where the region is (weighted by how much of that pixel's
cell the region covers, at each attention resolution). So the main prompt steers the
whole picture, each region adds its own words where it is, and nothing else changes:

- a region with the main prompt's own text adds copies of the main tokens, and a softmax
  over a set of tokens and copies of them is the softmax over the set (the image is the
  same within float rounding);
- the unconditional half of a classifier-free-guidance batch sees the negative prompt
  only (the region tokens are masked out for it);
- the pooled text embedding of SDXL (a global conditioning) stays the main prompt's.

The masks are installed as our own processor in every cross-attention layer (`attn2`)
of the UNet and of the ControlNets for one call, and the layers' processors are put back
after it. Without regions nothing here runs: the call is diffusers' own, bit for bit.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError

__all__ = ["RegionPrompt", "check_regions", "regional"]

FAMILIES = ("sd15", "sdxl")  # UNets whose cross-attention layers this masks


@dataclass(frozen=True, eq=False)
class RegionPrompt:
    """One region: `prompt` where `mask` is (HxW float32 0..1, any size of the output's aspect:
    it is brought to each attention resolution); `name`: what it is, for messages, and
    `objects`: the names of the objects it stands for."""
    prompt: str
    mask: np.ndarray
    name: str = ""
    objects: tuple[str, ...] = ()


def check_regions(regions: tuple[RegionPrompt, ...], family: str | None = None) -> None:
    """Refuse regions that cannot work, before anything is loaded (`family`: once it is known)."""
    for region in regions:
        label = f"The region '{region.name}'" if region.name else "A region"
        mask = region.mask
        if not isinstance(mask, np.ndarray) or mask.ndim != 2 or not np.issubdtype(mask.dtype, np.floating):
            found = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
            raise DiffusionError(f"{label} needs an HxW float mask, not {found}", "capture the regions again")
        low, high = float(np.min(mask)), float(np.max(mask))
        if not (0.0 <= low and high <= 1.0):
            raise DiffusionError(f"{label}'s mask has values from {low:g} to {high:g}, outside 0..1",
                                 "clip it to 0..1 (1 = the region)")
        if not region.prompt.strip():
            raise DiffusionError(f"{label} has an empty prompt", "type its prompt, or leave the region out")
    if regions and family is not None and family not in FAMILIES:
        raise DiffusionError(f"Prompts per region work with Stable Diffusion 1.5 and SDXL models, not {family}",
                             "clear the region prompts, or pick an SD 1.5 or SDXL model")


@contextlib.contextmanager
def regional(pipe, arguments: dict, regions: tuple[RegionPrompt, ...], width: int, height: int):
    """The call `arguments` with the regions' tokens added, and `pipe`'s cross-attention
    masked by the regions while inside; the processors are restored on leaving."""
    import torch

    from .text_encoding import prompt_embeddings

    if "prompt_embeds" not in arguments:  # plain text so far: the same embeddings, as tensors
        text = prompt_embeddings(pipe, arguments.pop("prompt"), arguments.pop("negative_prompt") or "")
        arguments = {**arguments, **text}
    main = arguments["prompt_embeds"]
    negative = arguments["negative_prompt_embeds"]
    spans, parts = [], [main]
    at = main.shape[1]
    for region in regions:
        tokens = prompt_embeddings(pipe, region.prompt, "")["prompt_embeds"].to(main.dtype)
        parts.append(tokens)
        spans.append((at, at + tokens.shape[1]))
        at += tokens.shape[1]
    # The negative side's region slots are never attended to (masked out): zeros fill them.
    filler = torch.zeros((negative.shape[0], at - main.shape[1], negative.shape[2]), dtype=negative.dtype,
                         device=negative.device)
    arguments = {**arguments, "prompt_embeds": torch.cat(parts, dim=1),
                 "negative_prompt_embeds": torch.cat([negative, filler], dim=1)}
    masks = RegionMasks([region.mask for region in regions], spans, main.shape[1], at,
                        (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor),
                        lambda: bool(pipe.do_classifier_free_guidance))
    models = [pipe.unet] + _controlnets(getattr(pipe, "controlnet", None))
    saved = [model.attn_processors for model in models]
    try:
        for model, processors in zip(models, saved):
            model.set_attn_processor({name: RegionalAttnProcessor(masks, processor) if _is_cross(name) else processor
                                      for name, processor in processors.items()})
        yield arguments
    finally:
        for model, processors in zip(models, saved):
            model.set_attn_processor(processors)


def _is_cross(name: str) -> bool:
    return name.endswith("attn2.processor")


def _controlnets(controlnet) -> list:
    if controlnet is None:
        return []
    return list(getattr(controlnet, "nets", [controlnet]))


class RegionMasks:
    """The attention bias of every (query count, batch size) a call meets: 0 for the main
    tokens, log(coverage) for a region's tokens (-inf outside it and for the unconditional
    half of the batch)."""

    def __init__(self, masks: list[np.ndarray], spans: list[tuple[int, int]], main_length: int, length: int,
                 latent: tuple[int, int], guided) -> None:
        self.masks = masks
        self.spans = spans
        self.main_length = main_length
        self.length = length
        self.latent = latent
        self.guided = guided
        self._biases: dict[tuple, object] = {}

    def bias(self, queries: int, batch: int, dtype, device):
        key = (queries, batch, dtype, device)
        if key not in self._biases:
            self._biases[key] = self._bias(queries, batch, dtype, device)
        return self._biases[key]

    def _bias(self, queries: int, batch: int, dtype, device):
        import torch
        import torch.nn.functional as F

        height, width = level_size(self.latent, queries)
        bias = torch.zeros((batch, 1, queries, self.length), dtype=torch.float32)
        for mask, (start, end) in zip(self.masks, self.spans):
            source = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
            cover = F.adaptive_avg_pool2d(source, (height, width)).reshape(queries, 1)
            bias[:, 0, :, start:end] = torch.log(cover.clamp(0.0, 1.0))  # log 0 = -inf: not there
        unconditional = batch // 2 if self.guided() else 0
        bias[:unconditional, :, :, self.main_length:] = -math.inf
        return bias.to(device=device, dtype=dtype)


def level_size(latent: tuple[int, int], queries: int) -> tuple[int, int]:
    """The (height, width) of the attention level with `queries` pixels: the latent halved
    (rounding up, as the UNet's strided convolutions do) until it has that many."""
    height, width = latent
    while height * width > queries:
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    if height * width != queries:
        raise ValueError(f"no level of a {latent[1]}x{latent[0]} latent has {queries} pixels")
    return height, width


class RegionalAttnProcessor:
    """Cross-attention as diffusers' AttnProcessor2_0 computes it, with the regions' bias; in
    a layer with IP-Adapter weights (`replaced` is an IPAdapterAttnProcessor2_0), the reference
    images' attention is added as that processor adds it (the regions mask the text only)."""

    def __init__(self, masks: RegionMasks, replaced=None) -> None:
        self.masks = masks
        self.adapter = replaced if hasattr(replaced, "to_k_ip") else None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        import torch.nn.functional as F

        references = None
        if isinstance(encoder_hidden_states, tuple):  # (text, [image tokens per adapter]) with IP-Adapters
            encoder_hidden_states, references = encoder_hidden_states
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, queries, _ = hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        bias = self.masks.bias(queries, batch, query.dtype, query.device)
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0,
                                                       is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        if references is not None and self.adapter is not None:
            for tokens, scale, to_k, to_v in zip(references, self.adapter.scale, self.adapter.to_k_ip,
                                                 self.adapter.to_v_ip):
                if scale == 0:
                    continue
                key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (to_k(tokens),
                                                                                               to_v(tokens)))
                seen = F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                                      is_causal=False)
                hidden_states = hidden_states + scale * seen.transpose(1, 2).reshape(
                    batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
