# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain diffusers pipelines on the smoke models: the references engine tests compare with."""
from engine.smoke_model import ensure_smoke_pipeline


def plain_pipe(model_cache: str, family: str = "sd15", controlnet=None):
    """diffusers' own text-to-image pipeline of the smoke `family` model (with `controlnet`: SD
    1.5's ControlNet pipeline), loaded from its folder as a person would, progress bar off."""
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = ensure_smoke_pipeline(model_cache, family)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline.from_pretrained(folder)
    else:
        extra = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        if controlnet is not None:
            pipe = StableDiffusionControlNetPipeline.from_pretrained(folder, controlnet=controlnet, **extra)
        else:
            pipe = StableDiffusionPipeline.from_pretrained(folder, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe
