# SPDX-License-Identifier: GPL-3.0-or-later
"""numpy images in and out of Blender image datablocks."""
from __future__ import annotations

import json

import bpy
import numpy as np

from . import windows

RECIPE_KEY = "scene_diffusion"


def new_image(name: str, rgb: np.ndarray, recipe: dict, *, colorspace: str = "sRGB",
              float_buffer: bool = False, pack: bool = True) -> bpy.types.Image:
    """A NEW image datablock holding `rgb` (HxWx3 float32 0..1, row 0 at the top).

    Blender gives the name a .001 suffix when it is taken, so nothing is ever overwritten.
    The image is packed and kept with a fake user, so it is saved inside the .blend file
    even before anything uses it; it carries its recipe.
    """
    height, width = rgb.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    image.colorspace_settings.name = colorspace
    set_pixels(image, rgb)
    if pack:
        image.pack()
    image.use_fake_user = True
    set_recipe(image, recipe)
    return image


def set_pixels(image: bpy.types.Image, rgb: np.ndarray) -> None:
    """Write HxWx3 (or HxWx4) float 0..1 pixels; Blender stores rows bottom-up."""
    height, width = rgb.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., : rgb.shape[2]] = rgb[::-1]
    image.pixels.foreach_set(rgba.ravel())
    image.update()


def get_pixels(image: bpy.types.Image) -> np.ndarray:
    """HxWx4 float32, row 0 at the top."""
    width, height = image.size
    flat = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(height, width, 4)[::-1].copy()


def display_rgb(image: bpy.types.Image) -> np.ndarray:
    """HxWx3 float32 0..1 as the image is seen (display sRGB), row 0 at the top.

    Byte images hold their colour space's encoded values already; float images in a
    linear colour space (renders, EXRs) are encoded to sRGB and clipped, as Stable
    Diffusion expects ordinary 8-bit-looking pixels.
    """
    rgb = get_pixels(image)[..., :3]
    space = image.colorspace_settings
    if image.is_float and not space.is_data and "linear" in space.name.lower():
        rgb = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(np.maximum(rgb, 0.0031308), 1 / 2.4) - 0.055)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def set_recipe(datablock: bpy.types.ID, recipe: dict) -> None:
    """Store how it was made as an ID-property group, `datablock["scene_diffusion"]`."""
    datablock[RECIPE_KEY] = _id_property_safe(recipe)


def get_recipe(datablock: bpy.types.ID) -> dict:
    value = datablock.get(RECIPE_KEY)
    return value.to_dict() if hasattr(value, "to_dict") else {}


def _id_property_safe(value):
    # ID properties hold str/int/float/dicts/lists of those; anything else is stored as text.
    if isinstance(value, dict):
        return {str(k): _id_property_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_id_property_safe(v) for v in value]
        if items and all(isinstance(v, dict) for v in items):
            return items
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return items
        return json.dumps(items)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_capture(name: str, kind: str, frame: int, rgb8: np.ndarray, recipe: dict,
                  view: str = "camera") -> bpy.types.Image:
    """Store a condition capture (HxWx3 uint8), replacing our own earlier capture of the same
    kind, frame and view in place; any other image, the person's included, is left alone.

    view: what it was seen from: "camera" (the scene camera), "panorama" (360° around it,
    2:1) or "backdrop" (the camera without the foreground).
    """
    height, width = rgb8.shape[:2]
    image = find_capture(kind, frame, view)
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True)
        image.use_fake_user = True
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    # Conditions are data for the ControlNet, not colours to manage: stored exactly.
    image.colorspace_settings.name = "Non-Color"
    set_pixels(image, rgb8.astype(np.float32) / 255.0)
    image.pack()
    set_recipe(image, {**recipe, "kind": kind, "frame": frame, "capture": 1, "view": view})
    return image


def find_capture(kind: str, frame: int, view: str = "camera") -> bpy.types.Image | None:
    """Our capture of `kind` at `frame` seen from `view`, if there is one."""
    for image in bpy.data.images:
        recipe = get_recipe(image)
        if recipe.get("capture") and recipe.get("kind") == kind and recipe.get("frame") == frame \
                and recipe.get("view", "camera") == view:
            return image
    return None


def condition_pixels(image: bpy.types.Image) -> np.ndarray:
    """An image used as a condition, as HxWx3 uint8 (its stored values, no colour management)."""
    return np.clip(np.round(get_pixels(image)[..., :3] * 255.0), 0, 255).astype(np.uint8)


def write_text(name: str, kind: str, frame: int, body: str) -> bpy.types.Text:
    """A text datablock (e.g. OpenPose JSON), replacing our own earlier one of that kind and frame."""
    text = next((t for t in bpy.data.texts
                 if get_recipe(t).get("kind") == kind and get_recipe(t).get("frame") == frame), None)
    if text is None:
        text = bpy.data.texts.new(name)
        text.use_fake_user = True
    text.clear()
    text.write(body)
    set_recipe(text, {"kind": kind, "frame": frame})
    return text


PREVIEW_NAME = "Diffusion Preview"


def show_preview(rgb: np.ndarray) -> bpy.types.Image:
    """Write a step preview into the one preview image (ours, tagged), shown in Image Editors.

    Only an image tagged as our preview is reused; one the person made with that name is left
    alone and a new one is made beside it.
    """
    height, width = rgb.shape[:2]
    image = next((i for i in bpy.data.images if get_recipe(i).get("kind") == "preview"), None)
    if image is None:
        image = bpy.data.images.new(PREVIEW_NAME, width, height, alpha=True)
        set_recipe(image, {"kind": "preview"})
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    set_pixels(image, rgb)
    show_in_image_editors(image)
    return image


def show_in_image_editors(image: bpy.types.Image) -> int:
    """Show the image in every open Image Editor (none exist headless); returns how many."""
    shown = 0
    for area in windows.areas({'IMAGE_EDITOR'}):
        area.spaces.active.image = image
        shown += 1
    return shown
