# SPDX-License-Identifier: GPL-3.0-or-later
"""Frames on disk: PNGs with their recipe, written whole or not at all, never overwritten,
and where a resumed run continues."""
import os

import numpy as np
import pytest
from PIL import Image

from engine.errors import DiffusionError
from engine.frame_files import (
    DEFLATE_CODERS, deflate_coder, frame_path, frames_on_disk, png_bytes, read_frame, read_recipe, resume_point,
    settings_hash, to_bytes, write_frame, write_settings,
)


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def test_a_frame_round_trips_its_pixels_and_recipe_through_its_png(tmp_path):
    pixels = image(1)
    path = write_frame(str(tmp_path), 7, pixels, {"prompt": "a fox — Füchsin, 狐", "seed": 3, "settings_hash": "abc"})
    assert os.path.basename(path) == "0007.png"
    assert np.array_equal(read_frame(path), pixels)
    assert np.array_equal(np.asarray(Image.open(path)), pixels)  # PIL's own reading
    assert read_recipe(path) == {"prompt": "a fox — Füchsin, 狐", "seed": 3, "settings_hash": "abc"}
    assert Image.open(path).info["scene_diffusion"].startswith("{")  # a text chunk any PNG reader sees
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]


@pytest.mark.parametrize("coder", DEFLATE_CODERS)
@pytest.mark.parametrize("bands", [1, 3])
def test_a_frame_deflated_in_bands_is_one_valid_png(tmp_path, monkeypatch, bands, coder):
    """Large frames are deflated in bands of rows on threads, by either coder: still one zlib
    stream whose checksums zlib and PIL verify, holding the pixels exactly."""
    import struct
    import zlib

    import engine.frame_files as frame_files
    import engine.threads as threads
    monkeypatch.setattr(frame_files, "PNG_BAND_PIXELS", 1)
    monkeypatch.setattr(threads, "workers", lambda: bands)
    pixels = np.random.default_rng(4).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    pixels[20:] = pixels[20]  # some rows that compress
    data = png_bytes(pixels, {"scene_diffusion": '{"frame": 1}'}, coder)
    at = data.index(b"IDAT")
    stream = data[at + 4:at + 4 + struct.unpack(">I", data[at - 4:at])[0]]
    rows = zlib.decompress(stream)  # checks the Adler-32 of the whole stream
    assert len(rows) == 37 * (29 * 3 + 1)
    assert len(stream) < len(rows) * 0.8  # compressed, not stored
    path = tmp_path / "0001.png"
    path.write_bytes(data)
    with Image.open(path) as png:
        png.load()  # PIL checks every chunk's CRC
        assert png.info["scene_diffusion"] == '{"frame": 1}'
        assert np.array_equal(np.asarray(png), pixels)
    assert np.array_equal(read_frame(str(path)), pixels)


def test_frames_are_deflated_by_isa_l_when_it_is_installed():
    """The dependencies install isal: the frames take its coder, ~3x zlib's fastest."""
    from isal import isal_zlib
    assert deflate_coder() is isal_zlib
    with pytest.raises(DiffusionError, match="Unknown deflate coder"):
        deflate_coder("zstd")


def test_a_frame_is_never_overwritten(tmp_path):
    write_frame(str(tmp_path), 1, image(1), {})
    with pytest.raises(DiffusionError, match="already on disk"):
        write_frame(str(tmp_path), 1, image(2), {})
    assert np.array_equal(read_frame(frame_path(str(tmp_path), 1)), image(1))


def test_to_bytes_rounds_as_an_8_bit_png_holds_it():
    values = np.array([[[0.0, 0.5 / 255, 1.49 / 255]], [[1.0, 1.2, -0.1]]], np.float32)
    assert to_bytes(values).tolist() == [[[0, 1, 1]], [[255, 255, 0]]]


def test_the_settings_hash_follows_the_settings_not_their_order():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_resume_continues_after_the_last_whole_frame_of_these_settings(tmp_path):
    folder = str(tmp_path)
    for frame in (3, 4, 5):
        write_frame(folder, frame, image(frame), {"settings_hash": "h1"})
    open(os.path.join(folder, "0006.png.partial"), "wb").close()  # a frame cut off mid-write
    write_settings(folder, {"x": 1}, "h1")
    assert [f.frame for f in frames_on_disk(folder)] == [3, 4, 5]
    resume = resume_point(folder, "h1", 3, 10, resume=True)
    assert resume.next_frame == 6 and resume.previous.frame == 5
    assert resume_point(str(tmp_path / "new"), "h1", 3, 10, resume=True).next_frame == 3


def test_resume_refuses_other_settings_and_a_fresh_run_refuses_frames_in_the_way(tmp_path):
    folder = str(tmp_path)
    write_frame(folder, 1, image(1), {"settings_hash": "h1"})
    write_frame(folder, 2, image(2), {"settings_hash": "h2"})
    with pytest.raises(DiffusionError, match="Frame 2 .* was made with other settings"):
        resume_point(folder, "h1", 1, 4, resume=True)
    with pytest.raises(DiffusionError, match="2 frames of 1–4 are already in"):
        resume_point(folder, "h1", 1, 4, resume=False)
    assert resume_point(folder, "h1", 5, 9, resume=False).next_frame == 5  # another range is free


def test_a_gap_is_refused_when_frames_follow_it(tmp_path):
    folder = str(tmp_path)
    for frame in (1, 2, 4):
        write_frame(folder, frame, image(frame), {"settings_hash": "h"})
    with pytest.raises(DiffusionError, match="Frame 4 is on disk after the missing frame 3"):
        resume_point(folder, "h", 1, 6, resume=True)


def test_an_unwritable_folder_says_so_and_leaves_no_partial(tmp_path):
    not_a_folder = tmp_path / "frames"
    not_a_folder.write_text("a file where the folder should be")
    with pytest.raises(DiffusionError, match="Could not write frame 1") as raised:
        write_frame(str(not_a_folder), 1, image(1), {})
    assert "the frames before it are kept" in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == ["frames"]
