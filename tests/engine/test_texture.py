# SPDX-License-Identifier: GPL-3.0-or-later
"""The texture engine against analytic geometry: texel rasterisation, projection with
occlusion and weights, blending, UV fill and padding, and views of the texture."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from texture_scenes import (
    Panorama,
    Pinhole,
    Rectangle,
    cube_faces,
    merged,
    texel_uvs,
    unit_quad,
    z_pass,
)

from engine import raster
from engine.errors import DiffusionError
from engine.texture import (
    Accumulation,
    Surface,
    WeightSettings,
    blend,
    fill,
    inpaint_mask,
    pad,
    project,
    render_texture,
    sample,
    texels,
    view_uvs,
)


@pytest.fixture(params=["one batch", "small batches"])
def batches(request, monkeypatch):
    """Rasterise in one batch, or in batches of 97 cells so that candidates for one texel
    or pixel meet across batches (as on large meshes)."""
    if request.param == "small batches":
        monkeypatch.setattr(raster, "BATCH_CELLS", 97)
    return request.param


def at_angle(degrees: float, distance: float = 3.0, **camera) -> Pinhole:
    """A camera looking at the origin from `degrees` off the +Z axis, towards +X."""
    a = math.radians(degrees)
    return Pinhole(eye=(distance * math.sin(a), 0.0, distance * math.cos(a)), **camera)


def ramp_image(camera: Pinhole | Panorama) -> np.ndarray:
    """An image whose colour is affine in the pixel coordinates: (x / W, y / H, 0.3) at
    every point (x, y) between the outer pixel centres, so bilinear sampling is exact."""
    rows, columns = np.mgrid[0:camera.height, 0:camera.width]
    return np.stack([(columns + 0.5) / camera.width, (rows + 0.5) / camera.height,
                     np.full(rows.shape, 0.3)], axis=-1).astype(np.float32)


def ramp_colour(camera: Pinhole | Panorama, pixels: np.ndarray) -> np.ndarray:
    x = np.clip(pixels[:, 0], 0.5, camera.width - 0.5)
    y = np.clip(pixels[:, 1], 0.5, camera.height - 0.5)
    return np.stack([x / camera.width, y / camera.height, np.full(len(x), 0.3)], axis=1)


def texel_points(rectangle: Rectangle, size: int) -> np.ndarray:
    """size^2 x 3: the analytic surface point of each texel centre (row by row)."""
    s, t = rectangle.st_of_uv(texel_uvs(size))
    return rectangle.point(s, t).reshape(-1, 3)


def cosines(camera: Pinhole | Panorama, rectangle: Rectangle, points: np.ndarray) -> np.ndarray:
    """cos θ between the rectangle's normal and the direction to the camera at each point
    (parallel rays for an orthographic camera)."""
    if getattr(camera, "ortho_scale", 0):
        return np.full(len(points), camera.rotation[:, 2] @ rectangle.normal)
    toward = np.asarray(camera.eye) - points
    return toward @ rectangle.normal / np.linalg.norm(toward, axis=1)


def distance_to_background(camera: Pinhole, depth: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Pixels from each point's pixel to the nearest background pixel or the image border
    (scipy's exact distance transform, for choosing interior texels)."""
    background = depth >= 1e9
    distance = ndimage.distance_transform_edt(~background) if background.any() else np.full(depth.shape, 1e6)
    column = np.clip(np.floor(pixels[:, 0]).astype(int), 0, camera.width - 1)
    row = np.clip(np.floor(pixels[:, 1]).astype(int), 0, camera.height - 1)
    border = np.minimum.reduce([pixels[:, 0], camera.width - pixels[:, 0], pixels[:, 1], camera.height - pixels[:, 1]])
    return np.minimum(distance[row, column], border)


# ---------------------------------------------------------------------------------------
# texels
# ---------------------------------------------------------------------------------------

def test_a_quad_covering_the_uv_square_fills_every_texel_at_its_exact_surface_point():
    # A slanted parallelogram cut into 3 x 3 squares: each texel's position must be the
    # affine (bilinear) map of its UV, whichever triangle holds it.
    slab = Rectangle(origin=(0.3, -0.2, 1.0), side_u=(1.5, 0.5, 0.2), side_v=(-0.3, 1.2, 0.8))
    size = 96
    result = texels(slab.surface(divisions=3), size)
    assert result.inside.all()
    assert result.overlapped == 0
    assert (result.triangle >= 0).all()
    np.testing.assert_allclose(result.positions.reshape(-1, 3), texel_points(slab, size), atol=2e-6)
    np.testing.assert_allclose(result.normals.reshape(-1, 3), np.broadcast_to(slab.normal, (size * size, 3)),
                               atol=1e-6)


