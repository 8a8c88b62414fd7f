# SPDX-License-Identifier: GPL-3.0-or-later
"""Image to image with a strength per pixel ("differential diffusion").

Plain image to image starts every pixel at the same noise level. An animation frame warped
from the previous one has pixels the previous frame never showed (disocclusions, what comes
in at the borders): those must be drawn anew, while the rest is only refined. So the
request's `strength_map` gives each pixel its own strength: the pipeline starts at the
largest, and after every step the pixels whose own start has not come yet are put back to
the init image noised to the next step's level, so they join the denoising only from
their own start; pixels whose strength rounds to no step at all end as the init image.

bpy-free; runs on the worker as the pipeline's step callback (with engine/generate.py's
progress callback).
"""
from __future__ import annotations

import numpy as np

__all__ = ["DifferentialStrength", "start_steps"]


def start_steps(strength: np.ndarray, steps: int) -> np.ndarray:
    """The index in the full schedule of `steps` where a pixel of each strength starts, as
    diffusers' image to image computes it for one strength: steps - int(steps * strength)."""
    return steps - np.minimum((steps * np.asarray(strength, np.float64)).astype(np.int64), steps)


class DifferentialStrength:
    """The step callback that holds each pixel back until its own start.

    pipe: the image-to-image pipeline about to run (its VAE, scheduler and image processor).
    init_image: HxWx3 float32 0..1 at the output size; strength_map: HxW float 0..1 there;
    strength: the request's strength (the pipeline starts at it); seed: for the noise.
    """

    def __init__(self, pipe, init_image: np.ndarray, strength_map: np.ndarray, strength: float, steps: int,
                 seed: int) -> None:
        import torch

        vae = pipe.vae
        # A float16 VAE that overflows (SDXL's: `force_upcast`) encodes in float32, as
        # diffusers' own pipelines do.
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            pixels = torch.from_numpy(np.ascontiguousarray(init_image.transpose(2, 0, 1)[None]) * 2.0 - 1.0)
            pixels = pixels.to(device=vae.device, dtype=vae.dtype)
            with torch.no_grad():
                # The distribution's mode: the same latents every time for the same init image.
                latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
        finally:
            if upcast:
                vae.to(torch.float16)
        # The pipeline starts from these very latents too (`image` given as latents: no
        # second VAE encode), so what is held back and what starts agree exactly.
        self.init_latents = latents.to(pipe.unet.dtype)
        height, width = self.init_latents.shape[-2:]
        self.noise = torch.randn(self.init_latents.shape, generator=torch.Generator("cpu").manual_seed(seed + 1),
                                 dtype=torch.float32).to(self.init_latents.device, self.init_latents.dtype)
        # Each latent pixel's strength: the strongest of the pixels it covers (a pixel to
        # redraw is never held back by a kept neighbour).
        factor = strength_map.shape[0] // height
        cells = np.asarray(strength_map, np.float64)[:height * factor, :width * factor]
        cells = cells.reshape(height, factor, width, factor).max(axis=(1, 3))
        first = start_steps(strength, steps)  # where the pipeline itself starts
        own = start_steps(np.minimum(cells, strength), steps) - first  # in the pipeline's own steps
        # A strength too small for one step never starts (some schedules, PNDM's, have a
        # step more than asked for: without this its last step would take them in).
        never = (steps * np.minimum(cells, strength)).astype(np.int64) == 0
        self.start = torch.from_numpy(np.where(never, np.iinfo(np.int64).max, own))
        self.device = self.init_latents.device

    @staticmethod
    def needed(strength_map: np.ndarray, strength: float) -> bool:
        """Whether any pixel's strength differs from the request's (else: plain image to image)."""
        return bool(float(np.min(strength_map)) < strength - 1e-6)

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        import torch

        latents = callback_kwargs["latents"]
        timesteps = pipe.scheduler.timesteps[-pipe.num_timesteps * pipe.scheduler.order:]
        following = step + 1
        waiting = (self.start > following).to(self.device)[None, None]
        if not bool(waiting.any()):
            return {}
        if following >= pipe.num_timesteps:  # the last step: what never started is the init image
            held = self.init_latents.to(latents.dtype)
        else:
            level = timesteps[following * pipe.scheduler.order]
            held = pipe.scheduler.add_noise(self.init_latents, self.noise, torch.tensor([level])).to(latents.dtype)
        return {"latents": torch.where(waiting, held, latents)}
