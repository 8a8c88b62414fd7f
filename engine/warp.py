# SPDX-License-Identifier: GPL-3.0-or-later
"""The previous animation frame warped into the current frame's view, with the scene's
exact geometry: Z passes and camera matrices, and Cycles' motion vectors for moving
objects (scene/motion.py captures them as a FrameGeometry).

A backward warp: every pixel of frame N looks up where its surface point was seen in
frame N-1 and samples the previous image there (bilinear). Where the point was not seen
(outside N-1's image, hidden behind something in N-1, or no geometry at all in N) the
pixel is not valid, and nothing is put there: the caller lets diffusion fill it rather
than stretching border pixels or smearing foreground over what it uncovered.

Conventions (engine.views, and checked by tests/engine/test_warp.py against analytic
cameras): pixel (i, j) covers [j, j+1) x [i, i+1) in continuous coordinates, its centre
at (j + 0.5, i + 0.5); x grows to the right, y downwards (rows top-down). Depth is the
planar camera depth (the distance along the ray for panoramas), +inf (or Cycles' 1e10)
where no geometry was hit. Motion vectors are pixels in the same x-right, y-down frame:
`to_previous[i, j]` added to pixel (i, j)'s centre gives where its surface point was in
frame N-1; `to_next` likewise to frame N+1.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from . import threads
from .errors import DiffusionError
from .views import CameraView
from .visibility import DEPTH_TOLERANCE, SLOPE_PIXELS, Rays, check_depth, foreground

__all__ = ["CONSISTENCY_PIXELS", "STILL_PIXELS", "FrameGeometry", "Warped", "warp", "with_stillness"]

# Forward-backward check: following a pixel's motion to the previous frame and that
# frame's motion back to the next must land within this distance (pixels) of where it
# started; farther, the previous frame showed something else there (a disocclusion).
CONSISTENCY_PIXELS = 1.0
# A pixel whose motion vector agrees with the camera-only reprojection this closely (pixels)
# is on a surface that did not move: its depth in the previous view is known and tested.
# Cycles' vectors of a still surface agree with the reprojection to ~1e-5 px.
STILL_PIXELS = 0.05
# A sample's four pixel centres lie within a pixel of the point in x and in y: their
# surface's depth there may differ from the point's by its slope one pixel right plus one
# down (engine.visibility's SLOPE_PIXELS), given a margin for the slope's estimate.
SLOPE_ALLOWANCE = 1.5 * SLOPE_PIXELS


@dataclass(frozen=True, eq=False)
class FrameGeometry:
    """What the warp needs to know of one frame.

    view: the frame's camera view (its `frame` says which frame the geometry is of).
    depth: HxW float32, the Z pass in the view's convention; +inf (or >= 1e9) on background.
    to_previous, to_next: HxWx2 float32 or None, the screen motion (pixels, x right, y down)
        of each pixel's surface point to the previous and to the next frame; zero on the
        background. None: a still scene (the camera's own motion follows from the views).
    """
    view: CameraView
    depth: np.ndarray
    to_previous: np.ndarray | None = None
    to_next: np.ndarray | None = None
    # Whether to_previous (still_before) and to_next (still_after) hold nothing but the
    # camera's own motion (set by `with_stillness`). Between two frames that say so, the
    # warp tests its taps by depth alone: following the vectors back would only repeat it.
    still_before: bool = False
    still_after: bool = False

    def __post_init__(self) -> None:
        check_depth(self.view, self.depth)
        for name in ("to_previous", "to_next"):
            motion = getattr(self, name)
            if motion is not None and np.shape(motion) != (self.view.height, self.view.width, 2):
                raise DiffusionError(
                    f"The {name.replace('_', ' ')} motion is {np.shape(motion)}, the view "
                    f"'{self.view.name}' is {self.view.height} x {self.view.width}",
                    "capture the motion vectors at the view's own size, two channels (x right, y down)")

    @functools.cached_property
    def _lookup(self) -> _Lookup:
        """This frame's data as a previous frame, cached: the current frame's geometry is
        the next warp's previous."""
        return _Lookup.of(self)

    @functools.cached_property
    def _cell_lookup(self) -> np.ndarray:
        """This frame's `_Lookup.cells_of`, made only for a warp that tests depths alone."""
        return _Lookup.cells_of(self._lookup)

    @functools.cached_property
    def _next_lookup(self) -> np.ndarray | None:
        """This frame's motion to the next frame as a previous frame (`_Lookup.next_of`),
        made only for a warp that follows motion vectors back."""
        return _Lookup.next_of(self)


@dataclass(frozen=True, eq=False)
class _Lookup:
    """A previous frame's per-pixel data, flat, with a one-pixel border around the image
    that matches nothing: a sample's four pixel centres need no clipping, and those off
    the image drop out like hidden ones. Pairs of floats are kept as complex64, so one
    gather fetches both (measured: 40% faster than two).

    bounds: low - i high, the depths each pixel's surface takes within a pixel of its
        centre (DEPTH_TOLERANCE aside): its depth -/+ SLOPE_ALLOWANCE times its slope;
        +inf (and -inf) on the background and the border. High is kept negated so that
        one comparison of float pairs tests both ends (see `_within`).
    background: bool, the pixel shows the background (False on the border).
    The motion to the next frame is apart (`next_of`): only warps along vectors need it.
    """
    width: int
    bounds: np.ndarray
    background: np.ndarray

    @classmethod
    def of(cls, geometry: FrameGeometry) -> _Lookup:
        height, width = geometry.depth.shape
        bounds = _bordered(height, width, np.complex64, complex(np.inf, -np.inf))
        background = _bordered(height, width, bool, False)

        def fill(rows: slice) -> None:
            # A row above and below the band: the slope looks one row either way.
            above, below = max(rows.start - 1, 0), min(rows.stop + 1, height)
            depth = geometry.depth[above:below]
            surface = foreground(depth)
            depth = np.where(surface, depth, np.inf).astype(np.float32, copy=False)
            reach = _depth_slope(depth)
            reach *= np.float32(SLOPE_ALLOWANCE)
            inner = slice(rows.start - above, rows.stop - above)
            depth, reach, surface = depth[inner], reach[inner], surface[inner]
            inside = slice(rows.start + 1, rows.stop + 1), slice(1, width + 1)
            # Written in place: the slices are views of the bordered arrays.
            np.subtract(depth, reach, out=bounds[inside].real)
            np.subtract(-depth, reach, out=bounds[inside].imag)  # -(depth + reach), exactly
            np.logical_not(surface, out=background[inside])

        _in_bands(fill, height, width)
        return cls(width=width + 2, bounds=bounds.ravel(), background=background.ravel())

    @staticmethod
    def cells_of(lookup: _Lookup) -> np.ndarray:
        """`bounds` of the cells of four pixel centres, indexed by their top-left pixel (the
        layout's last row and column have no cell): the highest of the four lows and the
        lowest of the four highs, so that a pixel's depth range meets all four taps' bounds
        exactly when it meets its cell's (`_within`): one gather where most pixels need four.
        Both are maxima of the float pairs (high is kept negated)."""
        pairs = lookup.bounds.view(np.float32)
        size, row = 2 * (lookup.bounds.size - lookup.width - 1), 2 * lookup.width
        cells = np.maximum(pairs[:size], pairs[2:size + 2])
        np.maximum(cells, pairs[row:row + size], out=cells)
        np.maximum(cells, pairs[row + 2:row + 2 + size], out=cells)
        return cells.view(np.complex64)

    @staticmethod
    def next_of(geometry: FrameGeometry) -> np.ndarray | None:
        """x + i y, each pixel's motion to the next frame (pixels), flat in the bordered
        layout; +inf where there is no geometry and on the border (so nothing leads back
        from there). None without motion vectors."""
        if geometry.to_next is None:
            return None
        height, width = geometry.depth.shape
        motion = _bordered(height, width, np.complex64, np.inf)

        def fill(rows: slice) -> None:
            surface = foreground(geometry.depth[rows])
            pairs = _as_pairs(geometry.to_next[rows]).reshape(surface.shape)
            motion[rows.start + 1:rows.stop + 1, 1:width + 1] = np.where(surface, pairs,
                                                                          np.complex64(complex(np.inf, np.inf)))

        _in_bands(fill, height, width)
        return motion.ravel()


def _in_bands(fill, height: int, width: int) -> None:
    """fill(rows) over the frame's bands of rows, side by side on the pool's threads."""
    bands = _bands(height, width)
    if len(bands) == 1:
        fill(bands[0])
    else:
        list(threads.pool().map(fill, bands))


def with_stillness(geometry: FrameGeometry, before: CameraView, after: CameraView) -> FrameGeometry:
    """`geometry` with `still_before` and `still_after` worked out from the camera's views at
    the previous frame (`before`) and at the next (`after`): a direction is still when every
    surface pixel's motion vector lands within STILL_PIXELS of where the pixel's point, at
    its depth, projects into that view, i.e. nothing seen in the frame moves but the camera
    (Cycles' vectors of a still surface agree with the reprojection to ~1e-4 px). A point
    behind the other camera counts as moving. Without vectors, the geometry as it is."""
    if geometry.to_previous is None or geometry.to_next is None:
        return geometry
    view, depth = geometry.view, geometry.depth
    surface = foreground(depth)
    centres_x = np.arange(view.width, dtype=np.float32) + np.float32(0.5)
    centres_y = np.arange(view.height, dtype=np.float32)[:, None] + np.float32(0.5)

    def still(vectors: np.ndarray, target: CameraView) -> bool:
        x, y, _ = _reprojected(view, depth, surface, target, exact=False)
        with np.errstate(invalid="ignore"):  # NaN: behind the camera, which fails the test
            off = np.maximum(np.abs(x - (centres_x + vectors[..., 0])), np.abs(y - (centres_y + vectors[..., 1])))
            return bool(np.all(off[surface] <= STILL_PIXELS))

    return replace(geometry, still_before=still(geometry.to_previous, before),
                   still_after=still(geometry.to_next, after))


def _bordered(height: int, width: int, dtype, border) -> np.ndarray:
    """(height + 2) x (width + 2), `border` on the one-pixel border; the inside is left to be
    filled (every pixel of it is, by the bands)."""
    array = np.empty((height + 2, width + 2), dtype)
    array[0], array[-1], array[:, 0], array[:, -1] = border, border, border, border
    return array


def _as_pairs(vectors: np.ndarray) -> np.ndarray:
    """HxWx2 float32 (x, y) as N complex64 x + i y: the same bytes, no copy when contiguous."""
    return np.ascontiguousarray(vectors, dtype=np.float32).view(np.complex64).ravel()


def _limits(depth: np.ndarray) -> np.ndarray:
    """N complex64 high - i low: the depth ranges of pixels at these depths (N float32),
    DEPTH_TOLERANCE either way, as `_within` takes them."""
    limits = np.empty(depth.shape, np.complex64)
    np.multiply(depth, np.float32(1.0 + DEPTH_TOLERANCE), out=limits.real)
    np.multiply(depth, -np.float32(1.0 - DEPTH_TOLERANCE), out=limits.imag)  # -(d * f) exactly
    return limits


def _within(bounds: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """N bools: each pixel's depth range (`_limits`) meets its gathered `_Lookup.bounds`:
    tap low <= pixel high and -tap high <= -pixel low, as one comparison of float pairs
    (contiguous, unlike the two halves of a complex array apart), both true."""
    both = np.less_equal(bounds.view(np.float32), limits.view(np.float32))
    return both.view(np.uint16) == 0x0101  # two true bytes, in either byte order


def _depth_slope(depth: np.ndarray) -> np.ndarray:
    """HxW float32: how much a Z pass's surface (+inf on the background) changes in depth
    one pixel right plus one pixel down. Each direction takes the smaller of its two
    one-sided differences, so a pixel at a depth edge gets its own surface's slope; 0
    where neither neighbour is geometry (a one-pixel sliver: only the relative tolerance
    applies)."""
    slope = None
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            step = np.diff(depth, axis=axis)  # NaN between background pixels
            np.abs(step, out=step)
            step = np.moveaxis(step, axis, 0)
            smaller = np.empty(depth.shape, np.float32)  # every pixel is set below
            view = np.moveaxis(smaller, axis, 0)
            view[0], view[-1] = step[0], step[-1]
            np.fmin(step[:-1], step[1:], out=view[1:-1])
            finite = smaller < np.inf  # NaN and inf are not
            if slope is None:
                slope = np.where(finite, smaller, np.float32(0.0))
            else:
                np.add(slope, smaller, out=slope, where=finite)
    return slope


@dataclass(frozen=True, eq=False)
class Warped:
    """The previous frame seen from the current one.

    image: HxWxC (the previous image's channels and kind: float32, or uint8 for 8-bit frames),
        sampled where `valid`, 0 elsewhere.
    valid: HxW bool, the pixels whose surface point the previous frame showed.
    source: HxWx2 float32, where each pixel's point was in the previous image (continuous
        pixel coordinates, x right, y down; outside the image where it entered at the
        border), NaN where the current frame shows no geometry or the point was behind
        the previous camera. Made when first asked for (frames never need it).
    """
    image: np.ndarray
    valid: np.ndarray
    source_x: np.ndarray = field(repr=False)  # HxW float32 each, and where they mean something
    source_y: np.ndarray = field(repr=False)
    located: np.ndarray = field(repr=False)

    @functools.cached_property
    def source(self) -> np.ndarray:
        source = np.stack([self.source_x, self.source_y], axis=-1).astype(np.float32)
        source[~self.located] = np.nan
        return source


def warp(previous_image: np.ndarray, previous: FrameGeometry, current: FrameGeometry,
         background: bool = False) -> Warped:
    """`previous_image` (HxWxC of the previous frame's view) warped into `current`'s view.
    A float image is sampled in float32; an 8-bit one (uint8, an animation frame as on
    disk) with OpenCV's 8-bit bilinear, as Deforum warps its frames: rounded to bytes, within
    one level of the float sample rounded, at a fraction of the memory traffic.

    background: also warp what shows no geometry (the World) as seen at infinity: valid
    where the previous frame showed background in that direction. Off, it is not valid.

    With motion vectors (`current.to_previous`, and the frames one apart, as Cycles'
    Vector pass is), each pixel's point was at p + to_previous(p); without them, each
    pixel is unprojected with its depth and projected into the previous view. There the
    image is sampled bilinearly from the four pixel centres around the point, but only
    from those that show the same surface: with motion vectors, those whose `to_next`
    leads back to p (within CONSISTENCY_PIXELS) and, for surfaces that did not move,
    whose depth is the point's; without, and between two frames whose vectors are marked
    still (`with_stillness`: only the camera moved), those whose depth is the point's
    (engine.visibility's relative tolerance plus the Z pass's own slope). A pixel none of
    whose four show its surface is not valid: the point was hidden, or the previous view
    did not reach it. Where all four show it (most pixels) the sample is OpenCV's bilinear
    remap, at its 1/32-pixel resolution as in Deforum's warp; elsewhere the weights are
    shared out among the taps that do, exactly, so no colour bleeds across a silhouette
    and the border pixels reach half a pixel outward.
    """
    kind = np.uint8 if np.asarray(previous_image).dtype == np.uint8 else np.float32
    previous_image = np.ascontiguousarray(previous_image, dtype=kind)
    view = previous.view
    if previous_image.ndim != 3 or previous_image.shape[:2] != (view.height, view.width):
        raise DiffusionError(f"The previous image is {previous_image.shape}, its view '{view.name}' is "
                             f"{view.height} x {view.width}", "warp the image the previous frame's view produced")
    height, width = current.view.height, current.view.width
    # Motion vectors reach one frame either way: between frames further apart (or the same
    # frame) only the camera's motion is known.
    vectors = current.to_previous is not None and current.view.frame - view.frame == 1
    # Between two frames whose vectors hold only the camera's motion (`with_stillness`),
    # every surface is still: the depth test alone decides, and the vectors' round trip
    # to the previous frame and back, which would only repeat it, is left out.
    moves = vectors and not (current.still_before and previous.still_after)
    # Made once, shared read-only by the bands.
    lookup = _Taps(previous._lookup, previous._next_lookup if moves else None,
                   None if moves else previous._cell_lookup)
    bands = _bands(height, width)
    if len(bands) == 1:
        return _warp_rows(previous_image, lookup, view, current, background, vectors, moves, bands[0])
    whole = Warped(image=np.empty((height, width, previous_image.shape[2]), kind),
                   valid=np.empty((height, width), bool), source_x=np.empty((height, width), np.float32),
                   source_y=np.empty((height, width), np.float32), located=np.empty((height, width), bool))

    def band(rows: slice) -> None:
        part = _warp_rows(previous_image, lookup, view, current, background, vectors, moves, rows)
        for name in ("image", "valid", "source_x", "source_y", "located"):
            getattr(whole, name)[rows] = getattr(part, name)

    # Every pixel is warped on its own: bands of rows on threads give the same bits
    # (numpy lets go of the GIL in its loops, so they run side by side), each put in place
    # by its own thread.
    list(threads.pool().map(band, bands))
    return whole


# Below this many pixels a frame is warped in one piece: threads would cost more than they save.
BAND_PIXELS = 128 * 128


def _bands(height: int, width: int) -> list[slice]:
    count = min(_workers(), max(1, height * width // BAND_PIXELS), height)
    edges = [height * index // count for index in range(count + 1)]
    return [slice(low, high) for low, high in zip(edges[:-1], edges[1:])]


def _workers() -> int:
    return threads.workers()


@dataclass(frozen=True, eq=False)
class _Taps:
    """What the taps of a warp are tested against: the previous frame's `_Lookup`; its
    motion to the next frame (`_Lookup.next_of`) where the warp follows motion vectors and
    the previous frame has them; its cells' bounds (`_Lookup.cells_of`) where it does not."""
    lookup: _Lookup
    next: np.ndarray | None
    cells: np.ndarray | None

    @property
    def width(self) -> int:
        return self.lookup.width


def _warp_rows(previous_image: np.ndarray, lookup: _Taps, view: CameraView, current: FrameGeometry,
               background: bool, vectors: bool, moves: bool, rows: slice) -> Warped:
    """warp() of the current frame's `rows` (a band of whole rows): positions from the
    motion `vectors` or from the cameras; `moves`: something may have moved (vectors only),
    so taps are followed back along the motion, and only still surfaces depth-tested."""
    first = rows.start
    height, width = rows.stop - rows.start, current.view.width
    depth_here = current.depth[rows]
    surface = foreground(depth_here)
    if vectors:
        columns = np.arange(width, dtype=np.float32) + np.float32(0.5)
        row_centres = np.arange(first, rows.stop, dtype=np.float32) + np.float32(0.5)
        motion_x, motion_y = current.to_previous[rows, :, 0], current.to_previous[rows, :, 1]
        source_x, source_y = columns[None, :] + motion_x, row_centres[:, None] + motion_y
        seen = surface & _inside(view, source_x, source_y)
        if moves:
            # Surfaces that did not move have a known depth in the previous view: test it too.
            # Compared with the vectors within STILL_PIXELS only: float32 is plenty.
            still_x, still_y, depth = _reprojected(current.view, depth_here, surface, view, first, exact=False)
            with np.errstate(invalid="ignore"):
                still = (np.abs(still_x - source_x) <= STILL_PIXELS) & (np.abs(still_y - source_y) <= STILL_PIXELS)
        else:
            depth = _reprojected_depth(current.view, depth_here, surface, view, first)
    else:
        source_x, source_y, depth = _reprojected(current.view, depth_here, surface, view, first)
        with np.errstate(invalid="ignore"):
            seen = surface & _inside(view, source_x, source_y) & (depth > 0)

    # The background (the World) lies at infinity: a pixel that shows it came from the
    # direction its ray points in, wherever the camera moved, if the previous frame showed
    # the background there too (not an object that has moved away since).
    sky = ~surface
    sky_seen = np.zeros_like(surface)
    if background and sky.any():
        sky_x, sky_y = _at_infinity(current.view, sky, view, first)
        sky_seen = sky & _inside(view, sky_x, sky_y)
        source_x, source_y = np.where(sky_seen, sky_x, source_x), np.where(sky_seen, sky_y, source_y)
        seen = seen | sky_seen

    # Points not seen sample the border's corner (weight 1 there), which matches nothing.
    # Where the four pixel centres around each point start (the point half a pixel up-left).
    at_x = np.where(seen, source_x, np.float32(-0.5))
    at_x -= np.float32(0.5)
    at_y = np.where(seen, source_y, np.float32(-0.5))
    at_y -= np.float32(0.5)
    flat_x, flat_y = at_x.ravel(), at_y.ravel()
    base = _corner(lookup.width, flat_x, flat_y)
    offsets = _tap_offsets(lookup.width)
    flat_sky = sky_seen.ravel()
    limits = _limits(depth.ravel())
    seen = seen.ravel()
    channels = previous_image.shape[2]
    # OpenCV's remap samples up to 4 channels; more are all sampled here.
    every = channels > 4
    if moves:
        intact, sampled, tapped = _followed_taps(lookup, base, offsets, limits, still, current.to_previous[rows],
                                                 flat_sky, seen, every)
    else:
        intact, sampled, tapped = _depth_taps(lookup, base, offsets, limits, flat_sky, seen, every)
    # All four taps show the pixel's surface (most pixels): plain bilinear, and valid (the
    # bilinear weights add up to 1). Elsewhere (`sampled`) the weights of the taps that do
    # (`tapped`), shared out.
    valid = seen & intact
    weights = _weights(flat_x[sampled], flat_y[sampled])
    for weight, matches in zip(weights, tapped):
        weight *= matches
    total = weights[0] + weights[1] + weights[2] + weights[3]
    shared = total > 0
    rest, weights, total = sampled[shared], [weight[shared] for weight in weights], total[shared]
    valid[rest] = True
    if channels <= 4:
        # Where all four taps count, the sample is plain bilinear: OpenCV's remap, at its
        # 1/32-pixel resolution (as Deforum's warp samples), over every pixel; the others
        # are put right below.
        import cv2
        image = cv2.remap(previous_image, at_x, at_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT).reshape(valid.size, -1)
        image[np.flatnonzero(~valid)] = 0.0  # the few not valid: faster than a mask over all
    else:
        image = np.zeros((valid.size, channels), previous_image.dtype)
    if rest.size:
        # The taps' pixels in the image itself: a tap on the lookup's border has weight 0,
        # so the edge pixel it is moved onto adds nothing.
        flat = previous_image.reshape(-1, channels)
        colour = np.zeros((rest.size, channels), np.float32)
        corner = base[rest]
        for offset, weight in zip(offsets, weights):
            colour += weight[:, None] * np.take(flat, _unbordered(corner + offset, lookup.width, view.height,
                                                                  view.width), axis=0)
        colour /= total[:, None]
        # A mean of bytes is within 0..255: rounded, it stores exactly.
        image[rest] = np.rint(colour) if image.dtype == np.uint8 else colour
    return Warped(image=image.reshape(height, width, -1), valid=valid.reshape(height, width),
                  source_x=source_x, source_y=source_y, located=surface | sky_seen)


# Pixels whose taps are tested together (see _warp_rows).
TAP_CHUNK = 1 << 16


def _followed_taps(lookup: _Taps, base: np.ndarray, offsets: tuple[int, ...], limits: np.ndarray, still: np.ndarray,
                   to_previous: np.ndarray, sky: np.ndarray, seen: np.ndarray,
                   every: bool) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(intact, sampled, tapped) of a warp along motion vectors: which pixels all four taps
    show the surface of; the pixels to sample tap by tap (the seen ones that are not intact,
    or all seen ones with `every`); and for each tap, whether it shows them."""
    matching = [np.empty(base.size, bool) for _ in offsets]
    moving, motion = ~still.ravel(), _as_pairs(to_previous)
    # A chunk of pixels at a time: the arrays a chunk's tests pass through stay in the
    # core's cache (measured: the tests ~20 % faster than over a whole band at once).
    for start in range(0, base.size, TAP_CHUNK):
        part = slice(start, start + TAP_CHUNK)
        _match_taps(lookup, base[part], offsets, limits[part], motion[part], moving[part],
                    [matches[part] for matches in matching])
    if sky.any():
        # Background pixels match where the previous frame showed background (the tests
        # above, for surfaces, dropped them all).
        sky_base = base[sky]
        for offset, matches in zip(offsets, matching):
            matches[sky] = np.take(lookup.lookup.background[offset:], sky_base)
    intact = matching[0] & matching[1] & matching[2] & matching[3]
    sampled = np.flatnonzero(seen if every else seen & ~intact)
    return intact, sampled, [matches[sampled] for matches in matching]


def _depth_taps(lookup: _Taps, base: np.ndarray, offsets: tuple[int, ...], limits: np.ndarray, sky: np.ndarray,
                seen: np.ndarray, every: bool) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """`_followed_taps` of a warp that tests depths alone: all four taps pass where their
    cell does (`_Lookup.cells_of`), so each tap is tested only where the cell's test fails."""
    intact = np.empty(base.size, bool)
    for start in range(0, base.size, TAP_CHUNK):
        part = slice(start, start + TAP_CHUNK)
        intact[part] = _within(np.take(lookup.cells, base[part]), limits[part])
    sampled = np.flatnonzero(seen if every else seen & ~intact)
    corner, range_, on_sky = base[sampled], limits[sampled], sky[sampled]
    tapped = [_within(np.take(lookup.lookup.bounds[offset:], corner), range_) for offset in offsets]
    if on_sky.any():
        # Background pixels match where the previous frame showed background (their depth,
        # NaN, passes no test above).
        sky_corner = corner[on_sky]
        for offset, matches in zip(offsets, tapped):
            matches[on_sky] = np.take(lookup.lookup.background[offset:], sky_corner)
    if not every:
        # Background seen by all four taps: plain bilinear too.
        whole = tapped[0] & tapped[1] & tapped[2] & tapped[3]
        if whole.any():
            intact[sampled[whole]] = True
            sampled, tapped = sampled[~whole], [matches[~whole] for matches in tapped]
    return intact, sampled, tapped


def _match_taps(lookup: _Taps, base: np.ndarray, offsets: tuple[int, ...], limits: np.ndarray, motion: np.ndarray,
                moving: np.ndarray, out: list[np.ndarray]) -> None:
    """Whether each tap shows the pixel's surface, into `out` (a bool array per offset), for
    pixels with motion vectors (`motion`: their complex to_previous; `moving`: not still): the
    tap's motion to the next frame must lead back to the pixel, and for still pixels the
    tap's depth bounds must also meet the pixel's depth range (`_limits`)."""
    any_moving = moving.any()
    for offset, matches in zip(offsets, out):
        # Each tap gathered from the lookup shifted by its offset: one index array for all four.
        bounds = np.take(lookup.lookup.bounds[offset:], base)
        if lookup.next is not None:
            # p -> p + to_previous(p) -> that + to_next: back at p, if the tap shows this surface.
            np.less_equal(np.abs(motion + np.take(lookup.next[offset:], base)), np.float32(CONSISTENCY_PIXELS),
                          out=matches)
        else:
            np.less(bounds.real, np.inf, out=matches)  # a surface there, and on the image
        within = _within(bounds, limits)
        if any_moving:
            within |= moving
        matches &= within


def _unbordered(index: np.ndarray, bordered_width: int, height: int, width: int) -> np.ndarray:
    """Flat indices into the (H+2)x(W+2) bordered layout as flat indices into the HxW image,
    the border moved onto the nearest edge pixel."""
    row, column = np.divmod(index, bordered_width)
    return np.clip(row - 1, 0, height - 1) * width + np.clip(column - 1, 0, width - 1)


def _at_infinity(view: CameraView, mask: np.ndarray, target: CameraView,
                 first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) HxW float32: where the direction of each `mask` pixel's ray (`mask`'s rows are
    the view's from `first_row` on) lands in `target`
    (a point at infinity: only the cameras' turning matters); NaN elsewhere and where it
    falls behind a perspective target. Orthographic views see no infinity: NaN."""
    x = np.full(mask.shape, np.nan, np.float32)
    y = x.copy()
    if view.type == 'ORTHO' or target.type == 'ORTHO':
        return x, y
    rows, columns = np.nonzero(mask)
    pixels = np.stack([columns + 0.5, rows + (first_row + 0.5)], axis=1).astype(np.float64)
    _, step = Rays.of(view).at(pixels)
    direction = step / np.linalg.norm(step, axis=1, keepdims=True)
    if target.type == 'PANO':
        at, _ = target.project(target.origin + direction * 1e6)
    else:
        camera_from_world = target.camera_from_world
        clip = target.projection[:, :3] @ camera_from_world[:3, :3] @ direction.T  # w = 0: a direction
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(clip[3] > 0, clip[3], np.nan)
            at = np.stack([(clip[0] / w + 1.0) * 0.5 * target.width, (1.0 - clip[1] / w) * 0.5 * target.height], 1)
    x[rows, columns], y[rows, columns] = at[:, 0], at[:, 1]
    return x, y


def _inside(view: CameraView, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN (behind the camera, background) is outside
        return (x >= 0) & (x < view.width) & (y >= 0) & (y < view.height)


def _corner(bordered_width: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The flat index, in a `_Lookup`'s bordered layout, of the top-left of the four pixel
    centres around each of N points, given as the point less half a pixel (float32 pixel
    coordinates, -1 or more); the others are `_tap_offsets` further on."""
    # Integers below 2^24 are exact in float32: one conversion instead of integer arithmetic.
    top = np.floor(y)
    top *= np.float32(bordered_width)
    top += np.floor(x)
    top += np.float32(bordered_width + 1)
    return top.astype(np.intp)


def _tap_offsets(bordered_width: int) -> tuple[int, int, int, int]:
    """Top-left, top-right, bottom-left, bottom-right, from the top-left."""
    return 0, 1, bordered_width, bordered_width + 1


def _weights(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The bilinear weights of the four taps (in `_tap_offsets`' order) of points given as in
    `_corner`."""
    fx, fy = x - np.floor(x), y - np.floor(y)  # exact in float32: integers at pixel centres
    gx, gy = 1 - fx, 1 - fy
    top_left = gx * gy
    np.multiply(fx, gy, out=gy)  # top right
    np.multiply(gx, fy, out=gx)  # bottom left
    np.multiply(fx, fy, out=fx)  # bottom right
    return [top_left, gy, gx, fx]


def _reprojected(view: CameraView, depth: np.ndarray, surface: np.ndarray, target: CameraView,
                 first_row: int = 0, exact: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, depth) HxW float32: where each pixel's point (at its depth in `view`) lands in
    `target`, and its depth there; NaN off `surface` and behind a perspective target.
    `depth`'s rows are the view's from `first_row` on.

    exact: computed in float64: a point seen from the same view comes back to its pixel
    centre to ~1e-13 px, far inside float32's rounding, so a warp between equal views
    samples exact centres. Otherwise float32 (~1e-4 px at 512²), enough for a tolerance.
    """
    if view.type == 'PANO' or target.type == 'PANO':
        return _reprojected_points(view, depth, surface, target, first_row)
    # A pixel's point is start(p) + d * step(p), both affine in p (engine.visibility.Rays),
    # so each of the target's homogeneous pixel coordinates and its depth is
    # A(p) + d * B(p) with A and B affine in p: no per-pixel matrix product.
    rays = Rays.of(view)
    camera_from_world = target.camera_from_world
    clip = target.projection @ camera_from_world
    rows = np.stack([
        0.5 * target.width * (clip[0] + clip[3]),    # x = (ndc_x + 1) * width / 2, times w
        0.5 * target.height * (clip[3] - clip[1]),   # y = (1 - ndc_y) * height / 2, times w
        clip[3],                                     # w
        -camera_from_world[2],                       # planar depth in the target
    ])
    d = np.where(surface, depth, np.nan)
    # The depth there only meets a tolerance: float32 is enough for it.
    d_xy = d.astype(np.float64 if exact else np.float32)
    x, y, w = (_affine_times_depth(rays, row, d_xy, first_row) for row in rows[:3])
    target_depth = _affine_times_depth(rays, rows[3], d.astype(np.float32), first_row)
    with np.errstate(invalid="ignore", divide="ignore"):
        if target.type == 'PERSP':
            w[w <= 0] = np.nan  # behind the camera
        x /= w
        y /= w
        return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False), target_depth


def _reprojected_depth(view: CameraView, depth: np.ndarray, surface: np.ndarray, target: CameraView,
                       first_row: int = 0) -> np.ndarray:
    """`_reprojected`'s depth alone (HxW float32), for positions known otherwise."""
    if view.type == 'PANO' or target.type == 'PANO':
        return _reprojected_points(view, depth, surface, target, first_row)[2]
    d = np.where(surface, depth, np.float32(np.nan)).astype(np.float32, copy=False)
    return _affine_times_depth(Rays.of(view), -target.camera_from_world[2], d, first_row)


def _affine_times_depth(rays: Rays, row: np.ndarray, depth: np.ndarray, first_row: int = 0) -> np.ndarray:
    """HxW: row . (start(p) + d * step(p), 1) at every pixel centre (rows from `first_row`
    on), in depth's dtype."""
    height, width = depth.shape
    xs = np.arange(width, dtype=depth.dtype) + depth.dtype.type(0.5)
    ys = np.arange(first_row, first_row + height, dtype=depth.dtype) + depth.dtype.type(0.5)
    a = (rays.start @ row[:3] + np.array([row[3], 0.0, 0.0])).astype(depth.dtype)
    b = (rays.step @ row[:3]).astype(depth.dtype)
    value = np.add.outer(b[2] * ys, b[0] + b[1] * xs)
    value *= depth
    if a[1] or a[2]:  # rays start at different points (orthographic)
        value += (a[0] + a[1] * xs)[None, :] + (a[2] * ys)[:, None]
    else:
        value += a[0]
    return value


def _reprojected_points(view: CameraView, depth: np.ndarray, surface: np.ndarray, target: CameraView,
                        first_row: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """_reprojected through CameraView's own unproject and project (panoramas)."""
    x = np.full(surface.shape, np.nan)
    y, target_depth = x.copy(), x.copy()
    rows, columns = np.nonzero(surface)
    points = view.unproject(np.stack([columns + 0.5, rows + (first_row + 0.5)], axis=1), depth[rows, columns])
    pixels, distance = target.project(points)
    x[rows, columns], y[rows, columns], target_depth[rows, columns] = pixels[:, 0], pixels[:, 1], distance
    return x.astype(np.float32), y.astype(np.float32), target_depth.astype(np.float32)
