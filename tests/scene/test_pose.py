# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPose capture in real Blender, on Rigify's own human metarig and on Mixamo-,
MakeHuman- and custom-named armatures built at the metarig's joints.

The camera sits at (0, -6, 1) looking along +Y (world X = image right, world Z = image
up), lens 50 mm on a 36 mm sensor, square 128 px: a point at camera-space (x, up, depth)
lands at pixel ((x / depth / 0.36 + 1) * 64, (1 - up / depth / 0.36) * 64).
The metarig stands at the origin facing -Y, towards the camera.
"""
import math
from importlib import import_module

import numpy as np
import pytest

SIZE = 128
HALF = 0.36  # tangent of half the field of view
CAMERA = (0.0, -6.0, 1.0)


@pytest.fixture(scope="module")
def rigify(extension):
    import addon_utils
    addon_utils.enable("rigify", default_set=True)


@pytest.fixture
def pose(extension):
    return import_module(f"{extension.__name__}.scene.pose")


@pytest.fixture
def errors(extension):
    return import_module(f"{extension.__name__}.engine.errors")


@pytest.fixture
def keypoints(extension):
    return import_module(f"{extension.__name__}.engine.openpose").BODY_KEYPOINTS


@pytest.fixture
def scene(empty_scene, rigify):
    import bpy
    scene = empty_scene
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = CAMERA
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.camera = camera
    return scene


def _metarig(location=(0.0, 0.0, 0.0), basic: bool = False):
    import bpy
    if basic:
        bpy.ops.object.armature_basic_human_metarig_add()
    else:
        bpy.ops.object.armature_human_metarig_add()
    obj = bpy.context.active_object
    obj.location = location
    return obj


def _pixel(world) -> tuple[float, float]:
    x, depth, up = world[0] - CAMERA[0], world[1] - CAMERA[1], world[2] - CAMERA[2]
    return (x / depth / HALF + 1) * SIZE / 2, (1 - up / depth / HALF) * SIZE / 2


# Joints of a human skeleton by role, placed where the metarig has them: (bone, head or tail).
_JOINTS = {
    "hips": ("spine", 0), "chest": ("spine.003", 0), "neck": ("spine.004", 0), "head": ("spine.006", 0),
    "head_top": ("spine.006", 1),
}
for _s, _side in (("L", "Left"), ("R", "Right")):
    _JOINTS |= {f"shoulder.{_s}": (f"upper_arm.{_s}", 0), f"elbow.{_s}": (f"forearm.{_s}", 0),
                f"wrist.{_s}": (f"hand.{_s}", 0), f"hand_end.{_s}": (f"hand.{_s}", 1),
                f"hip.{_s}": (f"thigh.{_s}", 0), f"knee.{_s}": (f"shin.{_s}", 0),
                f"ankle.{_s}": (f"foot.{_s}", 0), f"toe.{_s}": (f"foot.{_s}", 1)}
    for _finger in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky"):
        _JOINTS |= {f"{_finger}{_i}.{_s}": (f"{_finger}.0{_i}.{_s}", 0) for _i in (1, 2, 3)}
        _JOINTS[f"{_finger}4.{_s}"] = (f"{_finger}.03.{_s}", 1)


def _named_skeleton(names: dict[str, tuple[str, str]], name: str = "Skeleton"):
    """An armature whose bones run between metarig joints: bone name -> (head joint, tail joint)."""
    import bpy
    reference = _metarig()
    joints = {role: (reference.data.bones[bone].tail_local if end else reference.data.bones[bone].head_local).copy()
              for role, (bone, end) in _JOINTS.items()}
    bpy.data.objects.remove(reference)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    for bone_name, (head, tail) in names.items():
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = joints[head], joints[tail]
    bpy.ops.object.mode_set(mode='OBJECT')
    return obj


def _mixamo_names(prefix: str = "mixamorig:", fingers: bool = False) -> dict[str, tuple[str, str]]:
    names = {f"{prefix}Hips": ("hips", "chest"), f"{prefix}Neck": ("neck", "head"),
             f"{prefix}Head": ("head", "head_top")}
    for s, side in (("L", "Left"), ("R", "Right")):
        for finger, theirs in (("thumb", "Thumb"), ("f_index", "Index"), ("f_middle", "Middle"),
                               ("f_ring", "Ring"), ("f_pinky", "Pinky")) if fingers else ():
            for i in (1, 2, 3):
                names[f"{prefix}{side}Hand{theirs}{i}"] = (f"{finger}{i}.{s}", f"{finger}{i + 1}.{s}")
            names[f"{prefix}{side}Hand{theirs}4"] = (f"{finger}4.{s}", f"{finger}3.{s}")  # the tip's end bone
        names |= {f"{prefix}{side}Arm": (f"shoulder.{s}", f"elbow.{s}"),
                  f"{prefix}{side}ForeArm": (f"elbow.{s}", f"wrist.{s}"),
                  f"{prefix}{side}Hand": (f"wrist.{s}", f"hand_end.{s}"),
                  f"{prefix}{side}UpLeg": (f"hip.{s}", f"knee.{s}"),
                  f"{prefix}{side}Leg": (f"knee.{s}", f"ankle.{s}"),
                  f"{prefix}{side}Foot": (f"ankle.{s}", f"toe.{s}")}
    return names


def _game_engine_names() -> dict[str, tuple[str, str]]:
    names = {"pelvis": ("hips", "chest"), "neck_01": ("neck", "head"), "head": ("head", "head_top")}
    for s in ("l", "r"):
        S = s.upper()
        names |= {f"upperarm_{s}": (f"shoulder.{S}", f"elbow.{S}"), f"lowerarm_{s}": (f"elbow.{S}", f"wrist.{S}"),
                  f"hand_{s}": (f"wrist.{S}", f"hand_end.{S}"), f"thigh_{s}": (f"hip.{S}", f"knee.{S}"),
                  f"calf_{s}": (f"knee.{S}", f"ankle.{S}"), f"foot_{s}": (f"ankle.{S}", f"toe.{S}")}
    return names


def _mpfb_openpose_names() -> dict[str, tuple[str, str]]:
    """MPFB's OpenPose skeleton: each bone ends at its keypoint."""
    names = {"Neck": ("neck", "head")}
    for s in ("L", "R"):
        names |= {f"{s}Shoulder": ("neck", f"shoulder.{s}"), f"{s}Elbow": (f"shoulder.{s}", f"elbow.{s}"),
                  f"{s}Wrist": (f"elbow.{s}", f"wrist.{s}"), f"{s}Hip": ("hips", f"hip.{s}"),
                  f"{s}Knee": (f"hip.{s}", f"knee.{s}"), f"{s}Ankle": (f"knee.{s}", f"ankle.{s}")}
    return names


