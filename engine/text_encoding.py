# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt arguments of a diffusers call: prompts of any length, with A1111's weights.

diffusers reads a prompt as one sequence of 77 tokens and cuts the rest, and reads
weight syntax as words. As AUTOMATIC1111 does, instead:

- The prompt's tokens (parsed by engine.prompt_syntax; a BREAK starts a new chunk) are cut
  into chunks of 75. Each chunk is wrapped in the start and end markers and padded to 77
  exactly as diffusers wraps a prompt of its own, encoded alone, and the chunks'
  embeddings are joined along the sequence axis: cross-attention takes any length.
- Each token's embedding is multiplied by its weight; then the chunk is rescaled so that
  its mean is the unweighted mean again.
- The prompt and the negative prompt get the same number of chunks (the shorter one is
  padded with chunks of the empty prompt): diffusers batches the two together.
- SD 1.5 takes the text encoder's last hidden states (after its final layer norm); SDXL
  the penultimate hidden states of both encoders, side by side, and the pooled embedding
  of text_encoder_2 from the first chunk. That is what diffusers' `encode_prompt` takes
  from one chunk (without clip_skip), so an unweighted chunk is encoded exactly as
  diffusers encodes those tokens.
- An empty negative prompt is what diffusers makes of it: zeros for SDXL models whose
  config says `force_zeros_for_empty_prompt`, the encoded empty prompt otherwise.

A prompt with no weight other than 1 and no BREAK that fits in one chunk (and the same of
its negative) is passed as plain text, so diffusers gives exactly the image it always gave.
"""
from __future__ import annotations

from dataclasses import dataclass

from .prompt_syntax import ParsedPrompt, parse_prompt


@dataclass(frozen=True)
class TokenChunk:
    """Up to 75 token ids of one text encoder's vocabulary (no start or end marker), and the
    weight of each."""
    tokens: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()


def text_arguments(pipe, prompt: str, negative_prompt: str) -> dict:
    """The prompt keyword arguments for a call of `pipe` (any SD 1.5 or SDXL pipeline):
    `prompt`/`negative_prompt` as text when diffusers' own encoding is the same, else
    `prompt_embeds`/`negative_prompt_embeds` (and for SDXL the pooled ones)."""
    positive, negative = parse_prompt(prompt), parse_prompt(negative_prompt)
    if positive.plain and negative.plain and all(
            _fits(tokenizer, _expanded(pipe, parsed.text, tokenizer))
            for tokenizer, _ in text_encoders(pipe) for parsed in (positive, negative)):
        return {"prompt": positive.text, "negative_prompt": negative.text or None}
    return prompt_embeddings(pipe, prompt, negative_prompt)


def blended_arguments(pipe, prompt: str, negative_prompt: str, other: str, other_negative: str,
                      weight: float) -> dict:
    """Embedding arguments between two prompts: (1 - weight) x the first's + weight x the
    other's, every embedding (and SDXL's pooled ones) alike. Prompts of different lengths
    in 77-token chunks have embeddings of different lengths: the shorter is padded with its
    own last chunk, which holds its end-of-text padding."""
    import torch

    first = prompt_embeddings(pipe, prompt, negative_prompt)
    second = prompt_embeddings(pipe, other, other_negative)
    blended = {}
    for key, a in first.items():
        b = second[key]
        if a.dim() == 3 and a.shape[1] != b.shape[1]:
            longer = max(a.shape[1], b.shape[1])
            a, b = (torch.cat([t] + [t[:, -77:]] * ((longer - t.shape[1]) // 77), dim=1) for t in (a, b))
        blended[key] = torch.lerp(a, b, float(weight))
    return blended


def text_encoders(pipe) -> list[tuple[object, object]]:
    """(tokenizer, text encoder) pairs of `pipe`, in the order their embeddings are joined."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if _is_sdxl(pipe):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [(tokenizer, encoder) for tokenizer, encoder in pairs if encoder is not None]


def prompt_embeddings(pipe, prompt: str, negative_prompt: str) -> dict:
    """The embedding arguments of `prompt` and `negative_prompt` for a call of `pipe` (see
    the module docstring), whatever their length and weights."""
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    sdxl = _is_sdxl(pipe)
    # diffusers' rule for an empty negative prompt (the engine passes None for it).
    zero_negative = not negative_prompt and sdxl and pipe.config.force_zeros_for_empty_prompt
    positive, negative = parse_prompt(prompt), parse_prompt(negative_prompt)
    sides = {"prompt": positive} if zero_negative else {"prompt": positive, "negative_prompt": negative}
    states: dict[str, list] = {side: [] for side in sides}  # per encoder: 1 x (chunks x 77) x width
    pooled: dict[str, object] = {}
    with torch.no_grad():
        for tokenizer, encoder in text_encoders(pipe):
            device = get_module_execution_device(encoder)  # where the inputs go, even when offloaded
            chunked = {side: token_chunks(parsed, tokenizer, lambda text, t=tokenizer: _expanded(pipe, text, t))
                       for side, parsed in sides.items()}
            count = max(len(chunks) for chunks in chunked.values())
            for side, chunks in chunked.items():
                chunks += [TokenChunk()] * (count - len(chunks))
                encoded = [encode_chunk(tokenizer, encoder, chunk, device, penultimate=sdxl) for chunk in chunks]
                states[side].append(torch.cat(
                    [weighted(hidden, chunk.weights) for (hidden, _), chunk in zip(encoded, chunks)], dim=1))
                if encoded[0][1] is not None:
                    pooled[side] = encoded[0][1]  # the first chunk's, as A1111 takes it
    arguments = {f"{side}_embeds": torch.cat(parts, dim=-1) for side, parts in states.items()}
    if zero_negative:
        arguments["negative_prompt_embeds"] = torch.zeros_like(arguments["prompt_embeds"])
        pooled["negative_prompt"] = torch.zeros_like(pooled["prompt"])
    if sdxl:
        arguments.update(pooled_prompt_embeds=pooled["prompt"], negative_pooled_prompt_embeds=pooled["negative_prompt"])
    return arguments