def test_row_zero_is_the_top_of_the_uv_square():
    # A triangle in the top half of UV space (v >= 0.5) fills rows of the top half only.
    top = Surface("top", corners=np.eye(3)[None], normals=np.tile([0.0, 0.0, 1.0], (1, 3, 1)),
                  uvs=np.array([[[0.0, 0.5], [1.0, 0.5], [0.5, 1.0]]]))
    result = texels(top, 64)
    rows = np.flatnonzero(result.inside.any(axis=1))
    assert rows.min() == 0 and rows.max() == 31


def test_a_triangle_covers_the_texel_centres_on_and_under_its_diagonal():
    # UV triangle (0,0), (1,0), (0,1): texel (i, j) has u = (j + 0.5) / N, v = 1 - (i + 0.5) / N,
    # so u + v <= 1 exactly when j <= i; centres on the diagonal count.
    size = 64
    half = Surface("half", corners=np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], float),
                   normals=np.tile([0.0, 0.0, 1.0], (1, 3, 1)), uvs=np.array([[[0, 0], [1, 0], [0, 1]]], float))
    result = texels(half, size)
    rows, columns = np.mgrid[0:size, 0:size]
    np.testing.assert_array_equal(result.inside, columns <= rows)
    assert result.inside.sum() == size * (size + 1) // 2


