# SPDX-License-Identifier: GPL-3.0-or-later
"""An animation's frames back in Blender: an image datablock of source SEQUENCE on the PNGs,
and a video made by Blender's own FFmpeg.

The video is rendered by a temporary scene whose sequencer holds the frames as one image
strip (FACTS.md: 5.0 `strips`, 4.x `sequences`; 5.0 needs `media_type = 'VIDEO'` before the
FFmpeg format), removed afterwards: nothing of the person's scene or render settings is
touched.
"""
from __future__ import annotations

import os

import bpy

from ..engine.errors import DiffusionError
from . import images

__all__ = ["show_sequence", "write_video"]

_TEMPORARY = ".scene_diffusion_video"


def show_sequence(name: str, first_path: str, frame_start: int, count: int, recipe: dict) -> bpy.types.Image:
    """An image of source SEQUENCE on the frame PNGs from `first_path`, playing `count`
    frames from `frame_start` (our earlier one of the same name and folder is reused)."""
    path = bpy.path.relpath(first_path) if bpy.data.filepath else first_path
    image = next((i for i in bpy.data.images if i.source == 'SEQUENCE' and images.get_recipe(i).get("kind") ==
                  "animation" and os.path.dirname(bpy.path.abspath(i.filepath)) == os.path.dirname(first_path)),
                 None)
    if image is None:
        # Made empty and pointed at the files, not loaded from the first PNG and switched to a
        # sequence: on bpy 4.5.15 the switch after a load segfaulted about one run in five
        # (in a command-line animation; faulthandler showed this line).
        image = bpy.data.images.new(name, 8, 8)
    image.source = 'SEQUENCE'
    image.filepath = path
    images.set_recipe(image, {**recipe, "kind": "animation", "frame_start": frame_start, "frames": count})
    image.reload()
    return image


def write_video(paths: list[str], fps: float, out_path: str) -> str:
    """An H.264 MP4 of the PNGs `paths` (in order) at `fps`, written with Blender's FFmpeg."""
    if not paths:
        raise DiffusionError("There are no frames to make a video of", "render some frames first")
    width, height = _size(paths[0])
    scene = bpy.data.scenes.new(_TEMPORARY)
    try:
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences
        strip = strips.new_image("frames", paths[0], 1, 1)
        folder = os.path.dirname(paths[0])
        for path in paths[1:]:
            if os.path.dirname(path) != folder:
                raise ValueError("the frames of one video must be in one folder")
            strip.elements.append(os.path.basename(path))
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.fps, render.fps_base = _fps(fps)
        scene.frame_start, scene.frame_end = 1, len(paths)
        settings = render.image_settings
        if hasattr(settings, "media_type"):
            settings.media_type = 'VIDEO'
        settings.file_format = 'FFMPEG'
        render.ffmpeg.format = 'MPEG4'
        render.ffmpeg.codec = 'H264'
        render.ffmpeg.constant_rate_factor = 'HIGH'
        render.use_sequencer = True
        render.use_compositing = False
        render.use_file_extension = False
        render.filepath = out_path
        # The operator's `scene` picks the scene (and its frame range) to render: no context
        # override, which is what races with Python on other threads (scripts/check_render_beside_python.py).
        bpy.ops.render.render(animation=True, scene=scene.name)
    except RuntimeError as error:
        raise DiffusionError("Blender could not write the video", str(error)) from error
    finally:
        bpy.data.scenes.remove(scene)
    if not os.path.exists(out_path):
        raise DiffusionError(f"Blender wrote no video at {out_path}", "check the console for FFmpeg errors")
    return out_path


def _size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _fps(fps: float) -> tuple[int, float]:
    """Blender's fps and fps_base for a frame rate (23.976 = 24 / 1.001)."""
    whole = round(fps)
    if abs(whole - fps) < 1e-6:
        return int(whole), 1.0
    return int(whole), whole / fps
