# SPDX-License-Identifier: GPL-3.0-or-later
"""engine/views.py's own arithmetic: the camera matrix's inverse and unproject's solve,
written out by hand (LAPACK's would wake OpenBLAS's threads every frame), checked against
numpy's LAPACK and against a pinhole camera's rays worked out apart (tests/engine/texture_scenes.py)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.views import affine_inverse
from tests.engine.texture_scenes import Pinhole


def affine(rng: np.random.Generator, kind: str) -> np.ndarray:
    matrix = np.eye(4)
    if kind == "rigid":  # a camera: a rotation (from an orthonormalised random matrix) and a move
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        matrix[:3, :3] = rotation
    else:  # sheared and scaled, as a parent's non-uniform scale makes it
        matrix[:3, :3] = rng.normal(size=(3, 3)) * np.array([0.01, 1.0, 40.0])
    matrix[:3, 3] = rng.normal(size=3) * 50.0
    return matrix


@pytest.mark.parametrize("kind", ["rigid", "sheared"])
def test_the_affine_inverse_is_lapacks(kind):
    rng = np.random.default_rng(7)
    for _ in range(20):
        matrix = affine(rng, kind)
        inverse = affine_inverse(matrix)
        np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=0, atol=1e-9 * np.abs(inverse).max())
        # Back to the identity within what the matrix's conditioning allows any inverse.
        assert np.abs(inverse @ matrix - np.eye(4)).max() <= np.linalg.cond(matrix) * 1e-15
        np.testing.assert_array_equal(inverse[3], [0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("camera", [
    Pinhole(eye=(3.0, -4.0, 2.0), width=160, height=90, lens=35.0),
    Pinhole(eye=(-1.0, 2.0, 5.0), target=(0.5, 0.0, 1.0), width=64, height=128, lens=85.0),
    Pinhole(eye=(0.0, -6.0, 1.0), width=100, height=100, ortho_scale=4.0),
], ids=["wide", "tall", "ortho"])
def test_unprojected_pixels_lie_on_their_rays(camera):
    view = camera.view()
    rng = np.random.default_rng(3)
    pixels = rng.random((50, 2)) * [camera.width, camera.height]
    depth = rng.random(50) * 20.0 + 0.5
    origins, directions = camera.rays(pixels)
    expected = origins + depth[:, None] * directions
    np.testing.assert_allclose(view.unproject(pixels, depth), expected, rtol=0, atol=1e-9)
    # And back: the camera's own matrix, inverted, sees them at those pixels and depths.
    np.testing.assert_allclose(view.camera_from_world @ np.append(expected[0], 1.0),
                               np.append((expected[0] - camera.eye) @ camera.rotation, 1.0), rtol=0, atol=1e-9)