def _makehuman_names() -> dict[str, tuple[str, str]]:
    names = {"root": ("hips", "chest"), "neck01": ("neck", "head"), "head": ("head", "head_top")}
    for s in ("L", "R"):
        names |= {f"upperarm01.{s}": (f"shoulder.{s}", f"elbow.{s}"),
                  f"lowerarm01.{s}": (f"elbow.{s}", f"wrist.{s}"),
                  f"wrist.{s}": (f"wrist.{s}", f"hand_end.{s}"),
                  f"upperleg01.{s}": (f"hip.{s}", f"knee.{s}"),
                  f"lowerleg01.{s}": (f"knee.{s}", f"ankle.{s}"),
                  f"foot.{s}": (f"ankle.{s}", f"toe.{s}")}
    return names


def _state(scene):
    """Everything a capture must leave as it was: frame, object and pose-bone transforms
    (the edited values and the evaluated matrices), camera lens."""
    import bpy
    state = {"frame": (scene.frame_current, scene.frame_subframe)}
    for obj in bpy.data.objects:
        state[obj.name] = (tuple(obj.location), tuple(obj.rotation_euler), tuple(obj.scale),
                           tuple(map(tuple, obj.matrix_world)))
        if obj.type == 'CAMERA':
            state[obj.name + ".lens"] = obj.data.lens
        if obj.pose is not None:
            for bone in obj.pose.bones:
                state[f"{obj.name}:{bone.name}"] = (
                    tuple(bone.location), tuple(bone.rotation_quaternion), tuple(bone.rotation_euler),
                    tuple(bone.scale), tuple(bone.head), tuple(bone.tail), tuple(map(tuple, bone.matrix)))
    return state


