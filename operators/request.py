# SPDX-License-Identifier: GPL-3.0-or-later
"""The sidebar's settings turned into a GenerationRequest (shared by every generate operator)."""
from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from .. import dependencies, preferences
from ..engine import inputs, models
from ..engine.errors import DiffusionError
from ..engine.memory import MemoryOptions
from ..engine.prompts import build_prompt, parts_from_mapping
from ..engine.requests import ControlUnit, EmbeddingSpec, GenerationRequest, LoraSpec, ReferenceImage, RegionPrompt
from ..scene import images

TILING = {'NONE': "", 'X': "x", 'Y': "y", 'XY': "xy"}


def effective_prompt(settings) -> str:
    """The prompt that goes into the request and the recipe: typed, or built from its parts."""
    if settings.use_prompt_builder:
        parts = parts_from_mapping({name: getattr(settings.prompt_parts, name)
                                    for name in settings.prompt_parts.__annotations__})
        return build_prompt(parts)
    return settings.prompt


def lora_specs(settings) -> tuple[LoraSpec, ...]:
    specs = []
    for item in settings.loras:
        if not item.enabled or item.weight == 0:
            continue
        if not item.path:
            raise DiffusionError("A LoRA row has no file", "pick its .safetensors file, or remove the row")
        specs.append(LoraSpec(bpy.path.abspath(item.path), item.weight, item.few_step.lower()))
    return tuple(specs)


def embedding_specs(settings) -> tuple[EmbeddingSpec, ...]:
    specs = []
    for item in settings.embeddings:
        if not item.enabled:
            continue
        if not item.path:
            raise DiffusionError("An embedding row has no file", "pick its .safetensors file, or remove the row")
        specs.append(EmbeddingSpec(bpy.path.abspath(item.path), item.token.strip()))
    return tuple(specs)


def reference_images(settings) -> tuple[ReferenceImage, ...]:
    """The enabled reference images with a weight, as display-sRGB pixels."""
    references = []
    for item in settings.references:
        if not item.enabled or item.weight == 0:
            continue
        image = item.image
        if image is None:
            raise DiffusionError("A reference image row has no image", "pick one in the row, or remove the row")
        if not image.has_data and image.size[0] == 0:
            raise DiffusionError(f"The reference image '{image.name}' has no pixels (its file may be missing)",
                                 "reload it, or pick another image")
        references.append(ReferenceImage(images.display_rgb(image), item.weight, image.name))
    return tuple(references)


