# SPDX-License-Identifier: GPL-3.0-or-later
"""The frame warp against analytic scenes: textured rectangles and boxes seen by pinhole
cameras (tests/engine/texture_scenes.py), their images, Z passes, motion vectors and
visibility all computed here by ray-rectangle intersection, never through the warp's own
reprojection (engine.views / engine.visibility)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from texture_scenes import BACKGROUND, Panorama, Pinhole, Rectangle, cube_faces

import engine.warp as warp_module
from engine.errors import DiffusionError
from engine.warp import FrameGeometry, warp

W, H = 96, 64


@pytest.fixture(autouse=True, params=["whole", "bands"])
def banding(request, monkeypatch):
    """Every test twice: frames this small are warped whole; then in 3 bands of rows on
    threads (uneven: 64 rows as 21, 21, 22), as large frames are."""
    if request.param == "bands":
        monkeypatch.setattr(warp_module, "BAND_PIXELS", 1)
        monkeypatch.setattr(warp_module, "_workers", lambda: 3)
    return request.param


def _wave(s: np.ndarray, t: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """A smooth colour pattern over a rectangle's (s, t), about a period across."""
    return np.stack([0.5 + 0.35 * np.sin(2 * np.pi * s + phase), 0.5 + 0.35 * np.cos(2 * np.pi * 0.7 * t),
                     0.5 + 0.3 * np.sin(np.pi * (s + t) + phase)], axis=1)


def _shot(camera, rectangles: list[Rectangle], phases: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 float32 image, HxW float32 Z pass) of textured rectangles, each with its own
    pattern; black and BACKGROUND where no rectangle is hit."""
    origins, directions = camera.rays(camera.centres())
    depth = np.full(len(origins), np.inf)
    image = np.zeros((len(origins), 3))
    for rectangle, phase in zip(rectangles, phases):
        d, s, t = rectangle.hit(origins, directions)
        closer = d < depth
        image[closer] = _wave(s, t, phase)[closer]
        depth = np.minimum(depth, d)
    z = np.where(np.isfinite(depth), depth, BACKGROUND)
    return (image.reshape(camera.height, camera.width, 3).astype(np.float32),
            z.reshape(camera.height, camera.width).astype(np.float32))


def _points(camera, z: np.ndarray) -> np.ndarray:
    """HWx3: the point each pixel sees (NaN on background), from its analytic ray."""
    origins, directions = camera.rays(camera.centres())
    depth = np.where(z < BACKGROUND, z, np.nan).astype(np.float64).ravel()
    return origins + depth[:, None] * directions


def _seen_by(camera, rectangles: list[Rectangle], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N bools, Nx2 pixels): which points the camera's image shows (inside it, nothing
    in front), and where."""
    pixels, depth = camera.pixel(points)
    with np.errstate(invalid="ignore"):
        inside = ((pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0)
                  & (pixels[:, 1] < camera.height) & (depth > 0))
    origins, directions = camera.rays(np.nan_to_num(pixels))
    nearest = np.full(len(points), np.inf)
    for rectangle in rectangles:
        nearest = np.minimum(nearest, rectangle.hit(origins, directions)[0])
    # The points come from float32 Z passes: a few 1e-8 of their depth off their surface.
    return inside & (nearest >= depth * (1.0 - 1e-5)), pixels


def _near_edge(mask: np.ndarray) -> np.ndarray:
    """Pixels with a neighbour (8-connected) on the other side of the mask's boundary."""
    padded = np.pad(mask, 1, mode="edge")
    edge = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            edge |= padded[1 + dy:1 + dy + mask.shape[0], 1 + dx:1 + dx + mask.shape[1]] != mask
    return edge


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _as_bytes(image: np.ndarray) -> np.ndarray:
    """An 8-bit frame of a float image, as its PNG would hold it."""
    return np.rint(image * 255).astype(np.uint8)


def _moved(rectangles: list[Rectangle], offset) -> list[Rectangle]:
    return [dataclasses.replace(r, origin=tuple(np.add(r.origin, offset))) for r in rectangles]


