# SPDX-License-Identifier: GPL-3.0-or-later
"""The World painter's passes and the poles' band limit, with numpy functions standing in
for the diffusion (the real diffusion runs in tests/e2e/test_backgrounds.py)."""
import numpy as np
import pytest

from engine import panorama
from engine.requests import ControlUnit, GenerationRequest
from engine.worlds import WorldPainter, WorldSettings, passes


def noise(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


def test_band_limit_makes_the_pole_rows_one_colour_and_leaves_the_rest():
    pano = noise(64, 128)
    limited = panorama.band_limit_poles(pano, 60.0)
    assert panorama.pole_spread(pano) > 0.2
    assert panorama.pole_spread(limited) < 1e-6
    # Each pole row keeps its mean (its k = 0 harmonic).
    np.testing.assert_allclose(limited[[0, -1]].mean(axis=1), pano[[0, -1]].mean(axis=1), atol=1e-6)
    # Rows whose pole-ward edge is within 60° of the equator are untouched: edge latitude
    # (0.5 - row / 64) * 180° <= 60° from row 11 (top) down to row 52 (bottom).
    np.testing.assert_array_equal(limited[11:53], pano[11:53])
    assert not np.array_equal(limited[10], pano[10])
    # Detail fades towards the poles: the row's variance falls monotonically.
    spread = limited[:11].std(axis=1).mean(axis=1)
    assert np.all(np.diff(spread) >= -1e-6)


def test_band_limit_keeps_what_a_sphere_can_show_near_its_pole():
    """A smooth function on the sphere (linear in the direction: a gradient across the pole)
    has one harmonic per row; the band limit keeps it wherever the cutoff allows k = 1."""
    height, width = 128, 256
    d = panorama.directions(width, height)
    pano = np.repeat((0.5 + 0.4 * d[..., :1]), 3, axis=2)  # brighter towards +X
    limited = panorama.band_limit_poles(pano, 60.0)
    # Rows 1..20 have cutoff >= 2: k = 1 kept exactly.
    np.testing.assert_allclose(limited[1:21], pano[1:21], atol=1e-5)


class Diffusion:
    """Records the requests and answers each with a function of its init image (or noise)."""

    def __init__(self):
        self.requests = []

    def __call__(self, request: GenerationRequest) -> np.ndarray:
        self.requests.append(request)
        if request.init_image is None:
            return noise(request.height, request.width, request.seed)
        return np.clip(request.init_image + 0.01, 0.0, 1.0)


def paint(settings, base, **inputs):
    painter = WorldPainter(settings, base, **inputs)
    diffusion = Diffusion()
    for step in passes(settings):
        painter.add(step, diffusion(painter.request_for(step)))
    return painter.result(), diffusion.requests


def test_a_large_world_is_made_at_the_models_size_then_refined_in_wrapping_windows_then_its_poles():
    settings = WorldSettings(width=1024, height=512, base_width=512, window=256, overlap=64, refine_strength=0.3,
                             cap_size=128)
    depth = ControlUnit("depth", (noise(128, 256, 9) * 255).astype(np.uint8))
    base = GenerationRequest(prompt="a canyon", seed=10, steps=4)
    result, requests = paint(settings, base, controls=(depth,))
    kinds = [step.kind for step in passes(settings)]
    assert kinds[0] == "panorama" and kinds[-2:] == ["zenith", "nadir"]
    windows = panorama.windows(1024, 512, 256, 256, 64)
    assert kinds.count("window") == len(windows) > 4
    first = requests[0]
    assert (first.width, first.height, first.tiling, first.init_image, first.seed) == (512, 256, "x", None, 10)
    assert first.controls[0] is depth
    for request, window in zip(requests[1:-2], windows):
        assert (request.width, request.height, request.tiling) == (window.width, window.height, "")
        assert request.strength == 0.3 and request.mask is None
        assert request.controls[0].image.shape == (256, 256, 3)
    zenith, nadir = requests[-2:]
    assert (zenith.width, zenith.height) == (128, 128) and zenith.mask is not None and zenith.strength == 1.0
    assert len({r.seed for r in requests}) == len(requests)  # every pass its own seed
    assert result.shape == (512, 1024, 3) and result.dtype == np.float32
    # The enlarged panorama went through every window once: + 0.01 everywhere but the caps.
    enlarged = panorama.upscale(noise(256, 512, 10), 1024, 512)
    middle = slice(200, 312)
    np.testing.assert_allclose(result[middle], np.clip(enlarged[middle] + 0.01, 0, 1), atol=1e-4)
    assert panorama.pole_spread(result) < 1e-6


def test_a_world_at_the_models_size_has_no_windows_and_extending_keeps_the_picture():
    settings = WorldSettings(width=256, height=128, base_width=256, fix_poles=False, cap_size=64)
    picture = np.full((128, 256, 3), 0.25, np.float32)
    keep = np.zeros((128, 256), np.float32)
    keep[40:80, 100:150] = 1.0
    mask = 1.0 - keep
    result, requests = paint(settings, GenerationRequest(prompt="x", seed=1), extend=(picture, mask),
                             keep=(picture, keep))
    assert [r.width for r in requests] == [256]
    assert requests[0].mask is mask and requests[0].strength == 1.0 and requests[0].tiling == "x"
    np.testing.assert_allclose(result[40:80, 100:150], 0.25)  # the picture, exactly
    assert not np.allclose(result[:30], 0.25)


@pytest.mark.parametrize("latitude", [-1.0, 90.0])
def test_band_limit_refuses_a_latitude_outside_the_hemisphere(latitude):
    with pytest.raises(ValueError):
        panorama.band_limit_poles(noise(8, 16), latitude)