# --- Mapping -------------------------------------------------------------------------------

def test_rigify_metarig_maps_every_body_keypoint_to_its_bones(scene, pose, keypoints):
    mapping = pose.mapping_for(_metarig())
    assert set(mapping) == set(keypoints) and all(mapping.values())
    bones = {key: [p.bone for p in source.points] for key, source in mapping.items()}
    assert bones["r_shoulder"] == ["upper_arm.R"] and bones["l_wrist"] == ["hand.L"]
    assert bones["r_knee"] == ["shin.R"] and bones["l_ankle"] == ["foot.L"]
    assert bones["nose"] == ["nose.002"] and bones["r_eye"] == ["eye.R"] and bones["l_ear"] == ["ear.L"]
    assert mapping["neck"].origin == "derived" and bones["neck"] == ["upper_arm.R", "upper_arm.L"]
    assert mapping["r_eye"].points[0].at == 1.0  # the front of the eye


def test_keypoints_land_on_the_expected_pixels(scene, pose, keypoints):
    arm = _metarig()
    capture = pose.capture_pose(scene)
    assert capture.armatures == ("metarig",) and capture.namings == {"metarig": "Rigify"}
    assert capture.image.shape == (SIZE, SIZE, 3) and capture.camera == "Camera"
    body = capture.people[0].body
    bones = arm.data.bones
    for key, bone in (("r_shoulder", "upper_arm.R"), ("l_elbow", "forearm.L"), ("r_wrist", "hand.R"),
                      ("l_hip", "thigh.L"), ("r_knee", "shin.R"), ("l_ankle", "foot.L"), ("nose", "nose.002")):
        np.testing.assert_allclose(body[keypoints.index(key)], _pixel(bones[bone].head_local), atol=1e-3)
    neck = (bones["upper_arm.L"].head_local + bones["upper_arm.R"].head_local) / 2
    np.testing.assert_allclose(body[keypoints.index("neck")], _pixel(neck), atol=1e-3)
    # Seen from the front, the character's right is on the image's left.
    assert body[keypoints.index("r_shoulder"), 0] < SIZE / 2 < body[keypoints.index("l_shoulder"), 0]
    assert capture.people[0].left_hand is not None and capture.people[0].face is not None