def _geometry(camera, z: np.ndarray, frame: int = 1, **motion) -> FrameGeometry:
    return FrameGeometry(dataclasses.replace(camera.view(), frame=frame), z, **motion)


# A 14 x 3 textured panel standing in the y = 1 plane (the cameras stand at -Y): wider
# than the views (a pan brings new parts in), not as tall (background above and below).
PANEL = Rectangle(origin=(-7.0, 1.0, -1.5), side_u=(14.0, 0.0, 0.0), side_v=(0.0, 0.0, 3.0))
# The boxes below stand at y = -1.8 .. -0.2 before a wall at y = 3, cameras at y = -8:
# nearer than this is box.
BOX_DEPTH = 9.0

CAMERAS = {
    "perspective": (Pinhole(eye=(0.3, -7.0, 0.8), target=(0.0, 0.0, 0.0), width=W, height=H, lens=40.0),
                    Pinhole(eye=(1.1, -6.2, 1.3), target=(0.6, 0.5, 0.2), width=W, height=H, lens=40.0)),
    "orthographic": (Pinhole(eye=(0.3, -7.0, 0.8), target=(0.0, 0.0, 0.0), width=W, height=H, ortho_scale=7.0),
                     Pinhole(eye=(1.0, -6.5, 1.2), target=(0.8, 0.3, 0.1), width=W, height=H, ortho_scale=7.0)),
    # Unrotated panoramas look down -Z: they stand above PANEL_BELOW; the second one turned too.
    "panorama": (Panorama(eye=(0.2, 0.3, 5.0), width=W, height=H, longitude=(-1.2, 1.2), latitude=(-0.8, 0.8)),
                 Panorama(eye=(0.9, 0.5, 5.4), width=W, height=H, longitude=(-0.9, 1.5), latitude=(-0.8, 0.8))),
}
PANEL_BELOW = Rectangle(origin=(-20.0, -4.0, -1.0), side_u=(40.0, 0.0, 0.0), side_v=(0.0, 8.0, 0.0))


@pytest.mark.parametrize("pixels", ["float", "8-bit"])
@pytest.mark.parametrize("kind", list(CAMERAS))
def test_a_moving_camera_sees_the_panel_where_analytic_reprojection_puts_it(kind, pixels):
    before, after = CAMERAS[kind]
    panel = PANEL_BELOW if kind == "panorama" else PANEL
    image_before, z_before = _shot(before, [panel], [0.0])
    image_after, z_after = _shot(after, [panel], [0.0])
    if pixels == "8-bit":  # an animation frame as on disk: warped as bytes
        warped = warp(_as_bytes(image_before), _geometry(before, z_before), _geometry(after, z_after))
        assert warped.image.dtype == np.uint8
        warped = dataclasses.replace(warped, image=warped.image / np.float32(255))
    else:
        warped = warp(image_before, _geometry(before, z_before), _geometry(after, z_after))

    points = _points(after, z_after)
    expected_valid, expected_source = _seen_by(before, [panel], points)
    expected_valid = expected_valid.reshape(H, W)
    surface = z_after < BACKGROUND
    # The scene is set up so that all three reasons to be invalid occur.
    assert (~surface).sum() > 50 and (surface & ~expected_valid).sum() > 50 and expected_valid.sum() > 1500

    # Where each pixel's point was, to a thousandth of a pixel.
    assert np.abs(warped.source.reshape(-1, 2)[surface.ravel()] - expected_source[surface.ravel()]).max() < 1e-3
    assert np.isnan(warped.source[~surface]).all()
    mismatch = warped.valid != expected_valid
    assert not (mismatch & ~_near_edge(expected_valid)).any()
    assert mismatch.sum() < 0.02 * W * H
    both = warped.valid & expected_valid
    assert _psnr(warped.image[both], image_after[both]) >= 50.0  # 55 to 62 dB measured (8-bit: 54.6 to 55.8)
    assert (warped.image[~warped.valid] == 0).all()


