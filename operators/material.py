# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Material: a seamless (tileable) texture from the prompt, on a new material
shown on the selected objects, repeating through their UVs or projected from six sides."""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

import bpy

from .. import preferences
from ..engine.requests import GenerationRequest, GenerationResult
from ..scene import images, materials, uv
from ..scene.settings import settings_json
from . import jobs
from .base import JobOperator
from .request import checked_request, describe
from .texture import check_texture_size, selected_meshes

# Generated at the texture size up to this; a material repeats, so more pixels add little.
MAX_MATERIAL_SIZE = 1024


@dataclass(frozen=True)
class MaterialJob:
    request: GenerationRequest
    objects: tuple[str, ...]
    mapping: str
    scale: float
    made_uv: tuple[str, ...]
    panel: str = ""  # the panel's settings as JSON (scene/settings.py), for Use These Settings


def material_name(prompt: str) -> str:
    """'weathered oak planks, highly detailed' -> 'Weathered Oak Planks Material'."""
    words = re.findall(r"[A-Za-z0-9]+", prompt.split(",")[0])[:4]
    return (" ".join(word.capitalize() for word in words) or "Diffusion") + " Material"


class SCENE_DIFFUSION_OT_generate_material(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_material"
    bl_label = "Generate Material"
    bl_description = ("Generate a seamless texture from the prompt and put it on a new material on the selected "
                      "objects (through their UVs, or projected from six sides)")
    bl_options = {'REGISTER', 'UNDO'}

    def prepare(self, context) -> jobs.Steps:
        scene = context.scene
        settings = scene.scene_diffusion
        texture = settings.texture
        prefs = preferences.addon_preferences(context)
        objects = selected_meshes(context)
        check_texture_size(texture.texture_size)
        size = min(texture.texture_size, MAX_MATERIAL_SIZE)
        # Wraps left-right and top-bottom.
        request = checked_request(context, size, size, start_from=False, tiling="xy")
        panel = settings_json(scene)
        request = dataclasses.replace(request, seed=settings.draw_seed())
        made_uv = []
        if texture.material_mapping == 'UV':
            for obj in objects:
                name, made = uv.ensure_uv_map(obj)
                if made:
                    made_uv.append(f"'{name}' on '{obj.name}'")
        job = MaterialJob(request, tuple(obj.name for obj in objects), texture.material_mapping,
                          texture.material_scale, tuple(made_uv), panel)
        cache_dir, placement = preferences.model_cache_dir(context), preferences.engine_placement(prefs)
        results: list[GenerationResult] = []

        def work(_item, report, cancel):
            return jobs.engine(cache_dir, *placement).generate(job.request, report, cancel)

        return jobs.Steps("Generate Material", work=work, write=lambda _index, result: results.append(result),
                          finish=lambda _count: write_material(job, results[0], scene.name))


def write_material(job: MaterialJob, result: GenerationResult, scene_name: str) -> str:
    recipe = {**describe(job.request), "kind": "material", "seed": result.seed, "mapping": job.mapping,
              "scale": job.scale, "notes": list(result.notes), "made": time.time(), "settings": job.panel}
    name = material_name(job.request.prompt)
    image = images.new_image(name.replace(" Material", " Texture"), result.images[0], recipe)
    material = materials.tiling_material(name, image, job.mapping, job.scale)
    images.set_recipe(material, {"kind": "material", "image": image.name})
    placed = []
    for object_name in job.objects:
        obj = bpy.data.objects.get(object_name)
        if obj is not None:
            materials.assign(obj, material)
            placed.append(f"'{obj.name}'")
    scene = bpy.data.scenes.get(scene_name)
    if scene is not None and scene.scene_diffusion.seed != result.seed:
        scene.scene_diffusion.seed = result.seed
    message = f"Made '{material.name}' (seamless, seed {result.seed}) on {', '.join(placed)}"
    if job.made_uv:
        message += f"; made the UV map {', '.join(job.made_uv)} (Smart UV Project)"
    return message


classes = (SCENE_DIFFUSION_OT_generate_material,)
register, unregister = bpy.utils.register_classes_factory(classes)