@pytest.mark.parametrize("size", [64, 100, 512])
def test_triangles_sharing_edges_leave_no_gap_and_no_overlap(size, batches):
    # A square cut at jittered inner vertices into many triangles: every texel lands in
    # exactly one, including centres that fall on a shared edge (the quad's diagonals cross
    # texel centres at even sizes).
    rng = np.random.default_rng(3)
    n = 7
    grid = np.stack(np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij"), axis=-1)
    grid[1:-1, 1:-1] += rng.uniform(-0.3, 0.3, (n - 2, n - 2, 2)) / (n - 1)
    triangles = []
    for a in range(n - 1):
        for b in range(n - 1):
            p00, p10, p11, p01 = grid[a, b], grid[a + 1, b], grid[a + 1, b + 1], grid[a, b + 1]
            triangles += [(p00, p10, p11), (p00, p11, p01)]
    uvs = np.array(triangles)
    corners = np.concatenate([uvs, np.zeros((*uvs.shape[:2], 1))], axis=2)
    mesh = Surface("grid", corners=corners, normals=np.tile([0.0, 0.0, 1.0], (len(uvs), 3, 1)), uvs=uvs)
    result = texels(mesh, size)
    assert result.inside.sum() == size * size
    assert result.overlapped == 0
    # Each texel's position is its own UV (the mesh lies on its UV layout), so the winner
    # of a shared texel is a triangle that really holds it.
    np.testing.assert_allclose(result.positions[..., :2], texel_uvs(size), atol=1e-6)


def test_overlapping_uvs_are_counted(batches):
    # Two quads in different places share the UV square's lower-left quarter: every texel
    # centre strictly inside that quarter and off either quad's diagonal lies on two triangles.
    size = 64
    quarter = {"uv0": (0.0, 0.0), "uv_size": (0.5, 0.5)}
    first = Rectangle(origin=(0, 0, 0), side_u=(1, 0, 0), side_v=(0, 1, 0), **quarter)
    second = Rectangle(origin=(5, 0, 0), side_u=(1, 0, 0), side_v=(0, 1, 0), **quarter)
    result = texels(merged("twice", [first, second]), size)
    # Texel centres in doubled units: u2 = 2j + 1, v2 = 2N - 2i - 1, quarter edge at N.
    rows, columns = np.mgrid[0:size, 0:size]
    u2, v2 = 2 * columns + 1, 2 * size - 2 * rows - 1
    in_quarter = (u2 < size) & (v2 < size)
    assert result.inside.sum() == in_quarter.sum()
    assert result.overlapped == (in_quarter & (u2 != v2)).sum()
    # Each shared texel takes its position from one of the two quads.
    x = result.positions[..., 0][in_quarter]
    s = texel_uvs(size)[..., 0][in_quarter] * 2
    assert np.all(np.isclose(x, s, atol=1e-6) | np.isclose(x, s + 5, atol=1e-6))


# ---------------------------------------------------------------------------------------
# project + sample
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("camera", [
    Pinhole(eye=(0.0, 0.0, 3.0), width=160, height=120),
    at_angle(70, width=160, height=120),
    Pinhole(eye=(2.0, -1.0, 3.0), width=120, height=160, lens=35.0),
    Pinhole(eye=(1.5, 0.5, 3.0), width=128, height=96, ortho_scale=3.0),
], ids=["head-on", "70 degrees", "portrait off-centre", "orthographic"])
def test_each_texel_takes_the_image_colour_at_the_exact_point_it_projects_to(camera):
    quad, size = unit_quad(), 128
    depth = z_pass(camera, [quad])
    projection = project(texels(quad.surface(), size), camera.view(), depth)
    expected, _ = camera.pixel(texel_points(quad, size))
    seen = projection.visible.reshape(-1)
    assert seen.mean() > 0.8
    np.testing.assert_allclose(projection.pixels.reshape(-1, 2)[seen], expected[seen], atol=1e-3)
    assert np.isnan(projection.pixels.reshape(-1, 2)[~seen]).all()
    colours = sample(ramp_image(camera), projection).reshape(-1, 3)
    np.testing.assert_allclose(colours[seen], ramp_colour(camera, expected[seen]), atol=2e-6)
    assert (colours[~seen] == 0).all()


def test_an_equirectangular_view_projects_each_texel_where_its_direction_lies():
    quad, size = unit_quad(), 96
    camera = Panorama(eye=(0.3, 0.2, 2.5))
    depth = z_pass(camera, [quad])
    projection = project(texels(quad.surface(), size), camera.view(), depth, WeightSettings(feather=2.0))
    expected, _ = camera.pixel(texel_points(quad, size))
    seen = projection.visible.reshape(-1)
    assert seen.mean() > 0.8
    np.testing.assert_allclose(projection.pixels.reshape(-1, 2)[seen], expected[seen], atol=1e-3)
    colours = sample(ramp_image(camera), projection).reshape(-1, 3)
    np.testing.assert_allclose(colours[seen], ramp_colour(camera, expected[seen]), atol=2e-6)


@pytest.mark.parametrize("degrees, exponent", [(0, 3.0), (50, 3.0), (50, 1.0)])
def test_weights_are_cos_to_the_power_p_away_from_edges(degrees, exponent):
    quad, size, feather = unit_quad(), 96, 6.0
    camera = at_angle(degrees, width=160, height=160)
    depth = z_pass(camera, [quad])
    settings = WeightSettings(exponent=exponent, feather=feather)
    weight = project(texels(quad.surface(), size), camera.view(), depth, settings).weight.reshape(-1)
    points = texel_points(quad, size)
    pixels, _ = camera.pixel(points)
    interior = distance_to_background(camera, depth, pixels) > feather + 2
    assert interior.mean() > 0.5
    expected = cosines(camera, quad, points) ** exponent
    np.testing.assert_allclose(weight[interior], expected[interior], rtol=1e-5)


@pytest.mark.parametrize("gap", [1.0, 0.02])
def test_texels_behind_an_occluder_get_nothing(gap):
    # A board (not textured) between the camera and the right part of the quad, far in
    # front of it or only 2 cm (0.7% of the depth) in front of it.
    quad, size, camera = unit_quad(), 128, Pinhole(eye=(0.0, 0.0, 3.0), width=128, height=128)
    board = Rectangle(origin=(0.1, -3.0, gap), side_u=(3.0, 0.0, 0.0), side_v=(0.0, 6.0, 0.0))
    depth = z_pass(camera, [quad, board])
    weight = project(texels(quad.surface(), size), camera.view(), depth).weight.reshape(-1)
    points = texel_points(quad, size)
    toward = np.asarray(camera.eye) - points
    hidden = board.hit(points, toward)[0] < 1.0  # the board lies between the texel and the eye
    assert 0.2 < hidden.mean() < 0.6
    assert (weight[hidden] == 0).all()
    # The rest is seen, and fades in from the board's silhouette over the feather.
    pixels, _ = camera.pixel(points)
    edge = camera.pixel(np.array([[0.1, 0.0, gap]]))[0][0, 0]
    off_edge = pixels[:, 0] - edge  # pixels left of the board's edge, seen from the eye
    inner = distance_to_background(camera, depth, pixels) > 12
    full = ~hidden & inner & (off_edge < -12)
    near = ~hidden & inner & (off_edge < -2) & (off_edge > -6)
    assert full.sum() > 1000 and near.sum() > 100
    feathered = weight / cosines(camera, quad, points) ** 3
    np.testing.assert_allclose(feathered[full], 1.0, rtol=1e-5)
    assert (feathered[near] > 0).all()
    if gap > 0.1:  # a 2 cm step is no silhouette (SILHOUETTE_BEND): only a real one feathers
        assert (feathered[near] < 0.8).all()


@pytest.mark.parametrize("camera", [
    at_angle(78, width=192, height=192),
    at_angle(78, width=192, height=192, ortho_scale=3.0),
    Panorama(eye=(-2.5, 0.0, 0.5), width=512, height=256, longitude=(-math.pi, math.pi),
             latitude=(-math.pi / 2, math.pi / 2)),
], ids=["perspective", "orthographic", "equirectangular"])
def test_grazing_surfaces_are_not_lost_to_the_depth_test(camera):
    # At 78° to 82° the quad's depth changes by several percent across one pixel: a texel
    # and the Z pass's pixel centre differ by that much, and must still match.
    quad, size, feather = unit_quad(), 128, 2.0
    depth = z_pass(camera, [quad])
    settings = WeightSettings(feather=feather)
    weight = project(texels(quad.surface(), size), camera.view(), depth, settings).weight.reshape(-1)
    points = texel_points(quad, size)
    pixels, _ = camera.pixel(points)
    angle = np.degrees(np.arccos(cosines(camera, quad, points)))
    candidates = (angle < 79.5) & (distance_to_background(camera, depth, pixels) > feather + 1.5)
    assert candidates.sum() > 500
    assert (weight[candidates] > 0).all()


def test_back_faces_count_as_rendered_and_texels_past_the_discard_angle_get_nothing():
    quad, size = unit_quad(), 96
    surface_texels = texels(quad.surface(), size)
    # From behind, the Z pass sees the quad's back face, which Blender renders: it counts
    # as the front does from the mirrored camera.
    behind, front = Pinhole(eye=(0.3, 0.2, -3.0), width=128, height=128), Pinhole(eye=(0.3, 0.2, 3.0), width=128,
                                                                                   height=128)
    from_behind = project(surface_texels, behind.view(), z_pass(behind, [quad])).weight
    from_front = project(surface_texels, front.view(), z_pass(front, [quad])).weight
    assert (from_behind > 0).mean() > 0.5
    np.testing.assert_allclose(np.sort(from_behind.ravel()), np.sort(from_front.ravel()), atol=1e-5)
    # From 60° with a 55° discard angle, the far side of the quad is seen too obliquely.
    camera = at_angle(60, width=160, height=160)
    depth = z_pass(camera, [quad])
    settings = WeightSettings(discard_angle=math.radians(55), feather=4.0)
    weight = project(surface_texels, camera.view(), depth, settings).weight.reshape(-1)
    points = texel_points(quad, size)
    angle = np.degrees(np.arccos(cosines(camera, quad, points)))
    assert 0.2 < (angle > 55).mean() < 0.8
    assert (weight[angle > 55] == 0).all()
    pixels, _ = camera.pixel(points)
    interior = (angle < 54.9) & (distance_to_background(camera, depth, pixels) > 6)
    assert interior.sum() > 1000 and (weight[interior] > 0).all()


def test_weights_fade_in_from_the_silhouette_and_the_image_border():
    feather, size = 8.0, 256
    # Silhouette: head-on, the quad's left edge against the background. Along the middle
    # row, the nearest background pixel is the last one left of the edge: the weight is
    # (distance to its centre) / feather.
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=128, height=128)
    projection = project(texels(quad.surface(), size), camera.view(), z_pass(camera, [quad]),
                         WeightSettings(feather=feather))
    row = size // 2
    x = projection.pixels[row, :, 0]
    edge = camera.pixel(np.array([[-1.0, 0.0, 0.0]]))[0][0, 0]
    last_background = math.ceil(edge - 0.5) - 1 + 0.5  # centre of the last pixel outside the quad
    ramp = np.isfinite(x) & (x < camera.width / 2)
    expected = np.clip((x[ramp] - last_background) / feather, 0, 1)
    cos = cosines(camera, quad, texel_points(quad, size)).reshape(size, size)
    np.testing.assert_allclose(projection.weight[row, ramp] / cos[row, ramp] ** 3, expected, atol=1e-4)
    assert expected.min() < 0.15 and expected.max() == 1.0
    # Image border: a quad wider than the view fades towards the image's edges.
    wide = Rectangle(origin=(-3.0, -3.0, 0.0), side_u=(6.0, 0.0, 0.0), side_v=(0.0, 6.0, 0.0))
    projection = project(texels(wide.surface(), size), camera.view(), z_pass(camera, [wide]),
                         WeightSettings(feather=feather))
    at = projection.pixels.reshape(-1, 2)
    seen = projection.visible.reshape(-1)
    border = np.minimum.reduce([at[seen, 0], camera.width - at[seen, 0], at[seen, 1], camera.height - at[seen, 1]])
    cos = cosines(camera, wide, texel_points(wide, size))[seen]
    np.testing.assert_allclose(projection.weight.reshape(-1)[seen] / cos ** 3, np.clip(border / feather, 0, 1),
                               atol=1e-4)
    assert border.min() < 1.0


