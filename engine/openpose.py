# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPose skeletons drawn exactly as controlnet_aux draws them, and OpenPose JSON.

Pure numpy + OpenCV, no bpy. Keypoints are in pixels of the canvas (x right, y down,
pixel (i, j) covering [j, j + 1) x [i, i + 1)); a missing keypoint is a row of NaN.

Drawing follows controlnet_aux 0.0.10 `open_pose/util.py` (draw_bodypose, draw_handpose,
draw_facepose) and `open_pose/__init__.py::draw_poses` step by step, including its float
arithmetic: it takes coordinates as fractions of the canvas and multiplies them back, so
we divide and multiply the same way and truncate to the same integer pixel. The
OpenPose ControlNets were trained on images drawn by that code, so any other way of
drawing (anti-aliasing, other widths) would be a different input to them.
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BODY_KEYPOINTS", "BODY_LIMBS", "BODY_COLORS", "HAND_KEYPOINTS", "HAND_EDGES",
    "FACE_KEYPOINT_COUNT", "PosePerson", "draw_bodies", "draw_poses", "to_openpose_json",
]

# The 18 COCO keypoints in OpenPose order.
BODY_KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)

# Limbs as pairs of 0-based keypoint indices, in drawing order (controlnet_aux's limbSeq, 1-based there).
BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4),
    (5, 6), (6, 7), (1, 8), (8, 9),
    (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15),
    (15, 17),
)

# RGB; limb i uses colour i (at 60 %), keypoint i uses colour i.
BODY_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# The 21 OpenPose hand keypoints: the wrist, then four per finger from the palm outwards.
HAND_KEYPOINTS: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}_{joint}" for finger in ("thumb", "index", "middle", "ring", "pinky") for joint in range(1, 5))

HAND_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)

# controlnet_aux colours edge i with matplotlib's hsv_to_rgb([i / 20, 1, 1]) * 255, floats
# that OpenCV rounds; colorsys uses the same formula in the same float64 arithmetic.
_HAND_EDGE_COLORS: tuple[tuple[float, float, float], ...] = tuple(
    tuple(channel * 255 for channel in colorsys.hsv_to_rgb(i / float(len(HAND_EDGES)), 1.0, 1.0))
    for i in range(len(HAND_EDGES)))

# The 68 landmarks of the iBUG 300-W layout plus the two pupils (right, left), as OpenPose.
FACE_KEYPOINT_COUNT = 70

_STICK_WIDTH = 4
# controlnet_aux skips hand and face points whose integer pixel is not above this, which
# also drops the -1 it uses for missing points (and any point in row or column 0).
_EPS = 0.01


@dataclass(frozen=True, eq=False)
class PosePerson:
    """One person's keypoints in pixels, NaN rows = missing.

    body: 18x2 (BODY_KEYPOINTS order); left_hand/right_hand: 21x2 (HAND_KEYPOINTS order)
    or None; face: 70x2 or None. Left and right are the person's own.
    """
    body: np.ndarray
    left_hand: np.ndarray | None = None
    right_hand: np.ndarray | None = None
    face: np.ndarray | None = None


def draw_bodies(people: Sequence[np.ndarray | None], width: int, height: int) -> np.ndarray:
    """The OpenPose body image of `people` (each 18x2 pixels, NaN = missing, or None).

    Returns HxWx3 uint8 RGB, black background: what controlnet_aux's OpenposeDetector
    draws for the same keypoints with include_hand and include_face off.
    """
    canvas = _canvas(width, height)
    for body in people:
        if body is not None:
            _draw_body(canvas, _checked(body, len(BODY_KEYPOINTS), "body"))
    return canvas


def draw_poses(people: Sequence[PosePerson], width: int, height: int,
               hands: bool = True, face: bool = True) -> np.ndarray:
    """Bodies, hands and faces of `people`, person by person as controlnet_aux's draw_poses.

    Returns HxWx3 uint8 RGB, black background.
    """
    canvas = _canvas(width, height)
    for person in people:
        _draw_body(canvas, _checked(person.body, len(BODY_KEYPOINTS), "body"))
        if hands:
            for hand in (person.left_hand, person.right_hand):
                if hand is not None:
                    _draw_hand(canvas, _checked(hand, len(HAND_KEYPOINTS), "hand"))
        if face and person.face is not None:
            _draw_face(canvas, _checked(person.face, FACE_KEYPOINT_COUNT, "face"))
    return canvas