def test_other_namings_give_the_same_body(scene, pose, keypoints):
    import bpy
    arm = _metarig()
    reference = pose.capture_pose(scene).people[0]
    rigify = reference.body
    bpy.data.objects.remove(arm)
    limbs = [keypoints.index(k) for k in keypoints if k.split("_")[-1] in
             ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")] + [keypoints.index("neck")]
    for names, label in ((_mixamo_names(fingers=True), "Mixamo"), (_mixamo_names("mixamorig7:"), "Mixamo"),
                         (_makehuman_names(), "MakeHuman / MPFB"), (_game_engine_names(), "MPFB game engine / Unreal"),
                         (_mpfb_openpose_names(), "MPFB OpenPose")):
        skeleton = _named_skeleton(names)
        capture = pose.capture_pose(scene)
        assert capture.namings == {skeleton.name: label}
        body = capture.people[0].body
        if label == "MPFB OpenPose":  # its neck is a bone of its own; it has no head bone
            np.testing.assert_allclose(body[limbs[:-1]], rigify[limbs[:-1]], atol=1e-3)
            bpy.data.objects.remove(skeleton)
            continue
        np.testing.assert_allclose(body[limbs], rigify[limbs], atol=1e-3)
        if "mixamorig:LeftHandIndex4" in names:  # fingers: the same 21 hand points as Rigify's
            np.testing.assert_allclose(capture.people[0].left_hand, reference.left_hand, atol=1e-3)
            np.testing.assert_allclose(capture.people[0].right_hand, reference.right_hand, atol=1e-3)
        else:
            assert capture.people[0].left_hand is None
        # No face bones: nose, eyes and ears are estimated from the head bone, close to
        # where the metarig's face bones put them (the estimates were measured on it).
        mapping = pose.mapping_for(skeleton)
        assert mapping["nose"].origin == "estimated" and mapping["l_ear"].origin == "estimated"
        face = [keypoints.index(k) for k in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")]
        np.testing.assert_allclose(body[face], rigify[face], atol=0.6)
        bpy.data.objects.remove(skeleton)


def test_basic_metarig_and_its_generated_rig(scene, pose, keypoints):
    import bpy
    metarig = _metarig(basic=True)
    basic = pose.capture_pose(scene).people[0].body
    assert pose.mapping_for(metarig)["nose"].origin == "estimated"
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.active_object
    assert rig.name != metarig.name
    metarig.hide_render = True
    mapping = pose.mapping_for(rig)
    assert [p.bone for p in mapping["l_elbow"].points] == ["ORG-forearm.L"]  # not the controls
    capture = pose.capture_pose(scene)
    assert capture.armatures == (rig.name,)
    np.testing.assert_allclose(capture.people[0].body, basic, atol=1e-3)
    # The ORG bones follow the controls, also at another frame, with the rig's constraints
    # and drivers evaluated there and everything put back afterwards.
    root = rig.pose.bones["root"]
    root.keyframe_insert("location", frame=1)
    root.location = (0.5, 0.0, 0.0)
    root.keyframe_insert("location", frame=5)
    scene.frame_set(1)
    root.location.z = 0.05  # not keyed
    scene.view_layers[0].update()
    before = _state(scene)
    moved = pose.capture_pose(scene, frame=5).people[0].body
    assert _state(scene) == before
    shift = moved[:, 0] - basic[:, 0]
    assert np.all(shift[~np.isnan(shift)] > 5)
    scene.frame_set(5)
    np.testing.assert_allclose(pose.capture_pose(scene).people[0].body, moved, atol=1e-4)


# --- What is drawn -------------------------------------------------------------------------

def test_two_armatures_two_skeletons_and_hidden_ones_none(scene, pose):
    first, second = _metarig((-0.8, 0.0, 0.0)), _metarig((0.8, 0.0, 0.0))
    capture = pose.capture_pose(scene)
    assert capture.armatures == (first.name, second.name)
    assert capture.people[0].body[1, 0] < SIZE / 2 < capture.people[1].body[1, 0]
    assert len(capture.json["people"]) == 2
    second.hide_render = True
    assert pose.capture_pose(scene).armatures == (first.name,)


def test_keypoints_outside_the_frame_or_behind_the_camera_are_dropped(scene, pose, keypoints):
    arm = _metarig((1.9, 0.0, 0.0))  # the left arm reaches out of the right edge
    behind = _metarig((0.0, -7.0, 0.0))  # wholly behind the camera
    capture = pose.capture_pose(scene)
    assert capture.armatures == (arm.name,)
    body = capture.people[0].body
    assert np.isnan(body[keypoints.index("l_wrist")]).all()
    assert not np.isnan(body[keypoints.index("r_wrist")]).any()
    assert np.all((body[~np.isnan(body)] >= 0) & (body[~np.isnan(body)] < SIZE))
    # Half behind the camera: only what is in front is drawn.
    behind.location = (0.0, -4.5, 1.0)
    behind.rotation_euler = (math.pi / 2, 0.0, 0.0)  # lying along the view, head behind the camera
    arm.hide_render = True
    body = pose.capture_pose(scene).people[0].body
    assert not np.isnan(body[keypoints.index("l_ankle")]).any()
    assert np.isnan(body[keypoints.index("nose")]).all()


def test_a_character_seen_from_behind_has_no_face(scene, pose, keypoints):
    arm = _metarig()
    arm.rotation_euler = (0.0, 0.0, math.pi)
    person = pose.capture_pose(scene).people[0]
    for key in ("nose", "r_eye", "l_eye"):
        assert np.isnan(person.body[keypoints.index(key)]).all(), key
    for key in ("r_ear", "l_ear", "neck"):
        assert not np.isnan(person.body[keypoints.index(key)]).any(), key
    assert person.face is None
    assert person.body[keypoints.index("r_shoulder"), 0] > SIZE / 2  # now on the image's right


def test_occlusion_drops_what_other_objects_hide_not_the_own_body(scene, pose, keypoints):
    import bpy
    arm = _metarig()
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 1.3), scale=(0.4, 0.3, 0.6))
    body_mesh = bpy.context.active_object  # the character's torso, deformed by the armature
    body_mesh.modifiers.new("Armature", 'ARMATURE').object = arm
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, -2.0, 0.4), rotation=(math.pi / 2, 0, 0),
                                     scale=(3.0, 0.8, 1.0))  # a low wall in front of the legs
    low = [keypoints.index(k) for k in ("r_knee", "l_knee", "r_ankle", "l_ankle")]
    high = [keypoints.index(k) for k in ("r_shoulder", "l_shoulder", "neck", "r_hip", "l_hip")]
    plain = pose.capture_pose(scene).people[0].body
    assert not np.isnan(plain[low]).any()
    hidden = pose.capture_pose(scene, occlusion=True).people[0].body
    assert np.isnan(hidden[low]).all() and not np.isnan(hidden[high]).any()
    # The same at another frame, through a copy of the scene, which changes nothing.
    before = _state(scene)
    assert np.isnan(pose.capture_pose(scene, occlusion=True, frame=7).people[0].body[low]).all()
    assert _state(scene) == before and len(bpy.data.scenes) == 1