# ---------------------------------------------------------------------------------------
# blend
# ---------------------------------------------------------------------------------------

def test_blended_colour_is_the_weighted_mean_and_the_weights_sum_to_one():
    # Three views, each painting one pure primary: the blended colour's channels are the
    # views' normalised weights, so they sum to 1 wherever any view counts.
    quad, size = unit_quad(), 96
    surface_texels = texels(quad.surface(), size)
    colours, weights = [], []
    accumulation = Accumulation.empty(size)
    for k, degrees in enumerate((-40, 0, 40)):
        camera = at_angle(degrees, width=128, height=128)
        projection = project(surface_texels, camera.view(), z_pass(camera, [quad]))
        image = np.zeros((128, 128, 3), np.float32)
        image[..., k] = 1.0
        colours.append(sample(image, projection))
        weights.append(projection.weight)
        accumulation.add_view(image, projection)
    mean, total = blend(colours, weights)
    covered = total > 0
    assert covered.mean() > 0.9
    np.testing.assert_allclose(mean[covered].sum(axis=1), 1.0, atol=1e-5)
    assert (mean[~covered] == 0).all()
    for k in range(3):
        np.testing.assert_allclose(mean[covered, k], weights[k][covered] / total[covered], atol=1e-5)
    np.testing.assert_allclose(total, sum(weights), rtol=1e-6)
    # One view at a time gives the same blend.
    np.testing.assert_allclose(accumulation.mean(), mean, atol=1e-6)
    np.testing.assert_allclose(accumulation.weight_sum, total, rtol=1e-6)