def to_openpose_json(people: Sequence[PosePerson], width: int, height: int) -> dict:
    """The OpenPose JSON of `people` (the format OpenPose writes with --write_json).

    Each point is x, y, confidence in pixels; a missing point is 0, 0, 0, as OpenPose
    writes it. canvas_width/height are the keys the ControlNet pose editors read.
    """
    def flat(points: np.ndarray | None) -> list[float]:
        if points is None:
            return []
        values: list[float] = []
        for x, y in np.asarray(points, dtype=np.float64):
            values.extend((0.0, 0.0, 0.0) if not (math.isfinite(x) and math.isfinite(y))
                          else (float(x), float(y), 1.0))
        return values

    return {
        "version": 1.3,
        "people": [{
            "person_id": [-1],
            "pose_keypoints_2d": flat(person.body),
            "face_keypoints_2d": flat(person.face),
            "hand_left_keypoints_2d": flat(person.left_hand),
            "hand_right_keypoints_2d": flat(person.right_hand),
            "pose_keypoints_3d": [], "face_keypoints_3d": [],
            "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": [],
        } for person in people],
        "canvas_width": int(width),
        "canvas_height": int(height),
    }


def _canvas(width: int, height: int) -> np.ndarray:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"a pose image needs a positive size, got {width}x{height}")
    return np.zeros((int(height), int(width), 3), dtype=np.uint8)


def _checked(points: np.ndarray, count: int, what: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (count, 2):
        raise ValueError(f"{what} keypoints must be a {count}x2 array, got shape {points.shape}")
    return points


def _fractions(points: np.ndarray, width: int, height: int) -> list[tuple[float, float] | None]:
    """Points as controlnet_aux holds them: fractions of the canvas (Python floats), or None."""
    return [(float(x) / width, float(y) / height) if math.isfinite(x) and math.isfinite(y) else None
            for x, y in points]


def _draw_body(canvas: np.ndarray, body: np.ndarray) -> None:
    import cv2  # a dependency the extension installs: names above import without it

    H, W, _ = canvas.shape
    keypoints = _fractions(body, W, H)
    for (i, j), color in zip(BODY_LIMBS, BODY_COLORS):
        if keypoints[i] is None or keypoints[j] is None:
            continue
        # controlnet_aux's expressions, in its order, so every float rounds the same way.
        Y = np.array([keypoints[i][0], keypoints[j][0]]) * float(W)
        X = np.array([keypoints[i][1], keypoints[j][1]]) * float(H)
        mX = (X[0] + X[1]) / 2  # what np.mean computes for two values, bit for bit, without its overhead
        mY = (Y[0] + Y[1]) / 2
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), _STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])
    for keypoint, color in zip(keypoints, BODY_COLORS):
        if keypoint is None:
            continue
        cv2.circle(canvas, (int(keypoint[0] * W), int(keypoint[1] * H)), 4, color, thickness=-1)


def _draw_hand(canvas: np.ndarray, hand: np.ndarray) -> None:
    import cv2

    H, W, _ = canvas.shape
    keypoints = _fractions(hand, W, H)
    for (i, j), color in zip(HAND_EDGES, _HAND_EDGE_COLORS):
        if keypoints[i] is None or keypoints[j] is None:
            continue
        x1, y1 = int(keypoints[i][0] * W), int(keypoints[i][1] * H)
        x2, y2 = int(keypoints[j][0] * W), int(keypoints[j][1] * H)
        if x1 > _EPS and y1 > _EPS and x2 > _EPS and y2 > _EPS:
            cv2.line(canvas, (x1, y1), (x2, y2), color, thickness=2)
    for keypoint in keypoints:
        if keypoint is None:
            continue
        x, y = int(keypoint[0] * W), int(keypoint[1] * H)
        if x > _EPS and y > _EPS:
            cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)


def _draw_face(canvas: np.ndarray, face: np.ndarray) -> None:
    import cv2

    H, W, _ = canvas.shape
    for keypoint in _fractions(face, W, H):
        if keypoint is None:
            continue
        x, y = int(keypoint[0] * W), int(keypoint[1] * H)
        if x > _EPS and y > _EPS:
            cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)
