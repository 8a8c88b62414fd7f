# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's camera schedules as camera placements: directions in the camera's own axes,
accumulation frame by frame, the field of view as a lens (analytic references)."""
import math

import numpy as np
import pytest

from engine.deforum_motion import camera_path

LOOKING_ALONG_Y = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])  # rotation (90°, 0, 0)


def test_translation_z_moves_forward_and_x_right_in_the_cameras_axes():
    path = camera_path({"translation_z": "0:(200)", "translation_x": "0:(100)"}, 1, 3, LOOKING_ALONG_Y)
    positions = [p.world_from_camera[:3, 3] for p in path]
    # The camera looks along +Y with +X to its right: one Blender unit forward per frame
    # (200 Deforum units), half a unit right.
    np.testing.assert_allclose(positions[1], [0.5, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(positions[2], [1.0, 2.0, 0.0], atol=1e-12)
    assert [p.frame for p in path] == [1, 2, 3]


def test_rotation_y_turns_left_and_accumulates():
    path = camera_path({"rotation_3d_y": "0:(30)"}, 10, 4, LOOKING_ALONG_Y)
    forward = [-p.world_from_camera[:3, 2] for p in path]
    for k, direction in enumerate(forward):
        angle = math.radians(30 * k)  # turning left (counter-clockwise from above) from +Y
        np.testing.assert_allclose(direction, [-math.sin(angle), math.cos(angle), 0.0], atol=1e-12)


def test_rotation_x_tilts_up_and_z_rolls_counter_clockwise():
    up = camera_path({"rotation_3d_x": "0:(90)"}, 1, 2, LOOKING_ALONG_Y)[1]
    np.testing.assert_allclose(-up.world_from_camera[:3, 2], [0, 0, 1], atol=1e-12)
    rolled = camera_path({"rotation_3d_z": "0:(90)"}, 1, 2, LOOKING_ALONG_Y)[1]
    # The camera's right turns to where its up was: world +Z.
    np.testing.assert_allclose(rolled.world_from_camera[:3, 0], [0, 0, 1], atol=1e-12)


def test_fov_becomes_the_lens_and_motion_follows_the_schedule_per_frame():
    path = camera_path({"fov_schedule": "0:(90), 2:(40)", "translation_z": "0:(0), 1:(200)"}, 1, 3,
                       LOOKING_ALONG_Y)
    assert path[0].lens == pytest.approx(18.0)  # 36 mm sensor, 90°
    assert path[2].lens == pytest.approx(18.0 / math.tan(math.radians(20)))
    np.testing.assert_allclose([p.world_from_camera[1, 3] for p in path], [0.0, 0.0, 1.0], atol=1e-12)