def test_each_cube_face_takes_its_colour_from_the_view_facing_it():
    # Six views, each about 35° off a cube axis so that it also sees two neighbouring faces
    # at 70° to 80°; each paints one colour. With p = 1 the facing view's share would be
    # about 0.77, with p = 3 about 0.96.
    faces = cube_faces()
    cube = merged("cube", faces)
    size = 192
    surface_texels = texels(cube, size)
    palette = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]], np.float32)
    axes = np.array([face.normal for face in faces])
    accumulation = Accumulation.empty(size)
    facing_weights = []
    for k, axis in enumerate(axes):
        tilt = np.roll(axis, 1) * 0.5 + np.roll(axis, 2) * 0.35
        direction = (axis + tilt) / np.linalg.norm(axis + tilt)
        camera = Pinhole(eye=tuple(6.0 * direction), width=160, height=160)
        projection = project(surface_texels, camera.view(), z_pass(camera, faces))
        accumulation.add_view(np.broadcast_to(palette[k], (160, 160, 3)).copy(), projection)
        facing_weights.append(projection.weight)
    mean, total = accumulation.mean(), accumulation.weight_sum
    face_of_texel = surface_texels.triangle // 2  # two triangles per face, in face order
    covered = total > 0
    assert covered[surface_texels.inside].mean() > 0.95
    for k in range(6):
        on_face = covered & (face_of_texel == k)
        share = facing_weights[k][on_face] / total[on_face]
        nearest = np.argmin(np.linalg.norm(mean[on_face][:, None] - palette[None], axis=2), axis=1)
        others_seen = sum(facing_weights[j][on_face] > 0 for j in range(6) if j != k)
        assert (others_seen > 0).mean() > 0.9, f"face {k}: other views see it too"
        assert (nearest == k).mean() > 0.99, f"face {k}"
        assert np.median(share) > 0.9, f"face {k}"
        assert np.abs(mean[on_face] - palette[k]).mean() < 0.1, f"face {k}"


