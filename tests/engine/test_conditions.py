# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth normalisation for ControlNet, pure numpy (no bpy here)."""
import numpy as np
import pytest

from engine.conditions import FAR_FLOOR, depth_to_control
from engine.errors import DiffusionError

FLOOR = round(FAR_FLOOR * 255)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Three depths (2, 4, 8) and a background column."""
    z = np.array([[2.0, 4.0, 8.0, np.inf]] * 2, np.float32)
    return z, np.isfinite(z)


def test_near_bright_far_dark_background_black():
    z, mask = _scene()
    image = depth_to_control(z, mask)
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    assert np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 0] == image[..., 2])
    row = image[0, :, 0]
    assert row[0] == 255 and row[2] == FLOOR and row[3] == 0
    assert row[0] > row[1] > row[2] > row[3]


def test_farthest_geometry_stays_distinguishable_from_background():
    z, mask = _scene()
    assert depth_to_control(z, mask)[0, 2, 0] >= 16


def test_inverse_depth_by_default_and_linear_on_request():
    z, mask = _scene()
    # Disparity: 1/4 lies 1/3 of the way from 1/8 to 1/2.
    inverse = depth_to_control(z, mask)[0, 1, 0]
    assert inverse == round(255 * (FAR_FLOOR + (1 - FAR_FLOOR) / 3))
    linear = depth_to_control(z, mask, inverse=False)[0, 1, 0]
    assert linear == round(255 * (FAR_FLOOR + (1 - FAR_FLOOR) * 4 / 6))


def test_fixed_near_far_clips_but_never_turns_geometry_black():
    z, mask = _scene()
    row = depth_to_control(z, mask, near=3.0, far=5.0)[0, :, 0]
    assert row[0] == 255  # nearer than near
    assert row[2] == FLOOR  # farther than far: dark, still geometry
    assert row[3] == 0
    assert FLOOR < row[1] < 255


def test_only_one_end_fixed_keeps_the_other_visible():
    z, mask = _scene()
    row = depth_to_control(z, mask, far=16.0)[0, :, 0]
    assert row[0] == 255 and FLOOR < row[2] < row[1]
    row = depth_to_control(z, mask, near=1.0)[0, :, 0]
    assert row[0] < 255 and row[2] == FLOOR


def test_fixed_range_is_independent_of_what_is_in_view():
    z, mask = _scene()
    wide = depth_to_control(z, mask, near=1.0, far=10.0)
    narrow = depth_to_control(z[:, 1:], mask[:, 1:], near=1.0, far=10.0)
    assert np.array_equal(wide[:, 1:], narrow)


def test_a_single_depth_is_all_near():
    z = np.full((3, 3), 5.0)
    mask = np.ones((3, 3), bool)
    mask[0, 0] = False
    image = depth_to_control(z, mask)[..., 0]
    assert image[0, 0] == 0 and np.all(image[mask] == 255)


def test_everything_beyond_a_fixed_far_is_at_the_floor():
    z, mask = _scene()
    row = depth_to_control(z, mask, far=1.5)[0, :, 0]
    assert list(row) == [FLOOR, FLOOR, FLOOR, 0]


def test_masked_out_values_are_ignored_even_if_garbage():
    z, mask = _scene()
    z[:, 3] = np.nan
    mask[:, 3] = False
    z[1, 0] = -7.0  # not geometry: must not become the near end
    mask[1, 0] = False
    image = depth_to_control(z, mask)[..., 0]
    assert image[1, 0] == 0 and image[0, 0] == 255 and np.all(image[:, 3] == 0)


def test_empty_mask_is_all_black():
    z = np.full((2, 2), np.inf)
    assert not depth_to_control(z, np.zeros((2, 2), bool)).any()


def test_bad_ranges_are_errors_a_person_can_fix():
    z, mask = _scene()
    with pytest.raises(DiffusionError, match="less than far"):
        depth_to_control(z, mask, near=5.0, far=5.0)
    with pytest.raises(DiffusionError, match="positive"):
        depth_to_control(z, mask, near=0.0, far=5.0)


def test_shape_mismatch_is_a_programming_error():
    z, mask = _scene()
    with pytest.raises(ValueError):
        depth_to_control(z, mask[:, :2])


def test_engine_conditions_do_not_import_bpy():
    import engine.conditions
    with open(engine.conditions.__file__) as file:
        assert "import bpy" not in file.read()
