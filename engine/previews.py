# SPDX-License-Identifier: GPL-3.0-or-later
"""Cheap previews of a generation in progress, from the latents of each step.

Two ways, both read-only (no RNG, no change to the latents, so the result is bit for bit
the same with and without previews):

- "linear": each latent pixel's four channels times a fixed 4x3 matrix (plus a bias) give
  its RGB colour; the matrices are the well-known least-squares fits for SD 1.5 and SDXL
  latents (ComfyUI's `latent_formats`). An image 1/8 of the output size (at most 256
  pixels a side), in well under a millisecond at 512².
- "tiny_vae": TAESD ("madebyollin/taesd", "madebyollin/taesdxl"), a tiny distilled VAE
  decoder: the real colours and shapes at full size (shrunk to a thumbnail). Made for a GPU
  (its cost there is not measured yet: no GPU here); seconds a preview on a CPU. Used only
  when it is in the local Hugging Face cache (or when asked for by name and online access
  is allowed).

"auto" picks the tiny VAE on a GPU when it is cached, else the linear one.

The latents of a step still hold that step's noise. Schedulers of the Euler family keep
them as x0 + sigma * noise (huge at first); they are scaled by 1/sqrt(sigma² + 1), the
scheduler's own input scaling, so every scheduler's preview has the same range.
"""
from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np

from .errors import DiffusionError

log = logging.getLogger(__name__)

PREVIEW_METHODS = ("auto", "linear", "tiny_vae")

# latent (4 channels) -> RGB in -1..1: rows are latent channels, columns R, G, B.
LATENT_RGB_FACTORS = {
    "sd15": ((0.3512, 0.2297, 0.3227),
             (0.3250, 0.4974, 0.2350),
             (-0.2829, 0.1762, 0.2721),
             (-0.2120, -0.2616, -0.7177)),
    "sdxl": ((0.3651, 0.4232, 0.4341),
             (-0.2533, -0.0042, 0.1068),
             (0.1076, 0.1111, -0.0362),
             (-0.3165, -0.2492, -0.2188)),
}
LATENT_RGB_BIAS = {"sd15": (0.0, 0.0, 0.0), "sdxl": (0.1084, -0.0175, -0.0011)}

TINY_VAES = {"sd15": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}
_TINY_VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
# Previews are at most this long a side (in pixels, or latent pixels for the linear one):
# the sidebar shows a thumbnail.
MAX_PREVIEW_SIDE = 256

# (pipe, latents of the step) -> HxWx3 float32 0..1
Previewer = Callable[[object, object], np.ndarray]


def check_method(method: str) -> None:
    if method not in PREVIEW_METHODS:
        raise DiffusionError(f"Preview method {method!r} is not one of {', '.join(PREVIEW_METHODS)}",
                             "pick auto, linear or tiny_vae")


def latents_to_rgb(latents, family: str, scale: float = 1.0, max_side: int = MAX_PREVIEW_SIDE) -> np.ndarray:
    """The first image of a batch of latents (N x 4 x h x w tensor), times `scale`, as
    h x w x 3 float32 0..1; every k-th latent pixel where h or w exceeds `max_side`.

    Done in numpy on the CPU after taking only the pixels shown: single-threaded, so it
    never waits for a core that the denoising (or another program) is using, and a GPU's
    latents cost one small copy.
    """
    x = latents[0]
    step = max(1, math.ceil(max(x.shape[-2:]) / max_side))
    x = x[:, ::step, ::step].float().cpu().numpy()
    channels, height, width = x.shape
    factors = np.asarray(LATENT_RGB_FACTORS[family], dtype=np.float32) * np.float32(scale)
    rgb = factors.T @ x.reshape(channels, -1)  # 3 x pixels: one small matrix product
    rgb += np.asarray(LATENT_RGB_BIAS[family], dtype=np.float32)[:, None]
    rgb += 1.0
    rgb *= 0.5  # -1..1 -> 0..1
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return np.ascontiguousarray(rgb.reshape(3, height, width).transpose(1, 2, 0))


