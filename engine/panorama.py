# SPDX-License-Identifier: GPL-3.0-or-later
"""360° panoramas: the equirectangular mapping, pole caps, seam metrics, tiled upscaling and
extending a camera picture into a sphere.

The mapping is that of Blender's World Environment Texture (default mapping; Cycles'
direction_to_equirectangular, checked by rendering a World in tests/scene/test_world_wiring.py
and tests/e2e/test_backgrounds.py): a unit world direction d sits at
u = 0.5 - atan2(d.y, d.x) / 2π and v = asin(d.z) / π + 0.5, so the image centre looks
towards +X, u = 0.25 towards +Y, u = 0.75 towards -Y, the left/right border towards -X and
the top row towards +Z. (FACTS.md and the issue had it turned by 180°: that is the mapping of
a panoramic camera turned (90°, 0°, 90°); the World's is (90°, 0°, -90°).)

Images are HxWx3 float32 0..1, rows top-down; continuous pixel coordinates follow
engine.views (x = u * W, y = (1 - v) * H, pixel centres at +0.5).

numpy only; cv2 is imported inside the few functions that use it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError
from .sampling import bilinear
from .views import CameraView

__all__ = ["directions", "pixels_of", "check_size", "cap_from_panorama", "cap_mask", "cap_into_panorama",
           "seam_difference", "column_difference", "pole_spread", "band_limit_poles", "Window", "windows", "take",
           "upscale", "Blend", "refine_tiled", "project_into_panorama", "outpaint_mask"]

MIN_WIDTH = 256


# --- The mapping ---------------------------------------------------------------------------

def directions(width: int, height: int) -> np.ndarray:
    """HxWx3 float32: the unit world direction at each pixel centre of a width x height panorama."""
    return _row_directions(np.arange(height), width, height).astype(np.float32)


def _row_directions(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """len(rows) x W x 3 float64 unit directions of some rows' pixel centres (the rest never made)."""
    longitude = ((np.arange(width, dtype=np.float64) + 0.5) / width - 0.5) * 2.0 * math.pi
    latitude = (0.5 - (np.asarray(rows, dtype=np.float64) + 0.5) / height) * math.pi
    lon, lat = np.meshgrid(longitude, latitude)
    return _from_angles(lon, lat)


