# SPDX-License-Identifier: GPL-3.0-or-later
"""An animation's frames on disk: 8-bit PNGs named by frame number, each carrying its
recipe, a settings file beside them, and what a resumed run continues from.

Why 8-bit PNGs are the truth: the next frame starts from the previous frame as read back
from its PNG, so a run resumed from disk sees exactly what an uninterrupted run saw, and
its frames come out bit for bit the same. The settings hash says whether the frames on
disk were made with the settings of the run that wants to continue them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from . import threads
from .errors import DiffusionError

__all__ = ["DEFLATE_CODERS", "RECIPE_KEY", "SETTINGS_FILE", "FrameFile", "Resume", "deflate_coder", "frame_path",
           "frames_on_disk", "png_bytes", "read_frame", "read_recipe", "resume_point", "settings_hash", "to_bytes",
           "to_float", "write_frame", "write_settings"]

RECIPE_KEY = "scene_diffusion"  # the PNG text chunk holding a frame's recipe (JSON)
SETTINGS_FILE = "scene_diffusion_settings.json"
_FRAME_NAME = re.compile(r"^(\d{4,})\.png$")


@dataclass(frozen=True)
class FrameFile:
    frame: int
    path: str


@dataclass(frozen=True)
class Resume:
    """Where a run over frames start..end continues: `next_frame` (start when nothing is
    on disk), and the frames already there (kept, never rewritten)."""
    next_frame: int
    done: tuple[FrameFile, ...]

    @property
    def previous(self) -> FrameFile | None:
        return self.done[-1] if self.done else None


def frame_path(folder: str, frame: int) -> str:
    """The PNG of `frame`: 0001.png, ... (four digits at least, Blender's sequence padding)."""
    return os.path.join(folder, f"{frame:04d}.png")


def settings_hash(settings: dict) -> str:
    """A short hash of everything that decides the frames' pixels (JSON, keys sorted)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def to_bytes(image: np.ndarray) -> np.ndarray:
    """HxWx3 float 0..1 as the 8-bit values its PNG holds (round half up, as Blender saves)."""
    scaled = np.clip(image, 0.0, 1.0)  # a new array: scaled in place
    scaled *= 255.0
    scaled += 0.5
    return scaled.astype(np.uint8)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels as float32 0..1, in one pass (the same values as astype then / 255)."""
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def write_frame(folder: str, frame: int, rgb8: np.ndarray, recipe: dict) -> str:
    """Write one frame as an 8-bit PNG with its recipe, atomically: a frame on disk is
    always whole (a stop mid-write leaves no half frame that a resume would trust).
    Refuses to overwrite a frame already there."""
    path = frame_path(folder, frame)
    if os.path.exists(path):
        raise DiffusionError(f"Frame {frame} is already on disk ({path})",
                             "frames already made are never rewritten: pick another folder, or resume")
    data = png_bytes(rgb8, {RECIPE_KEY: json.dumps(recipe, sort_keys=True, default=str)})
    partial = path + ".partial"
    try:
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    except OSError as error:
        if os.path.exists(partial):
            os.remove(partial)
        raise DiffusionError(f"Could not write frame {frame} to {folder}: {error.strerror or error}",
                             "free some disk space or pick another output folder; the frames before it are kept"
                             ) from error
    return path


def png_bytes(rgb8: np.ndarray, texts: dict[str, str], coder: str | None = None) -> bytes:
    """An 8-bit RGB PNG with UTF-8 text chunks (iTXt), written here: every row with the "Up"
    filter (its difference from the row above, one numpy subtraction), deflated by `coder`
    (`deflate_coder`: ISA-L's level 1 where it is installed, else zlib's Huffman-only coding).
    Measured at 512² on a grainy frame, one thread: ISA-L 3.2 ms, zlib 8-11 ms (1 % smaller),
    OpenCV's coder with Huffman-only compression 33 ms (libpng tries every filter on every
    row), PIL's at level 1 65 ms. Bands of rows are deflated side by side: each band refers to
    nothing before it, so they join into one stream (and cost no size with Huffman-only)."""
    import struct

    deflate_module = deflate_coder(coder)
    rgb8 = np.ascontiguousarray(rgb8, dtype=np.uint8)
    if rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise DiffusionError(f"A frame must be HxWx3 bytes, not {rgb8.shape}", "report this as a bug")
    height, width = rgb8.shape[:2]
    rows = rgb8.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), np.uint8)
    filtered[:, 0] = 2  # the Up filter
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps modulo 256, as PNG's filter does
    count = max(1, min(threads.workers(), height * width // PNG_BAND_PIXELS))
    edges = [height * index // count for index in range(count + 1)]

    def deflate(band: int) -> bytes:
        # Raw deflate: each band's blocks end on a byte boundary (a sync flush), the last
        # band's finish the stream, so they join into one stream.
        packer = _raw_deflater(deflate_module)
        last = band == count - 1
        part = filtered[edges[band]:edges[band + 1]]
        return packer.compress(part) + packer.flush(deflate_module.Z_FINISH if last else deflate_module.Z_SYNC_FLUSH)

    parts = [deflate(0)] if count == 1 else list(threads.pool().map(deflate, range(count)))
    # The zlib wrapping: its header (deflate, 32K window, fastest; a multiple of 31) and the
    # Adler-32 of all the filtered rows.
    checksum = deflate_module.adler32(filtered) & 0xFFFFFFFF
    pixels = b"".join([b"\x78\x01", *parts, struct.pack(">I", checksum)])

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = deflate_module.crc32(body, deflate_module.crc32(kind)) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    notes = [chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))  # no compression/language
             for key, text in texts.items()]
    return b"".join([b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), *notes, chunk(b"IDAT", pixels),
                     chunk(b"IEND", b"")])


