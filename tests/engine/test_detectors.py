# SPDX-License-Identifier: GPL-3.0-or-later
"""Conditions from the person's images with controlnet_aux, for real and offline.

The session has no model hub (HF_HUB_OFFLINE=1 and an empty HF_HOME, see conftest.py),
so detectors that need weights must refuse with a message naming them.
"""
import cv2
import numpy as np
import pytest

from engine.detectors import DETECTORS, detect, missing_weights
from engine.errors import DiffusionError

H, W = 70, 100  # not a multiple of 64: the result must still have the input's size


@pytest.fixture
def photo() -> np.ndarray:
    """A light grey picture with a dark square outline and a dark disc."""
    image = np.full((H, W, 3), 220, np.uint8)
    cv2.rectangle(image, (10, 10), (45, 55), (30, 30, 30), 2)
    cv2.circle(image, (75, 35), 15, (40, 40, 40), -1)
    return image


def test_canny_is_cv2_canny_at_the_input_size(photo):
    edges = detect("canny", photo, canny_low=50, canny_high=150)
    assert edges.shape == (H, W, 3) and edges.dtype == np.uint8
    assert np.array_equal(edges[..., 0], cv2.Canny(photo, 50, 150))
    assert edges[10:56, 8:13].any() and not edges[25:40, 20:35].any()


def test_standard_line_art_gives_bright_lines_on_black(photo):
    lines = detect("lineart_standard", photo)
    assert lines.shape == (H, W, 3) and lines.dtype == np.uint8
    assert lines[30, 9:13].max() > 100  # the square's left side
    assert lines[30, 25:35].max() < 30 and lines[0:3, 60:90].max() < 30  # inside, empty paper


def test_content_shuffle_is_seeded_and_leaves_numpy_random_alone(photo):
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = detect("shuffle", photo, seed=4)
    assert np.random.rand() == expected_next
    assert np.array_equal(first, detect("shuffle", photo, seed=4))
    assert not np.array_equal(first, detect("shuffle", photo, seed=5))
    assert first.shape == (H, W, 3) and not np.array_equal(first, photo)


@pytest.mark.parametrize("name", ["depth_midas", "openpose", "normal_bae", "softedge_hed", "mlsd", "lineart"])
def test_detectors_with_weights_refuse_offline_naming_them(photo, name):
    assert missing_weights(name) == list(DETECTORS[name].files)
    with pytest.raises(DiffusionError, match="lllyasviel/Annotators.*turn on online access"):
        detect(name, photo)


def test_segmentation_refuses_offline_naming_its_model(photo):
    with pytest.raises(DiffusionError, match="openmmlab/upernet-convnext-small"):
        detect("segmentation", photo)


def test_a_failed_download_is_an_error_a_person_can_act_on(photo):
    # Online allowed but no hub (offline mode here): the download itself fails.
    with pytest.raises(DiffusionError, match="detector.s repository lllyasviel/Annotators is not in the local cache"):
        detect("normal_bae", photo, allow_online=True)


def test_no_weights_needed_for_the_offline_three():
    assert [name for name, d in DETECTORS.items() if not d.needs_weights] == ["canny", "lineart_standard", "shuffle"]
    assert missing_weights("canny") == []


def test_bad_input():
    with pytest.raises(DiffusionError, match="RGB image"):
        detect("canny", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unknown detector"):
        detect("xray", np.zeros((8, 8, 3), np.uint8))


def test_rgba_input_uses_the_colour(photo):
    rgba = np.concatenate([photo, np.full((H, W, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(detect("canny", rgba), detect("canny", photo))
