# SPDX-License-Identifier: GPL-3.0-or-later
"""Every condition kind from one capture, in real Blender (Cycles, Freestyle, cryptomatte).

The camera sits at (0, -10, 0) looking along +Y (world X = image right, world Z = image
up), lens 50 mm on a 36 mm sensor, 64x48 pixels: a world point (x, y, z) lands at column
(x / (y + 10) / 0.36 + 1) * 32 and row (1 - z / (y + 10) / 0.27) * 24.
"""
import math
import warnings
from importlib import import_module

import numpy as np
import pytest

W, H = 64, 48
HALF_W, HALF_H = 0.36, 0.27
PASS_KINDS = {"depth", "canny", "normal", "segmentation", "lineart"}


@pytest.fixture
def conditions(extension):
    return import_module(f"{extension.__name__}.scene.conditions")


@pytest.fixture
def errors(extension):
    return import_module(f"{extension.__name__}.engine.errors")


@pytest.fixture
def palette(extension):
    return import_module(f"{extension.__name__}.engine.segmentation")


@pytest.fixture
def renders():
    """Counts Cycles renders (Blender's own render_init handler)."""
    import bpy
    count = []

    def counted(*_args) -> None:
        count.append(1)

    bpy.app.handlers.render_init.append(counted)
    yield count
    bpy.app.handlers.render_init.remove(counted)


def _add(kind: str, location, name: str | None = None, **options):
    import bpy
    getattr(bpy.ops.mesh, f"primitive_{kind}_add")(location=location, **options)
    obj = bpy.context.active_object
    if name:
        obj.name = obj.data.name = name
    return obj


def _wall(y: float = 5.0, size: float = 40.0, name: str | None = None):
    return _add("plane", (0.0, y, 0.0), name, size=size, rotation=(math.pi / 2, 0.0, 0.0))


def _pixel(x: float, y: float, z: float) -> tuple[int, int]:
    distance = y + 10.0
    return int((1 - z / distance / HALF_H) / 2 * H), int((x / distance / HALF_W + 1) / 2 * W)


def _snapshot(scene) -> dict:
    """What a capture could touch: settings of the scene, its layers and objects, and the
    names of all datablocks."""
    import bpy

    def values(struct) -> dict:
        result = {}
        for prop in struct.bl_rna.properties:
            if prop.identifier == "rna_type" or prop.type in {'POINTER', 'COLLECTION'}:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                value = getattr(struct, prop.identifier)
            result[prop.identifier] = value if isinstance(value, (str, int, float, bool)) else tuple(value)
        return result

    snapshot = {"scene": values(scene), "render": values(scene.render), "cycles": values(scene.cycles),
                "camera": scene.camera.name if scene.camera else None}
    for layer in scene.view_layers:
        settings = layer.freestyle_settings
        snapshot[f"layer {layer.name}"] = (
            values(layer), values(settings),
            [(values(lines), lines.linestyle.name if lines.linestyle else None) for lines in settings.linesets],
            layer.material_override)
    for obj in bpy.data.objects:
        snapshot[f"object {obj.name}"] = (
            tuple(map(tuple, obj.matrix_world)), tuple(obj.location), tuple(obj.rotation_euler),
            obj.pass_index, obj.hide_render, obj.get("scene_diffusion_segment"),
            tuple(slot.material.name if slot.material else "" for slot in obj.material_slots))
    for name in ("scenes", "objects", "meshes", "cameras", "collections", "images", "materials",
                 "node_groups", "worlds", "actions", "linestyles", "armatures"):
        snapshot[f"data {name}"] = sorted(block.name for block in getattr(bpy.data, name))
    for style in bpy.data.linestyles:
        snapshot[f"linestyle {style.name}"] = (tuple(style.color), style.thickness, style.alpha)
    return snapshot


def _columns(mask: np.ndarray) -> np.ndarray:
    return np.nonzero(mask.any(axis=0))[0]


# --- All kinds, one render ---------------------------------------------------------------

def test_all_pass_kinds_come_from_one_render_and_change_nothing(scene, conditions, renders):
    _wall(name="Wall", size=8.0)  # background around it: no inside-an-object check
    _add("cube", (0.0, 0.0, 0.0))
    _add("uv_sphere", (2.5, -2.0, 0.5), radius=1.0)
    before = _snapshot(scene)
    captured = conditions.capture_conditions(scene, PASS_KINDS)
    assert len(renders) == 1
    assert list(captured) == [kind for kind in conditions.SCENE_KINDS if kind in PASS_KINDS]
    for kind, condition in captured.items():
        assert condition.kind == kind and condition.frame == 1 and condition.camera == "Camera"
        assert condition.image.shape == (H, W, 3) and condition.image.dtype == np.uint8
        assert condition.seconds > 0
    assert _snapshot(scene) == before


