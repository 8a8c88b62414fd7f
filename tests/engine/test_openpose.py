# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPose drawing against controlnet_aux's own drawing code, pixel for pixel, and JSON."""
import json
import warnings

import numpy as np
import pytest

from engine.openpose import (
    BODY_COLORS, BODY_KEYPOINTS, FACE_KEYPOINT_COUNT, HAND_KEYPOINTS, PosePerson, draw_bodies,
    draw_poses, to_openpose_json,
)


@pytest.fixture(scope="module")
def aux():
    """controlnet_aux's open_pose package as shipped (util.draw_* and draw_poses); it colours
    hand edges with the real matplotlib, a dev dependency (requirements-dev.txt)."""
    with warnings.catch_warnings():  # its package imports every detector, with their warnings
        warnings.simplefilter("ignore")
        from controlnet_aux import open_pose
    return open_pose


def _random_points(rng, count: int, width: int, height: int, missing: float = 0.15) -> np.ndarray:
    """Points anywhere on the canvas (some on exact pixel borders), some missing (NaN)."""
    points = np.stack([rng.uniform(0, width, count), rng.uniform(0, height, count)], axis=1)
    on_grid = rng.random(count) < 0.2
    points[on_grid] = np.floor(points[on_grid])
    points[rng.random(count) < missing] = np.nan
    return points


def _keypoints(aux, points: np.ndarray, width: int, height: int, missing_as=None):
    """Our pixel points as controlnet_aux holds them: Keypoints with 0..1 coordinates."""
    Keypoint = aux.Keypoint
    return [missing_as if np.isnan(x) else Keypoint(x=float(x) / width, y=float(y) / height)
            for x, y in points]


def _aux_pose(aux, person: PosePerson, width: int, height: int):
    body = aux.BodyResult(keypoints=_keypoints(aux, person.body, width, height), total_score=1.0, total_parts=18)
    # controlnet_aux marks missing hand/face points with x = y = -1 (its detectors' output).
    missing = aux.Keypoint(x=-1.0, y=-1.0)
    hands = [None if hand is None else _keypoints(aux, hand, width, height, missing)
             for hand in (person.left_hand, person.right_hand)]
    face = None if person.face is None else _keypoints(aux, person.face, width, height, missing)
    return aux.PoseResult(body, hands[0], hands[1], face)


@pytest.mark.parametrize("width, height", [(512, 512), (640, 384), (97, 161)])
def test_bodies_equal_controlnet_aux_pixel_for_pixel(aux, width, height):
    rng = np.random.default_rng(width * height)
    people = [_random_points(rng, 18, width, height) for _ in range(3)] + [None]
    ours = draw_bodies(people, width, height)
    theirs = np.zeros((height, width, 3), np.uint8)
    for body in people:
        if body is not None:
            aux.util.draw_bodypose(theirs, _keypoints(aux, body, width, height))
    assert ours.shape == (height, width, 3) and ours.dtype == np.uint8
    assert ours.any()
    np.testing.assert_array_equal(ours, theirs)


def test_whole_poses_equal_controlnet_aux_draw_poses(aux):
    width, height = 384, 512
    rng = np.random.default_rng(7)
    people = [PosePerson(body=_random_points(rng, 18, width, height),
                         left_hand=_random_points(rng, 21, width, height),
                         right_hand=None if index else _random_points(rng, 21, width, height),
                         face=_random_points(rng, 70, width, height))
              for index in range(2)]
    people[0].left_hand[0] = (0.4, 10.0)  # column 0: controlnet_aux does not draw it
    ours = draw_poses(people, width, height)
    theirs = aux.draw_poses([_aux_pose(aux, person, width, height) for person in people], height, width)
    np.testing.assert_array_equal(ours, theirs)
    body_only = draw_poses(people, width, height, hands=False, face=False)
    np.testing.assert_array_equal(body_only, draw_bodies([p.body for p in people], width, height))


def test_a_standing_figure_has_the_openpose_colours():
    width = height = 128
    body = np.full((18, 2), np.nan)
    body[BODY_KEYPOINTS.index("r_shoulder")] = (40, 40)
    body[BODY_KEYPOINTS.index("r_elbow")] = (40, 80)
    image = draw_bodies([body], width, height)
    assert tuple(image[40, 40]) == BODY_COLORS[2]  # the r_shoulder joint
    assert tuple(image[60, 40]) == tuple(int(c * 0.6) for c in BODY_COLORS[2])  # the limb at 60 %
    assert tuple(image[5, 5]) == (0, 0, 0)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="18x2"):
        draw_bodies([np.zeros((17, 2))], 64, 64)
    with pytest.raises(ValueError, match="positive size"):
        draw_bodies([], 0, 64)


def test_openpose_json():
    body = np.full((18, 2), np.nan)
    body[0] = (10.5, 20.25)
    hand = np.zeros((21, 2))
    person = PosePerson(body=body, left_hand=hand)
    data = json.loads(json.dumps(to_openpose_json([person], 640, 480)))
    assert data["canvas_width"] == 640 and data["canvas_height"] == 480
    (entry,) = data["people"]
    assert len(entry["pose_keypoints_2d"]) == 18 * 3
    assert entry["pose_keypoints_2d"][:6] == [10.5, 20.25, 1.0, 0.0, 0.0, 0.0]
    assert len(entry["hand_left_keypoints_2d"]) == 21 * 3 and entry["hand_right_keypoints_2d"] == []
    assert entry["face_keypoints_2d"] == []
    assert len(HAND_KEYPOINTS) == 21 and FACE_KEYPOINT_COUNT == 70
