# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny weights files in the formats people download, made offline from the smoke models.

- `single_file_state_dict`: a diffusers pipeline's weights in the original (LDM /
  A1111 / ComfyUI) single-file layout that `from_single_file` reads: the inverse of
  diffusers' own conversion (diffusers.loaders.single_file_utils), for any block layout.
- `make_lora`: a LoRA with random weights on the UNet's attention projections (and the
  text encoders'), made with peft and saved as `save_lora_weights` writes it, or in the
  kohya format (lora_unet_..., lora_down/lora_up, alpha) that most downloaded LoRAs use.
"""
from __future__ import annotations

import os
import re

import torch

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_LAYERS = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
                "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))
_OPEN_CLIP = {"embeddings.position_embedding.weight": "positional_embedding",
              "embeddings.token_embedding.weight": "token_embedding.weight",
              "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}


def single_file_state_dict(pipe) -> dict[str, torch.Tensor]:
    """`pipe`'s UNet, VAE and text encoder(s) under the original checkpoint's names."""
    unet, vae = pipe.unet, pipe.vae
    per_block = unet.config.layers_per_block + 1
    attention_up = {i for i, kind in enumerate(unet.config.up_block_types) if "CrossAttn" in kind}
    out = {"model.diffusion_model." + _unet_key(key, per_block, attention_up): value
           for key, value in unet.state_dict().items()}
    for key, value in vae.state_dict().items():
        name = _vae_key(key, len(vae.config.up_block_types))
        if ".mid.attn_1." in name and name.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original VAE's attention is made of 1x1 convolutions
        out["first_stage_model." + name] = value
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    prefix = "conditioner.embedders.0.transformer." if sdxl else "cond_stage_model.transformer."
    for key, value in pipe.text_encoder.state_dict().items():
        out[prefix + "text_model." + key.removeprefix("text_model.")] = value
    if sdxl:
        out.update(_open_clip(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    return {key: value.contiguous() for key, value in out.items()}


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def _unet_key(key: str, per_block: int, attention_up: set[int]) -> str:
    for new, old in _UNET_LAYERS.items():
        if key.startswith(new + "."):
            return old + key[len(new):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        index = int(m[1]) * per_block + int(m[3]) + 1
        return f"input_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"input_blocks.{index}.1.{m[4]}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * per_block}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        index = int(m[1]) * per_block + int(m[3])
        return f"output_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"output_blocks.{index}.1.{m[4]}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        block = int(m[1])
        return f"output_blocks.{block * per_block + per_block - 1}.{2 if block in attention_up else 1}.conv.{m[2]}"
    raise KeyError(key)


def _vae_key(key: str, up_blocks: int) -> str:
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        for new, old in _VAE_ATTENTION:
            if m[2].startswith(new + "."):
                return f"{m[1]}.mid.attn_1.{old}{m[2][len(new):]}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    # The original decoder numbers its up blocks from the lowest resolution.
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{up_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        return f"decoder.up.{up_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return key.replace("conv_norm_out", "norm_out")


def _open_clip(state_dict: dict, prefix: str) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection's weights in OpenCLIP's layout (SDXL's second encoder)."""
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T
            continue
        key = key.removeprefix("text_model.")
        if key in _OPEN_CLIP:
            out[prefix + _OPEN_CLIP[key]] = value
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)", key)
        layer, rest = m[1], m[2]
        if q := re.match(r"self_attn\.(q|k|v)_proj\.(weight|bias)", rest):
            qkv.setdefault((layer, q[2]), {})[q[1]] = value
            continue
        rest = (rest.replace("self_attn.out_proj", "attn.out_proj").replace("layer_norm1", "ln_1")
                .replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
        out[f"{prefix}transformer.resblocks.{layer}.{rest}"] = value
    for (layer, kind), parts in qkv.items():  # OpenCLIP keeps q, k and v in one matrix
        in_proj = torch.cat([parts["q"], parts["k"], parts["v"]])
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = in_proj
    return out


def make_lora(base_folder: str, path: str, seed: int, family: str = "sd15", text_encoders: bool = True,
              kohya: bool = False, rank: int = 4) -> str:
    """A LoRA file for the pipeline in `base_folder`, random but reproducible from `seed`."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    # init_lora_weights=False: random A and B (B is zero otherwise, and the LoRA would do nothing).
    unet = UNet2DConditionModel.from_pretrained(os.path.join(base_folder, "unet"))
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))}
    encoders = [("text_encoder", CLIPTextModel)]
    if family == "sdxl":
        encoders.append(("text_encoder_2", CLIPTextModelWithProjection))
    for name, cls in encoders if text_encoders else ():
        encoder = cls.from_pretrained(os.path.join(base_folder, name))
        encoder.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                       target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]))
        layers[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(get_peft_model_state_dict(encoder))
    folder, file_name = os.path.split(path)
    if kohya:
        from safetensors.torch import save_file

        save_file(_kohya(layers, rank), path)
        return path
    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    cls.save_lora_weights(folder, weight_name=file_name, safe_serialization=True, **layers)
    return path


def _kohya(layers: dict, rank: int) -> dict[str, torch.Tensor]:
    """diffusers-format LoRA layers under kohya's names, as sd-scripts writes them."""
    prefixes = {"unet_lora_layers": "lora_unet_", "text_encoder_lora_layers": "lora_te_",
                "text_encoder_2_lora_layers": "lora_te2_"}
    out = {}
    for part, state_dict in layers.items():
        for key, value in state_dict.items():
            module, side = re.match(r"(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$", key).groups()
            if part != "unet_lora_layers":
                module = "text_model." + module.removeprefix("text_model.")  # as the unflattened CLIP names it
            name = prefixes[part] + module.replace(".", "_")
            out[f"{name}.lora_{side}.weight"] = value.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(rank))  # alpha = rank: scale 1, as in the diffusers file
    return out
