# SPDX-License-Identifier: GPL-3.0-or-later
"""An animation back in Blender: the PNGs as an image sequence datablock, and a video made
with Blender's own FFmpeg, read back with Blender's movie clip reader."""
from importlib import import_module

import numpy as np
import pytest


@pytest.fixture
def sequence(extension):
    return import_module(f"{extension.__name__}.scene.sequence")


@pytest.fixture
def frames(tmp_path, extension):
    files = import_module(f"{extension.__name__}.engine.frame_files")
    paths = []
    for frame in range(3, 8):
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[..., 0] = 40 * frame  # each frame its own red
        paths.append(files.write_frame(str(tmp_path), frame, rgb, {"settings_hash": "h"}))
    return paths


def test_the_frames_become_an_image_sequence(empty_scene, sequence, frames, extension):
    import bpy
    images = import_module(f"{extension.__name__}.scene.images")
    image = sequence.show_sequence("Animation", frames[0], 3, 5, {"prompt": "a fox"})
    # (Blender loads a sequence's pixels only for an Image Editor's frame: not headless.)
    assert image.source == 'SEQUENCE' and bpy.path.abspath(image.filepath) == frames[0]
    recipe = images.get_recipe(image)
    assert recipe["kind"] == "animation" and recipe["frames"] == 5 and recipe["prompt"] == "a fox"
    # Running again on the same folder reuses it.
    again = sequence.show_sequence("Animation", frames[0], 3, 5, {"prompt": "a fox"})
    assert again == image and len([i for i in bpy.data.images if i.source == 'SEQUENCE']) == 1


def test_the_video_has_as_many_frames_as_the_pngs(empty_scene, sequence, frames, tmp_path):
    import bpy
    scenes_before = {scene.name for scene in bpy.data.scenes}
    path = sequence.write_video(frames, 24.0, str(tmp_path / "animation.mp4"))
    clip = bpy.data.movieclips.load(path)
    assert clip.frame_duration == len(frames) and tuple(clip.size) == (64, 48)
    assert {scene.name for scene in bpy.data.scenes} == scenes_before
    assert empty_scene.render.image_settings.file_format != 'FFMPEG'  # the person's settings untouched