@pytest.mark.parametrize("pixels", ["float", "8-bit"])
def test_the_strip_a_box_uncovers_is_invalid_exactly(pixels):
    wall = Rectangle(origin=(-20.0, 3.0, -20.0), side_u=(40.0, 0.0, 0.0), side_v=(0.0, 0.0, 40.0))
    box = _moved(cube_faces(0.8), (0.0, -1.0, 0.0))
    scene = [wall, *box]
    phases = [0.0, *np.linspace(1.0, 3.0, len(box))]
    before = Pinhole(eye=(0.0, -8.0, 0.3), target=(0.0, 0.0, 0.3), width=W, height=H, lens=35.0)
    after = dataclasses.replace(before, eye=(0.7, -8.0, 0.3), target=(0.7, 0.0, 0.3))  # sideways, no turn
    image_before, z_before = _shot(before, scene, phases)
    image_after, z_after = _shot(after, scene, phases)
    warped = warp(image_before, _geometry(before, z_before), _geometry(after, z_after))
    if pixels == "8-bit":
        # As bytes: the same pixels valid, each within a level of the float warp's sample
        # (the frame's rounding to bytes, then the sample's).
        as_bytes = warp(_as_bytes(image_before), _geometry(before, z_before), _geometry(after, z_after))
        assert as_bytes.image.dtype == np.uint8 and np.array_equal(as_bytes.valid, warped.valid)
        rounded = np.rint(warped.image * 255)
        assert np.abs(as_bytes.image - rounded).max() <= 1
        warped = dataclasses.replace(warped, image=as_bytes.image / np.float32(255))

    expected_valid, _ = _seen_by(before, scene, _points(after, z_after))
    expected_valid = expected_valid.reshape(H, W)
    # The camera moved right: behind the box's left edge, a strip of wall appears.
    inside = _seen_by(before, [], _points(after, z_after))[0].reshape(H, W)
    uncovered = inside & ~expected_valid
    assert 3 <= uncovered.any(axis=0).sum() <= 12 and uncovered.sum() > 60
    mismatch = warped.valid != expected_valid
    assert not (mismatch & ~_near_edge(expected_valid)).any()
    assert not (warped.valid & uncovered & ~_near_edge(uncovered)).any()
    # No colour bleeds across the box's silhouette: its edges are as sharp as the rest.
    both = warped.valid & expected_valid
    assert _psnr(warped.image[both], image_after[both]) >= 48.0  # 55 dB measured (8-bit: 54)