def noise_scale(scheduler) -> float:
    """What the scheduler divides its latents by before the UNet sees them: 1/sqrt(sigma² + 1)
    for Euler-type (variance exploding) schedulers, whose first latents are ~15x too large;
    1 for the others, whose latents keep unit variance. Reads the scheduler, never calls it."""
    sigmas = getattr(scheduler, "sigmas", None)
    step = getattr(scheduler, "step_index", None)
    if sigmas is None or step is None or float(getattr(scheduler, "init_noise_sigma", 1.0)) <= 1.0:
        return 1.0
    sigma = float(sigmas[min(int(step), len(sigmas) - 1)])
    return 1.0 / math.sqrt(sigma * sigma + 1.0)


def linear_previewer(family: str) -> Previewer:
    def preview(pipe, latents) -> np.ndarray:
        return latents_to_rgb(latents, family, noise_scale(pipe.scheduler))
    return preview


class Previews:
    """Makes the previewer for each request; keeps tiny VAEs loaded between generations."""

    def __init__(self, device: str, dtype: str) -> None:
        self.device = device
        self.dtype = dtype
        self._tiny_vaes: dict[str, object] = {}

    def previewer(self, method: str, family: str, allow_online: bool = False) -> Previewer:
        check_method(method)
        if method == "linear" or (method == "auto" and self.device == "cpu"):
            return linear_previewer(family)  # TAESD at 512² took 7 s a preview on this 2-core CPU
        vae = self._tiny_vae(family, allow_online=allow_online and method == "tiny_vae",
                             required=method == "tiny_vae")
        if vae is None:
            return linear_previewer(family)
        return _tiny_vae_previewer(vae)

    def _tiny_vae(self, family: str, allow_online: bool, required: bool):
        if family not in self._tiny_vaes:
            path = find_tiny_vae(family, allow_online, required)
            if path is None:
                return None
            import torch
            from diffusers import AutoencoderTiny

            vae = AutoencoderTiny.from_pretrained(path, dtype=getattr(torch, self.dtype), local_files_only=True,
                                                  use_safetensors=True)
            self._tiny_vaes[family] = vae.to(self.device).eval()
        return self._tiny_vaes[family]


def find_tiny_vae(family: str, allow_online: bool = False, required: bool = False) -> str | None:
    """The local folder of the family's tiny VAE from the Hugging Face cache; downloaded only
    when allowed. None when it is not there and not `required`; else a DiffusionError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from .downloads import hub_errors

    repo = TINY_VAES[family]
    try:
        return snapshot_download(repo, allow_patterns=_TINY_VAE_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    if not required:
        return None
    if not allow_online:
        raise DiffusionError(f"The preview decoder {repo} is not in the local cache and online access is off",
                             "set previews to Linear, or turn on Allow Online Access to download it (10 MB)")
    with hub_errors(f"The preview decoder {repo}", "check the internet connection, or set previews to Linear"):
        return snapshot_download(repo, allow_patterns=_TINY_VAE_FILES)


def _tiny_vae_previewer(vae) -> Previewer:
    def preview(pipe, latents) -> np.ndarray:
        import torch.nn.functional as F

        # TAESD decodes the pipeline's (scaled) latents directly; its output is in -1..1.
        x = latents[:1].to(device=vae.device, dtype=vae.dtype) * noise_scale(pipe.scheduler)
        image = vae.decode(x).sample.float()
        longest = max(image.shape[-2:])
        if longest > MAX_PREVIEW_SIDE:
            size = [round(s * MAX_PREVIEW_SIDE / longest) for s in image.shape[-2:]]
            image = F.interpolate(image, size=size, mode="area")
        return ((image[0] + 1.0) / 2.0).clamp_(0.0, 1.0).movedim(0, -1).cpu().numpy()
    return preview
