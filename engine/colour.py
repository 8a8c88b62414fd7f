# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's per-frame adjustments of the warped previous frame, before img2img: colour
coherence (histogram matching to a reference frame), contrast, anti-blur (unsharp mask) and
noise, in that order (sd-webui-deforum's render.py, colors.py, image_sharpening.py, noise.py).

Images in and out are HxWx3 float32 0..1 RGB. Deforum works on 8-bit frames, so every step
here rounds the image to 8 bits once and computes on those bytes as Deforum does: results
come back on the 8-bit grid (k / 255) and equal Deforum's bytes (tests/engine/test_colour.py
against scripts/deforum_colour_reference.py). Where they differ, and why:

- Colour coherence: Deforum hands its BGR frames to OpenCV's RGB conversions, so its "LAB"
  and "HSV" are those of the frame with red and blue swapped. That is what people's settings
  were tuned with, so it is kept: equal to Deforum's bytes.
- Contrast above 1: Deforum's `astype(uint8)` wraps bytes past 255 round to dark ones; here
  they saturate at 255. Equal wherever Deforum's product stays within 255.
- Unsharp threshold: Deforum subtracts uint8 arrays, so `|image - blurred|` wraps when the
  blur is brighter and such pixels are always sharpened; here the true difference is used.
  Equal wherever the pixel is at least as bright as its blur, and whenever threshold is 0
  (Deforum's default).
- Noise: Deforum draws from torch's CPU generator (reproducible, but 8 ms for a 512x512
  frame here, and 20 ms replayed in numpy); this module draws from OpenCV's (2.3 ms, the same
  on every machine), so a seed gives other noise than in Deforum, with the same distribution
  and the same Perlin envelope. Given Deforum's draws (`noise_image`, `perlin_envelope`),
  bytes are Deforum's, within 1 for a few values in a million (float32 rounding order).
  Deforum stops with an error on uniform noise at sizes that are not multiples of 64 and on
  Perlin cells that do not divide the frame; here the first is stretched as Deforum stretches
  Perlin noise, and the second is a DiffusionError that says what to change.

numpy only at import; cv2 is imported inside the functions that use it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

from . import threads
from .errors import DiffusionError
from .frame_files import to_float

__all__ = ["ColourMode", "ColourReference", "colour_reference", "match_colours", "matched_bytes", "adjust_contrast",
           "unsharp_mask", "NOISE_TYPES", "add_noise", "perlin_envelope", "noise_image",
           "FrameAdjustments", "adjust", "adjust_bytes"]

NOISE_TYPES = ("uniform", "perlin")
_NOISE_GRID = 64  # Deforum draws noise at the frame size rounded down to this, then stretches it


# --- 8-bit frames ----------------------------------------------------------------------------

