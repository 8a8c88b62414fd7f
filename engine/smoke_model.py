# SPDX-License-Identifier: GPL-3.0-or-later
"""The `smoke` models: tiny random-weight Stable Diffusion + ControlNets, built offline.

`smoke` is SD 1.5, `smoke-sdxl` is SDXL (two text encoders, the text-time embedding),
each with a ControlNet per condition kind; SDXL also has a union ControlNet. They are
written once into a cache folder in the diffusers format and then loaded through the
same `from_pretrained` path as any local model, so tests and first-time users can run
the whole pipeline in seconds without downloading anything. Their images are noise.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

SMOKE_NOTE = "smoke model: random weights, for checking the pipeline (its images are noise)"
SMOKE_NAMES = {"smoke": "sd15", "smoke-sd15": "sd15", "smoke-sdxl": "sdxl"}

# The layout every smoke folder shares; bump to rebuild caches written by older code.
_FORMAT = 4


def is_smoke(spec: str) -> bool:
    return spec.strip().lower() in SMOKE_NAMES


def smoke_family(spec: str) -> str:
    return SMOKE_NAMES[spec.strip().lower()]


def smoke_dir(cache_dir: str, family: str) -> str:
    return os.path.join(cache_dir, "smoke", f"v{_FORMAT}", family)


def ensure_smoke_pipeline(cache_dir: str, family: str = "sd15") -> str:
    """The folder of the smoke base pipeline, built and written on first use."""
    target = os.path.join(smoke_dir(cache_dir, family), "base")
    if not os.path.isfile(os.path.join(target, "model_index.json")):
        _write_atomically(target, lambda path: _build_base(family).save_pretrained(path))
    return target


def ensure_smoke_controlnet(cache_dir: str, family: str = "sd15", kind: str = "depth") -> str:
    """The folder of a smoke ControlNet for `kind` (each kind gets its own random weights)."""
    target = os.path.join(smoke_dir(cache_dir, family), f"controlnet-{kind}")
    if not os.path.isfile(os.path.join(target, "config.json")):
        _write_atomically(target, lambda path: _build_controlnet(family, kind).save_pretrained(path))
    return target


def ensure_smoke_union_controlnet(cache_dir: str) -> str:
    """The folder of the smoke SDXL union ControlNet (one model, a control mode per kind)."""
    target = os.path.join(smoke_dir(cache_dir, "sdxl"), "controlnet-union")
    if not os.path.isfile(os.path.join(target, "config.json")):
        _write_atomically(target, lambda path: _build_union_controlnet().save_pretrained(path))
    return target


SMOKE_ADAPTER_FILE = "ip-adapter.safetensors"


def ensure_smoke_ip_adapter(cache_dir: str, family: str = "sd15") -> str:
    """The folder of the smoke IP-Adapter for `family`'s smoke UNet: `ip-adapter.safetensors`
    (an image projection and a key and value projection per cross-attention layer, in the
    layout of h94's adapters) and `image_encoder/` (a tiny CLIPVisionModelWithProjection)."""
    target = os.path.join(smoke_dir(cache_dir, family), "ip-adapter")
    if not os.path.isfile(os.path.join(target, SMOKE_ADAPTER_FILE)):
        _write_atomically(target, lambda path: _write_ip_adapter(family, path))
    return target


def _write_atomically(target: str, write) -> None:
    # Build beside the target and rename, so a crash or a second process never leaves half a model.
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".building-", dir=parent)
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # someone else finished first otherwise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _seed_for(name: str) -> int:
    return sum(ord(c) * 31 ** i for i, c in enumerate(name)) % (2**31)


_UNET_BLOCKS = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    # Attention only at the lower resolution keeps 512x512 smoke runs fast on a CPU.
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
    norm_num_groups=32,
)

# SDXL's UNet sees both text encoders' hidden states side by side (32 + 48), and adds
# an embedding of the pooled text (48, the second encoder's projection) and six size/crop
# numbers (6 x 8). The second encoder is wider than the first, as in the real SDXL (768 and
# 1280): diffusers' single-file loader tells the two apart by their widths.
_TEXT_HIDDEN, _TEXT_HIDDEN_2, _TIME_EMBED = 32, 48, 8
_SDXL_BLOCKS = dict(
    _UNET_BLOCKS,
    cross_attention_dim=_TEXT_HIDDEN + _TEXT_HIDDEN_2,
    addition_embed_type="text_time",
    addition_time_embed_dim=_TIME_EMBED,
    projection_class_embeddings_input_dim=_TEXT_HIDDEN_2 + 6 * _TIME_EMBED,
)


def _blocks(family: str) -> dict:
    if family == "sd15":
        return _UNET_BLOCKS
    if family == "sdxl":
        return _SDXL_BLOCKS
    raise ValueError(f"no smoke model for family {family!r}")