def test_a_view_without_background_adds_one_small_inside_check_render(scene, conditions, renders):
    _wall()  # fills the view
    conditions.capture_conditions(scene, PASS_KINDS)
    assert len(renders) == 2


def test_depth_is_the_depth_condition_of_capture_depth(scene, conditions, extension):
    depth = import_module(f"{extension.__name__}.scene.depth")
    engine_conditions = import_module(f"{extension.__name__}.engine.conditions")
    _wall()
    _add("cube", (-1.0, -4.0, 0.0))
    options = conditions.CaptureOptions(depth_near=3.0, depth_far=20.0, depth_inverse=False)
    captured = conditions.capture_conditions(scene, {"depth"}, options=options)["depth"]
    capture = depth.capture_depth(scene)
    expected = engine_conditions.depth_to_control(capture.z, capture.mask, 3.0, 20.0, inverse=False)
    assert np.array_equal(captured.image, expected)
    assert captured.extra == {"near": pytest.approx(capture.near), "far": pytest.approx(capture.far)}


# --- Normal --------------------------------------------------------------------------------

def _sphere():
    import bpy
    sphere = _add("uv_sphere", (0.0, 0.0, 0.0), radius=2.0, segments=64, ring_count=32)
    bpy.ops.object.shade_smooth()
    return sphere


def test_normal_sphere_colours_follow_the_normalbae_convention(scene, conditions):
    _sphere()
    image = conditions.capture_conditions(scene, {"normal"})["normal"].image.astype(int)
    mask = np.any(image != (127, 127, 255), axis=2)  # the background is a flat facing normal
    row, column = H // 2, W // 2
    # BAE convention: red grows towards the image's left, green towards its top, blue
    # towards the viewer (engine/conditions.py).
    right = _columns(mask[row - 1:row + 1]).max()
    left = _columns(mask[row - 1:row + 1]).min()
    top = np.nonzero(mask[:, column])[0].min()
    assert image[row, right, 0] < 60 and abs(image[row, right, 1] - 127) <= 12 and image[row, right, 2] >= 127
    assert image[row, left, 0] > 195 and abs(image[row, left, 1] - 127) <= 12
    assert image[top, column, 1] > 195 and abs(image[top, column, 0] - 127) <= 12
    assert np.abs(image[row - 1:row + 1, column - 1:column + 1] - (127, 127, 255)).max() <= 4
    assert image[0, 0].tolist() == [127, 127, 255]  # background


def test_normals_are_in_camera_space(scene, conditions):
    _sphere()
    upright = conditions.capture_conditions(scene, {"normal"})["normal"].image.astype(int)
    scene.camera.rotation_euler = (math.pi / 2, 0.0, math.pi / 2)  # looking along -X now
    scene.camera.location = (10.0, 0.0, 0.0)
    turned = conditions.capture_conditions(scene, {"normal"})["normal"].image.astype(int)
    # A sphere looks the same from anywhere in camera space (world space would turn its colours).
    assert np.abs(upright - turned).max() <= 3


# --- Canny and line art ----------------------------------------------------------------------

def test_canny_edges_outline_the_geometry(scene, conditions):
    _wall(5.0)
    _add("cube", (0.0, 0.0, 0.0), size=2.0)  # x -1..1, z -1..1, front face 9 from the camera
    image = conditions.capture_conditions(scene, {"canny"})["canny"].image
    assert set(np.unique(image)) <= {0, 255} and np.array_equal(image[..., 0], image[..., 1])
    top, left = _pixel(-1.0, -1.0, 1.0)
    bottom, right = _pixel(1.0, -1.0, -1.0)
    edges = image[..., 0] > 0
    assert edges[top - 1:top + 2, left + 3:right - 3].any(axis=0).all()  # the top side
    assert edges[top + 3:bottom - 3, left - 1:left + 2].any(axis=1).all()  # the left side
    assert not edges[top + 3:bottom - 3, left + 3:right - 3].any()  # a flat face
    assert not edges[:, :left - 2].any()  # the wall