@pytest.mark.parametrize("back", ["forward-backward", "depth only"])
def test_an_object_moving_before_a_still_camera_takes_its_pixels_along(back):
    """Motion vectors (as Cycles gives them), computed here from the box's known motion.

    With the previous frame's vectors to the next, a still post in front of the box shows
    the forward-backward check: the parts of the box that come out from behind it moved,
    so no depth tells they were hidden. Without them only surfaces that did not move can
    be tested (a moving point's depth in the previous frame is unknown): no post there.
    """
    wall = Rectangle(origin=(-20.0, 3.0, -20.0), side_u=(40.0, 0.0, 0.0), side_v=(0.0, 0.0, 40.0))
    post = Rectangle(origin=(-0.35, -3.0, -3.0), side_u=(0.5, 0.0, 0.0), side_v=(0.0, 0.0, 6.0))
    still = [wall, post] if back == "forward-backward" else [wall]
    step = np.array([0.6, 0.0, 0.25])  # the box's motion per frame
    camera = Pinhole(eye=(0.4, -8.0, 1.5), target=(0.0, 0.0, 0.0), width=W, height=H, lens=35.0)
    box_before = _moved(cube_faces(0.8), (-0.3, -1.0, 0.0))
    box_after = _moved(box_before, step)
    phases = [0.0, 0.5, *np.linspace(1.0, 3.0, 6)][-len(still) - 6:]

    def frame(box, towards: dict[str, int]):
        image, z = _shot(camera, [*still, *box], phases)
        points = _points(camera, z)
        origins, directions = camera.rays(camera.centres())
        on_box = np.zeros(len(points), bool)
        for face in box:
            on_box |= np.isclose(face.hit(origins, directions)[0], z.ravel(), rtol=1e-6)
        motion = {}
        for name, sign in towards.items():
            there = points + sign * on_box[:, None] * step
            motion[name] = (camera.pixel(there)[0] - camera.centres()).reshape(H, W, 2).astype(np.float32)
            motion[name][z >= BACKGROUND] = 0.0
        return image, z, points, on_box.reshape(H, W), motion

    image_before, z_before, _, box_seen_before, motion_before = frame(box_before, {"to_next": 1})
    image_after, z_after, points_after, box_seen_after, motion_after = frame(box_after, {"to_previous": -1})
    if back == "depth only":
        motion_before = {}
    warped = warp(image_before, _geometry(camera, z_before, 1, **motion_before),
                  _geometry(camera, z_after, 2, **motion_after))

    where_before = points_after - box_seen_after.ravel()[:, None] * step
    expected_valid = _seen_by(camera, [*still, *box_before], where_before)[0].reshape(H, W)
    uncovered = box_seen_before & ~box_seen_after & (z_after > BOX_DEPTH)  # wall the box moved off
    assert uncovered.sum() > 40 and not expected_valid[uncovered].any()
    if back == "forward-backward":
        assert (box_seen_after & ~expected_valid & ~_near_edge(box_seen_after)).sum() > 20  # from behind the post
    mismatch = warped.valid != expected_valid
    assert not (mismatch & ~_near_edge(expected_valid)).any()
    assert not (warped.valid & uncovered & ~_near_edge(uncovered)).any()
    # The box's pixels moved with it. Without the check, its edges take in some wall.
    both = warped.valid & expected_valid
    least = 45.0 if back == "forward-backward" else 35.0  # 52 and 39 dB measured
    assert _psnr(warped.image[both], image_after[both]) >= least
    assert (both & box_seen_after).sum() > 100
    if back == "forward-backward":
        # Only both frames of a pair marked still leave the vectors' round trip out: a
        # previous frame marked still after it (as if the box had been hidden) changes nothing.
        marked = dataclasses.replace(_geometry(camera, z_before, 1, **motion_before), still_after=True)
        again = warp(image_before, marked, _geometry(camera, z_after, 2, **motion_after))
        assert np.array_equal(again.valid, warped.valid) and np.array_equal(again.image, warped.image)


@pytest.mark.parametrize("back", ["forward-backward", "none"])
def test_slow_motion_over_empty_background_takes_in_no_background(back):
    """Under a pixel of motion the forward-backward check cannot tell a card's edge from
    the background around it, and without the previous frame's vectors nothing can: the
    background's own emptiness must keep it out. (The card's left edge is placed where the
    column inside it samples a background pixel.)"""
    card = Rectangle(origin=(-1.02, 0.0, -1.0), side_u=(2.0, 0.0, 0.0), side_v=(0.0, 0.0, 2.0))
    camera = Pinhole(eye=(0.0, -8.0, 0.0), target=(0.0, 0.0, 0.0), width=W, height=H, lens=35.0)
    step = np.array([0.03, 0.0, 0.02])  # about 0.4 px right and 0.3 px up
    before, after = card, _moved([card], step)[0]
    image_before, z_before = _shot(camera, [before], [0.0])
    image_after, z_after = _shot(camera, [after], [0.0])
    pixels = {}
    for name, z, sign in (("to_next", z_before, 1), ("to_previous", z_after, -1)):
        moved = camera.pixel(_points(camera, z) + sign * step)[0] - camera.centres()
        pixels[name] = np.where((z < BACKGROUND)[..., None], moved.reshape(H, W, 2), 0.0).astype(np.float32)
    to_next = {"to_next": pixels["to_next"]} if back == "forward-backward" else {}
    warped = warp(image_before, _geometry(camera, z_before, 1, **to_next),
                  _geometry(camera, z_after, 2, to_previous=pixels["to_previous"]))
    expected = _seen_by(camera, [before], _points(camera, z_after) - step)[0].reshape(H, W)
    assert not ((warped.valid != expected) & ~_near_edge(expected)).any()
    both = warped.valid & expected
    assert _psnr(warped.image[both], image_after[both]) >= 38.0  # 41 dB measured (edges extrapolated)