def token_chunks(parsed: ParsedPrompt, tokenizer, expand=None) -> list[TokenChunk]:
    """The chunks of `parsed` in `tokenizer`'s vocabulary: each BREAK-separated section cut
    into runs of 75 tokens (a section without tokens is one empty chunk). `expand(text)`:
    the text with each multi-vector embedding token spelled out (see _expanded)."""
    size = _chunk_size(tokenizer)
    chunks = []
    for section in parsed.sections:
        # Each span is tokenized on its own (its weight is its tokens'), as A1111 does.
        texts = [expand(span.text) if expand else span.text for span in section]
        ids = tokenizer(texts, add_special_tokens=False, verbose=False).input_ids
        tokens = [token for span_ids in ids for token in span_ids]
        weights = [span.weight for span_ids, span in zip(ids, section) for _ in span_ids]
        for start in range(0, max(len(tokens), 1), size):
            chunks.append(TokenChunk(tuple(tokens[start:start + size]), tuple(weights[start:start + size])))
    return chunks


def chunk_input_ids(chunk: TokenChunk, tokenizer) -> list[int]:
    """The 77 ids the text encoder reads for `chunk`: start marker, tokens, end marker, padding
    (the tokenizer's own, as `tokenizer(text, padding="max_length")` pads). A1111 puts the end
    marker after the padding instead; the two agree where the padding is the end marker
    (SD 1.5, SDXL's first tokenizer), and this way the pooled embedding is read where
    diffusers reads it."""
    ids = [tokenizer.bos_token_id, *chunk.tokens, tokenizer.eos_token_id]
    return ids + [tokenizer.pad_token_id] * (tokenizer.model_max_length - len(ids))


def encode_chunk(tokenizer, encoder, chunk: TokenChunk, device, penultimate: bool):
    """(hidden states 1 x 77 x width, pooled embedding or None) of one chunk, taken from the
    encoder as diffusers' `encode_prompt` takes them; `device`: where the encoder's inputs go."""
    import torch

    ids = chunk_input_ids(chunk, tokenizer)
    input_ids = torch.tensor([ids], device=device)
    if penultimate:
        output = encoder(input_ids, output_hidden_states=True)
        pooled = output[0] if output[0].ndim == 2 else None  # only the projection encoder has one
        return output.hidden_states[-2], pooled
    mask = None
    if getattr(encoder.config, "use_attention_mask", False):
        real = len(chunk.tokens) + 2
        mask = torch.tensor([[1] * real + [0] * (len(ids) - real)], device=device)
    return encoder(input_ids, attention_mask=mask)[0], None


def weighted(hidden, weights: tuple[float, ...]):
    """`hidden` (1 x 77 x width) with the rows of the chunk's tokens multiplied by their weights,
    then rescaled to the unweighted mean (the start, end and padding rows weigh 1)."""
    if all(weight == 1.0 for weight in weights):
        return hidden  # untouched, so an unweighted chunk stays bit for bit diffusers' own
    import torch

    rows = hidden.shape[1]
    factors = torch.tensor([1.0, *weights] + [1.0] * (rows - 1 - len(weights)), device=hidden.device)
    # In float32: a half-precision mean of 77 x 2048 values loses digits.
    plain = hidden.float()
    scaled = plain * factors[None, :, None]
    # A mean that is only rounding noise (a layer norm without bias) has nothing to restore:
    # the ratio of two such noises would blow the embeddings up.
    if scaled.mean().abs() > 1e-6 * scaled.abs().mean():
        scaled = scaled * (plain.mean() / scaled.mean())
    return scaled.to(hidden.dtype)


def _expanded(pipe, text: str, tokenizer) -> str:
    """`text` with each multi-vector textual inversion token written out as its vectors'
    tokens (`<t>` -> `<t> <t>_1 <t>_2`), as diffusers' own encoding does before tokenizing."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return convert(text, tokenizer) if convert is not None else text


def _fits(tokenizer, text: str) -> bool:
    ids = tokenizer(text, add_special_tokens=False, verbose=False).input_ids
    return len(ids) <= _chunk_size(tokenizer)


def _chunk_size(tokenizer) -> int:
    return tokenizer.model_max_length - 2  # the start and end markers take two


def _is_sdxl(pipe) -> bool:
    return hasattr(pipe, "text_encoder_2")
