# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame geometry for the animation warp against real Cycles renders of known motion.

References built apart from the code under test: pinhole and equirectangular cameras
written out here from the camera's lens, location and Euler angles, and the known
translations of keyed objects. The warp of a rendered frame is compared with Cycles' own
render of the next frame.
"""
import math
from importlib import import_module

import numpy as np
import pytest

W, H = 64, 48  # the `scene` fixture's size (tests/scene/conftest.py)
FOCAL = 50.0 / 36.0 * W  # pixels per unit of x / depth: Blender's default 50 mm lens, 36 mm sensor


@pytest.fixture
def motion(extension):
    return import_module(f"{extension.__name__}.scene.motion")


@pytest.fixture
def ext(extension):
    return lambda name: import_module(f"{extension.__name__}.{name}")


def _rotation(euler) -> np.ndarray:
    """Blender's XYZ Euler rotation matrix (Rz @ Ry @ Rx)."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(euler), np.sin(euler)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class _Camera:
    """A keyed camera pose as the test set it: location, Euler angles, and its kind."""

    def __init__(self, location, euler, kind="PERSP", longitude=(-1.0, 1.0), latitude=(-0.7, 0.7)):
        self.location, self.rotation = np.asarray(location, float), _rotation(euler)
        self.kind, self.longitude, self.latitude = kind, longitude, latitude

    def unproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        x, y = pixels[:, 0], pixels[:, 1]
        if self.kind == 'PANO':
            lon = self.longitude[0] + x / W * (self.longitude[1] - self.longitude[0])
            lat = self.latitude[0] + (1.0 - y / H) * (self.latitude[1] - self.latitude[0])
            ray = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)], axis=1)
        else:
            ray = np.stack([(x - W / 2) / FOCAL, -(y - H / 2) / FOCAL, -np.ones_like(x)], axis=1)
        return self.location + (ray * depth[:, None]) @ self.rotation.T

    def project(self, points: np.ndarray) -> np.ndarray:
        eye = (points - self.location) @ self.rotation
        if self.kind == 'PANO':
            lon = np.arctan2(eye[:, 0], -eye[:, 2])
            lat = np.arcsin(eye[:, 1] / np.linalg.norm(eye, axis=1))
            u = (lon - self.longitude[0]) / (self.longitude[1] - self.longitude[0])
            v = (lat - self.latitude[0]) / (self.latitude[1] - self.latitude[0])
            return np.stack([u * W, (1.0 - v) * H], axis=1)
        return np.stack([W / 2 + FOCAL * eye[:, 0] / -eye[:, 2], H / 2 - FOCAL * eye[:, 1] / -eye[:, 2]], axis=1)


def _centres() -> np.ndarray:
    rows, columns = np.mgrid[0:H, 0:W] + 0.5
    return np.stack([columns.ravel(), rows.ravel()], axis=1)


def _near_edge(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, mode="edge")
    edge = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            edge |= padded[1 + dy:1 + dy + H, 1 + dx:1 + dx + W] != mask
    return edge


def _key(obj, frame: int, location=None, rotation=None) -> None:
    if location is not None:
        obj.location = location
        obj.keyframe_insert("location", frame=frame)
    if rotation is not None:
        obj.rotation_euler = rotation
        obj.keyframe_insert("rotation_euler", frame=frame)