@pytest.mark.parametrize("pixels", ["float", "8-bit"])
def test_the_border_pixels_reach_half_a_pixel_out_and_no_further(pixels):
    """A wall parallel to an orthographic camera that moves a quarter pixel sideways: every
    pixel's source is a quarter (or three quarters) of a pixel over, so the warp is the
    bilinear mix of two neighbours, written out here; at the border, within half a pixel
    of the image, a pixel samples its own column alone, and farther out nothing. An 8-bit
    frame gives that mix rounded: within half a level."""
    wall = Rectangle(origin=(-30.0, 2.0, -30.0), side_u=(60.0, 0.0, 0.0), side_v=(0.0, 0.0, 60.0))
    before = Pinhole(eye=(0.0, -6.0, 0.0), target=(0.0, 0.0, 0.0), width=W, height=H, ortho_scale=6.0)
    image = np.random.default_rng(3).random((H, W, 3), dtype=np.float32)
    given, tolerance = image, 1e-6
    if pixels == "8-bit":
        given = _as_bytes(image)
        image, tolerance = given.astype(np.float32), 0.5 + 1e-4
    for shift in (0.25, -0.25, 0.75):
        offset = shift * before.ortho_scale / W  # world units for `shift` pixels
        after = dataclasses.replace(before, eye=(offset, -6.0, 0.0), target=(offset, 0.0, 0.0))
        warped = warp(given, _geometry(before, _shot(before, [wall], [0.0])[1]),
                      _geometry(after, _shot(after, [wall], [0.0])[1]))
        assert warped.image.dtype == given.dtype
        fraction = shift % 1.0
        expected = image.copy()
        if shift > 0:  # sources to the right: the last column is alone, or off the image
            expected[:, :-1] = (1 - fraction) * image[:, :-1] + fraction * image[:, 1:]
            valid = np.arange(W) + 0.5 + shift < W
        else:  # sources to the left: the first column samples its own pixel alone
            expected[:, 1:] = (1 - fraction) * image[:, :-1] + fraction * image[:, 1:]
            valid = np.ones(W, bool)
        assert (warped.valid == valid[None, :]).all(), shift
        assert np.abs(warped.image[warped.valid] - expected[warped.valid]).max() < tolerance, shift
        assert (warped.image[~warped.valid] == 0).all()


@pytest.mark.parametrize("pixels", ["float", "8-bit"])
@pytest.mark.parametrize("kind", ["perspective", "orthographic", "vectors"])
def test_zero_motion_gives_the_image_back_bit_for_bit(kind, pixels):
    camera = CAMERAS["orthographic" if kind == "orthographic" else "perspective"][1]
    _, z = _shot(camera, [PANEL], [0.0])
    image = np.random.default_rng(7).random((H, W, 3), dtype=np.float32)
    if pixels == "8-bit":
        image = _as_bytes(image)
    if kind == "vectors":
        still = np.zeros((H, W, 2), np.float32)
        warped = warp(image, _geometry(camera, z, 1, to_next=still), _geometry(camera, z, 2, to_previous=still))
    else:
        warped = warp(image, _geometry(camera, z), _geometry(camera, z))
    surface = z < BACKGROUND
    assert (warped.valid == surface).all() and (~surface).sum() > 100
    assert warped.image.dtype == image.dtype
    assert np.array_equal(warped.image[surface], image[surface])


def test_motion_vectors_of_frames_further_apart_are_not_used():
    """Vectors reach one frame either way: between frames 1 and 3 only the views count."""
    camera = CAMERAS["perspective"][1]
    _, z = _shot(camera, [PANEL], [0.0])
    image = np.random.default_rng(5).random((H, W, 3), dtype=np.float32)
    bogus = np.full((H, W, 2), 3.0, np.float32)
    warped = warp(image, _geometry(camera, z, 1, to_next=bogus), _geometry(camera, z, 3, to_previous=bogus))
    surface = z < BACKGROUND
    assert (warped.valid == surface).all()
    assert np.array_equal(warped.image[surface], image[surface])