def test_collection_instances_are_drawn_where_they_are_placed(scene, pose):
    import bpy
    arm = _metarig()
    character = bpy.data.collections.new("Character")  # as when linked from a library
    for owner in list(arm.users_collection):
        owner.objects.unlink(arm)
    character.objects.link(arm)
    instancer = bpy.data.objects.new("Hero", None)
    instancer.instance_type, instancer.instance_collection = 'COLLECTION', character
    instancer.location = (1.0, 0.0, 0.0)
    scene.collection.objects.link(instancer)
    capture = pose.capture_pose(scene)
    assert capture.armatures == ("metarig (Hero)",)
    neck = capture.people[0].body[1]
    assert neck[0] == pytest.approx(_pixel((1.0, 0.027, 1.585))[0], abs=0.05)


# --- Bad input and overrides ---------------------------------------------------------------

def test_unknown_bone_names_are_refused_with_the_keypoints_and_the_fix(scene, pose, errors):
    skeleton = _named_skeleton({"Bone": ("hips", "chest"), "Bone.001": ("shoulder.R", "elbow.R"),
                                "Bone.002": ("shoulder.L", "elbow.L")}, name="Custom")
    with pytest.raises(errors.DiffusionError) as raised:
        pose.capture_pose(scene)
    message = str(raised.value)
    assert "'Custom'" in message and "nose, neck, r_shoulder" in message and "override" in message
    # Rows in the override table make it a skeleton; the neck follows the overridden shoulders.
    for keypoint, bone in (("r_shoulder", "Bone.001"), ("l_shoulder", "Bone.002"), ("r_elbow", "Bone.001")):
        row = skeleton.scene_diffusion_pose.overrides.add()
        row.keypoint, row.bone = keypoint, bone
    row.at = 1.0  # the elbow is the tail of the upper arm
    capture = pose.capture_pose(scene)
    assert capture.namings == {"Custom": ""}
    assert set(capture.unmapped["Custom"]) == {"nose", "r_wrist", "l_elbow", "l_wrist", "r_hip", "r_knee",
                                               "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye",
                                               "r_ear", "l_ear"}
    assert pose.mapping_for(skeleton)["neck"].origin == "derived"


def test_the_override_table_wins_and_checks_its_bones(scene, pose, keypoints, errors):
    arm = _metarig()
    rows = arm.scene_diffusion_pose.overrides
    row = rows.add()
    row.keypoint, row.bone, row.at = "r_wrist", "f_index.03.R", 1.0
    empty = rows.add()
    empty.keypoint = "l_ear"  # no bone: leave the keypoint out
    body = pose.capture_pose(scene).people[0].body
    np.testing.assert_allclose(body[keypoints.index("r_wrist")], _pixel(arm.data.bones["f_index.03.R"].tail_local),
                               atol=1e-3)
    assert np.isnan(body[keypoints.index("l_ear")]).all()
    row.bone = "no such bone"
    with pytest.raises(errors.DiffusionError, match="no such bone"):
        pose.capture_pose(scene)


