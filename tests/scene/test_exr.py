# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure-numpy EXR reader: round trips without Blender, and the files Blender writes."""
import struct

import numpy as np
import pytest

from scene.exr import decode_exr, read_exr, write_exr


def test_round_trip_keeps_values_names_and_row_order(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 100.0, (5, 7)).astype(np.float32)
    depth[0, :] = 1e10  # background rows stay exact
    normal = rng.standard_normal((5, 7)).astype(np.float32)
    path = str(tmp_path / "t.exr")
    write_exr(path, {"Layer.Depth.Z": depth, "Layer.Normal.X": normal})
    channels = read_exr(path)
    assert sorted(channels) == ["Layer.Depth.Z", "Layer.Normal.X"]
    assert np.array_equal(channels["Layer.Depth.Z"], depth)
    assert np.array_equal(channels["Layer.Normal.X"], normal)
    assert channels["Layer.Depth.Z"].dtype == np.float32


def test_reading_only_some_channels(tmp_path):
    path = str(tmp_path / "t.exr")
    write_exr(path, {"A": np.zeros((2, 3)), "B": np.ones((2, 3))})
    assert list(read_exr(path, ("B",))) == ["B"]
    with pytest.raises(ValueError, match="not in the file"):
        read_exr(path, ("C",))


def test_scanlines_out_of_order_are_placed_by_their_y(tmp_path):
    path = str(tmp_path / "t.exr")
    image = np.arange(12, dtype=np.float32).reshape(4, 3)
    write_exr(path, {"Z": image})
    data = bytearray(open(path, "rb").read())
    # Swap the first two scanline chunks and their offsets: RANDOM_Y order is legal EXR.
    offsets_at = len(data) - 4 * (8 + 3 * 4) - 8 * 4  # 4 chunks of 3 floats, 4 offsets
    offsets = list(struct.unpack_from("<4Q", data, offsets_at))
    first, second = bytes(data[offsets[0]:offsets[1]]), bytes(data[offsets[1]:offsets[2]])
    data[offsets[0]:offsets[2]] = second + first
    offsets[0], offsets[1] = offsets[0] + len(second), offsets[0]
    struct.pack_into("<4Q", data, offsets_at, *offsets)
    assert np.array_equal(decode_exr(bytes(data))["Z"], image)


def test_what_it_cannot_read_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="not an OpenEXR"):
        decode_exr(b"\x89PNG\r\n\x1a\n....")
    path = str(tmp_path / "t.exr")
    write_exr(path, {"Z": np.zeros((2, 2))})
    data = open(path, "rb").read()
    marker = b"compression\0compression\0" + struct.pack("<i", 1)
    zip_compressed = data.replace(marker + b"\0", marker + b"\3")
    with pytest.raises(ValueError, match="compressed"):
        decode_exr(zip_compressed)
    tiled = data[:4] + struct.pack("<i", 2 | 0x200) + data[8:]
    with pytest.raises(ValueError, match="tiled"):
        decode_exr(tiled)


def test_blender_multi_part_and_single_part_files_read_the_same(extension, empty_scene, tmp_path):
    """Blender 5 writes one part per pass; "interleaved" is the single-part layout of 4.x."""
    import math
    from importlib import import_module

    import bpy
    render = import_module(f"{extension.__name__}.scene.render")
    scene = empty_scene
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    bpy.ops.mesh.primitive_uv_sphere_add(location=(0.5, 0.0, 0.5))
    read = {}
    for interleave in (False, True):
        path = str(tmp_path / f"{interleave}.exr")
        with render._temporary_scene(scene.copy()) as copy, \
                render._temporary_scene(bpy.data.scenes.new("clock")) as clock:
            render._configure(copy, "ViewLayer", ("z", "normal"), 32, 24, path)
            if not hasattr(copy.render.image_settings, "use_exr_interleave"):
                pytest.skip("this Blender writes only one EXR layout")
            copy.render.image_settings.use_exr_interleave = interleave
            clock.render.engine = 'CYCLES'
            render._render(copy, clock)
        with open(path, "rb") as file:
            multipart = bool(struct.unpack_from("<i", file.read(8), 4)[0] & 0x1000)
        assert multipart != interleave
        read[interleave] = read_exr(path)
    assert sorted(read[False]) == sorted(read[True])
    for name, image in read[False].items():
        assert image.shape == (24, 32)
        assert np.array_equal(image, read[True][name]), name
    z = read[False]["ViewLayer.Depth.Z"]
    assert (z < 1e9).any() and (z == 1e10).any()