def _vectors(camera, z: np.ndarray, other, moves=None) -> np.ndarray:
    """HxWx2 float32: Cycles' motion vectors of each pixel's point towards `other`'s view,
    computed from the analytic cameras (moved by `moves(points)` first, if given); 0 on
    the background."""
    points = _points(camera, z)
    if moves is not None:
        points = moves(points)
    vectors = (other.pixel(points)[0] - camera.centres()).reshape(camera.height, camera.width, 2)
    vectors[z >= BACKGROUND] = 0.0
    return vectors.astype(np.float32)


@pytest.mark.parametrize("kind", list(CAMERAS))
def test_vectors_of_a_camera_moving_through_a_still_scene_are_marked_still(kind):
    """Frame 2's camera between frame 1's and frame 3's, which turn and move differently."""
    first, second = CAMERAS[kind]
    third = dataclasses.replace(first, eye=tuple(np.add(first.eye, (-0.4, 0.2, 0.3))))
    panel = PANEL_BELOW if kind == "panorama" else PANEL
    _, z = _shot(second, [panel], [0.0])
    views = [dataclasses.replace(camera.view(), frame=frame) for frame, camera in ((1, first), (3, third))]
    geometry = _geometry(second, z, 2, to_previous=_vectors(second, z, first), to_next=_vectors(second, z, third))
    marked = warp_module.with_stillness(geometry, *views)
    assert marked.still_before and marked.still_after
    assert np.array_equal(marked.to_previous, geometry.to_previous)  # the vectors are kept

    # A card that moves a tenth of a unit (over half a pixel) from frame 1 to 2, then
    # stands: not still before, still after; then one that stands, then moves on.
    card = Rectangle(origin=(-0.5, 0.5, 0.0), side_u=(1.0, 0.0, 0.0), side_v=(0.0, 0.0, 0.6))
    if kind == "panorama":
        card = Rectangle(origin=(-0.5, -0.5, 1.0), side_u=(1.0, 0.0, 0.0), side_v=(0.0, 0.6, 0.0))
    _, z = _shot(second, [panel, card], [0.0, 1.0])
    on_card = card.hit(*second.rays(second.centres()))[0] <= z.ravel() * (1 + 1e-6)
    assert on_card.sum() > 20

    def moved(points: np.ndarray) -> np.ndarray:
        return points - on_card[:, None] * np.array([0.1, 0.0, 0.0])

    geometry = _geometry(second, z, 2, to_previous=_vectors(second, z, first, moved),
                         to_next=_vectors(second, z, third))
    marked = warp_module.with_stillness(geometry, *views)
    assert not marked.still_before and marked.still_after
    geometry = _geometry(second, z, 2, to_previous=_vectors(second, z, first),
                         to_next=_vectors(second, z, third, moved))
    marked = warp_module.with_stillness(geometry, *views)
    assert marked.still_before and not marked.still_after