DEFLATE_CODERS = ("isal", "zlib")


def deflate_coder(name: str | None = None) -> ModuleType:
    """The module frames are deflated with (zlib's interface): `isal` (ISA-L's isal_zlib, from
    the extension's dependencies) or `zlib` (Python's own); None: ISA-L where it is installed,
    zlib otherwise (dependencies not installed yet, or a platform without its wheel)."""
    if name not in (None, *DEFLATE_CODERS):
        raise DiffusionError(f"Unknown deflate coder {name!r}", "use " + " or ".join(DEFLATE_CODERS))
    if name in (None, "isal"):
        try:
            from isal import isal_zlib
        except ImportError:
            if name == "isal":
                raise DiffusionError("The isal package is not installed",
                                     "install the extension's dependencies (Preferences > Add-ons)") from None
        else:
            return isal_zlib
    import zlib
    return zlib


def _raw_deflater(module: ModuleType):
    """A raw deflate stream (no zlib header) at the coder's fastest setting: ISA-L's level 1
    (level 0 was no faster and 76 % larger), zlib's Huffman-only coding (its level 1 with
    matching is slower and larger on grainy frames)."""
    if module.__name__.endswith("isal_zlib"):
        return module.compressobj(1, module.DEFLATED, -15, 9)
    return module.compressobj(1, module.DEFLATED, -15, 9, module.Z_HUFFMAN_ONLY)


# Frames smaller than two of these are deflated in one piece.
PNG_BAND_PIXELS = 128 * 128


def read_frame(path: str) -> np.ndarray:
    """HxWx3 uint8 RGB of a frame PNG."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_recipe(path: str) -> dict:
    from PIL import Image

    with Image.open(path) as image:
        text = image.info.get(RECIPE_KEY)
    return json.loads(text) if text else {}


def write_settings(folder: str, settings: dict, digest: str) -> str:
    """The settings file beside the frames: what made them, and its hash."""
    path = os.path.join(folder, SETTINGS_FILE)
    # Written whole then renamed: shots rendered at once on a farm share the folder.
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump({"hash": digest, "settings": settings}, f, indent=1, sort_keys=True, default=str)
    os.replace(partial, path)
    return path


def frames_on_disk(folder: str) -> list[FrameFile]:
    """Every frame PNG in `folder`, by frame number (half-written `.partial` files are not frames)."""
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        match = _FRAME_NAME.match(name)
        if match:
            found.append(FrameFile(int(match.group(1)), os.path.join(folder, name)))
    return sorted(found, key=lambda f: f.frame)


def resume_point(folder: str, digest: str, start: int, end: int, resume: bool) -> Resume:
    """Where a run over start..end writing into `folder` begins.

    resume off: the range must have no frames on disk yet (they are never overwritten).
    resume on: continue after the last frame of an unbroken run from `start` whose recipes
    carry `digest`; a frame made with other settings is refused, saying which.
    """
    frames = [f for f in frames_on_disk(folder) if start <= f.frame <= end]
    if not resume:
        if frames:
            raise DiffusionError(
                f"{len(frames)} frame{'s' if len(frames) != 1 else ''} of {start}–{end} "
                f"{'are' if len(frames) != 1 else 'is'} already in {folder} (from {frames[0].frame})",
                "turn on Resume to continue them, or pick another output folder")
        return Resume(start, ())
    done = []
    expected = start
    for frame_file in frames:
        if frame_file.frame != expected:
            break  # a gap: continue from the first missing frame; later ones are left alone
        recipe = read_recipe(frame_file.path)
        if recipe.get("settings_hash") != digest:
            raise DiffusionError(
                f"Frame {frame_file.frame} in {folder} was made with other settings "
                f"({recipe.get('settings_hash') or 'no recipe'}, these are {digest})",
                "resume only with the settings that made the frames, or pick another output folder")
        done.append(frame_file)
        expected += 1
    later = [f for f in frames if f.frame >= expected]
    if later:
        raise DiffusionError(f"Frame {later[0].frame} is on disk after the missing frame {expected}",
                             "remove the frames after the gap, or pick another output folder")
    return Resume(expected, tuple(done))