def test_canny_thresholds_are_settings(scene, conditions):
    _wall(5.0)
    cube = _add("cube", (0.0, 0.0, 0.0), size=2.0)
    cube.rotation_euler = (0.0, 0.0, math.radians(20))  # two faces in view, one crease between
    default = conditions.capture_conditions(scene, {"canny"})["canny"].image
    # Canny's gradient reaches about 570 to 800 on this outline and crease (measured):
    # thresholds within that range keep only the strongest parts.
    strict = conditions.capture_conditions(
        scene, {"canny"}, options=conditions.CaptureOptions(canny_low=700, canny_high=900))["canny"]
    assert strict.extra == {"low": 700, "high": 900}
    assert 0 < np.count_nonzero(strict.image) < np.count_nonzero(default)


def test_line_art_is_white_freestyle_lines_and_leaves_the_persons_freestyle(scene, conditions):
    import bpy
    _wall(5.0)
    _add("cube", (0.0, 0.0, 0.0), size=2.0)
    # The person's own Freestyle setup: red thick lines, which must neither show nor change.
    scene.render.use_freestyle = True
    layer = bpy.context.view_layer
    lines = layer.freestyle_settings.linesets.new("Ink")
    lines.linestyle.color = (1.0, 0.0, 0.0)
    lines.linestyle.thickness = 7.0
    before = _snapshot(scene)
    image = conditions.capture_conditions(scene, {"lineart"})["lineart"].image
    assert _snapshot(scene) == before
    assert np.array_equal(image[..., 0], image[..., 1]) and image.max() == 255
    top, left = _pixel(-1.0, -1.0, 1.0)
    bottom, right = _pixel(1.0, -1.0, -1.0)
    assert image[top - 1:top + 2, left + 3:right - 3, 0].max(axis=0).min() > 100  # the top side
    assert image[top + 3:bottom - 3, left + 3:right - 3].max() == 0
    assert image[:, :left - 2].max() == 0
    assert np.count_nonzero(image[..., 0] > 100) < 0.15 * W * H  # thin lines, not 7-pixel red ones


# --- Segmentation ------------------------------------------------------------------------------

def _rigged(location):
    """A mesh deformed by an armature (a character)."""
    import bpy
    body = _add("cube", location, name="Thing", size=1.0)
    skeleton = bpy.data.objects.new("Skeleton", bpy.data.armatures.new("Skeleton"))
    bpy.context.scene.collection.objects.link(skeleton)
    body.modifiers.new("Armature", 'ARMATURE').object = skeleton
    return body


def test_segmentation_paints_classes_from_names_properties_and_rigs(scene, conditions, palette):
    _wall(5.0, size=6.0, name="Wall")  # smaller than the view: sky around it
    _add("plane", (0.0, 0.0, -1.5), "Floor", size=30.0)
    car = _add("cube", (-2.0, -2.0, 0.0), size=1.0)
    car.scene_diffusion_segment = "car"
    _rigged((2.0, -2.0, 0.0))
    plain = _add("cube", (0.0, -5.0, 1.0), size=0.6)
    before = _snapshot(scene)
    condition = conditions.capture_conditions(scene, {"segmentation"})["segmentation"]
    assert _snapshot(scene) == before  # no pass index or anything else written
    colour = {name: palette.class_colour(name) for name in ("wall", "floor", "car", "person", "sky")}
    image = condition.image
    assert tuple(image[_pixel(0.0, 5.0, 2.0)]) == colour["wall"]
    assert tuple(image[_pixel(0.0, 0.0, -1.5)]) == colour["floor"]
    assert tuple(image[_pixel(-2.0, -2.5, 0.0)]) == colour["car"]
    assert tuple(image[_pixel(2.0, -2.5, 0.0)]) == colour["person"]
    assert tuple(image[0, 0]) == colour["sky"]
    classes = condition.extra["classes"]
    assert classes["Wall"] == "wall" and classes["Cube"] == "car" and classes["Thing"] == "person"
    assert classes[plain.name] in palette.FALLBACK_CLASSES and classes[""] == "sky"
    assert tuple(image[_pixel(0.0, -5.3, 1.0)]) == palette.class_colour(classes[plain.name])
    assert {tuple(c) for c in image.reshape(-1, 3)} <= {tuple(c) for c in palette.ADE20K_PALETTE.tolist()}