@pytest.mark.parametrize("pixels", ["float", "8-bit"])
def test_between_still_frames_the_warp_reprojects_and_finds_what_it_uncovered(pixels):
    """The camera slides past a box before a wall, nothing else moves: with every frame's
    vectors marked still, the warp leaves out their round trip and gives what the analytic
    scene shows (the same pixels valid as following the vectors, the same colours)."""
    wall = Rectangle(origin=(-20.0, 3.0, -20.0), side_u=(40.0, 0.0, 0.0), side_v=(0.0, 0.0, 40.0))
    box = _moved(cube_faces(0.8), (0.0, -1.0, 0.0))
    scene = [wall, *box]
    phases = [0.0, *np.linspace(1.0, 3.0, len(box))]
    cameras = [Pinhole(eye=(x, -8.0, 0.3), target=(x, 0.0, 0.3), width=W, height=H, lens=35.0)
               for x in (-0.7, 0.0, 0.7, 1.4)]
    shots = [_shot(camera, scene, phases) for camera in cameras]
    views = [dataclasses.replace(camera.view(), frame=frame) for frame, camera in enumerate(cameras)]
    followed = [_geometry(cameras[frame], shots[frame][1], frame,
                          to_previous=_vectors(cameras[frame], shots[frame][1], cameras[frame - 1]),
                          to_next=_vectors(cameras[frame], shots[frame][1], cameras[frame + 1]))
                for frame in (1, 2)]
    marked = [warp_module.with_stillness(geometry, views[frame - 1], views[frame + 1])
              for frame, geometry in zip((1, 2), followed)]
    assert all(geometry.still_before and geometry.still_after for geometry in marked)
    image = shots[1][0] if pixels == "float" else _as_bytes(shots[1][0])
    warped = warp(image, *marked)
    along = warp(image, *followed)

    expected_valid = _seen_by(cameras[1], scene, _points(cameras[2], shots[2][1]))[0].reshape(H, W)
    mismatch = warped.valid != expected_valid
    assert not (mismatch & ~_near_edge(expected_valid)).any()
    uncovered = _seen_by(cameras[1], [], _points(cameras[2], shots[2][1]))[0].reshape(H, W) & ~expected_valid
    assert uncovered.sum() > 60 and not (warped.valid & uncovered & ~_near_edge(uncovered)).any()
    both = warped.valid & expected_valid
    result = warped.image if pixels == "float" else warped.image / np.float32(255)
    assert _psnr(result[both], shots[2][0][both]) >= 48.0
    assert np.array_equal(warped.valid, along.valid)
    assert np.abs(warped.image.astype(np.float32) - along.image).max() <= (1e-5 if pixels == "float" else 1)