def init_inputs(settings) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The init image (HxWx3 float32 0..1, display sRGB) and mask (HxW float32) for the mode."""
    if settings.mode == 'TXT2IMG':
        return None, None
    image = settings.init_image
    if image is None:
        raise DiffusionError(f"{'Image to image' if settings.mode == 'IMG2IMG' else 'Inpainting'} needs an image "
                             "to start from", "pick one in the Image field, or switch the mode to Text to Image")
    if not image.has_data and image.size[0] == 0:
        raise DiffusionError(f"The image '{image.name}' has no pixels (its file may be missing)",
                             "reload it, or pick another image")
    init = images.display_rgb(image)
    if settings.mode == 'IMG2IMG':
        return init, None
    mask_image = settings.mask_image
    if mask_image is None:
        raise DiffusionError("Inpainting needs a mask", "pick a mask image (white = redraw) in the Mask field")
    mask = images.get_pixels(mask_image)[..., :3].mean(axis=2)
    if mask.shape != init.shape[:2]:
        raise DiffusionError(
            f"The mask '{mask_image.name}' is {mask.shape[1]}×{mask.shape[0]} but the image '{image.name}' is "
            f"{init.shape[1]}×{init.shape[0]}", "paint the mask at the image's size")
    return init, np.clip(mask, 0.0, 1.0).astype(np.float32)


def build_request(context: bpy.types.Context, width: int, height: int, controls: tuple[ControlUnit, ...],
                  seed: int, start_from: bool = True) -> GenerationRequest:
    """Everything the sidebar and the preferences say, as one request.

    start_from: take the init image and mask of the Start From panel (Generate Image);
    outputs that make their own init images (textures) leave it off.
    """
    settings = context.scene.scene_diffusion
    prefs = preferences.addon_preferences(context)
    init_image, mask = init_inputs(settings) if start_from else (None, None)
    return GenerationRequest(
        prompt=effective_prompt(settings),
        negative_prompt=settings.negative_prompt,
        width=width, height=height, steps=settings.steps, guidance=settings.guidance, seed=seed,
        model=settings.model.strip(), scheduler=settings.scheduler, controls=controls,
        controlnet_overrides=preferences.controlnet_overrides(prefs),
        init_image=init_image, strength=settings.strength, mask=mask,
        tiling=TILING[settings.tiling], loras=lora_specs(settings), embeddings=embedding_specs(settings),
        references=reference_images(settings), ip_adapter=settings.ip_adapter.strip(),
        allow_online=bpy.app.online_access, allow_pickle=prefs.allow_pickle,
        single_file_configs=preferences.single_file_configs(prefs),
        preview_every=1 if settings.show_previews else 0,
        memory=MemoryOptions(offload=settings.memory_offload.lower(),
                             vae_tiling=settings.memory_vae_tiling.lower(),
                             attention_slicing=settings.memory_attention_slicing.lower()),
    )


def region_note(regions: tuple[RegionPrompt, ...], unseen: tuple[str, ...]) -> str:
    """"; regions: Cube 'a red door', ...; not in view (skipped): Sphere", or "" without any."""
    text = ""
    if regions:
        text += "; regions: " + ", ".join(f"{region.name} '{region.prompt}'" for region in regions)
    if unseen:
        text += "; region prompts not in view (skipped): " + ", ".join(unseen)
    return text


def require_dependencies() -> None:
    missing = dependencies.missing_packages()
    if missing:
        raise DiffusionError(f"Missing Python packages: {', '.join(missing)}",
                             "install them with the button in Preferences > Add-ons > Scene Diffusion")


def checked_request(context: bpy.types.Context, width: int, height: int, start_from: bool = True,
                    **changes) -> GenerationRequest:
    """The sidebar's request (with `changes`), after every check that runs before anything is
    captured or written: the packages, the model (cached, or allowed to download) and the
    engine's own input checks. Its seed is Seed: draw the one to use last (draw_seed)."""
    settings = context.scene.scene_diffusion
    prefs = preferences.addon_preferences(context)
    require_dependencies()
    models.check_available(settings.model, bpy.app.online_access, prefs.allow_pickle,
                           preferences.single_file_configs(prefs))
    request = build_request(context, width, height, (), seed=settings.seed, start_from=start_from)
    request = dataclasses.replace(request, **changes)
    inputs.check_request(request)
    return request


def describe(request: GenerationRequest) -> dict:
    """The request's settings for the recipe stored on every image (no pixels)."""
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "model": request.model,
        "steps": request.steps,
        "guidance": request.guidance,
        "scheduler": request.scheduler,
        "width": request.width,
        "height": request.height,
        "mode": request.mode,
        "strength": request.strength if request.init_image is not None else 1.0,
        "tiling": request.tiling,
        "loras": [{"path": lora.path, "weight": lora.weight, "few_step": lora.few_step} for lora in request.loras],
        "embeddings": [{"path": item.path, "token": item.token} for item in request.embeddings],
        "regions": [{"prompt": region.prompt, "objects": region.name} for region in request.regions],
        "references": [{"image": reference.name, "weight": reference.weight} for reference in request.references],
        "ip_adapter": request.ip_adapter,
        "controls": [{"kind": u.kind, "scale": u.scale, "guidance_start": u.guidance_start,
                      "guidance_end": u.guidance_end, "model": u.model or "default"} for u in request.controls],
    }