def test_segmentation_of_instances_and_material_names(scene, conditions, palette):
    import bpy
    _wall(5.0, size=8.0)
    trees = bpy.data.collections.new("Trees")
    scene.collection.children.link(trees)
    tree = _add("cube", (0.0, 50.0, 0.0), "Oak", size=1.0)
    for owner in list(tree.users_collection):
        owner.objects.unlink(tree)
    trees.objects.link(tree)
    bpy.context.view_layer.layer_collection.children["Trees"].exclude = True  # only its instance shows
    forest = bpy.data.objects.new("Forest", None)
    forest.instance_type, forest.instance_collection = 'COLLECTION', trees
    forest.location = (-2.0, -52.0, 0.0)
    scene.collection.objects.link(forest)
    lawn = _add("cube", (2.0, -2.0, 0.0), size=1.0)
    lawn.data.materials.append(bpy.data.materials.new("Grass"))
    condition = conditions.capture_conditions(scene, {"segmentation"})["segmentation"]
    assert condition.extra["classes"]["Oak"] == "tree" and condition.extra["classes"][lawn.name] == "grass"
    assert tuple(condition.image[_pixel(-2.0, -2.5, 0.0)]) == palette.class_colour("tree")
    assert tuple(condition.image[_pixel(2.0, -2.5, 0.0)]) == palette.class_colour("grass")


