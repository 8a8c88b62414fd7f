# SPDX-License-Identifier: GPL-3.0-or-later
"""Normal maps, Canny edges from passes and line art images (pure numpy + OpenCV, no bpy)."""
import cv2
import numpy as np
import pytest

from engine.conditions import (
    NORMAL_BACKGROUND, edges_from_passes, lines_to_control, normal_to_control, normals_to_bae,
)
from engine.errors import DiffusionError


def _normals(*vectors) -> np.ndarray:
    return np.array([vectors], np.float32)


def test_normal_colours_follow_the_bae_convention():
    # Camera space: x right, y up, z towards the viewer.
    facing, right, left, up, down = (0, 0, 1), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0)
    image = normal_to_control(_normals(facing, right, left, up, down), np.ones((1, 5), bool))
    assert image.dtype == np.uint8 and image.shape == (1, 5, 3)
    assert image[0].tolist() == [[127, 127, 255], [0, 127, 127], [255, 127, 127], [127, 255, 127], [127, 0, 127]]


def test_normal_encoding_is_the_detectors_truncation():
    n = np.array([0.3, -0.5, 0.0], np.float32)
    n[2] = np.sqrt(1 - n[0] ** 2 - n[1] ** 2)
    image = normal_to_control(n[None, None], np.ones((1, 1), bool))
    bae = normals_to_bae(n)
    assert image[0, 0].tolist() == ((bae + 1) * 0.5 * 255).astype(np.uint8).tolist()


def test_normal_background_and_degenerate_normals():
    normals = _normals((0, 0, 2), (0, 0, 0), (np.nan, 0, 1), (1, 1, 0))
    mask = np.array([[True, True, True, False]])
    image = normal_to_control(normals, mask)
    assert image[0, 0].tolist() == [127, 127, 255]  # renormalised
    for column in (1, 2, 3):  # zero length, not finite, off the mask
        assert tuple(image[0, column]) == NORMAL_BACKGROUND


def _plane_with_square(square_normal=(0.0, 0.0, 1.0), square_z=10.0, size=48):
    """A wall facing the camera at z 10 with a 16-pixel square of another normal or depth."""
    z = np.full((size, size), 10.0, np.float32)
    normals = np.zeros((size, size, 3), np.float32)
    normals[...] = (0, 0, 1)
    z[16:32, 16:32] = square_z
    normals[16:32, 16:32] = square_normal
    return z, np.ones((size, size), bool), normals


def test_edges_at_a_crease_and_none_on_flat_faces():
    turned = (np.sin(0.6), 0.0, np.cos(0.6))  # about 34 degrees
    z, mask, normals = _plane_with_square(turned)
    edges = edges_from_passes(z, mask, normals)
    assert edges.shape == (48, 48, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) == {0, 255}
    assert np.array_equal(edges[..., 0], edges[..., 2])
    assert edges[24, 15:17, 0].any() and edges[24, 31:33, 0].any()  # left and right sides
    assert not edges[20:28, 20:28].any() and not edges[:10, :10].any()


def test_edges_at_a_depth_step_with_the_same_facing():
    z, mask, normals = _plane_with_square(square_z=5.0)
    edges = edges_from_passes(z, mask, normals)
    assert edges[24, 15:17, 0].any() and not edges[20:28, 20:28].any()


def test_edges_at_silhouettes_against_the_background():
    z, mask, normals = _plane_with_square()
    mask[:, 40:] = False
    z[:, 40:] = np.inf
    edges = edges_from_passes(z, mask, normals)
    assert edges[2:46, 39:41, 0].any(axis=1).all()  # every row crosses the silhouette
    assert not edges[2:46, 42:].any()


def test_thresholds_decide_weak_edges():
    slight = (np.sin(0.2), 0.0, np.cos(0.2))  # 11 degrees: a step of about 25 levels in red
    z, mask, normals = _plane_with_square(slight)
    assert edges_from_passes(z, mask, normals, 30, 60).any()
    assert not edges_from_passes(z, mask, normals, 100, 200).any()


def test_edges_are_cv2_canny_of_the_channels():
    z, mask, normals = _plane_with_square((0.6, 0.0, 0.8))
    from engine.conditions import depth_to_control
    source = np.concatenate([normal_to_control(normals, mask), depth_to_control(z, mask)[..., :1]], axis=2)
    expected = cv2.Canny(np.ascontiguousarray(source), 100, 200)
    assert np.array_equal(edges_from_passes(z, mask, normals)[..., 1], expected)


def test_bad_thresholds_are_errors_a_person_can_fix():
    z, mask, normals = _plane_with_square()
    with pytest.raises(DiffusionError, match="out of order"):
        edges_from_passes(z, mask, normals, 200, 100)


def test_lines_white_on_black():
    coverage = np.array([[0.0, 0.5, 1.0, 2.0, np.nan]], np.float32)
    image = lines_to_control(coverage)
    assert image.shape == (1, 5, 3) and image.dtype == np.uint8
    assert image[0, :, 0].tolist() == [0, 128, 255, 255, 0]
    assert np.array_equal(image[..., 0], image[..., 1])
