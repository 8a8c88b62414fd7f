# SPDX-License-Identifier: GPL-3.0-or-later
"""Which bone gives which OpenPose keypoint, per rig naming. Plain data, no bpy.

A keypoint is a point on a bone (`at` 0 = head, 1 = tail) or the weighted mean of a few
such points; each keypoint lists alternatives, and the first whose bones all exist wins.
Heads are preferred: a joint is where a bone starts, and rigs imported from FBX (Mixamo)
have meaningful heads but guessed tails.

Namings (bone names as the tools write them; checked against the rigs noted):
- Rigify: the human metarig that ships with Blender (checked in Blender 5.0) and rigs
  generated from it, whose ORG- bones follow the controls exactly (DEF- are tried next;
  a generated rig also has controls named like metarig bones, so those come last).
- Mixamo: "mixamorig:LeftArm" ...; any "namespace:" prefix is ignored ("mixamorig1:").
- MakeHuman / MPFB default skeleton: upperarm01.L, lowerarm01.L, wrist.L, upperleg01.L,
  lowerleg01.L, foot.L, head, eye.L, finger1-1.L (thumb) ... (MPFB's rig.default.json).
- MPFB game engine skeleton, also Unreal's mannequin: upperarm_l, lowerarm_l, hand_l,
  thigh_l, calf_l, foot_l, head, thumb_01_l ...
- MPFB OpenPose skeleton: bones named after the keypoints (LShoulder, LElbow, ...), each
  ending where its keypoint is.

Neck: OpenPose's neck is the midpoint of the shoulders (that is how its training data
defines it), so it is derived from the two shoulder keypoints unless a naming has a bone
made for it. Nose, eyes and ears come from face bones when the rig has them, else they
are estimated from the head bone (see FACE_ESTIMATES).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BonePoint", "Naming", "NAMINGS", "FACE_ESTIMATES", "MIN_RECOGNISED"]


@dataclass(frozen=True)
class BonePoint:
    """A point `at` of the way from a bone's head (0) to its tail (1), with a weight."""
    bone: str
    at: float = 0.0
    weight: float = 1.0


Point = tuple[BonePoint, ...]  # the weighted mean of these (weights sum to 1)
Alternatives = tuple[Point, ...]  # the first whose bones all exist wins


@dataclass(frozen=True)
class Naming:
    """One rig naming convention.

    body: body keypoint -> alternatives (keypoints left out are derived or estimated).
    left_hand/right_hand: 21 alternatives each, in OpenPose hand order, or () for none.
    face: 70 alternatives in OpenPose face order, or () for none.
    head: candidates for the head bone (face estimates and which way the face looks).
    prefixes: tried in order in front of every bone name.
    """
    key: str
    label: str
    body: dict[str, Alternatives]
    head: tuple[str, ...] = ()
    left_hand: tuple[Alternatives, ...] = ()
    right_hand: tuple[Alternatives, ...] = ()
    face: tuple[Alternatives, ...] = ()
    prefixes: tuple[str, ...] = ("",)


# A naming is taken to be the armature's only when it finds at least this many body
# keypoints: two common names (foot.L, foot.R) in a vehicle or prop rig are no skeleton.
MIN_RECOGNISED = 4

# Face points estimated from the head bone when the rig has no face bones, as (right, up,
# forward) offsets from the head bone's head in shoulder widths (distance between the
# shoulder keypoints), in the body's rest frame (right: from the left to the right
# shoulder; up: from the hips to the shoulders; forward: their cross product). Measured
# on Blender's Rigify human metarig (shoulders 0.39 apart; head bone from (0, -0.025, 1.781);
# nose tip, eye fronts and ear roots from its face bones). The points then move rigidly
# with the head bone.
FACE_ESTIMATES: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.164, 0.441),
    "r_eye": (0.133, 0.290, 0.308),
    "l_eye": (-0.133, 0.290, 0.308),
    "r_ear": (0.236, 0.208, 0.015),
    "l_ear": (-0.236, 0.208, 0.015),
}


def _p(bone: str, at: float = 0.0) -> Alternatives:
    """One alternative: a single bone point."""
    return ((BonePoint(bone, at),),)


def _mean(*points: tuple[str, float, float]) -> Point:
    """A weighted mean of (bone, at, weight) points."""
    return tuple(BonePoint(bone, at, weight) for bone, at, weight in points)


def _hand(joints: list[tuple[str, float] | tuple[tuple[str, float], ...]]) -> tuple[Alternatives, ...]:
    """21 hand alternatives from (bone, at) or several (bone, at) tried in order."""
    out = []
    for joint in joints:
        options = joint if isinstance(joint[0], tuple) else (joint,)
        out.append(tuple((BonePoint(bone, at),) for bone, at in options))
    return tuple(out)


# --- Rigify -------------------------------------------------------------------------------