def test_segmentation_background_can_be_no_class(scene, conditions):
    _wall(5.0, size=6.0)
    options = conditions.CaptureOptions(segment_background="")
    image = conditions.capture_conditions(scene, {"segmentation"}, options=options)["segmentation"].image
    assert image[0, 0].tolist() == [0, 0, 0] and image[H // 2, W // 2].any()


def test_the_segment_property_is_registered_with_automatic_default(scene):
    import bpy
    cube = _add("cube", (0.0, 0.0, 0.0))
    assert cube.scene_diffusion_segment == "AUTO"
    items = {item.identifier: item.name for item in
             bpy.types.Object.bl_rna.properties["scene_diffusion_segment"].enum_items}
    assert len(items) == 151 and items["chest_of_drawers"] == "Chest Of Drawers"
    cube.scene_diffusion_segment = "chest_of_drawers"
    assert cube.scene_diffusion_segment == "chest_of_drawers"


def test_the_segment_property_goes_with_the_extension(extension):
    import addon_utils
    import bpy
    addon_utils.disable(extension.__name__, default_set=True)
    try:
        assert not hasattr(bpy.types.Object, "scene_diffusion_segment")
    finally:
        assert addon_utils.enable(extension.__name__, default_set=True) is not None
    assert hasattr(bpy.types.Object, "scene_diffusion_segment")


# --- Frames --------------------------------------------------------------------------------------

def _animated(scene):
    """A cube moving from x -2 (frame 1) to 2 (frame 10), the camera rolling 90 degrees."""
    cube = _add("cube", (-2.0, 0.0, 0.0), size=1.0)
    _add("plane", (0.0, 0.0, -1.0), "Floor", size=60.0)
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 2.0
    cube.keyframe_insert("location", frame=10)
    camera = scene.camera
    camera.keyframe_insert("rotation_euler", frame=1)
    camera.rotation_euler.y = math.pi / 2
    camera.keyframe_insert("rotation_euler", frame=10)
    scene.frame_set(1)
    return cube


def test_capture_at_another_frame_sees_that_frame_and_changes_nothing(scene, conditions):
    import bpy
    cube = _animated(scene)
    cube.location.x = -1.0  # moved by hand, not keyed: must survive
    bpy.context.view_layer.update()
    before = _snapshot(scene)
    now = conditions.capture_conditions(scene, {"segmentation", "normal", "depth"})
    later = conditions.capture_conditions(scene, {"segmentation", "normal", "depth"}, frame=10)
    assert _snapshot(scene) == before and scene.frame_current == 1 and cube.location.x == -1.0
    assert later["depth"].frame == 10 and now["depth"].frame == 1
    floor = later["segmentation"].extra["classes"]["Floor"]
    assert floor == "floor"
    # Frame 1: the floor is below the horizon and faces up (green); frame 10: the camera has
    # rolled, the floor is beside the image's vertical centre line and faces sideways (red 0 or 255).
    assert abs(int(now["normal"].image[H - 2, W // 2, 1]) - 255) <= 2
    side = later["normal"].image[H // 2, [1, W - 2], 0].tolist()
    assert 0 in side or 255 in side
    for kind in now:  # the cube moved and the camera rolled: every image changed
        assert not np.array_equal(now[kind].image, later[kind].image), kind
    # Frame 10 as a render at frame 10 sees it: compare against a real frame change.
    scene.frame_set(10)
    at_ten = conditions.capture_conditions(scene, {"segmentation", "normal", "depth"})
    for kind in at_ten:
        assert np.array_equal(at_ten[kind].image, later[kind].image), kind


def test_camera_rig_at_another_frame_keeps_hand_edits(scene, conditions):
    import bpy
    _sphere()
    rig = bpy.data.objects.new("Rig", None)
    scene.collection.objects.link(rig)
    scene.camera.parent = rig
    rig.keyframe_insert("rotation_euler", frame=1)
    rig.rotation_euler.z = math.pi / 2
    rig.keyframe_insert("rotation_euler", frame=10)
    scene.frame_set(1)
    rig.rotation_euler.z = 0.1  # moved by hand, not keyed
    bpy.context.view_layer.update()
    before = _snapshot(scene)
    conditions.capture_conditions(scene, {"normal"}, frame=10)
    assert _snapshot(scene) == before and rig.rotation_euler.z == pytest.approx(0.1)


# --- OpenPose through the dispatcher ----------------------------------------------------------------

def test_openpose_comes_from_the_pose_capture(scene, conditions, extension):
    import addon_utils
    import bpy
    addon_utils.enable("rigify", default_set=True)
    pose = import_module(f"{extension.__name__}.scene.pose")
    _wall(5.0)
    bpy.ops.object.armature_human_metarig_add()
    captured = conditions.capture_conditions(
        scene, {"openpose", "depth"}, options=conditions.CaptureOptions(pose_hands=False, pose_face=False))
    expected = pose.capture_pose(scene, hands=False, face=False)
    assert list(captured) == ["depth", "openpose"]
    assert np.array_equal(captured["openpose"].image, expected.image)
    assert captured["openpose"].extra == {"json": expected.json, "armatures": ["metarig"]}


# --- Bad input -----------------------------------------------------------------------------------

def test_camera_inside_an_object_is_refused_and_changes_nothing(scene, conditions, errors):
    import bpy
    _wall(5.0)
    _add("cube", (0.0, -10.0, 0.0), size=2.0)  # around the camera
    before = _snapshot(scene)
    with pytest.raises(errors.DiffusionError, match="inside 'Cube'.*Normals > Flip"):
        conditions.capture_conditions(scene, {"depth", "normal"})
    assert _snapshot(scene) == before and len(bpy.data.scenes) == 1


def test_an_animation_frame_tells_back_faces_from_its_own_render(scene, conditions, errors, renders):
    """A frame with no background in view (as most animation frames are) needs no second
    render to know the camera is not inside anything; inside a cube it is still refused."""
    import bpy
    _wall(5.0)  # fills the view
    conditions.capture_view(scene, {"depth"}, motion=True)
    assert len(renders) == 1
    conditions.capture_view(scene, {"depth"})  # a still capture keeps its small check render
    assert len(renders) == 3
    _add("cube", (0.0, -10.0, 0.0), size=2.0)  # around the camera
    with pytest.raises(errors.DiffusionError, match="inside 'Cube'.*Normals > Flip"):
        conditions.capture_view(scene, {"depth"}, motion=True)
    assert len(bpy.data.scenes) == 1


def test_a_room_with_something_in_it_is_not_inside_an_object(scene, conditions):
    _add("cube", (0.0, -5.0, 0.0), "Room", size=20.0)  # outward normals, camera inside
    _add("cube", (0.0, 0.0, 0.0), size=1.5)
    captured = conditions.capture_conditions(scene, {"depth"})
    assert captured["depth"].image.min() > 0  # no background


def test_an_empty_view_is_refused_and_changes_nothing(scene, conditions, errors):
    _add("cube", (0.0, -20.0, 0.0))  # behind the camera
    before = _snapshot(scene)
    with pytest.raises(errors.DiffusionError, match="Nothing is in the camera's view"):
        conditions.capture_conditions(scene, PASS_KINDS)
    assert _snapshot(scene) == before


def test_bad_settings_are_refused_before_rendering(scene, conditions, errors, renders):
    _wall()
    options = conditions.CaptureOptions
    for bad, message in ((options(canny_low=300, canny_high=200), "Canny low threshold"),
                         (options(segment_background="spaceship"), "not an ADE20K class"),
                         (options(line_thickness=0.0), "Line thickness"),
                         (options(depth_near=5.0, depth_far=2.0), "less than far")):
        with pytest.raises(errors.DiffusionError, match=message):
            conditions.capture_conditions(scene, {"depth"}, options=bad)
    with pytest.raises(ValueError, match="unknown condition kinds"):
        conditions.capture_conditions(scene, {"depth", "hologram"})
    assert not renders