def _tokenizer():
    from transformers import CLIPTokenizer

    # A byte-level vocabulary with no merges: every character is a token. Offline and tiny.
    chars = [chr(i) for i in range(33, 127)] + [chr(i) for i in range(161, 173)] + [chr(i) for i in range(174, 256)]
    chars += [chr(256 + i) for i in range(256 - len(chars))]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    folder = tempfile.mkdtemp(prefix="smoke-tokenizer-")
    try:
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
        # Without model_max_length the pipeline overflows computing the padding length.
        return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                             model_max_length=77)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _text_encoder(vocab_size: int, with_projection: bool = False, hidden: int = _TEXT_HIDDEN):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        hidden_size=hidden, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        bos_token_id=0, eos_token_id=1, pad_token_id=1, vocab_size=vocab_size,
        projection_dim=hidden,
    )
    # SDXL's second encoder also gives the pooled, projected text embedding.
    encoder = CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)
    # New layer norms have no bias, so SD 1.5's embeddings (the final layer norm's output)
    # would average exactly zero, unlike a trained encoder's; prompt weights rescale to that mean.
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.bias.normal_(0.0, 0.2)
    return encoder


def _vae():
    from diffusers import AutoencoderKL

    # Four blocks, like the real VAE: 8x downsampling, so latents have real SD proportions.
    return AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, layers_per_block=1, norm_num_groups=32, sample_size=64,
    )


def _build_base(family: str):
    import torch
    from diffusers import (
        EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    blocks = _blocks(family)
    torch.manual_seed(_seed_for("base-" + family))
    tokenizer = _tokenizer()
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **blocks)
    noise_schedule = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    if family == "sdxl":
        # The real SDXL base ships an Euler scheduler with "leading" spacing.
        return StableDiffusionXLPipeline(
            vae=_vae(), text_encoder=_text_encoder(len(tokenizer)),
            text_encoder_2=_text_encoder(len(tokenizer), with_projection=True, hidden=_TEXT_HIDDEN_2),
            tokenizer=tokenizer, tokenizer_2=_tokenizer(), unet=unet,
            scheduler=EulerDiscreteScheduler(timestep_spacing="leading", **noise_schedule),
        )
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(len(tokenizer)), tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(skip_prk_steps=True, set_alpha_to_one=False, **noise_schedule),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def _controlnet_blocks(family: str) -> dict:
    # Four embedding blocks downsample the control image 8x, to the latent size.
    blocks = {k: v for k, v in _blocks(family).items() if k != "up_block_types"}
    return dict(blocks, in_channels=4, conditioning_embedding_out_channels=(16, 32, 32, 32))


def _build_controlnet(family: str, kind: str):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(_seed_for(f"controlnet-{family}-{kind}"))
    return _randomize_zero_convs(ControlNetModel(**_controlnet_blocks(family)))


def _build_union_controlnet():
    import torch
    from diffusers import ControlNetUnionModel

    torch.manual_seed(_seed_for("controlnet-sdxl-union"))
    # Six control types, like xinsir's controlnet-union-sdxl-1.0; the task transformer works
    # on the condition embedding, so its width is the first block's.
    width = _UNET_BLOCKS["block_out_channels"][0]
    union = ControlNetUnionModel(**_controlnet_blocks("sdxl"), num_control_type=6,
                                 num_trans_channel=width, num_trans_head=2, num_proj_channel=width)
    with torch.no_grad():
        # Zero-initialised too: random, so the control mode (the kind) changes the image.
        union.spatial_ch_projs.weight.normal_(0.0, 0.2)
        union.spatial_ch_projs.bias.normal_(0.0, 0.2)
    return _randomize_zero_convs(union)


_IMAGE_EMBED = 16  # the smoke image encoder's projection width
_IMAGE_TOKENS = 4  # image tokens per reference, as h94's base adapters have


def _write_ip_adapter(family: str, folder: str) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(_seed_for("ip-adapter-" + family))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
        patch_size=8, projection_dim=_IMAGE_EMBED))
    encoder.save_pretrained(os.path.join(folder, "image_encoder"))
    blocks = _blocks(family)
    width = blocks["cross_attention_dim"]
    tensors = {
        "image_proj.proj.weight": torch.randn(_IMAGE_TOKENS * width, _IMAGE_EMBED) * 0.3,
        "image_proj.proj.bias": torch.randn(_IMAGE_TOKENS * width) * 0.1,
        "image_proj.norm.weight": 1.0 + torch.randn(width) * 0.1,
        "image_proj.norm.bias": torch.randn(width) * 0.1,
    }
    # diffusers numbers the adapter's layers 1, 3, 5, ... along the UNet's attention
    # processors (the self-attention ones take the even numbers and have none).
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **blocks)
    number = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            to_k = unet.get_submodule(name[:-len(".processor")]).to_k
            for key in ("to_k_ip", "to_v_ip"):
                tensors[f"ip_adapter.{number}.{key}.weight"] = torch.randn(to_k.weight.shape) * 0.3
            number += 2
    save_file({key: value.contiguous() for key, value in tensors.items()}, os.path.join(folder, SMOKE_ADAPTER_FILE))


def _randomize_zero_convs(controlnet):
    import torch

    # A new ControlNet starts with zero convolutions, so its control image would change
    # nothing; random ones make the smoke model show whether conditions reach the UNet.
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for conv in zero_convs:
            conv.weight.normal_(0.0, 0.2)
            conv.bias.normal_(0.0, 0.2)
    return controlnet