def pixels_of(directions: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nx2 float64: continuous pixel coordinates (x in [0, width], y in [0, height]) of N world
    directions (any length but zero) in a width x height panorama; the inverse of `directions`."""
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    u = 0.5 - np.arctan2(d[:, 1], d[:, 0]) / (2.0 * math.pi)
    v = np.arcsin(np.clip(d[:, 2], -1.0, 1.0)) / math.pi + 0.5
    return np.stack([u * width, (1.0 - v) * height], axis=1)


def check_size(width: int, height: int) -> None:
    """Refuse a panorama size that is not 2:1 (360° by 180°) or narrower than MIN_WIDTH.

    The suggestion keeps the height (the model's side), rounded to a multiple of 8."""
    side = max(MIN_WIDTH // 2, int(round(height / 8.0)) * 8)
    suggestion = f"use {2 * side}×{side}"
    if width != 2 * height:
        raise DiffusionError(f"A panorama must be twice as wide as it is high; {width}×{height} is not", suggestion)
    if width < MIN_WIDTH:
        raise DiffusionError(f"A panorama {width} pixels wide is too small (at least {MIN_WIDTH})", suggestion)


def _from_angles(longitude: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    # The inverse of u = 0.5 - atan2(d.y, d.x) / 2π, v = asin(d.z) / π + 0.5, with the
    # longitude (u - 0.5) * 2π.
    cos_lat = np.cos(latitude)
    return np.stack([cos_lat * np.cos(longitude), -cos_lat * np.sin(longitude), np.sin(latitude)], axis=-1)


def _sample_wrapping(pano: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Bilinear samples of a panorama at Nx2 pixel coordinates, wrapping around in x."""
    padded = np.concatenate([pano[:, -1:], pano, pano[:, :1]], axis=1)
    return bilinear(padded, np.stack([np.mod(at[:, 0], pano.shape[1]) + 1.0, at[:, 1]], axis=1))


# --- Pole caps -----------------------------------------------------------------------------
# A cap is a square perspective (gnomonic) picture of the sky straight up or the ground
# straight down, seen from the panorama's centre, where an equirectangular image pinches.
# Its orientation is that of a Blender camera at the origin:
#   top (looking +Z): rotation (180°, 0°, 0°), image right = +X, image up = -Y;
#   bottom (looking -Z): rotation (0°, 0°, 0°), image right = +X, image up = +Y.
# Both are proper (unmirrored) views, so the cap is an ordinary photograph to repaint.

def _cap_rotation(top: bool) -> np.ndarray:
    """3x3 camera space -> world space (columns: right, up, backward) of the cap's camera."""
    return np.diag([1.0, -1.0, -1.0]) if top else np.eye(3)


def _cap_directions(size: int, fov_degrees: float, top: bool) -> np.ndarray:
    """(size*size)x3 world directions (not unit) through the cap's pixel centres, rows top-down."""
    _check_fov(fov_degrees)
    half = math.tan(math.radians(fov_degrees) / 2.0)
    steps = ((np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0) * half
    a, b = np.meshgrid(steps, -steps)  # camera x right, camera y up (rows go down)
    eye = np.stack([a.ravel(), b.ravel(), -np.ones(a.size)], axis=1)
    return eye @ _cap_rotation(top).T


def _check_fov(fov_degrees: float) -> None:
    if not 0.0 < fov_degrees < 180.0:
        raise DiffusionError(f"A pole cap's field of view of {fov_degrees}° is not between 0° and 180°",
                             "use about 90°")


def cap_from_panorama(pano: np.ndarray, top: bool, size: int, fov_degrees: float = 90.0) -> np.ndarray:
    """size x size x C float32: the panorama's sky (top) or ground (bottom) as a square
    perspective picture with a fov_degrees field of view across its width (orientation above)."""
    at = pixels_of(_cap_directions(size, fov_degrees, top), pano.shape[1], pano.shape[0])
    return _sample_wrapping(pano, at).reshape(size, size, pano.shape[2])


def cap_mask(size: int, fov_degrees: float, latitude_degrees: float) -> np.ndarray:
    """size x size float32: 1 where the cap looks beyond |latitude_degrees| from the horizon
    (a centred disc: the part to repaint), falling to 0 over a few pixels outside it."""
    _check_fov(fov_degrees)
    # A direction at angle θ from the cap's axis lands tan θ / tan(fov / 2) half-widths from the centre.
    radius = math.tan(math.radians(90.0 - abs(latitude_degrees))) / math.tan(math.radians(fov_degrees) / 2.0)
    radius *= size / 2.0
    feather = max(2.0, size / 64.0)
    centres = np.arange(size, dtype=np.float64) + 0.5 - size / 2.0
    distance = np.hypot(centres[None, :], centres[:, None])
    return np.clip((radius + feather - distance) / feather, 0.0, 1.0).astype(np.float32)


def cap_into_panorama(pano: np.ndarray, cap: np.ndarray, top: bool, fov_degrees: float,
                      from_latitude_degrees: float, blend_degrees: float) -> np.ndarray:
    """A new panorama: on the cap's side, pixels beyond from_latitude + blend degrees from the
    horizon take the cap's colour at their direction, those between from_latitude and that a
    smoothstep from the panorama's colour to the cap's, the rest keep theirs. The inverse of
    `cap_from_panorama` (same orientation and field of view)."""
    _check_fov(fov_degrees)
    size = cap.shape[0]
    if cap.shape[:2] != (size, size) or cap.shape[2:] != pano.shape[2:]:
        raise ValueError(f"a cap must be square with the panorama's channels, not {cap.shape} for {pano.shape}")
    reach = 90.0 - fov_degrees / 2.0  # the latitude of the cap's inscribed circle
    if from_latitude_degrees < reach - 1e-9:
        raise DiffusionError(f"A {fov_degrees:g}° cap reaches only {reach:g}° from the horizon, "
                             f"not {from_latitude_degrees:g}°",
                             f"start the cap at {reach:g}° or more, or widen its field of view")
    if blend_degrees < 0 or from_latitude_degrees + blend_degrees > 90.0:
        raise DiffusionError(f"A cap from {from_latitude_degrees:g}° blended over {blend_degrees:g}° "
                             "does not fit below the pole", "keep the start plus the blend at most 90°")
    height, width = pano.shape[:2]
    latitude = 90.0 - (np.arange(height) + 0.5) / height * 180.0
    beyond = latitude if top else -latitude
    if blend_degrees > 0:
        ramp = np.clip((beyond - from_latitude_degrees) / blend_degrees, 0.0, 1.0)
    else:
        ramp = (beyond >= from_latitude_degrees).astype(np.float64)
    weight = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no crease where the ramp starts or ends
    rows = np.flatnonzero(weight > 0)
    result = pano.astype(np.float32, copy=True)
    if rows.size == 0:
        return result
    d = _row_directions(rows, width, height).reshape(-1, 3)
    eye = d @ _cap_rotation(top)  # world -> camera space (the rotation's inverse is its transpose)
    half = math.tan(math.radians(fov_degrees) / 2.0)
    a, b = eye[:, 0] / -eye[:, 2], eye[:, 1] / -eye[:, 2]
    at = np.stack([(a / half + 1.0) * size / 2.0, (1.0 - b / half) * size / 2.0], axis=1)
    colour = bilinear(cap.astype(np.float32, copy=False), at).reshape(rows.size, width, -1)
    w = weight[rows].astype(np.float32)[:, None, None]
    result[rows] = result[rows] * (1.0 - w) + colour * w
    return result


# --- Metrics -------------------------------------------------------------------------------

def seam_difference(pano: np.ndarray) -> float:
    """Mean absolute difference between the last and the first column (the wrap-around seam)."""
    return float(np.abs(pano[:, -1].astype(np.float64) - pano[:, 0]).mean())


def column_difference(pano: np.ndarray) -> float:
    """Mean absolute difference between neighbouring columns inside the image (what a seam
    that does not show looks like)."""
    return float(np.abs(np.diff(pano.astype(np.float64), axis=1)).mean())


def pole_spread(pano: np.ndarray) -> float:
    """The larger, over the top and bottom rows, of the largest per-channel standard deviation
    along the row: 0 when each pole row is one colour, as the single point it shows."""
    rows = pano[[0, -1]].astype(np.float64)
    return float(rows.std(axis=1).max())


def band_limit_poles(pano: np.ndarray, from_latitude_degrees: float) -> np.ndarray:
    """The panorama with each row beyond `from_latitude_degrees` (north and south) holding no
    more detail along it than the circle of the sphere it stands for can.

    A row at latitude φ shows a circle of circumference 2π cos φ, yet has as many pixels as
    the equator: near a pole they repeat a tiny circle, and anything that varies along the
    row is a streak converging on the pole (the "pinch"). Each row keeps the harmonics
    k < cutoff of its Fourier series along x, tapering linearly over one harmonic, with
    cutoff = H cos φ' / cos φ0 at φ' = the row's pole-ward edge: H, all of them (no change),
    at φ0, and 0 at the pole, so the top and bottom rows are one colour (their mean). Rows
    nearer the equator are not touched; x wraps (a Fourier series along the row)."""
    height, width = pano.shape[:2]
    start = math.radians(from_latitude_degrees)
    if not 0.0 <= start < math.pi / 2:
        raise ValueError(f"from_latitude_degrees {from_latitude_degrees} is outside 0..90")
    out = np.array(pano, dtype=np.float32, copy=True)
    rows = np.arange(height)
    # Latitude of each row's edge nearer its pole (the top half's upper edge, the bottom's lower).
    edge = np.where(rows < height / 2, 0.5 - rows / height, (rows + 1) / height - 0.5) * math.pi
    chosen = np.flatnonzero(np.abs(edge) > start + 1e-12)
    if chosen.size == 0:
        return out
    cutoff = height * np.cos(np.abs(edge[chosen])) / math.cos(start)
    harmonics = np.arange(width // 2 + 1)
    keep = np.clip(cutoff[:, None] - harmonics[None, :], 0.0, 1.0)
    keep[:, 0] = 1.0  # the row's mean always stays
    spectrum = np.fft.rfft(out[chosen].astype(np.float64), axis=1)
    shape = (len(chosen), len(harmonics)) + (1,) * (out.ndim - 2)
    out[chosen] = np.fft.irfft(spectrum * keep.reshape(shape), n=width, axis=1).astype(np.float32)
    return out


# --- Tiled upscaling -----------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A window of a panorama in pixels; x + width may pass the panorama's width (it wraps)."""
    x: int
    y: int
    width: int
    height: int


def windows(width: int, height: int, window_width: int, window_height: int, overlap: int) -> list[Window]:
    """Windows that cover a width x height panorama, row by row, neighbours overlapping by at
    least `overlap` pixels: equally spaced around the wrap in x, inside the image in y. A window
    at least as large as the image in a direction is cut to span it, alone."""
    if min(width, height, window_width, window_height) < 1 or overlap < 0:
        raise ValueError(f"no windows of {window_width}×{window_height} (overlap {overlap}) in {width}×{height}")
    columns = _starts_around(width, window_width, overlap)
    rows = _starts_within(height, window_height, overlap)
    w, h = min(window_width, width), min(window_height, height)
    return [Window(x, y, w, h) for y in rows for x in columns]


def _starts_around(size: int, window: int, overlap: int) -> list[int]:
    if window >= size:
        return [0]
    _check_overlap(window, overlap)
    count = -(-size // (window - overlap))  # strides of size / count <= window - overlap
    return [k * size // count for k in range(count)]


def _starts_within(size: int, window: int, overlap: int) -> list[int]:
    if window >= size:
        return [0]
    _check_overlap(window, overlap)
    count = -(-(size - overlap) // (window - overlap))
    return [int(round(k * (size - window) / (count - 1))) for k in range(count)]


def _check_overlap(window: int, overlap: int) -> None:
    if overlap >= window:
        raise DiffusionError(f"An overlap of {overlap} pixels leaves nothing of a {window}-pixel window",
                             f"use an overlap below {window // 2}")


def _columns(window: Window, width: int) -> slice | np.ndarray:
    if window.x + window.width <= width:
        return slice(window.x, window.x + window.width)  # a view, not a gather, where nothing wraps
    return (window.x + np.arange(window.width)) % width


def take(image: np.ndarray, window: Window) -> np.ndarray:
    """The window's pixels of the image (a copy), wrapping around in x."""
    return image[window.y:window.y + window.height][:, _columns(window, image.shape[1])].copy()


def upscale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The panorama resized to width x height (bicubic, meant for enlarging), still wrapping in
    x: it is padded around the wrap before resampling, so the border sees its true neighbours.
    Clipped to 0..1."""
    import cv2

    source_height, source_width = image.shape[:2]
    pad = 4  # the cubic kernel reaches 2 pixels each side
    padded = np.pad(image.astype(np.float32, copy=False), [(0, 0), (pad, pad), (0, 0)], mode="wrap")
    # The mapping cv2.resize uses (pixel centres line up), written out so the padding can be cropped exactly.
    map_x = ((np.arange(width, dtype=np.float64) + 0.5) * source_width / width - 0.5 + pad).astype(np.float32)
    map_y = ((np.arange(height, dtype=np.float64) + 0.5) * source_height / height - 0.5).astype(np.float32)
    result = np.empty((height, width, image.shape[2]), dtype=np.float32)
    band = max(1, (1 << 22) // width)  # rows per remap: its coordinate maps stay small for large panoramas
    for top in range(0, height, band):
        rows = map_y[top:top + band]
        grid_x = np.ascontiguousarray(np.broadcast_to(map_x[None, :], (len(rows), width)))
        grid_y = np.ascontiguousarray(np.broadcast_to(rows[:, None], (len(rows), width)))
        resized = cv2.remap(padded, grid_x, grid_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        result[top:top + len(rows)] = resized.reshape(len(rows), width, -1)
    return np.clip(result, 0.0, 1.0, out=result)


class Blend:
    """Window results put together: each weighted by a ramp that rises linearly from nearly 0 at
    the window's inner borders (every x border, as x wraps, unless the window spans the width;
    top and bottom unless they are the panorama's) to 1 at `overlap` pixels in, so neighbours
    cross-fade over their overlap. With no overlap given, the ramp spans half the window
    (a tent). Every weight is positive."""

    def __init__(self, width: int, height: int, overlap: int | None = None) -> None:
        self.width, self.height, self.overlap = width, height, overlap
        self._sum: np.ndarray | None = None
        self.weights = np.zeros((height, width), dtype=np.float32)

    def add(self, window: Window, pixels: np.ndarray) -> None:
        if pixels.shape[:2] != (window.height, window.width):
            raise ValueError(f"pixels of {pixels.shape} for a {window.width}×{window.height} window")
        if self._sum is None:
            self._sum = np.zeros((self.height, self.width) + pixels.shape[2:], dtype=np.float32)
        spans_width = window.width >= self.width
        ramp_x = self._ramp(window.width, not spans_width, not spans_width)
        ramp_y = self._ramp(window.height, window.y > 0, window.y + window.height < self.height)
        weight = (ramp_y[:, None] * ramp_x[None, :]).astype(np.float32)
        rows, columns = slice(window.y, window.y + window.height), _columns(window, self.width)
        # A window never covers a column twice, so the gathered-then-scattered add is exact.
        self._sum[rows, columns] += pixels * (weight[..., None] if pixels.ndim == 3 else weight)
        self.weights[rows, columns] += weight

    def _ramp(self, length: int, start: bool, end: bool) -> np.ndarray:
        span = self.overlap if self.overlap is not None else length / 2.0
        position = np.arange(length, dtype=np.float64) + 0.5
        ramp = np.ones(length)
        if span > 0:
            if start:
                ramp = np.minimum(ramp, position / span)
            if end:
                ramp = np.minimum(ramp, (length - position) / span)
        return ramp

    def result(self) -> np.ndarray:
        """The weighted mean of everything added, float32."""
        if self._sum is None or not (self.weights > 0).all():
            raise ValueError("some pixels of the panorama are in no window added")
        weights = self.weights[..., None] if self._sum.ndim == 3 else self.weights
        return (self._sum / weights).astype(np.float32)


def refine_tiled(image: np.ndarray, width: int, height: int, window_width: int, window_height: int,
                 overlap: int, refine: Callable[[np.ndarray, int, int], np.ndarray],
                 on_window: Callable[[Window, np.ndarray], None] | None = None) -> np.ndarray:
    """The panorama upscaled to width x height, then each overlapping window (wrapping in x)
    passed through `refine(pixels, index, count) -> pixels` (img2img in the caller) and blended
    back. `on_window(window, refined)` follows each window (previews). Clipped to 0..1."""
    upscaled = upscale(image, width, height)
    tiles = windows(width, height, window_width, window_height, overlap)
    blend = Blend(width, height, overlap)
    for index, window in enumerate(tiles):
        pixels = take(upscaled, window)
        refined = np.asarray(refine(pixels, index, len(tiles)), dtype=np.float32)
        if refined.shape != pixels.shape:
            raise ValueError(f"refine returned {refined.shape} for a window of {pixels.shape}")
        blend.add(window, refined)
        if on_window is not None:
            on_window(window, refined)
    return np.clip(blend.result(), 0.0, 1.0)


# --- Extending a camera picture into a sphere ------------------------------------------------

def project_into_panorama(image: np.ndarray, view: CameraView, width: int,
                          height: int) -> tuple[np.ndarray, np.ndarray]:
    """(HxWxC float32 panorama, HxW bool covered): the perspective camera's picture seen from its
    origin, placed on a width x height panorama; 0 where the camera does not look."""
    if view.type != 'PERSP':
        raise DiffusionError(f"The camera '{view.name}' is not a perspective camera",
                             "extend a picture from a perspective camera")
    d = directions(width, height).reshape(-1, 3).astype(np.float64)
    # A point one unit along each direction: a perspective projection depends only on the direction.
    pixels, depth = view.project(view.origin + d)
    with np.errstate(invalid="ignore"):
        covered = ((depth > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] < view.width)
                   & (pixels[:, 1] >= 0) & (pixels[:, 1] < view.height))
    # The picture may be made at another size than the view's (same aspect).
    scale = np.array([image.shape[1] / view.width, image.shape[0] / view.height])
    pano = np.zeros((height * width, image.shape[2]), dtype=np.float32)
    pano[covered] = bilinear(image.astype(np.float32, copy=False), pixels[covered] * scale)
    return pano.reshape(height, width, -1), covered.reshape(height, width)


def outpaint_mask(covered: np.ndarray, grow_pixels: int, feather_pixels: int) -> np.ndarray:
    """HxW float32, 1 = repaint: every pixel not covered and those within grow_pixels of one,
    falling to 0 over the next feather_pixels (distances wrap around in x)."""
    import cv2

    uncovered = ~np.asarray(covered, dtype=bool)
    if not uncovered.any():
        return np.zeros(uncovered.shape, dtype=np.float32)
    pad = grow_pixels + feather_pixels + 2
    # cv2 measures to the nearest zero pixel: zeros where not covered, around the wrap too.
    source = np.pad(np.where(uncovered, 0, 255).astype(np.uint8), [(0, 0), (pad, pad)], mode="wrap")
    distance = cv2.distanceTransform(source, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[:, pad:-pad]
    if feather_pixels > 0:
        mask = np.clip((grow_pixels + feather_pixels - distance) / feather_pixels, 0.0, 1.0)
    else:
        mask = (distance <= grow_pixels).astype(np.float32)
    return mask.astype(np.float32)