def _patterned(obj, scale: float) -> None:
    """An emission material of smooth sine bands along the object's own x and y: colours
    that move with it, exact in a one-sample render."""
    import bpy
    material = bpy.data.materials.new("Bands")
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    coordinates = nodes.new("ShaderNodeTexCoord")
    colour = nodes.new("ShaderNodeCombineColor")
    colour.inputs["Blue"].default_value = 0.4
    for axis, channel in (("X", "Red"), ("Y", "Green")):
        wave = nodes.new("ShaderNodeTexWave")
        wave.wave_type, wave.bands_direction, wave.wave_profile = 'BANDS', axis, 'SIN'
        wave.inputs["Scale"].default_value = scale
        wave.inputs["Distortion"].default_value = 0.0
        links.new(coordinates.outputs["Object"], wave.inputs["Vector"])
        links.new(wave.outputs["Fac"], colour.inputs[channel])
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(colour.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    obj.data.materials.append(material)


def _wall(y: float = 4.0, pattern: float | None = None):
    import bpy
    bpy.ops.mesh.primitive_plane_add(size=60.0, location=(0.0, y, 0.0), rotation=(math.pi / 2, 0.0, 0.0))
    wall = bpy.context.active_object
    if pattern is not None:
        _patterned(wall, pattern)
    return wall


def _card(pattern: float | None = None):
    """A 2 x 2 square facing the camera (at y = -10) from y = -1: depth 9."""
    import bpy
    bpy.ops.mesh.primitive_plane_add(size=2.0, location=(0.0, -1.0, 0.0), rotation=(math.pi / 2, 0.0, 0.0))
    card = bpy.context.active_object
    if pattern is not None:
        _patterned(card, pattern)
    return card


def _card_pixels(centre) -> np.ndarray:
    """HxW bools: pixel centres that see the card centred at `centre` (depth 9)."""
    pixels = _centres()
    x, z = 9.0 * (pixels[:, 0] - W / 2) / FOCAL, -9.0 * (pixels[:, 1] - H / 2) / FOCAL
    return ((np.abs(x - centre[0]) < 1.0) & (np.abs(z - centre[2]) < 1.0)).reshape(H, W)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_vectors_follow_an_object_moved_by_known_amounts(scene, motion):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    # Unequal steps before and after frame 2, with a vertical part: each channel's sign,
    # scale and direction (previous or next) shows.
    places = {1: (-1.0, 0.0, -0.5), 2: (0.0, 0.0, 0.0), 3: (1.6, 0.5, 0.7)}
    for frame, place in places.items():
        _key(cube, frame, location=place)
    # The person's motion blur settings do not shorten or shift the vectors.
    scene.render.use_motion_blur = True
    scene.render.motion_blur_shutter, scene.render.motion_blur_position = 0.3, 'START'
    scene.frame_set(1)
    geometry = motion.frame_geometry(scene, 2, W, H)

    hit = np.isfinite(geometry.depth)
    assert 300 < hit.sum() < W * H - 300
    camera = _Camera((0.0, -10.0, 0.0), (math.pi / 2, 0.0, 0.0))
    centres = _centres()[hit.ravel()]
    points = camera.unproject(centres, geometry.depth[hit].astype(np.float64))
    for field, frame in (("to_previous", 1), ("to_next", 3)):
        there = camera.project(points + np.subtract(places[frame], places[2]))
        assert np.abs(getattr(geometry, field)[hit] - (there - centres)).max() < 1e-3, field
    assert (geometry.to_previous[~hit] == 0).all() and (geometry.to_next[~hit] == 0).all()
    assert not geometry.still_before and not geometry.still_after  # the warp follows these vectors
    assert scene.frame_current == 1


@pytest.mark.parametrize("kind", ["PERSP", "PANO"])
def test_vectors_follow_a_camera_turning_and_rising_over_a_still_wall(scene, motion, kind):
    camera = scene.camera
    if kind == 'PANO':
        camera.data.type, camera.data.panorama_type = 'PANO', 'EQUIRECTANGULAR'
        camera.data.longitude_min, camera.data.longitude_max = -1.0, 1.0
        camera.data.latitude_min, camera.data.latitude_max = -0.7, 0.7
    _wall()
    poses = {1: ((-0.6, -10.4, -0.3), (math.radians(93.0), 0.0, math.radians(-4.0))),
             2: ((0.4, -10.0, 0.3), (math.radians(88.0), 0.0, math.radians(2.0))),
             3: ((1.0, -9.5, 0.9), (math.radians(85.0), 0.0, math.radians(5.0)))}
    for frame, (location, rotation) in poses.items():
        _key(camera, frame, location=location, rotation=rotation)
    scene.frame_set(1)
    geometry = motion.frame_geometry(scene, 2, W, H)

    cameras = {frame: _Camera(*pose, kind=kind) for frame, pose in poses.items()}
    assert np.isfinite(geometry.depth).all()
    points = cameras[2].unproject(_centres(), geometry.depth.ravel().astype(np.float64))
    assert np.abs(points[:, 1] - 4.0).max() < 1e-3  # the analytic camera sees the wall where Cycles does
    for field, frame in (("to_previous", 1), ("to_next", 3)):
        expected = cameras[frame].project(points) - _centres()
        assert np.abs(expected).max() > 2.0
        assert np.abs(getattr(geometry, field).reshape(-1, 2) - expected).max() < 1e-3, field
    # Nothing but the camera moves: marked so, and the warp reprojects with the cameras.
    assert geometry.still_before and geometry.still_after


@pytest.mark.parametrize("camera_moves", [False, True])
def test_orthographic_vectors_are_kept_only_while_the_camera_stands_still(scene, motion, camera_moves):
    camera = scene.camera
    camera.data.type, camera.data.ortho_scale = 'ORTHO', 8.0  # 8 px per unit
    _wall()
    card = _card()
    for frame, x in ((1, -1.0), (2, 0.0), (3, 0.5)):
        _key(card, frame, location=(x, -1.0, 0.25 * x))
    if camera_moves:  # still from frame 1 to 2, moving on to 3
        _key(camera, 2, location=(0.0, -10.0, 0.0))
        _key(camera, 3, location=(0.7, -10.0, 0.0))
    scene.frame_set(1)
    geometry = motion.frame_geometry(scene, 2, W, H)

    if camera_moves:
        assert geometry.to_previous is None and geometry.to_next is None
        return
    on_card = geometry.depth < 9.5
    assert on_card.sum() == 16 * 16
    assert np.abs(geometry.to_previous[on_card] - (-8.0, 2.0)).max() < 1e-3
    assert np.abs(geometry.to_next[on_card] - (4.0, -1.0)).max() < 1e-3
    assert np.abs(geometry.to_previous[~on_card]).max() == 0.0
    assert not geometry.still_before and not geometry.still_after


def test_the_warp_carries_a_moving_cards_pixels_and_marks_what_it_uncovered(scene, motion, ext):
    render = ext("scene.render")
    warp = ext("engine.warp")
    _wall(pattern=0.1)
    card = _card(pattern=0.4)
    places = {1: (-0.8, -1.0, -0.3), 2: (0.4, -1.0, 0.2)}
    for frame, place in places.items():
        _key(card, frame, location=place)
    scene.frame_set(1)
    before, after = (motion.frame_geometry(scene, frame, W, H) for frame in (1, 2))
    images = {frame: render.render_passes(scene, ("combined",), width=W, height=H, frame=frame).images["combined"]
              for frame in (1, 2)}
    warped = warp.warp(images[1][..., :3], before, after)

    card_before, card_after = _card_pixels(places[1]), _card_pixels(places[2])
    assert ((after.depth < 9.5) == card_after).all()
    uncovered = card_before & ~card_after
    assert uncovered.sum() > 60
    assert not (warped.valid & uncovered & ~_near_edge(uncovered)).any()
    # The card's pixels came along with it; the wall it did not cover stayed valid.
    assert warped.valid[card_after & ~_near_edge(card_after)].all()
    assert warped.valid[~(card_before | card_after | _near_edge(card_before) | _near_edge(card_after))].all()
    on_card = warped.valid & card_after
    assert np.abs(warped.image[on_card] - images[2][..., :3][on_card]).mean() < 0.01
    assert _psnr(warped.image[warped.valid], images[2][..., :3][warped.valid]) >= 35.0


@pytest.mark.parametrize("vectors", [True, False])
def test_the_warp_of_a_turning_camera_is_cycles_next_frame(scene, motion, ext, vectors):
    render = ext("scene.render")
    warp = ext("engine.warp")
    _wall(pattern=0.1)
    poses = {1: ((0.0, -10.0, 0.0), (math.pi / 2, 0.0, 0.0)),
             2: ((0.5, -9.6, 0.2), (math.radians(88.0), 0.0, math.radians(-3.0)))}
    for frame, (location, rotation) in poses.items():
        _key(scene.camera, frame, location=location, rotation=rotation)
    scene.frame_set(1)
    before, after = (motion.frame_geometry(scene, frame, W, H, motion=vectors) for frame in (1, 2))
    assert (after.to_previous is not None) == vectors
    images = {frame: render.render_passes(scene, ("combined",), width=W, height=H, frame=frame).images["combined"]
              for frame in (1, 2)}
    warped = warp.warp(images[1][..., :3], before, after)

    # Each pixel's wall point (the plane y = 4, met by the analytic ray) seen from frame 1.
    cameras = {frame: _Camera(*pose) for frame, pose in poses.items()}
    rays = cameras[2].unproject(_centres(), np.ones(W * H)) - cameras[2].location
    points = cameras[2].location + rays * ((4.0 - cameras[2].location[1]) / rays[:, 1])[:, None]
    source = cameras[1].project(points)
    expected = ((source[:, 0] >= 0) & (source[:, 0] < W) & (source[:, 1] >= 0) & (source[:, 1] < H)).reshape(H, W)
    assert 100 < (~expected).sum() < W * H / 3
    assert not ((warped.valid != expected) & ~_near_edge(expected)).any()
    assert np.abs(warped.source.reshape(-1, 2) - source).max() < 1e-2
    assert _psnr(warped.image[warped.valid], images[2][..., :3][warped.valid]) >= 35.0