def test_no_armature_is_an_error_that_says_what_to_do(scene, pose, errors):
    with pytest.raises(errors.DiffusionError, match="no armature"):
        pose.capture_pose(scene)


# --- Frames ----------------------------------------------------------------------------------

def test_capture_at_another_frame_moves_with_the_animation_and_changes_nothing(scene, pose, keypoints):
    arm = _metarig()
    camera = scene.camera
    camera.keyframe_insert("location", frame=1)
    camera.location.x = 0.5
    camera.keyframe_insert("location", frame=11)
    camera.data.keyframe_insert("lens", frame=1)
    camera.data.lens = 70.0
    camera.data.keyframe_insert("lens", frame=11)
    arm.keyframe_insert("location", frame=1)
    arm.location.z = 0.3
    arm.keyframe_insert("location", frame=11)
    forearm = arm.pose.bones["forearm.L"]
    forearm.rotation_mode = 'XYZ'
    forearm.keyframe_insert("rotation_euler", frame=1)
    forearm.rotation_euler = (0.0, 0.0, 1.2)
    forearm.keyframe_insert("rotation_euler", frame=11)
    scene.frame_set(1)
    # Un-keyed edits of animated values, as when trying a pose: a capture must keep them.
    forearm.rotation_euler.z = 0.4
    arm.location.x = 0.1
    scene.view_layers[0].update()
    before = _state(scene)
    at_1 = pose.capture_pose(scene)
    at_11 = pose.capture_pose(scene, frame=11)
    assert at_11.frame == 11 and _state(scene) == before
    assert at_1.frame == 1

    scene.frame_set(11)  # what frame 11 really looks like
    truth = pose.capture_pose(scene)
    np.testing.assert_allclose(at_11.people[0].body, truth.people[0].body, atol=1e-4)
    wrist = keypoints.index("l_wrist")
    assert np.linalg.norm(at_11.people[0].body[wrist] - at_1.people[0].body[wrist]) > 5
    hip = keypoints.index("r_hip")  # camera, lens and armature all moved
    assert np.linalg.norm(at_11.people[0].body[hip] - at_1.people[0].body[hip]) > 2


def test_an_armature_disabled_in_viewports_is_still_captured_and_left_so(scene, pose):
    arm = _metarig()
    forearm = arm.pose.bones["forearm.R"]
    forearm.rotation_mode = 'XYZ'
    forearm.keyframe_insert("rotation_euler", frame=1)
    forearm.rotation_euler.z = -1.0
    forearm.keyframe_insert("rotation_euler", frame=9)
    scene.frame_set(1)
    visible = [pose.capture_pose(scene, frame=frame).people[0] for frame in (1, 9)]
    arm.hide_viewport = True
    scene.view_layers[0].update()
    before = _state(scene)
    for frame, expected in zip((1, 9), visible):
        capture = pose.capture_pose(scene, frame=frame)
        assert capture.armatures == (arm.name,)
        for ours, theirs in ((capture.people[0].body, expected.body), (capture.people[0].face, expected.face),
                             (capture.people[0].right_hand, expected.right_hand)):
            np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert arm.hide_viewport and _state(scene) == before


def test_the_image_is_what_controlnet_aux_draws_for_the_capture(scene, pose, keypoints):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.open_pose import util, Keypoint
    _metarig((-0.6, 0.0, 0.0)), _metarig((0.6, 0.0, 0.5))
    capture = pose.capture_pose(scene, width=96, height=160, hands=False, face=False)
    theirs = np.zeros((160, 96, 3), np.uint8)
    for person in capture.people:
        util.draw_bodypose(theirs, [None if np.isnan(x) else Keypoint(x / 96, y / 160) for x, y in person.body])
    np.testing.assert_array_equal(capture.image, theirs)
    entry = capture.json["people"][0]["pose_keypoints_2d"]
    assert entry[3:6] == [*capture.people[0].body[1], 1.0]