def _to_bytes(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 from an HxWx3 float image in 0..1 (rounded; out-of-range values saturate)."""
    import cv2  # lazy: enabling the extension must not import OpenCV

    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise DiffusionError(f"Expected an HxWx3 RGB image, got {shape}", "pass the frame as an HxWx3 float array")
    if image.dtype.kind != "f":
        raise DiffusionError(f"Expected a float image in 0..1, got {image.dtype}",
                             "convert 8-bit images with image.astype(np.float32) / 255")
    if image.dtype not in (np.float32, np.float64):
        image = image.astype(np.float32)
    image = np.ascontiguousarray(image)
    # One saturating, rounding pass; the zero-weighted second input is how cv2 spells "scale and cast".
    return cv2.addWeighted(image, 255.0, image, 0.0, 0.0, dtype=cv2.CV_8U)


# --- Colour coherence --------------------------------------------------------------------------

class ColourMode(Enum):
    """Deforum's `color_coherence` values that match to a reference frame."""

    NONE = "None"
    LAB = "LAB"
    HSV = "HSV"
    RGB = "RGB"

    @classmethod
    def parse(cls, text: str | ColourMode) -> ColourMode:
        """A mode from Deforum's setting, current ("LAB") or older ("Match Frame 0 LAB")."""
        if isinstance(text, ColourMode):
            return text
        name = str(text).strip().removeprefix("Match Frame 0 ").strip().upper()
        for mode in cls:
            if mode.value.upper() == name:
                return mode
        raise DiffusionError(f"Unknown colour coherence {text!r}",
                             "use one of " + ", ".join(mode.value for mode in cls))


def _conversions(mode: ColourMode) -> tuple[int | None, int | None]:
    """OpenCV codes into and out of the mode's colour space for our RGB bytes. Deforum converts
    its BGR frames with the RGB codes; the BGR codes on RGB bytes compute exactly that."""
    import cv2

    return {
        ColourMode.LAB: (cv2.COLOR_BGR2LAB, cv2.COLOR_LAB2BGR),
        ColourMode.HSV: (cv2.COLOR_BGR2HSV, cv2.COLOR_HSV2BGR),
        ColourMode.RGB: (None, None),
    }[mode]


def _histograms(image: np.ndarray) -> np.ndarray:
    """3x256 int64: each channel's count of every byte value."""
    import cv2

    if image.shape[0] * image.shape[1] >= 1 << 24:  # calcHist counts in float32: exact below 2**24
        return np.stack([np.bincount(image[..., c].ravel(), minlength=256) for c in range(3)])
    return np.stack([cv2.calcHist([image], [c], None, [256], [0, 256])[:, 0] for c in range(3)]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class ColourReference:
    """A reference frame's channel histograms in every colour space, made once per animation
    by `colour_reference` (saves converting the same frame again on every frame)."""

    counts: dict[ColourMode, np.ndarray]  # mode -> 3x256 int64 counts of its channels
    pixels: int

    def quantiles(self, mode: ColourMode, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """The values present in one channel and the fraction of pixels at or below each."""
        counts = self.counts[mode][channel]
        values = np.nonzero(counts)[0]
        return np.cumsum(counts[values]) / self.pixels, values


def colour_reference(reference: np.ndarray) -> ColourReference:
    """Prepare a reference frame (HxWx3 float32 0..1 RGB) for `match_colours` and `adjust`."""
    import cv2

    reference_bytes = _to_bytes(reference)
    counts = {ColourMode.RGB: _histograms(reference_bytes)}
    for mode in (ColourMode.LAB, ColourMode.HSV):
        counts[mode] = _histograms(cv2.cvtColor(reference_bytes, _conversions(mode)[0]))
    return ColourReference(counts, reference_bytes.shape[0] * reference_bytes.shape[1])


def _match_bytes(image: np.ndarray, reference: ColourReference, mode: ColourMode) -> np.ndarray:
    """skimage.exposure.match_histograms per channel in the mode's space, on bytes, as Deforum's
    maintain_colors. On 8-bit data skimage's mapping is a function of the byte value, so it
    becomes one 256-entry table per channel."""
    import cv2

    into, back = _conversions(mode)
    converted = image if into is None else cv2.cvtColor(image, into)
    source = _histograms(converted)
    pixels = converted.shape[0] * converted.shape[1]
    table = np.empty((256, 1, 3), dtype=np.uint8)
    for channel in range(3):
        target_quantiles, target_values = reference.quantiles(mode, channel)
        source_quantiles = np.cumsum(source[channel]) / pixels
        # float64 -> uint8 truncates, as skimage's store into an image of the input's dtype does.
        table[:, 0, channel] = np.interp(source_quantiles, target_quantiles, target_values).astype(np.uint8)
    # In place where the conversion made a new image (not the caller's).
    matched = cv2.LUT(converted, table, dst=None if into is None else converted)
    return matched if back is None else cv2.cvtColor(matched, back)


def _as_reference(reference: np.ndarray | ColourReference) -> ColourReference:
    return reference if isinstance(reference, ColourReference) else colour_reference(reference)


def match_colours(image: np.ndarray, reference: np.ndarray | ColourReference, mode: ColourMode | str) -> np.ndarray:
    """Deforum's colour coherence: the image's channel histograms in `mode`'s colour space made
    those of the reference frame (an image, or a `colour_reference` made once). HxWx3 float32."""
    return to_float(matched_bytes(image, reference, mode))


def matched_bytes(image: np.ndarray, reference: np.ndarray | ColourReference, mode: ColourMode | str) -> np.ndarray:
    """`match_colours` as the 8-bit frame it rounds to (HxWx3 uint8), for a frame that is
    written next: no round trip through float."""
    mode = ColourMode.parse(mode)
    if mode is ColourMode.NONE:
        return _to_bytes(image)
    return _match_bytes(_to_bytes(image), _as_reference(reference), mode)


# --- Contrast --------------------------------------------------------------------------------

def _check_contrast(contrast: float) -> None:
    if not math.isfinite(contrast) or contrast < 0:
        raise DiffusionError(f"Contrast must be 0 or more, got {contrast}", "1 keeps the frame as it is")


def _contrast_bytes(image: np.ndarray, contrast: float) -> np.ndarray:
    """Deforum's `(prev_img * contrast).round().astype(np.uint8)`, saturating instead of wrapping."""
    import cv2

    table = np.clip(np.round(np.arange(256, dtype=np.float64) * contrast), 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def adjust_contrast(image: np.ndarray, contrast: float) -> np.ndarray:
    """Deforum's contrast schedule: every byte times `contrast` (a scale about black, not about
    mid-grey: it brightens or darkens), rounded. HxWx3 float32."""
    _check_contrast(contrast)
    return to_float(_contrast_bytes(_to_bytes(image), contrast))


# --- Anti-blur ---------------------------------------------------------------------------------

def _check_unsharp(kernel: int, sigma: float, amount: float, threshold: float) -> None:
    if kernel != int(kernel) or kernel < 0 or (kernel > 0 and kernel % 2 == 0):
        raise DiffusionError(f"The anti-blur kernel must be an odd number of pixels, got {kernel}",
                             "use 3, 5, 7, ... (or 0 to size it from sigma)")
    if not math.isfinite(sigma) or sigma < 0 or (kernel == 0 and sigma == 0):
        raise DiffusionError(f"The anti-blur sigma must be 0 or more, got {sigma}",
                             "with kernel 0 it must be above 0; 1 is Deforum's default")
    if not math.isfinite(amount) or amount < 0:
        raise DiffusionError(f"The anti-blur amount must be 0 or more, got {amount}", "0 turns it off")
    if not math.isfinite(threshold) or threshold < 0:
        raise DiffusionError(f"The anti-blur threshold must be 0 or more, got {threshold}",
                             "0 sharpens everywhere")


@lru_cache(maxsize=8)
def _sharpen_table(amount: float) -> np.ndarray:
    """65536 bytes: Deforum's float64 sharpening of each (pixel, blurred) byte pair, looked up
    instead of computed because its rounding at x.5 depends on the float64 products."""
    pixel = np.arange(256, dtype=np.float64)[:, None]
    blurred = np.arange(256, dtype=np.float64)[None, :]
    sharpened = float(amount + 1) * pixel - float(amount) * blurred
    table = np.clip(sharpened, 0, 255).round().astype(np.uint8).ravel()
    table.flags.writeable = False
    return table


def _byte_pairs(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """uint16 high << 8 | low of two uint8 arrays of one shape: their bytes interleaved by
    OpenCV in one pass (in the machine's byte order), instead of three numpy passes."""
    import cv2

    shape = high.shape
    first, second = (low, high) if sys.byteorder == "little" else (high, low)
    pairs = cv2.merge([np.ascontiguousarray(first).reshape(shape[0], -1),
                       np.ascontiguousarray(second).reshape(shape[0], -1)])
    return pairs.view(np.uint16).reshape(shape)


def _unsharp_bytes(image: np.ndarray, kernel: int, sigma: float, amount: float, threshold: float) -> np.ndarray:
    import cv2

    if amount == 0:  # Deforum skips the step (and its rounding) at 0
        return image
    blurred = cv2.GaussianBlur(image, (int(kernel), int(kernel)), sigma)
    sharpened = np.take(_sharpen_table(float(amount)), _byte_pairs(image, blurred))
    if threshold > 0:
        np.copyto(sharpened, image, where=cv2.absdiff(image, blurred) < threshold)
    return sharpened


def unsharp_mask(image: np.ndarray, kernel: int = 5, sigma: float = 1.0, amount: float = 0.1,
                 threshold: float = 0.0) -> np.ndarray:
    """Deforum's anti-blur: image + amount * (image - Gaussian blur (kernel x kernel, sigma)),
    kept as it was where it differs from its blur by less than `threshold` (in 8-bit levels).
    Defaults are Deforum's. HxWx3 float32."""
    _check_unsharp(kernel, sigma, amount, threshold)
    return to_float(_unsharp_bytes(_to_bytes(image), kernel, sigma, amount, threshold))


# --- Noise ---------------------------------------------------------------------------------------

def _noise_grid(height: int, width: int) -> tuple[int, int]:
    return height - height % _NOISE_GRID, width - width % _NOISE_GRID


def _check_noise(amount: float, noise_type: str, perlin_w: float, perlin_h: float, perlin_octaves: int,
                 height: int | None = None, width: int | None = None) -> None:
    """Settings first; with a frame size, also whether Deforum's Perlin lattice fits it."""
    if not math.isfinite(amount) or not 0 <= amount <= 1:
        raise DiffusionError(f"The noise amount must be between 0 and 1, got {amount}", "Deforum's default is 0.065")
    if noise_type not in NOISE_TYPES:
        raise DiffusionError(f"Unknown noise type {noise_type!r}", "use 'uniform' or 'perlin'")
    cells, octaves = (int(perlin_w), int(perlin_h)), int(perlin_octaves)
    if noise_type == "perlin" and (min(cells) < 1 or octaves < 1):
        raise DiffusionError(f"Perlin noise needs at least 1x1 cells and 1 octave, got {perlin_w}x{perlin_h} "
                             f"and {perlin_octaves}", "Deforum's defaults are 8x8 cells and 4 octaves")
    if height is None or width is None or amount == 0:
        return
    grid = _noise_grid(height, width)
    if min(grid) < _NOISE_GRID:
        raise DiffusionError(f"Frames of {width}x{height} are too small for Deforum's noise",
                             "use frames of at least 64x64 pixels")
    finest = (cells[0] << (octaves - 1), cells[1] << (octaves - 1))
    if noise_type == "perlin" and (grid[0] % finest[0] or grid[1] % finest[1]):
        raise DiffusionError(
            f"Perlin noise of {cells[0]}x{cells[1]} cells and {octaves} octaves needs {finest[0]} cells down and "
            f"{finest[1]} across to divide the frame's {grid[0]}x{grid[1]} pixels (its height and width rounded down "
            "to 64); Deforum stops with an error there",
            "use cells that are powers of 2 (8x8 is Deforum's default), fewer octaves, or uniform noise")


def _perlin_octave(height: int, width: int, cells: tuple[int, int], draws: np.ndarray, scale: float,
                   offset: float = 0.0) -> np.ndarray:
    """HxW float32: offset + scale times Deforum's rand_perlin_2d on a grid of cells[0] x cells[1] cells
    whose corner gradients point at angles 2π * draws ((cells[0]+1) x (cells[1]+1), 0..1).

    Within a cell the value is a sum of 8 products (a function of the row) x (a function of the
    column) weighted by corner gradients, so the whole octave is one matrix product of small
    factors instead of dozens of passes over full-size arrays."""
    down, across = height // cells[0], width // cells[1]
    angles = np.float32(2 * math.pi) * draws.astype(np.float32)
    gx, gy = np.cos(angles), np.sin(angles)

    def weights(size: int) -> tuple[np.ndarray, ...]:
        t = np.arange(size, dtype=np.float32) / np.float32(size)  # position within the cell, 0..1
        fade = 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3  # Deforum's fade, written as it writes it
        return t, fade

    u, fu = weights(down)
    v, fv = weights(across)
    # Row factors of the corners (near: gradient dotted with u; far: with u - 1), per cell row,
    # each paired with a column factor below; the fifth pair adds the offset.
    near_x, far_x = ((1 - fu) * u)[None, :, None], (fu * (u - 1))[None, :, None]
    near_y, far_y = (1 - fu)[None, :, None], fu[None, :, None]
    terms = [(near_x, gx[:-1, None, :-1], far_x, gx[1:, None, :-1]),   # with (1 - fv)
             (near_x, gx[:-1, None, 1:], far_x, gx[1:, None, 1:]),     # fv
             (near_y, gy[:-1, None, :-1], far_y, gy[1:, None, :-1]),   # (1 - fv) v
             (near_y, gy[:-1, None, 1:], far_y, gy[1:, None, 1:])]     # fv (v - 1)
    rows = np.empty((5, cells[0], down, cells[1]), dtype=np.float32)  # factor-major: each written in one run
    for row, (near, near_gradient, far, far_gradient) in zip(rows, terms):
        np.multiply(near, near_gradient, out=row)
        row += far * far_gradient
    rows[4] = 1
    columns = np.stack([1 - fv, fv, (1 - fv) * v, fv * (v - 1)]) * np.float32(scale * math.sqrt(2))
    columns = np.concatenate([columns, np.full((1, across), offset, dtype=np.float32)])
    # One product per row of cells: one product of the whole octave is big enough to wake
    # OpenBLAS's threads, which then spin for about 0.1 s beside the frame's other work (see
    # views.affine_inverse); these are each done on the calling thread (measured).
    return (rows.reshape(5, cells[0], -1).transpose(1, 2, 0) @ columns).reshape(height, width)


def perlin_envelope(height: int, width: int, perlin_w: float, perlin_h: float, octaves: int,
                    persistence: float, draws: list[np.ndarray]) -> np.ndarray:
    """HxW float32: Deforum's Perlin envelope, (rand_perlin_2d_octaves + 1) / 2: mostly 0..1,
    not clipped (4 octaves can reach about -0.4 and 1.4). `draws` holds each octave's gradient
    draws (uniform 0..1, (cells down + 1) x (cells across + 1)) as Deforum takes them from its
    generator. Octave k has int(perlin_w) * 2^k cells down and int(perlin_h) * 2^k across, and
    amplitude persistence^k: in Deforum perlin_w counts cells down the height, kept so that
    its settings give its look."""
    total = None
    for octave in range(int(octaves)):
        cells = (int(perlin_w) << octave, int(perlin_h) << octave)
        # (sum + 1) / 2 folded into each octave's product: halved amplitudes, 0.5 added once.
        layer = _perlin_octave(height, width, cells, draws[octave], 0.5 * persistence ** octave,
                               0.5 if total is None else 0.0)
        total = layer if total is None else np.add(total, layer, out=total)
    return total


def noise_image(white: np.ndarray, envelope: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8: Deforum's noise picture from 3 x h x w standard normal draws (h, w: the frame
    size rounded down to 64), times the Perlin envelope (h x w) if any, stretched to height x
    width by nearest neighbour as torch's interpolate does, then mapped as sample_to_cv2 maps
    -1..1 to 0..255 (clipped, truncated): a mid-grey picture of noise."""
    import cv2

    planes = []
    rows = _nearest(white.shape[1], height)
    columns = _nearest(white.shape[2], width)
    for plane in white:
        noise = plane if envelope is None else cv2.multiply(plane, envelope)
        if rows is not None:
            noise = noise[rows]
        if columns is not None:
            noise = noise[:, columns]
        # One pass: rounding 127.5 n + 127 is Deforum's int(clip(n * 0.5 + 0.5) * 255), but for
        # values whose float32 rounding lands across a whole number (about 4 in a million, off by 1).
        planes.append(cv2.addWeighted(noise, 127.5, noise, 0.0, 127.0, dtype=cv2.CV_8U))
    return cv2.merge(planes)


def _nearest(source: int, target: int) -> np.ndarray | None:
    """Source indices of torch's nearest interpolation (float32 scale), None when the same size."""
    if source == target:
        return None
    scale = np.float32(source) / np.float32(target)
    return np.minimum(np.floor(np.arange(target, dtype=np.float32) * scale).astype(np.int64), source - 1)


def _seed_opencv(seed: int) -> None:
    """Seed OpenCV's generator (one per thread) from the low 32 bits of the seed, as torch's
    generator uses them; negative ints reach the upper half of OpenCV's 64-bit state."""
    import cv2

    low = int(seed) % (1 << 32)
    cv2.setRNGSeed(low - (1 << 32) if low >= 1 << 31 else low)


def _noise_bytes(image: np.ndarray, amount: float, seed: int, noise_type: str, perlin_w: float, perlin_h: float,
                 perlin_octaves: int, perlin_persistence: float) -> np.ndarray:
    height, width = image.shape[:2]
    _check_noise(amount, noise_type, perlin_w, perlin_h, perlin_octaves, height, width)
    if amount == 0:  # Deforum's blend with weight 0 gives the frame back unchanged
        return image
    picture = _noise_picture(height, width, seed, noise_type, perlin_w, perlin_h, perlin_octaves, perlin_persistence)
    return _blend_noise(image, picture, amount)


def _noise_picture(height: int, width: int, seed: int, noise_type: str, perlin_w: float, perlin_h: float,
                   perlin_octaves: int, perlin_persistence: float) -> np.ndarray:
    """HxWx3 uint8: the noise picture of a frame (`noise_image`), from its seed alone.
    Seeds and draws on the calling thread (OpenCV's generator is one per thread)."""
    import cv2

    grid = _noise_grid(height, width)
    _seed_opencv(seed)
    white = np.empty((3, *grid), dtype=np.float32)
    cv2.randn(white.reshape(3 * grid[0], grid[1]), 0.0, 1.0)
    envelope = None
    if noise_type == "perlin":
        draws = []
        for octave in range(int(perlin_octaves)):
            draw = np.empty(((int(perlin_w) << octave) + 1, (int(perlin_h) << octave) + 1), dtype=np.float32)
            cv2.randu(draw, 0.0, 1.0)
            draws.append(draw)
        envelope = perlin_envelope(*grid, perlin_w, perlin_h, perlin_octaves, perlin_persistence, draws)
    return noise_image(white, envelope, height, width)


def _blend_noise(image: np.ndarray, picture: np.ndarray, amount: float) -> np.ndarray:
    import cv2

    return cv2.addWeighted(image, 1 - amount, picture, amount, 0)


def add_noise(image: np.ndarray, amount: float, seed: int, noise_type: str = "perlin", perlin_w: float = 8,
              perlin_h: float = 8, perlin_octaves: int = 4, perlin_persistence: float = 0.5) -> np.ndarray:
    """Deforum's frame noising: the frame blended with weight `amount` into a mid-grey noise
    picture (`noise_image`), so it also lowers contrast by 1 - amount. "uniform" is Deforum's
    name for plain Gaussian noise; "perlin" (Deforum's default) shapes it with a Perlin envelope
    (`perlin_envelope`). The same seed gives the same noise on every machine (OpenCV's
    generator, not Deforum's torch one). Defaults are Deforum's. HxWx3 float32."""
    return to_float(_noise_bytes(_to_bytes(image), amount, seed, noise_type, perlin_w, perlin_h, perlin_octaves,
                                  perlin_persistence))


# --- All of them, in Deforum's order ----------------------------------------------------------------

@dataclass(frozen=True)
class FrameAdjustments:
    """One frame's values of Deforum's colour coherence, contrast, anti-blur and noise settings
    (defaults are Deforum's). Checked when made, so bad settings fail before any frame."""

    colour_mode: ColourMode = ColourMode.LAB
    contrast: float = 1.0
    kernel: int = 5
    sigma: float = 1.0
    amount: float = 0.1
    threshold: float = 0.0
    noise: float = 0.065
    noise_type: str = "perlin"
    seed: int = 0  # the frame's seed: Deforum noises with the seed it then generates with
    perlin_w: float = 8
    perlin_h: float = 8
    perlin_octaves: int = 4
    perlin_persistence: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "colour_mode", ColourMode.parse(self.colour_mode))
        _check_contrast(self.contrast)
        _check_unsharp(self.kernel, self.sigma, self.amount, self.threshold)
        _check_noise(self.noise, self.noise_type, self.perlin_w, self.perlin_h, self.perlin_octaves)

    def check_size(self, height: int, width: int) -> None:
        """Raise DiffusionError if these settings cannot noise frames of this size."""
        _check_noise(self.noise, self.noise_type, self.perlin_w, self.perlin_h, self.perlin_octaves, height, width)


def adjust(image: np.ndarray, reference: np.ndarray | ColourReference | None,
           adjustments: FrameAdjustments) -> np.ndarray:
    """Deforum's steps between the warp and img2img, on one frame (HxWx3 float32 0..1 RGB):
    match colours to the reference (none when it is None, as on Deforum's first warped frame),
    contrast, anti-blur, noise. Rounds to 8 bits once; HxWx3 float32 on the 8-bit grid."""
    return to_float(adjust_bytes(_to_bytes(image), reference, adjustments))


def adjust_bytes(frame: np.ndarray, reference: np.ndarray | ColourReference | None,
                 adjustments: FrameAdjustments) -> np.ndarray:
    """`adjust` of an 8-bit frame (HxWx3 uint8, e.g. the previous frame warped as bytes),
    as the 8-bit frame it gives: no round trip through float."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise DiffusionError(f"Expected an HxWx3 8-bit frame, got {getattr(frame, 'dtype', type(frame).__name__)} "
                             f"{getattr(frame, 'shape', '')}", "pass the frame as HxWx3 uint8, or use adjust()")
    a = adjustments
    height, width = frame.shape[:2]
    noise = None
    if a.noise > 0:
        _check_noise(a.noise, a.noise_type, a.perlin_w, a.perlin_h, a.perlin_octaves, height, width)
        # The noise depends on the seed alone: made on another thread while this one
        # matches colours and sharpens.
        noise = threads.pool().submit(_noise_picture, height, width, a.seed, a.noise_type, a.perlin_w, a.perlin_h,
                                      a.perlin_octaves, a.perlin_persistence)
    given = frame
    frame = np.ascontiguousarray(frame)
    if a.colour_mode is not ColourMode.NONE and reference is not None:
        frame = _match_bytes(frame, _as_reference(reference), a.colour_mode)
    if a.contrast != 1:  # Deforum's product and rounding give the bytes back at 1
        frame = _contrast_bytes(frame, a.contrast)
    frame = _unsharp_bytes(frame, a.kernel, a.sigma, a.amount, a.threshold)
    if noise is not None:
        frame = _blend_noise(frame, noise.result(), a.noise)
    return frame.copy() if frame is given else frame  # a new frame, even where no step changed it