# ---------------------------------------------------------------------------------------
# fill + pad
# ---------------------------------------------------------------------------------------

def islands(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inside, left, right, alone): three rectangular islands; `left`'s right half is
    uncovered and lies next to `right`, covered in another colour; `alone` is not covered."""
    inside = np.zeros((size, size), bool)
    left = np.zeros_like(inside)
    left[8:56, 6:30] = True
    right = np.zeros_like(inside)
    right[8:56, 34:58] = True
    alone = np.zeros_like(inside)
    alone[60:62, 10:20] = True
    inside = left | right | alone
    return inside, left, right, alone


def test_fill_writes_every_island_texel_from_its_own_island():
    size = 64
    inside, left, right, _ = islands(size)
    rgb = np.zeros((size, size, 3), np.float32)
    rows, columns = np.mgrid[0:size, 0:size]
    covered = right.copy()
    covered[left & (columns < 18)] = True
    # The left island: red, shading with the row; the right island: blue.
    rgb[left & covered, 0] = 0.5 + 0.4 * rows[left & covered] / size
    rgb[right, 2] = 0.9
    filled = fill(rgb, covered, inside)
    assert (filled[inside].max(axis=1) > 0).all()  # no black texel left in any island
    np.testing.assert_array_equal(filled[covered], rgb[covered])
    holes = left & ~covered
    # Only red from the left island: none of the right island's blue crosses the gap.
    assert (filled[holes, 1:] == 0).all()
    red = filled[..., 0]
    assert red[holes].min() >= rgb[left & covered, 0].min() - 1e-6
    assert red[holes].max() <= rgb[left & covered, 0].max() + 1e-6
    # The fill continues the shading: a hole texel's red follows its row.
    hole_rows = rows[holes]
    assert np.corrcoef(hole_rows, red[holes])[0, 1] > 0.9
    assert (filled[~inside] == 0).all()


def test_fill_of_an_island_no_view_covered_borrows_from_the_texture_and_nothing_covered_is_grey():
    size = 64
    inside, left, right, alone = islands(size)
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[left | right] = (0.2, 0.6, 0.4)
    filled = fill(rgb, left | right, inside)
    np.testing.assert_allclose(filled[alone], np.broadcast_to((0.2, 0.6, 0.4), (alone.sum(), 3)), atol=1e-6)
    grey = fill(np.zeros_like(rgb), np.zeros_like(inside), inside)
    assert (grey[inside] == 0.5).all() and (grey[~inside] == 0).all()


def test_pad_grows_every_island_by_the_margin_with_its_nearest_colour():
    size, margin = 96, 8
    inside = np.zeros((size, size), bool)
    inside[20:40, 20:30] = True   # island A
    inside[60:64, 60:90] = True   # island B, far from A
    inside[5, 80] = True          # a single-texel island
    rgb = np.zeros((size, size, 3), np.float32)
    rows, columns = np.mgrid[0:size, 0:size]
    rgb[inside] = np.stack([rows[inside] / size, columns[inside] / size, np.full(inside.sum(), 0.7)], axis=1)
    padded = pad(rgb, inside, margin)
    np.testing.assert_array_equal(padded[inside], rgb[inside])
    # Every texel within `margin` of an island along rows, columns or diagonals is written.
    within = ndimage.binary_dilation(inside, structure=np.ones((3, 3)), iterations=margin)
    assert (padded[within & ~inside, 2] == np.float32(0.7)).all()
    # Straight out from an island's side, the padding repeats that side's texel.
    np.testing.assert_array_equal(padded[12:20, 25], np.repeat(rgb[20:21, 25], 8, axis=0))
    np.testing.assert_array_equal(padded[64:72, 70], np.repeat(rgb[63:64, 70], 8, axis=0))
    np.testing.assert_array_equal(padded[5, 72:80], np.repeat(rgb[5:6, 80], 8, axis=0))


# ---------------------------------------------------------------------------------------
# view_uvs / render_texture / inpaint_mask
# ---------------------------------------------------------------------------------------

def uv_texture(size: int) -> np.ndarray:
    """A texture that encodes its own UV: (u, v, 0) at each texel centre."""
    uv = texel_uvs(size)
    return np.concatenate([uv, np.zeros((size, size, 1))], axis=-1).astype(np.float32)


@pytest.mark.parametrize("camera", [
    Pinhole(eye=(1.2, 0.4, 2.5), width=128, height=96, ortho_scale=3.0),
    Panorama(eye=(0.3, 0.2, 2.5)),
], ids=["orthographic", "equirectangular"])
def test_other_cameras_show_each_pixel_the_uv_it_sees(camera):
    quad = unit_quad()
    seen = view_uvs([quad.surface(divisions=4)], camera.view(), z_pass(camera, [quad]))
    hit, s, t = quad.hit(*camera.rays(camera.centres()))
    on_quad = np.isfinite(hit).reshape(camera.height, camera.width)
    sure = ndimage.binary_erosion(on_quad) | ~ndimage.binary_dilation(on_quad)
    np.testing.assert_array_equal((seen.surface >= 0)[sure], on_quad[sure])
    both = (seen.surface >= 0) & on_quad
    assert both.sum() > 1000
    expected = np.stack([s, t], axis=1).reshape(camera.height, camera.width, 2)
    np.testing.assert_allclose(seen.uvs[both], expected[both], atol=1e-5)


def test_a_view_shows_each_pixel_the_uv_of_the_surface_point_it_sees():
    # At 70° a perspective view of a quad of two triangles: the UV at each pixel is that of
    # the ray's hit point. Interpolating UVs linearly on screen is many texels off there,
    # far beyond the tolerance: this test tells perspective-correct from affine.
    quad, size = unit_quad(), 256
    camera = at_angle(70, width=160, height=120)
    depth = z_pass(camera, [quad])
    seen = view_uvs([quad.surface()], camera.view(), depth)
    origins, directions = camera.rays(camera.centres())
    hit, s, t = quad.hit(origins, directions)
    on_quad = np.isfinite(hit).reshape(camera.height, camera.width)
    expected = np.stack([s, t], axis=1).reshape(camera.height, camera.width, 2)
    # Pixels whose centre ray grazes the quad's outline may go either way.
    sure = ndimage.binary_erosion(on_quad) | ~ndimage.binary_dilation(on_quad)
    np.testing.assert_array_equal((seen.surface >= 0)[sure], on_quad[sure])
    both = (seen.surface >= 0) & on_quad
    assert both.sum() > 3000
    np.testing.assert_allclose(seen.uvs[both], expected[both], atol=1e-5)
    # The texture so far, shown from this view, samples those UVs.
    image = render_texture([uv_texture(size)], seen)
    away_from_wrap = both & (np.abs(expected - 0.5) < 0.5 - 1.0 / size).all(axis=-1)
    np.testing.assert_allclose(image[away_from_wrap][:, :2], expected[away_from_wrap], atol=1e-5)
    assert (image[~(seen.surface >= 0)] == 0.5).all()
    # Affine interpolation of the corners' UVs on screen, per triangle (a wrong renderer).
    corners, _, corner_uvs = quad.triangles()
    affine = np.full(expected.shape, np.nan)
    pixels = camera.centres()
    for triangle, uvs in zip(corners, corner_uvs):
        screen, _ = camera.pixel(triangle)
        matrix = np.array([[screen[1, 0] - screen[0, 0], screen[2, 0] - screen[0, 0]],
                           [screen[1, 1] - screen[0, 1], screen[2, 1] - screen[0, 1]]])
        b = np.linalg.solve(matrix, (pixels - screen[0]).T).T
        inside = (b >= 0).all(axis=1) & (b.sum(axis=1) <= 1)
        uv = uvs[0] + b[:, :1] * (uvs[1] - uvs[0]) + b[:, 1:] * (uvs[2] - uvs[0])
        affine.reshape(-1, 2)[inside] = uv[inside]
    affine_error = np.nanmax(np.abs(affine[both] - expected[both])) * size
    assert affine_error > 20  # texels; the test above allows 1e-5 * 256 = 0.003 of a texel


def test_pixels_occluded_in_the_z_pass_and_the_nearer_of_two_surfaces(batches):
    near = Rectangle(origin=(-0.5, -0.5, 0.5), side_u=(1.0, 0.0, 0.0), side_v=(0.0, 1.0, 0.0))
    far = unit_quad()
    board = Rectangle(origin=(0.6, -3.0, 1.0), side_u=(3.0, 0.0, 0.0), side_v=(0.0, 6.0, 0.0))
    camera = Pinhole(eye=(0.2, 0.1, 3.0), width=128, height=128)
    depth = z_pass(camera, [near, far, board])
    # The nearer surface first: its triangles are tested before the farther one's.
    seen = view_uvs([near.surface("near"), far.surface("far")], camera.view(), depth)
    origins, directions = camera.rays(camera.centres())
    hits = np.stack([near.hit(origins, directions)[0], far.hit(origins, directions)[0],
                     board.hit(origins, directions)[0]], axis=1)
    nearest = np.where(np.isfinite(hits).any(axis=1), np.argmin(hits, axis=1), -1)
    expected = np.where(nearest == 2, -1, nearest).reshape(camera.height, camera.width)
    # Compare away from outlines, where the pixel centre could go either way.
    outline = np.zeros(expected.shape, bool)
    for value in (-1, 0, 1):
        region = expected == value
        outline |= ndimage.binary_dilation(region) & ~ndimage.binary_erosion(region)
    np.testing.assert_array_equal(seen.surface[~outline], expected[~outline])
    for value in (-1, 0, 1):
        assert (expected[~outline] == value).sum() > 500
    assert (seen.uvs[seen.surface < 0] == 0).all()


@pytest.mark.parametrize("grow", [0, 3, 6])
def test_inpaint_mask_covers_the_uncovered_half_grown_by_grow_pixels(grow):
    # Head-on, the quad's u = 0.5 line is the image's middle column boundary (x = 64):
    # coverage on the left half of the texture leaves the right half (and the background)
    # to repaint.
    quad, size = unit_quad(), 128
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=128, height=128)
    depth = z_pass(camera, [quad])
    seen = view_uvs([quad.surface()], camera.view(), depth)
    coverage = np.zeros((size, size), np.float32)
    coverage[:, : size // 2] = 1.0
    hard = inpaint_mask([coverage], seen, grow=grow, feather=0.0)
    row = hard[64]
    first_repaint = int(np.argmax(row[40:] >= 0.5)) + 40
    assert abs(first_repaint - (64 - grow)) <= 1
    left_edge = int(np.argmax(seen.surface[64] >= 0))  # the quad's first column
    covered_part = slice(left_edge + grow + 1, 64 - grow - 1)
    assert (hard[40:88, covered_part] == 0).all()
    assert (hard[40:88, 64 - grow + 1:] == 1).all()
    assert (hard[seen.surface < 0] == 1).all()
    soft = inpaint_mask([coverage], seen, grow=grow, feather=2.0)
    assert (soft[hard == 1] == 1).all()  # feathering only adds outward
    band = 3 * 2 + 1
    assert (soft[40:88, left_edge + grow + band:64 - grow - band] == 0).all()
    ramp = soft[64, 64 - grow - band:64 - grow]
    assert (np.diff(ramp) >= 0).all() and 0 < ramp[1] < ramp[-2] < 1


def test_inputs_are_checked_with_a_message_that_says_what_to_pass():
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=64, height=48)
    surface_texels = texels(quad.surface(), 32)
    with pytest.raises(DiffusionError, match="Z pass"):
        project(surface_texels, camera.view(), np.zeros((64, 48), np.float32))
    projection = project(surface_texels, camera.view(), z_pass(camera, [quad]))
    with pytest.raises(DiffusionError, match="its camera's size"):
        sample(np.zeros((64, 64, 3), np.float32), projection)
    with pytest.raises(DiffusionError, match="out of range"):
        texels(quad.surface(), 16384)
    broken = Surface("broken", corners=np.zeros((2, 3, 3)), normals=np.zeros((2, 3, 3)), uvs=np.zeros((2, 2, 2)))
    with pytest.raises(DiffusionError, match="three corners per triangle"):
        texels(broken, 64)
    with pytest.raises(DiffusionError, match="one weight array per view"):
        blend([np.zeros((4, 4, 3))], [])