def test_what_enters_at_the_border_is_invalid_not_stretched():
    wall = Rectangle(origin=(-30.0, 2.0, -30.0), side_u=(60.0, 0.0, 0.0), side_v=(0.0, 0.0, 60.0))
    before = Pinhole(eye=(0.0, -6.0, 0.0), target=(0.0, 0.0, 0.0), width=W, height=H, lens=35.0)
    after = dataclasses.replace(before, target=(0.5, 0.0, -0.2))  # a pan right and down
    image_before, z_before = _shot(before, [wall], [0.0])
    z_after = _shot(after, [wall], [0.0])[1]
    warped = warp(image_before, _geometry(before, z_before), _geometry(after, z_after))
    expected_valid = _seen_by(before, [wall], _points(after, z_after))[0].reshape(H, W)
    entered = ~expected_valid
    # A strip at the right and one at the bottom came into view.
    assert entered[:, -1].all() and entered[-1].all() and not entered[:H // 2, :W // 2].any()
    assert not ((warped.valid != expected_valid) & ~_near_edge(expected_valid)).any()
    assert (warped.image[~warped.valid] == 0).all()


def test_mismatched_inputs_are_refused_with_what_to_pass():
    camera = CAMERAS["perspective"][0]
    _, z = _shot(camera, [PANEL], [0.0])
    with pytest.raises(DiffusionError, match="Z pass"):
        FrameGeometry(camera.view(), z[:, :10])
    with pytest.raises(DiffusionError, match="motion"):
        FrameGeometry(camera.view(), z, to_previous=np.zeros((H, W, 3), np.float32))
    with pytest.raises(DiffusionError, match="previous image"):
        warp(np.zeros((H, W - 1, 3), np.float32), _geometry(camera, z), _geometry(camera, z))


def _sky(directions: np.ndarray) -> np.ndarray:
    """A smooth colour of the World by direction alone (what lies at infinity)."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    return np.stack([0.5 + 0.4 * d[:, 0], 0.5 + 0.4 * d[:, 2], 0.5 + 0.3 * d[:, 0] * d[:, 2]], axis=1)


@pytest.mark.parametrize("kind", ["perspective", "panorama"])
def test_the_background_is_warped_as_seen_at_infinity(kind):
    """Opt-in (`background=True`, what animations use): a pixel showing the World takes the
    previous frame's colour in its ray's direction, wherever the camera moved; where the
    previous frame showed an object in that direction instead, it is not valid."""
    before, after = CAMERAS[kind]
    blocker = [PANEL] if kind == "perspective" else [PANEL_BELOW]
    image, z = _shot(before, blocker, [0.0])
    origins, directions = before.rays(before.centres())
    sky = ~np.isfinite(np.where(z < BACKGROUND, z, np.inf)).ravel()
    flat = image.reshape(-1, 3)
    flat[sky] = _sky(directions[sky])  # the World behind the panel, by direction
    _, z_after = _shot(after, [], [])  # nothing in the scene at the second frame: all World
    warped = warp(image, _geometry(before, z, frame=1), _geometry(after, z_after, frame=3), background=True)
    _, after_directions = after.rays(after.centres())
    expected = _sky(after_directions).reshape(after.height, after.width, 3)
    # Where the previous frame showed the World in the pixel's direction: its colour there.
    pixels, _ = before.pixel(after.eye + after_directions * 1e6)
    with np.errstate(invalid="ignore"):
        inside = ((pixels[:, 0] >= 1) & (pixels[:, 0] < before.width - 1) & (pixels[:, 1] >= 1)
                  & (pixels[:, 1] < before.height - 1))
    sky_before = sky.reshape(before.height, before.width)
    near_blocker = _near_edge(sky_before).ravel()
    taps = np.clip(np.nan_to_num(pixels).astype(int), 0, [before.width - 1, before.height - 1])
    clear = inside & sky_before[taps[:, 1], taps[:, 0]] & ~near_blocker[taps[:, 1] * before.width + taps[:, 0]]
    clear = clear.reshape(after.height, after.width)
    assert clear.mean() > 0.15
    assert warped.valid[clear].all()
    assert _psnr(warped.image[clear], expected[clear]) > 40
    # Where the panel was in that direction, nothing is made up.
    blocked = (inside & ~sky_before[taps[:, 1], taps[:, 0]] & ~near_blocker[taps[:, 1] * before.width + taps[:, 0]])
    blocked = blocked.reshape(after.height, after.width)
    if kind == "perspective":
        assert blocked.any()
    assert not warped.valid[blocked].any()
    # And without the option the World is never warped.
    assert not warp(image, _geometry(before, z, frame=1), _geometry(after, z_after, frame=3)).valid.any()


@pytest.mark.parametrize("banding", ["whole"], indirect=True)  # it bands the frame itself
@pytest.mark.parametrize("kind", list(CAMERAS))
def test_bands_give_the_whole_frames_bits(kind, banding, monkeypatch):
    """The same warp, whole and in bands of rows, with motion vectors, the background and
    moving objects: bit for bit the same image, validity and source positions."""
    before, after = CAMERAS[kind]
    panel = PANEL_BELOW if kind == "panorama" else PANEL
    image, z_before = _shot(before, [panel], [0.0])
    z_after = _shot(after, [panel], [0.0])[1]
    rng = np.random.default_rng(11)
    to_previous = rng.normal(0.0, 0.7, (H, W, 2)).astype(np.float32)
    to_next = rng.normal(0.0, 0.7, (H, W, 2)).astype(np.float32)
    for motion in ({}, {"to_previous": to_previous}):
        def frames(motion=motion):  # new ones each time: a frame keeps its lookup once made
            return (_geometry(before, z_before, 1, **({"to_next": to_next} if motion else {})),
                    _geometry(after, z_after, 2, **motion))
        whole = warp(image, *frames(), background=True)
        monkeypatch.setattr(warp_module, "BAND_PIXELS", 1)
        monkeypatch.setattr(warp_module, "_workers", lambda: 5)
        assert len(warp_module._bands(H, W)) == 5
        banded = warp(image, *frames(), background=True)
        monkeypatch.undo()
        assert whole.valid.any() and not whole.valid.all()
        assert np.array_equal(whole.image, banded.image) and np.array_equal(whole.valid, banded.valid)
        assert np.array_equal(whole.source, banded.source, equal_nan=True)
