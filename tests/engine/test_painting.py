# SPDX-License-Identifier: GPL-3.0-or-later
"""The Painter: what each view generates (txt2img, inpainting of what earlier views left,
image to image from a current texture) and the finished textures. Analytic scenes from
texture_scenes.py are the reference (rays and rectangles, not the engine's projection)."""
import numpy as np
import pytest
from texture_scenes import Pinhole, texel_uvs, unit_quad, z_pass

from engine import ControlUnit, GenerationRequest
from engine.painting import Painter, PaintSettings, TextureView
from engine.texture import WeightSettings

SIZE = 128
BASE = GenerationRequest("a wooden crate", width=64, height=64, steps=2, seed=3, model="smoke", strength=0.6)
# Every texel a view sees counts fully: coverage is "seen or not", easy to derive by hand.
FLAT = WeightSettings(exponent=0.0, feather=0.0)


def view_of(camera: Pinhole, quad, name="view", controls=()) -> TextureView:
    return TextureView(name, camera.view(), z_pass(camera, [quad]).astype(np.float32), controls)


def colour(value, camera):
    return np.full((camera.height, camera.width, 3), value, np.float32)


def test_the_first_view_is_text_to_image_with_its_own_size_and_conditions():
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=96, height=64)
    unit = ControlUnit("depth", np.zeros((64, 96, 3), np.uint8))
    painter = Painter([quad.surface()], PaintSettings(size=SIZE))
    request = painter.request_for(view_of(camera, quad, controls=(unit,)), BASE)
    assert (request.width, request.height, request.mode) == (96, 64, "txt2img")
    assert request.controls == (unit,)
    assert (request.prompt, request.seed, request.steps) == (BASE.prompt, BASE.seed, BASE.steps)


@pytest.mark.parametrize("grow", [0, 3])
def test_a_later_view_inpaints_exactly_what_earlier_views_did_not_see(grow):
    """View A (from the left, its frame cut through the quad) sees only part of it. Head-on
    view B repaints every pixel whose surface point A did not see, and the background,
    grown by `grow` pixels; it keeps the rest, starting from the texture so far."""
    quad = unit_quad()
    a = Pinhole(eye=(-1.2, 0.0, 2.0), target=(-1.2, 0.0, 0.0), width=64, height=64)
    b = Pinhole(eye=(0.0, 0.0, 3.0), width=64, height=64)
    painter = Painter([quad.surface(divisions=4)], PaintSettings(size=SIZE, weights=FLAT, grow=grow, feather=0.0))
    view_a, view_b = view_of(a, quad, "A"), view_of(b, quad, "B")
    painter.add(view_a, colour(0.8, a))
    request = painter.request_for(view_b, BASE)
    assert request.mode == "inpaint" and request.strength == 1.0

    # Reference: the quad point behind each pixel of B, and whether A's frame holds it.
    origins, directions = b.rays(b.centres())
    depth, s, t = quad.hit(origins, directions)
    on_quad = np.isfinite(depth)
    points = quad.point(s, t)
    in_a, _ = a.pixel(points)
    seen_by_a = on_quad & (in_a[:, 0] >= 0) & (in_a[:, 0] < 64) & (in_a[:, 1] >= 0) & (in_a[:, 1] < 64)
    expected = (~seen_by_a).reshape(64, 64)
    mask = request.mask >= 0.5
    # Grown by `grow` (±1 pixel for texel and pixel rounding): the mask holds the expected
    # repaint area, and whatever more it holds lies within grow + 1 pixels of it.
    import cv2
    inner = cv2.erode(expected.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    reach = cv2.dilate(expected.astype(np.uint8), np.ones((2 * grow + 3, 2 * grow + 3), np.uint8)).astype(bool)
    assert mask[inner].all()
    assert not mask[~reach].any()
    assert 0.1 < expected.mean() < 0.95  # the test case has both parts
    # The init image shows A's colour where A painted, mid grey on what nothing painted yet.
    kept = ~reach
    assert np.allclose(request.init_image[kept], 0.8, atol=1e-5)


def test_a_view_that_sees_only_covered_surface_has_nothing_to_paint():
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 4.0), width=64, height=64)
    painter = Painter([quad.surface()], PaintSettings(size=SIZE, weights=FLAT, grow=0, feather=0.0))
    wide = Pinhole(eye=(0.0, 0.0, 6.0), width=64, height=64)
    painter.add(view_of(wide, quad), colour(0.3, wide))
    close = Pinhole(eye=(0.0, 0.0, 1.0), width=64, height=64)  # inside the quad's outline: no background
    assert painter.request_for(view_of(close, quad), BASE) is None
    assert painter.request_for(view_of(camera, quad), BASE) is not None  # this one sees background too


def test_independent_views_are_each_text_to_image():
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=64, height=64)
    painter = Painter([quad.surface()], PaintSettings(size=SIZE, sequential=False))
    painter.add(view_of(camera, quad), colour(0.5, camera))
    assert painter.request_for(view_of(camera, quad), BASE).mode == "txt2img"


def test_starting_from_a_texture_every_view_is_image_to_image_of_it():
    quad = unit_quad()
    camera = Pinhole(eye=(0.0, 0.0, 3.0), width=64, height=64)
    uv = texel_uvs(SIZE)
    start = np.concatenate([uv, np.full((SIZE, SIZE, 1), 0.25)], axis=2).astype(np.float32)  # R = u, G = v
    painter = Painter([quad.surface()], PaintSettings(size=SIZE), start=[start])
    request = painter.request_for(view_of(camera, quad), BASE)
    assert request.mode == "img2img" and request.strength == BASE.strength
    origins, directions = camera.rays(camera.centres())
    depth, s, t = quad.hit(origins, directions)
    import cv2
    on = np.isfinite(depth).reshape(64, 64)
    # Away from the quad's outline: there bilinear sampling wraps round to the far edge, as
    # Blender's repeating Image Texture does.
    on = cv2.erode(on.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    expected_u = s.reshape(64, 64)  # the unit quad's u is s
    assert np.abs(request.init_image[..., 0][on] - expected_u[on]).max() < 1.5 / SIZE
    painter.add(view_of(camera, quad), colour(0.9, camera))
    assert painter.request_for(view_of(camera, quad), BASE).mode == "img2img"


def test_the_finished_texture_is_filled_padded_and_keeps_a_start_where_no_view_reached():
    quad = unit_quad()
    half = Pinhole(eye=(-1.2, 0.0, 2.0), target=(-1.2, 0.0, 0.0), width=64, height=64)
    painter = Painter([quad.surface(divisions=2)], PaintSettings(size=SIZE, weights=FLAT))
    painter.add(view_of(half, quad), colour(0.7, half))
    (painted,) = painter.finish()
    assert 0.1 < painted.covered < 0.8 and painted.overlapped == 0
    assert np.allclose(painted.rgb, 0.7, atol=1e-5)  # the unseen part filled from the seen one
    assert painted.coverage.shape == (SIZE, SIZE)

    start = np.full((SIZE, SIZE, 3), 0.2, np.float32)
    painter = Painter([quad.surface(divisions=2)], PaintSettings(size=SIZE, weights=FLAT), start=[start])
    painter.add(view_of(half, quad), colour(0.7, half))
    (painted,) = painter.finish()
    seen = painted.coverage > 0
    assert np.allclose(painted.rgb[seen], 0.7, atol=1e-5) and np.allclose(painted.rgb[~seen], 0.2, atol=1e-5)
