# SPDX-License-Identifier: GPL-3.0-or-later
"""Panoramas: the equirectangular mapping, pole caps, seam metrics, tiled upscaling and
extending a camera picture into a sphere.

References are built apart from engine.panorama: the mapping's forward formula, that of
Blender's World Environment Texture (Cycles' direction_to_equirectangular, checked by rendering
a World: u = 0.5 - atan2(d.y, d.x) / 2π, v = asin(d.z) / π + 0.5, so the image centre looks
towards +X, u = 0.25 towards +Y, u = 0.75 towards -Y and the left/right border towards -X),
pinhole cameras written out by hand, cap directions from the documented cap orientation, and distances
counted along a row.
"""
import math

import numpy as np
import pytest

from engine.errors import DiffusionError
from engine.panorama import (Blend, Window, cap_from_panorama, cap_into_panorama, cap_mask, check_size,
                             column_difference, directions, outpaint_mask, pixels_of, pole_spread,
                             project_into_panorama, refine_tiled, seam_difference, take, upscale, windows)
from engine.views import CameraView

W, H = 256, 128


def spec_pixels(d: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nx2 pixel coordinates of directions by the checked mapping, written out here."""
    d = np.asarray(d, dtype=np.float64).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    u = 0.5 - np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi)
    v = np.arcsin(d[:, 2]) / np.pi + 0.5
    return np.stack([u * width, (1 - v) * height], axis=1)


def cap_rays(size: int, fov: float, top: bool) -> np.ndarray:
    """size x size x 3 unit directions through a cap's pixel centres, from its documented
    orientation: top looks +Z with image right +X and up -Y; bottom looks -Z, right +X, up +Y."""
    t = math.tan(math.radians(fov) / 2)
    c = ((np.arange(size) + 0.5) / size * 2 - 1) * t
    a, b = np.meshgrid(c, -c)
    d = np.stack([a, -b, np.ones_like(a)], axis=-1) if top else np.stack([a, b, -np.ones_like(a)], axis=-1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def smooth_colour(d: np.ndarray) -> np.ndarray:
    """A smooth colour on the sphere (so smooth across the poles and the wrap too)."""
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return np.stack([0.5 + 0.3 * x * z, 0.5 + 0.25 * np.sin(2 * y + x), 0.5 + 0.2 * (x * x - y * y)],
                    axis=-1).astype(np.float32)


def pinhole(forward, up, size: int = 65, fov: float = 90.0) -> CameraView:
    """A perspective camera at the origin, square image, the matrices written out by hand."""
    forward, up = np.asarray(forward, float), np.asarray(up, float)
    right = np.cross(forward, up)
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack([right, up, -forward], axis=1)
    near, far = 0.1, 100.0
    p = np.zeros((4, 4))
    p[0, 0] = p[1, 1] = 1 / math.tan(math.radians(fov) / 2)
    p[2, 2] = -(far + near) / (far - near)
    p[2, 3] = -2 * far * near / (far - near)
    p[3, 2] = -1.0
    return CameraView(name="cam", type='PERSP', width=size, height=size, world_from_camera=matrix,
                      projection=p, clip_start=near, clip_end=far, frame=1)


def periodic_image(width: int, height: int, period: float, seed: int = 0) -> np.ndarray:
    """A smooth image of a few sines along x with the given period (x-periodic when it is width)."""
    rng = np.random.default_rng(seed)
    x = np.arange(width)[None, :, None]
    y = np.arange(height)[:, None, None] / height
    image = np.full((height, width, 3), 0.5)
    for k in (1, 2, 3):
        phase, amount = rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.03, 0.08, 3)
        image += amount * np.sin(2 * np.pi * k * x / period + phase + 2 * y)
    return image.astype(np.float32)


# --- The mapping ---------------------------------------------------------------------------

def test_world_axes_land_where_blender_puts_them():
    # +Y a quarter of the way across, +X in the centre, -Y at three quarters, +Z on top.
    at = pixels_of(np.array([[0, 1, 0], [1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]), W, H)
    np.testing.assert_allclose(at[:3], [[0.25 * W, H / 2], [0.5 * W, H / 2], [0.75 * W, H / 2]], atol=1e-9)
    assert at[3, 1] == pytest.approx(0) and at[4, 1] == pytest.approx(H)
    minus_x = pixels_of(np.array([[-1.0, 0, 0]]), W, H)[0]  # on the left/right border
    assert minus_x[0] % W == pytest.approx(0, abs=1e-9) and minus_x[1] == pytest.approx(H / 2)


def test_directions_are_unit_and_sit_at_pixel_centres():
    d = directions(W, H)
    assert d.shape == (H, W, 3) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1, atol=1e-6)
    ys, xs = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(spec_pixels(d, W, H), np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2), atol=1e-3)


def test_pixels_of_inverts_directions():
    d = directions(64, 32).reshape(-1, 3)
    ys, xs = np.mgrid[0:32, 0:64]
    np.testing.assert_allclose(pixels_of(d * 3.0, 64, 32), np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2),
                               atol=1e-4)


def test_directions_match_a_cycles_panoramic_camera_turned_90_0_minus_90():
    # A pano camera with rotation (90°, 0°, -90°) renders the World texture's mapping
    # ((90°, 0°, 90°) renders it turned by 180°).
    # Euler XYZ (90°, 0°, -90°) = Rz(-90°) Rx(90°): camera right -Y, up +Z, forward +X
    # (columns: right, up, backward).
    matrix = np.eye(4)
    matrix[:3, :3] = [[0, 0, -1], [-1, 0, 0], [0, 1, 0]]
    camera = CameraView(name="pano", type='PANO', width=W, height=H, world_from_camera=matrix, projection=np.eye(4),
                        clip_start=0.1, clip_end=100, frame=1,
                        panorama=('EQUIRECTANGULAR', -np.pi, np.pi, -np.pi / 2, np.pi / 2))
    ys, xs = np.mgrid[0:H, 0:W]
    rays = camera.unproject(np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2), np.ones(W * H))
    np.testing.assert_allclose(directions(W, H).reshape(-1, 3), rays, atol=1e-6)


@pytest.mark.parametrize("size, suggestion", [((1000, 512), "1024×512"), ((1024, 1024), "2048×1024"),
                                              ((200, 100), "256×128"), ((2000, 1003), "2000×1000")])
def test_check_size_refuses_and_names_the_nearest_2_to_1_multiple_of_8(size, suggestion):
    with pytest.raises(DiffusionError) as caught:
        check_size(*size)
    assert suggestion in caught.value.fix


def test_check_size_accepts_2_to_1():
    check_size(512, 256)
    check_size(2048, 1024)


# --- Pole caps -----------------------------------------------------------------------------

@pytest.mark.parametrize("top", [True, False])
def test_cap_shows_the_pole_in_its_documented_orientation(top):
    pano = directions(512, 256) * 0.5 + 0.5  # colour = direction
    cap = cap_from_panorama(pano, top, 64, 90.0)
    assert cap.shape == (64, 64, 3)
    # Bilinear sampling of this smooth colour is good to about 1e-5; a pixel's shift costs 1e-3.
    np.testing.assert_allclose(cap, cap_rays(64, 90.0, top) * 0.5 + 0.5, atol=2e-4)


def test_cap_wraps_around_the_panoramas_left_and_right_border():
    # Colour by longitude only, eight waves around: the border column meets the first one
    # across the wrap, and a cap samples right across it (towards -X).
    width = 512
    longitude = ((np.arange(width) + 0.5) / width - 0.5) * 2 * np.pi
    pano = np.broadcast_to((0.5 + 0.4 * np.sin(8 * longitude))[None, :, None], (256, width, 3)).astype(np.float32)
    cap = cap_from_panorama(pano, True, 65, 90.0)[..., 0]  # odd: its middle row looks along the border
    rays = cap_rays(65, 90.0, True)
    expected = 0.5 + 0.4 * np.sin(8 * -np.arctan2(rays[..., 1], rays[..., 0]))  # longitude -atan2(y, x)
    np.testing.assert_allclose(cap, expected, atol=2e-3)


@pytest.mark.parametrize("top", [True, False])
def test_cap_into_panorama_paints_the_cap_at_each_direction_beyond_the_blend(top):
    fov, start, blend = 100.0, 50.0, 10.0
    cap = smooth_colour(cap_rays(128, fov, top))
    pano = np.zeros((H, W, 3), np.float32)
    out = cap_into_panorama(pano, cap, top, fov, start, blend)
    latitude = 90 - (np.arange(H) + 0.5) / H * 180
    beyond = latitude if top else -latitude
    full, untouched = beyond > start + blend, beyond <= start
    np.testing.assert_allclose(out[full], smooth_colour(directions(W, H))[full], atol=5e-4)
    assert not out[untouched].any()
    # In the band a smoothstep of the way from the start to the pole side: a white cap on black.
    white = cap_into_panorama(pano, np.ones_like(cap), top, fov, start, blend)[:, :, 0]
    t = np.clip((beyond - start) / blend, 0, 1)
    np.testing.assert_allclose(white, np.broadcast_to((t * t * (3 - 2 * t))[:, None], white.shape), atol=1e-6)
    assert np.any((t > 0) & (t < 1))


def test_cap_round_trip_changes_a_smooth_panorama_very_little():
    pano = smooth_colour(directions(512, 256))
    changed = np.zeros((256, 512), bool)
    out = pano
    for top in (True, False):
        cap = cap_from_panorama(pano, top, 256, 90.0)
        out = cap_into_panorama(out, cap, top, 90.0, 60.0, 5.0)
    latitude = 90 - (np.arange(256) + 0.5) / 256 * 180
    changed[np.abs(latitude) > 60] = True
    error = float(np.mean((out[changed] - pano[changed]) ** 2))
    assert 10 * np.log10(1 / error) > 45
    np.testing.assert_array_equal(out[~changed], pano[~changed])


def test_pole_rows_become_uniform_under_a_cap():
    rng = np.random.default_rng(3)
    pano = smooth_colour(directions(W, H))
    pano[:4] = rng.uniform(0, 1, (4, W, 3))  # the pinch: a smeared, streaky pole
    pano[-4:] = rng.uniform(0, 1, (4, W, 3))
    assert pole_spread(pano) > 0.2
    out = pano
    for top in (True, False):
        cap = smooth_colour(cap_rays(128, 90.0, top))  # a freshly repainted, smooth cap
        out = cap_into_panorama(out, cap, top, 90.0, 70.0, 5.0)
    assert pole_spread(out) < 0.01


def test_cap_mask_is_the_disc_beyond_the_latitude():
    size, fov, latitude = 64, 90.0, 60.0
    mask = cap_mask(size, fov, latitude)
    # Beyond 60° latitude is within 30° of the axis: a tan 30° / tan 45° half-width disc.
    radius = math.tan(math.radians(30)) * size / 2
    c = np.arange(size) + 0.5 - size / 2
    distance = np.hypot(c[None, :], c[:, None])
    assert np.all(mask[distance <= radius] == 1)
    assert np.all(mask[distance >= radius + 4] == 0)
    ring = (distance > radius) & (distance < radius + 2)
    assert np.all((mask[ring] > 0) & (mask[ring] < 1))


def test_a_cap_that_does_not_reach_the_start_latitude_is_refused():
    with pytest.raises(DiffusionError) as caught:
        cap_into_panorama(np.zeros((H, W, 3), np.float32), np.zeros((64, 64, 3), np.float32), True, 90.0, 40.0, 5.0)
    assert "45" in str(caught.value)


# --- Metrics -------------------------------------------------------------------------------

def test_a_periodic_image_has_no_seam_and_a_broken_border_has_one():
    periodic = periodic_image(W, H, W)
    assert seam_difference(periodic) <= 1.5 * column_difference(periodic)
    cut = periodic_image(W, H, 1.37 * W)  # the same waves, but the border falls mid-period
    assert seam_difference(cut) > 1.5 * column_difference(cut)
    gradient = np.broadcast_to(np.linspace(0, 1, W, dtype=np.float32)[None, :, None], (H, W, 3))
    assert seam_difference(gradient) > 1.5 * column_difference(gradient)


def test_metrics_by_hand():
    image = np.zeros((4, 3, 3), np.float32)
    image[:, 2] = 0.6  # columns 0, 0, 0.6
    assert seam_difference(image) == pytest.approx(0.6)
    assert column_difference(image) == pytest.approx(0.3)
    image[0] = [[0, 0, 0], [1, 0, 0], [0, 0, 0]]  # top row: red 0, 1, 0
    assert pole_spread(image) == pytest.approx(np.std([0, 1, 0]))
    assert pole_spread(np.ones((4, 8, 3), np.float32)) == 0


# --- Tiled upscaling -----------------------------------------------------------------------

@pytest.mark.parametrize("size, window, overlap", [((700, 300), (256, 128), 40), ((1024, 512), (512, 512), 64),
                                                   ((512, 256), (1024, 512), 64), ((512, 200), (96, 64), 0)])
def test_windows_cover_everything_wrapping_in_x_and_staying_inside_in_y(size, window, overlap):
    width, height = size
    tiles = windows(width, height, *window, overlap)
    covered = np.zeros((height, width), int)
    for t in tiles:
        covered[t.y:t.y + t.height, (t.x + np.arange(t.width)) % width] += 1
        assert 0 <= t.x < width and 0 <= t.y and t.y + t.height <= height
        assert t.width == min(window[0], width) and t.height == min(window[1], height)
    assert covered.min() >= 1
    xs, ys = sorted({t.x for t in tiles}), sorted({t.y for t in tiles})
    if window[0] >= width:
        assert xs == [0]
    else:
        steps = np.diff(xs + [xs[0] + width])  # around the wrap, last back to first
        assert steps.max() <= window[0] - overlap and steps.max() - steps.min() <= 1
        assert len(xs) == math.ceil(width / (window[0] - overlap))
    if window[1] >= height:
        assert ys == [0]
    else:
        assert ys[0] == 0 and ys[-1] + window[1] == height
        assert np.diff(ys).max() <= window[1] - overlap


@pytest.mark.parametrize("window, overlap", [((256, 128), 40), ((1024, 128), 40), ((128, 300), 32)])
def test_blend_of_the_windows_own_pixels_is_the_image(window, overlap):
    image = np.random.default_rng(1).uniform(0, 1, (300, 700, 3)).astype(np.float32)
    blend = Blend(700, 300, overlap)
    tiles = windows(700, 300, *window, overlap)
    assert any(t.x + t.width > 700 for t in tiles) or window[0] >= 700
    for t in tiles:
        blend.add(t, take(image, t))
    assert blend.weights.min() > 0
    np.testing.assert_allclose(blend.result(), image, atol=1e-6)


def test_blend_cross_fades_linearly_over_the_overlap_also_across_the_wrap():
    width, height = 136, 200
    blend = Blend(width, height, 32)
    # x: A covers [0, 100), B covers [68, 168) = [68, 136) and, wrapped, [0, 32).
    a, b = Window(0, 0, 100, height), Window(68, 0, 100, height)
    blend.add(a, np.zeros((height, 100, 3), np.float32))
    blend.add(b, np.ones((height, 100, 3), np.float32))
    row = blend.result()[100, :, 0]
    np.testing.assert_allclose(row[68:100], (np.arange(68, 100) - 67.5) / 32, atol=1e-6)
    np.testing.assert_allclose(row[:32], 1 - (np.arange(32) + 0.5) / 32, atol=1e-6)
    assert np.all(row[32:68] == 0) and np.all(row[100:] == 1)
    # y: the panorama's own top and bottom are no inner border, so full rows weigh fully there.
    blend = Blend(width, height, 32)
    blend.add(Window(0, 0, width, 120), np.zeros((120, width, 3), np.float32))
    blend.add(Window(0, 88, width, 112), np.ones((112, width, 3), np.float32))
    column = blend.result()[:, 5, 0]
    np.testing.assert_allclose(column[88:120], (np.arange(88, 120) - 87.5) / 32, atol=1e-6)
    assert np.all(column[:88] == 0) and np.all(column[120:] == 1)
    assert blend.weights[0, 5] == 1 and blend.weights[-1, 5] == 1


def test_upscale_to_the_same_size_changes_nothing():
    image = np.random.default_rng(2).uniform(0, 1, (64, 128, 3)).astype(np.float32)
    np.testing.assert_allclose(upscale(image, 128, 64), image, atol=1e-6)


def test_refine_tiled_passes_every_window_through_refine():
    image = periodic_image(128, 64, 128)
    seen = []

    def brighten(pixels, index, count):
        seen.append((index, count))
        return pixels + 0.05

    shown = []
    out = refine_tiled(image, 512, 256, 160, 128, 32, brighten, on_window=lambda w, p: shown.append(w))
    np.testing.assert_allclose(out, upscale(image, 512, 256) + 0.05, atol=1e-5)
    count = len(windows(512, 256, 160, 128, 32))
    assert seen == [(i, count) for i in range(count)] and len(shown) == count


def test_refine_tiled_keeps_a_periodic_panorama_wrapping():
    import cv2

    image = periodic_image(128, 64, 128, seed=5)
    out = refine_tiled(image, 512, 256, 160, 128, 32, lambda pixels, index, count: pixels)
    assert seam_difference(out) <= 1.5 * column_difference(out)
    # The control: the same enlargement without the wrap leaves a seam this measure sees.
    plain = cv2.resize(image, (512, 256), interpolation=cv2.INTER_CUBIC)
    assert seam_difference(plain) > 1.5 * column_difference(plain)


# --- Extending a camera picture into a sphere ------------------------------------------------

def marker_centre(pano: np.ndarray) -> np.ndarray:
    weight = pano[..., 0]
    ys, xs = np.mgrid[0:pano.shape[0], 0:pano.shape[1]]
    return np.array([(weight * (xs + 0.5)).sum(), (weight * (ys + 0.5)).sum()]) / weight.sum()


@pytest.mark.parametrize("along, horizon", [
    (1, np.arange(int(0.375 * W), int(0.625 * W))),  # +X: a quarter turn around the centre
    (-1, np.r_[0:int(0.125 * W), int(0.875 * W):W]),  # -X: a quarter turn around the border, wrapping
])
def test_a_camera_looking_along_x_covers_a_quarter_turn_around_its_direction(along, horizon):
    view = pinhole(forward=(along, 0, 0), up=(0, 0, 1))
    pano, covered = project_into_panorama(np.full((65, 65, 3), 0.7, np.float32), view, W, H)
    # Analytically, for longitude λ = (u - 0.5) 2π from +X and latitude φ, the direction is
    # (cos φ cos λ, -cos φ sin λ, sin φ): the camera along s X (s = ±1, right -s Y, up +Z) sees
    # it at forward s cos φ cos λ, right cos φ sin λ, up sin φ; in front when s cos λ > 0, inside
    # the 90° frame when |tan λ| < 1 and |tan φ| < s cos λ.
    ys, xs = np.mgrid[0:H, 0:W]
    lam = ((xs + 0.5) / W - 0.5) * 2 * np.pi
    phi = (0.5 - (ys + 0.5) / H) * np.pi
    ahead = along * np.cos(lam)
    expected = (ahead > 0) & (np.abs(np.tan(lam)) < 1) & (np.abs(np.tan(phi)) < ahead)
    np.testing.assert_array_equal(covered, expected)
    np.testing.assert_array_equal(np.flatnonzero(covered[H // 2]), horizon)
    assert np.all(pano[covered] == pytest.approx(0.7)) and not pano[~covered].any()


@pytest.mark.parametrize("pixel", [(32, 32), (10, 52), (50, 5)])
def test_a_marker_in_the_picture_lands_in_its_direction(pixel):
    row, column = pixel
    view = pinhole(forward=(1, 0, 0), up=(0, 0, 1))  # around the centre: the marker does not wrap
    picture = np.zeros((65, 65, 3), np.float32)
    picture[row, column] = (1, 0, 0)
    pano, _ = project_into_panorama(picture, view, 512, 256)
    # A 90° square picture of 65 pixels has its focal length at 32.5 pixels; right is -Y, up +Z.
    right, up = (column + 0.5 - 32.5) / 32.5, (32.5 - row - 0.5) / 32.5
    expected = spec_pixels(np.array([1.0, -right, up]), 512, 256)[0]
    np.testing.assert_allclose(marker_centre(pano), expected, atol=0.6)


def test_a_picture_larger_than_the_view_lands_in_the_same_place():
    view = pinhole(forward=(1, 0, 0), up=(0, 0, 1))  # a 65-pixel view, a picture three times as large
    picture = np.zeros((195, 195, 3), np.float32)
    picture[30:33, 156:159] = (1, 0, 0)  # the view's pixel (10, 52)
    pano, _ = project_into_panorama(picture, view, 512, 256)
    # Right is -Y, up +Z.
    expected = spec_pixels(np.array([1.0, -(52.5 - 32.5) / 32.5, (32.5 - 10.5) / 32.5]), 512, 256)[0]
    np.testing.assert_allclose(marker_centre(pano), expected, atol=0.6)


def test_a_camera_looking_plus_y_covers_around_one_quarter():
    view = pinhole(forward=(0, 1, 0), up=(0, 0, 1))
    _, covered = project_into_panorama(np.ones((65, 65, 3), np.float32), view, W, H)
    columns = np.flatnonzero(covered[H // 2])
    assert columns[0] == 0.125 * W and columns[-1] == 0.375 * W - 1


def test_only_perspective_cameras_are_extended():
    view = pinhole(forward=(-1, 0, 0), up=(0, 0, 1))
    ortho = CameraView(name="o", type='ORTHO', width=65, height=65, world_from_camera=view.world_from_camera,
                       projection=view.projection, clip_start=0.1, clip_end=100, frame=1)
    with pytest.raises(DiffusionError):
        project_into_panorama(np.zeros((65, 65, 3), np.float32), ortho, W, H)


def test_outpaint_mask_grows_into_the_picture_and_feathers_around_the_wrap():
    width, grow, feather = 64, 3, 4
    covered = np.ones((16, width), bool)
    covered[:, -3:] = False  # uncovered: the last three columns, next to column 0 across the wrap
    mask = outpaint_mask(covered, grow, feather)
    column = np.arange(width)
    distance = np.minimum((column - (width - 1)) % width, np.maximum(width - 3 - column, 0))
    expected = np.clip((grow + feather - distance) / feather, 0, 1)
    np.testing.assert_allclose(mask, np.broadcast_to(expected, mask.shape), atol=1e-5)
    # Column c is c + 1 columns from the last one across the wrap: within the growth up to grow - 1.
    assert mask[0, grow - 1] == 1 and mask[0, width - 3 - grow] == 1 and mask[0, grow + feather] == 0
