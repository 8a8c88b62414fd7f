# SPDX-License-Identifier: GPL-3.0-or-later
"""A small pure-numpy reader for the uncompressed OpenEXR files our capture renders write.

Why not Blender's own loader: an image datablock shows one pass of a multilayer EXR at a
time, and reading it back costs a datablock in the person's file. Why not OpenImageIO: the
bpy module does not put it on sys.path. Uncompressed scanline EXR is simple enough to read
with a few numpy views, fast (a 512x512 float channel in well under a millisecond), and
this module never imports bpy, so it is tested without Blender.

Supported: scanline images, single-part (Blender 4.x multilayer) and multi-part (Blender
5.x multilayer, one part per pass), compression NONE, HALF/FLOAT/UINT channels without
subsampling. Anything else raises ValueError (our renders never produce it).
Format reference: https://openexr.com/en/latest/OpenEXRFileLayout.html
"""
from __future__ import annotations

import struct

import numpy as np

__all__ = ["read_exr", "write_exr"]

_MAGIC = 20000630
_FLAG_TILED = 0x200
_FLAG_DEEP = 0x800
_FLAG_MULTIPART = 0x1000
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_COMPRESSION_NONE = 0


def read_exr(path: str, channels: tuple[str, ...] | None = None,
             metadata: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Channels of an uncompressed scanline EXR file.

    Returns full channel name ("ViewLayer.Depth.Z") -> HxW float32 array, rows top-down
    (row 0 = top of the image, as EXR stores it and numpy images expect). UINT channels
    are returned as float32 too. `channels` limits the result (and the work) to those names.
    metadata: when given, filled with the string attributes of every part's header (Blender
    writes its stamp and the cryptomatte manifests there).
    """
    with open(path, "rb") as file:
        data = file.read()
    return decode_exr(data, channels, metadata)


def decode_exr(data: bytes, channels: tuple[str, ...] | None = None,
               metadata: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Like `read_exr`, from the file's bytes."""
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _MAGIC:
        raise ValueError("not an OpenEXR file")
    flags = struct.unpack_from("<i", data, 4)[0]
    if flags & _FLAG_TILED or flags & _FLAG_DEEP:
        raise ValueError("tiled and deep EXR files are not supported")
    multipart = bool(flags & _FLAG_MULTIPART)
    pos = 8
    headers: list[dict[str, object]] = []
    while True:
        header, pos = _read_header(data, pos)
        headers.append(header)
        if metadata is not None:
            metadata.update(header.get("strings", {}))
        if not multipart:
            break
        if data[pos] == 0:  # an empty header ends the list of parts
            pos += 1
            break
    wanted = None if channels is None else set(channels)
    result: dict[str, np.ndarray] = {}
    # The offset tables of all parts follow the headers, in part order.
    for part_number, header in enumerate(headers):
        n_chunks = _chunk_count(header)
        table = pos
        pos += 8 * n_chunks
        names = [name for name, _ in header["channels"]]
        if wanted is not None and wanted.isdisjoint(names):
            continue
        offsets = np.frombuffer(data, dtype="<u8", count=n_chunks, offset=table).astype(np.int64)
        result.update(_read_part(data, header, offsets, part_number if multipart else None, wanted))
    if wanted is not None and wanted - result.keys():
        raise ValueError(f"channels not in the file: {sorted(wanted - result.keys())}")
    return result


def _read_header(data: bytes, pos: int) -> tuple[dict[str, object], int]:
    header: dict[str, object] = {}
    while data[pos] != 0:
        name, pos = _read_cstring(data, pos)
        kind, pos = _read_cstring(data, pos)
        size = struct.unpack_from("<i", data, pos)[0]
        pos += 4
        value = data[pos:pos + size]
        pos += size
        if kind == "chlist":
            header["channels"] = _parse_channels(value)
        elif kind == "box2i":
            header[name] = struct.unpack("<4i", value)
        elif kind in ("compression", "lineOrder"):
            header[name] = value[0]
        elif kind == "int":
            header[name] = struct.unpack("<i", value)[0]
        elif kind == "string":
            header[name] = value.decode("utf-8", "replace")
            header.setdefault("strings", {})[name] = header[name]
    return header, pos + 1


def _read_cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _parse_channels(value: bytes) -> list[tuple[str, np.dtype]]:
    channels = []
    pos = 0
    while value[pos] != 0:
        name, pos = _read_cstring(value, pos)
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        if pixel_type not in _PIXEL_TYPES:
            raise ValueError(f"unknown EXR pixel type {pixel_type} for channel {name!r}")
        if x_sampling != 1 or y_sampling != 1:
            raise ValueError(f"subsampled EXR channel {name!r} is not supported")
        channels.append((name, _PIXEL_TYPES[pixel_type]))
    return channels