def _rigify() -> Naming:
    body: dict[str, Alternatives] = {}
    for side, s in (("right", "R"), ("left", "L")):
        k = side[0]
        body |= {
            f"{k}_shoulder": _p(f"upper_arm.{s}"), f"{k}_elbow": _p(f"forearm.{s}"),
            f"{k}_wrist": _p(f"hand.{s}"), f"{k}_hip": _p(f"thigh.{s}"),
            f"{k}_knee": _p(f"shin.{s}"), f"{k}_ankle": _p(f"foot.{s}"),
            f"{k}_eye": _p(f"eye.{s}", 1.0),  # the tail is the front of the eye
            f"{k}_ear": _p(f"ear.{s}"),  # the ear's root on the head
        }
    body["nose"] = ((BonePoint("nose.002"),), (BonePoint("nose.001", 1.0),))  # the tip

    def hand(s: str) -> tuple[Alternatives, ...]:
        joints: list = [(f"hand.{s}", 0.0)]
        for finger in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky"):
            joints += [(f"{finger}.01.{s}", 0.0), (f"{finger}.02.{s}", 0.0),
                       (f"{finger}.03.{s}", 0.0), (f"{finger}.03.{s}", 1.0)]
        return _hand(joints)

    return Naming("rigify", "Rigify", body, head=("spine.006",), left_hand=hand("L"),
                  right_hand=hand("R"), face=_rigify_face(), prefixes=("ORG-", "DEF-", ""))


def _rigify_face() -> tuple[Alternatives, ...]:
    """The 68 iBUG landmarks + 2 pupils from the full Rigify face (approximate: the
    landmarks of a detected face lie on its skin; these lie on the face bones).

    Right means the character's right (the image's left on a face seen from the front).
    """
    def one(bone: str, at: float = 0.0) -> Alternatives:
        return ((BonePoint(bone, at),),)

    def mix(*points: tuple[str, float, float]) -> Alternatives:
        return (_mean(*points),)

    def lips_inner(t: str, b: str, at: float, upper: bool) -> Alternatives:
        # The bones only trace the outer lip line; the inner line lies between the lips.
        near, far = (0.7, 0.3) if upper else (0.3, 0.7)
        return mix((t, at, near), (b, at, far))

    jaw_right = [one("jaw.R"), one("jaw.R", 1 / 3), one("jaw.R", 2 / 3),
                 one("jaw.R.001"), one("jaw.R.001", 1 / 3), one("jaw.R.001", 2 / 3),
                 one("chin.R"), mix(("chin.R", 0.0, 0.5), ("chin", 0.0, 0.5))]
    jaw_left = [mix(("chin.L", 0.0, 0.5), ("chin", 0.0, 0.5)), one("chin.L"),
                one("jaw.L.001", 2 / 3), one("jaw.L.001", 1 / 3), one("jaw.L.001"),
                one("jaw.L", 2 / 3), one("jaw.L", 1 / 3), one("jaw.L")]
    landmarks = (
        jaw_right + [one("chin")] + jaw_left                                     # 0-16
        + [one("brow.T.R.001"), one("brow.T.R.001", 0.5), one("brow.T.R.002"),   # 17-21 right brow
           one("brow.T.R.002", 0.5), one("brow.T.R.003")]
        + [one("brow.T.L.003"), one("brow.T.L.002", 0.5), one("brow.T.L.002"),   # 22-26 left brow
           one("brow.T.L.001", 0.5), one("brow.T.L.001")]
        + [one("nose"), one("nose", 0.5), one("nose.001"), one("nose.002")]      # 27-30 bridge to tip
        + [one("nose.R.001"), mix(("nose.R.001", 0.0, 0.5), ("nose.004", 1.0, 0.5)),  # 31-35 nostrils
           one("nose.004", 1.0), mix(("nose.L.001", 0.0, 0.5), ("nose.004", 1.0, 0.5)),
           one("nose.L.001")]
        + [one("lid.T.R"), one("lid.T.R.002"), one("lid.T.R.003"),               # 36-41 right eye
           one("lid.B.R"), one("lid.B.R.001", 0.5), one("lid.B.R.002", 0.5)]
        + [one("lid.B.L"), one("lid.T.L.003"), one("lid.T.L.002"),               # 42-47 left eye
           one("lid.T.L"), one("lid.B.L.002", 0.5), one("lid.B.L.001", 0.5)]
        + [one("lip.T.R.001", 1.0), one("lip.T.R.001", 0.5), one("lip.T.R.001"),  # 48-59 outer lips
           one("lip.T.R"), one("lip.T.L.001"), one("lip.T.L.001", 0.5), one("lip.T.L.001", 1.0),
           one("lip.B.L.001", 0.5), one("lip.B.L.001"), one("lip.B.L"), one("lip.B.R.001"),
           one("lip.B.R.001", 0.5)]
        + [one("lip.T.R.001", 1.0),                                              # 60-67 inner lips
           lips_inner("lip.T.R", "lip.B.R", 1.0, True), lips_inner("lip.T.R", "lip.B.R", 0.0, True),
           lips_inner("lip.T.L", "lip.B.L", 1.0, True), one("lip.T.L.001", 1.0),
           lips_inner("lip.T.L", "lip.B.L", 1.0, False), lips_inner("lip.T.L", "lip.B.L", 0.0, False),
           lips_inner("lip.T.R", "lip.B.R", 1.0, False)]
        + [one("eye.R", 1.0), one("eye.L", 1.0)]                                 # 68-69 pupils
    )
    assert len(landmarks) == 70
    return tuple(landmarks)