def _chunk_count(header: dict[str, object]) -> int:
    if "chunkCount" in header:
        return int(header["chunkCount"])
    xmin, ymin, xmax, ymax = header["dataWindow"]
    return ymax - ymin + 1  # uncompressed: one scanline per chunk


def _read_part(data: bytes, header: dict[str, object], offsets: np.ndarray,
               part_number: int | None, wanted: set[str] | None) -> dict[str, np.ndarray]:
    if header.get("type", "scanlineimage") != "scanlineimage":
        raise ValueError(f"EXR part type {header['type']!r} is not supported")
    if header.get("compression") != _COMPRESSION_NONE:
        raise ValueError("compressed EXR files are not supported: write them with codec NONE")
    xmin, ymin, xmax, ymax = header["dataWindow"]
    width, height = xmax - xmin + 1, ymax - ymin + 1
    channels = header["channels"]
    line_bytes = sum(width * dtype.itemsize for _, dtype in channels)
    prefix = 0 if part_number is None else 4  # multi-part chunks start with their part number
    chunk = prefix + 8 + line_bytes
    buffer = np.frombuffer(data, dtype=np.uint8)
    if len(offsets) != height or offsets.min() < 0 or offsets.max() + chunk > len(buffer):
        raise ValueError("EXR offset table does not match an uncompressed scanline image")
    first = int(offsets[0])
    if np.all(np.diff(offsets) == chunk):
        # The usual case: scanlines stored back to back, so the whole part is one reshape.
        block = buffer[first:first + height * chunk].reshape(height, chunk)
    else:
        block = buffer[offsets[:, None] + np.arange(chunk)]
    head = np.ascontiguousarray(block[:, :prefix + 8]).view("<i4")
    ys, sizes = head[:, -2], head[:, -1]
    if np.any(sizes != line_bytes) or (prefix and np.any(head[:, 0] != part_number)):
        raise ValueError("EXR scanline chunks do not match the header")
    rows = ys - ymin
    if np.any(rows < 0) or np.any(rows >= height) or len(np.unique(rows)) != height:
        raise ValueError("EXR scanline rows are out of the data window")
    result = {}
    start = prefix + 8
    for name, dtype in channels:  # stored in the header's (alphabetical) channel order
        stop = start + width * dtype.itemsize
        if wanted is None or name in wanted:
            values = np.ascontiguousarray(block[:, start:stop]).view(dtype).astype(np.float32)
            image = np.empty((height, width), np.float32)
            image[rows] = values
            result[name] = image
        start = stop
    return result


def write_exr(path: str, channels: dict[str, np.ndarray]) -> None:
    """Write HxW float32 channels as a single-part uncompressed scanline EXR (rows top-down).

    The counterpart of `read_exr`, for tests and for tools that hand depth to other programs.
    """
    if not channels:
        raise ValueError("write_exr needs at least one channel")
    names = sorted(channels)  # EXR requires channels sorted by name
    arrays = [np.asarray(channels[name], dtype="<f4") for name in names]
    height, width = arrays[0].shape
    if any(a.shape != (height, width) for a in arrays):
        raise ValueError("all channels must have the same HxW shape")

    def attribute(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"".join([
        struct.pack("<ii", _MAGIC, 2),
        attribute("channels", "chlist", chlist),
        attribute("compression", "compression", b"\0"),
        attribute("dataWindow", "box2i", window),
        attribute("displayWindow", "box2i", window),
        attribute("lineOrder", "lineOrder", b"\0"),
        attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        b"\0",
    ])
    line_bytes = 4 * width * len(names)
    chunk = 8 + line_bytes
    table_end = len(header) + 8 * height
    offsets = table_end + chunk * np.arange(height, dtype="<u8")
    lines = np.empty((height, chunk), np.uint8)
    lines[:, :8] = np.stack([np.arange(height), np.full(height, line_bytes)], 1).astype("<i4").view(np.uint8)
    pixels = np.concatenate(arrays, axis=1)  # per scanline: each channel's row in turn
    lines[:, 8:] = np.ascontiguousarray(pixels).view(np.uint8)
    with open(path, "wb") as file:
        file.write(header)
        file.write(offsets.astype("<u8").tobytes())
        file.write(lines.tobytes())