# --- Mixamo -------------------------------------------------------------------------------

def _mixamo() -> Naming:
    body: dict[str, Alternatives] = {}
    for k, side in (("r", "Right"), ("l", "Left")):
        body |= {
            f"{k}_shoulder": _p(f"{side}Arm"), f"{k}_elbow": _p(f"{side}ForeArm"),
            f"{k}_wrist": _p(f"{side}Hand"), f"{k}_hip": _p(f"{side}UpLeg"),
            f"{k}_knee": _p(f"{side}Leg"), f"{k}_ankle": _p(f"{side}Foot"),
            f"{k}_eye": _p(f"{side}Eye"),  # in characters that have eye bones
        }

    def hand(side: str) -> tuple[Alternatives, ...]:
        joints: list = [(f"{side}Hand", 0.0)]
        for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky"):
            base = f"{side}Hand{finger}"
            # The fourth bone is the tip's end bone; without it, the third's (guessed) tail.
            joints += [(f"{base}1", 0.0), (f"{base}2", 0.0), (f"{base}3", 0.0),
                       ((f"{base}4", 0.0), (f"{base}3", 1.0))]
        return _hand(joints)

    return Naming("mixamo", "Mixamo", body, head=("Head",), left_hand=hand("Left"), right_hand=hand("Right"))


# --- MakeHuman / MPFB default skeleton ----------------------------------------------------

def _makehuman() -> Naming:
    body: dict[str, Alternatives] = {}
    for k, s in (("r", "R"), ("l", "L")):
        body |= {
            f"{k}_shoulder": _p(f"upperarm01.{s}"), f"{k}_elbow": _p(f"lowerarm01.{s}"),
            f"{k}_wrist": _p(f"wrist.{s}"), f"{k}_hip": _p(f"upperleg01.{s}"),
            f"{k}_knee": _p(f"lowerleg01.{s}"), f"{k}_ankle": _p(f"foot.{s}"),
            # The eye bone runs from the eyeball's centre to a target about 4 cm ahead.
            f"{k}_eye": _p(f"eye.{s}", 0.3),
        }

    def hand(s: str) -> tuple[Alternatives, ...]:
        joints: list = [(f"wrist.{s}", 0.0)]
        for finger in range(1, 6):  # finger1 is the thumb
            joints += [(f"finger{finger}-1.{s}", 0.0), (f"finger{finger}-2.{s}", 0.0),
                       (f"finger{finger}-3.{s}", 0.0), (f"finger{finger}-3.{s}", 1.0)]
        return _hand(joints)

    return Naming("makehuman", "MakeHuman / MPFB", body, head=("head",), left_hand=hand("L"), right_hand=hand("R"))


# --- MPFB game engine / Unreal mannequin --------------------------------------------------

def _game_engine() -> Naming:
    body: dict[str, Alternatives] = {}
    for k, s in (("r", "r"), ("l", "l")):
        body |= {
            f"{k}_shoulder": _p(f"upperarm_{s}"), f"{k}_elbow": _p(f"lowerarm_{s}"),
            f"{k}_wrist": _p(f"hand_{s}"), f"{k}_hip": _p(f"thigh_{s}"),
            f"{k}_knee": _p(f"calf_{s}"), f"{k}_ankle": _p(f"foot_{s}"),
        }

    def hand(s: str) -> tuple[Alternatives, ...]:
        joints: list = [(f"hand_{s}", 0.0)]
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            joints += [(f"{finger}_01_{s}", 0.0), (f"{finger}_02_{s}", 0.0),
                       (f"{finger}_03_{s}", 0.0), (f"{finger}_03_{s}", 1.0)]
        return _hand(joints)

    return Naming("game_engine", "MPFB game engine / Unreal", body, head=("head",),
                  left_hand=hand("l"), right_hand=hand("r"))


# --- MPFB OpenPose skeleton ---------------------------------------------------------------

def _mpfb_openpose() -> Naming:
    body: dict[str, Alternatives] = {"neck": _p("Neck"), "nose": _p("Neck", 1.0)}
    for k, s in (("r", "R"), ("l", "L")):
        for key, bone in (("shoulder", "Shoulder"), ("elbow", "Elbow"), ("wrist", "Wrist"),
                          ("hip", "Hip"), ("knee", "Knee"), ("ankle", "Ankle"), ("eye", "Eye"), ("ear", "Ear")):
            body[f"{k}_{key}"] = _p(f"{s}{bone}", 1.0)
    return Naming("mpfb_openpose", "MPFB OpenPose", body)


NAMINGS: tuple[Naming, ...] = (_rigify(), _mixamo(), _makehuman(), _game_engine(), _mpfb_openpose())
