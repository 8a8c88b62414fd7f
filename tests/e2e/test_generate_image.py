# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Image end to end: real Blender, real depth capture, real diffusers (smoke model)."""
import numpy as np
import pytest


def new_images(before, kind="image"):
    """Images made since `before` whose recipe is of `kind` (generated images; captures are others)."""
    import bpy
    return [image for image in bpy.data.images if image not in before
            and image.get("scene_diffusion", {}).get("kind") == kind]


def jobs_module():
    import sys
    return next(module for name, module in sys.modules.items()
                if name.startswith("bl_ext.") and name.endswith(".scene_diffusion.operators.jobs"))


def generate(scene):
    """Press Generate Image. An operator that reports an error raises RuntimeError carrying
    its message: that is a refusal, {'CANCELLED'}. Any other RuntimeError (a crash inside
    the operator) goes on up."""
    import bpy
    before = set(bpy.data.images)
    try:
        result = bpy.ops.scene_diffusion.generate_image()
    except RuntimeError as error:
        outcome = jobs_module().last_outcome()
        if outcome is None or outcome.level != 'ERROR' or outcome.message not in str(error):
            raise
        result = {'CANCELLED'}
    return result, new_images(before)


def datablocks() -> dict[str, set[str]]:
    """Every datablock in the file, by collection (images, texts, scenes, worlds, ...)."""
    import bpy
    found = {}
    for name in dir(bpy.data):
        collection = getattr(bpy.data, name, None)
        if isinstance(collection, bpy.types.bpy_prop_collection) and all(
                isinstance(item, bpy.types.ID) for item in collection[:1]):
            found[name] = {item.name_full for item in collection}
    return found


def cancel_during_generation(operator_class, nth: int):
    """Start `operator_class`'s job in the background, as its button's invoke does (headless,
    INVOKE_DEFAULT runs execute), cancel it while its `nth` generation denoises (the real
    engine, held at its first step until the cancel), and return the job's outcome."""
    import threading
    import time

    import bpy
    jobs = jobs_module()
    reached = threading.Event()
    original = jobs.engine
    calls = []

    def engine(*args):
        real = original(*args)

        class Watching:
            def generate(self, request, report, cancel):
                calls.append(request)

                def on_progress(progress):
                    report(progress)
                    if len(calls) == nth:
                        reached.set()
                        cancel.wait(30)
                return real.generate(request, on_progress, cancel)
        return Watching()

    jobs.engine = engine
    try:
        jobs.start_steps(operator_class.prepare(None, bpy.context), blocking=False)
        deadline = time.monotonic() + 60
        while not reached.wait(0.02):
            jobs.drain()
            assert time.monotonic() < deadline
        assert jobs.cancel(), jobs.last_outcome()
        assert jobs.wait(60)
        return jobs.drain()
    finally:
        jobs.engine = original


def test_generate_image_writes_a_new_datablock_with_its_recipe(demo_scene, ext_module, tmp_path):
    import bpy

    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    assert len(made) == 1
    image = made[0]
    assert tuple(image.size) == (96, 64)
    pixels = ext_module("scene.images").get_pixels(image)
    assert pixels[..., :3].std() > 0.01  # an image, not a blank
    recipe = image["scene_diffusion"].to_dict()
    assert recipe["kind"] == "image"
    assert recipe["prompt"] == "a wooden crate on a stone floor"
    assert recipe["seed"] == 7
    assert recipe["model"] == "smoke"
    assert recipe["steps"] == 2
    assert recipe["guidance"] == pytest.approx(7.5)
    assert recipe["frame"] == demo_scene.frame_current
    assert recipe["negative_prompt"] == demo_scene.scene_diffusion.negative_prompt
    assert [c["kind"] for c in recipe["controls"]] == ["depth"]

    # Packed: it survives saving and reopening the file.
    name = image.name
    path = str(tmp_path / "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    reopened = bpy.data.images[name]
    assert reopened.packed_file is not None
    assert reopened["scene_diffusion"]["seed"] == 7
    assert np.abs(ext_module("scene.images").get_pixels(reopened) - pixels).max() < 1 / 255 + 1e-6


def test_generating_again_never_overwrites(demo_scene, ext_module):
    _, first = generate(demo_scene)
    first_pixels = ext_module("scene.images").get_pixels(first[0])
    demo_scene.scene_diffusion.seed = 8
    _, second = generate(demo_scene)
    assert len(second) == 1 and second[0] != first[0]
    assert np.array_equal(ext_module("scene.images").get_pixels(first[0]), first_pixels)
    assert not np.array_equal(ext_module("scene.images").get_pixels(second[0]), first_pixels)


def test_same_settings_give_the_same_image(demo_scene, ext_module):
    _, first = generate(demo_scene)
    _, second = generate(demo_scene)
    images = ext_module("scene.images")
    assert np.array_equal(images.get_pixels(first[0]), images.get_pixels(second[0]))


def test_random_seed_draws_a_new_seed_every_time_and_shows_it(demo_scene, ext_module):
    settings = demo_scene.scene_diffusion
    settings.randomize_seed = True
    settings.seed = 7
    _, first = generate(demo_scene)
    seed_after_first = settings.seed
    _, second = generate(demo_scene)
    seeds = [first[0]["scene_diffusion"]["seed"], second[0]["scene_diffusion"]["seed"]]
    # Two draws from 2^31 seeds: equal to 7 or to each other once in a billion runs.
    assert seeds[0] != 7 and seeds[1] != seeds[0]
    assert seed_after_first == seeds[0] and settings.seed == seeds[1]  # the field shows the seed used
    images = ext_module("scene.images")
    assert not np.array_equal(images.get_pixels(first[0]), images.get_pixels(second[0]))


def test_size_is_rounded_to_a_multiple_of_8_and_said(demo_scene, ext_module):
    demo_scene.render.resolution_x, demo_scene.render.resolution_y = 100, 61
    result, made = generate(demo_scene)
    assert result == {'FINISHED'}
    assert tuple(made[0].size) == (104, 64)
    assert "rounded to a multiple of 8" in ext_module("operators.jobs").last_outcome().message


def assert_refused(scene, ext_module, words):
    """Generate is refused with `words` in its message, and nothing changed: no datablock of
    any kind made or removed, and not even the seed drawn."""
    settings = scene.scene_diffusion
    settings.randomize_seed = True
    seed = settings.seed
    before = datablocks()
    result, made = generate(scene)
    assert result == {'CANCELLED'}
    assert made == []
    assert settings.seed == seed
    assert datablocks() == before
    message = jobs_module().last_outcome().message
    assert words in message, message
    return message


def test_no_camera_is_refused_with_what_to_do(demo_scene, ext_module):
    demo_scene.camera = None
    message = assert_refused(demo_scene, ext_module, "No active camera")
    assert "Shift+A > Camera" in message


@pytest.mark.parametrize("size, words", [((5000, 600), "over 4096"), ((600, 40), "under 64")])
def test_resolution_out_of_range_is_refused(demo_scene, ext_module, size, words):
    demo_scene.render.resolution_x, demo_scene.render.resolution_y = size
    assert_refused(demo_scene, ext_module, words)


def test_nothing_in_view_is_refused(demo_scene, ext_module):
    import math
    demo_scene.camera.rotation_euler = (math.radians(-80), 0, 0)  # looking up at the empty sky
    assert_refused(demo_scene, ext_module, "Nothing is in the camera's view")


def test_uncached_model_with_online_access_off_is_refused(demo_scene, ext_module):
    import bpy
    assert not bpy.app.online_access
    demo_scene.scene_diffusion.model = "someone/not-downloaded-model"
    message = assert_refused(demo_scene, ext_module, "is not in the local cache")
    assert "online access is off" in message


def _image(name, rgb):
    import bpy
    image = bpy.data.images.new(name, rgb.shape[1], rgb.shape[0])
    image.pixels.foreach_set(np.concatenate([rgb[::-1], np.ones(rgb.shape[:2] + (1,), np.float32)],
                                            axis=2).astype(np.float32).ravel())
    return image


def _photo(scene, mode, strength=0.75, steps=2, mask=None):
    settings = scene.scene_diffusion
    settings.mode, settings.strength, settings.steps = mode, strength, steps
    settings.init_image = _image("photo", np.full((64, 96, 3), 0.5, np.float32))
    if mask is not None:
        settings.mask_image = _image("mask", mask)


def _lora(scene, path):
    item = scene.scene_diffusion.loras.add()
    item.path = path


def _not_a_lora(scene, tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"this is not a safetensors file")
    _lora(scene, str(path))


def _conditions(scene, kinds, **settings):
    conditions = scene.scene_diffusion.conditions
    conditions.enabled_kinds = kinds
    for name, value in settings.items():
        setattr(conditions, name, value)


def _inside_a_box(scene):
    import bpy
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=scene.camera.location)


def _armature(scene, bones):
    import bpy
    armature = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", armature)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode='EDIT')
    for index, name in enumerate(bones):
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail = (index * 0.1, 0.0, 0.5), (index * 0.1, 0.0, 1.0)
    bpy.ops.object.mode_set(mode='OBJECT')
    _conditions(scene, {'OPENPOSE'})


REFUSALS = {
    "image to image without an image": (lambda s, t: setattr(s.scene_diffusion, "mode", 'IMG2IMG'),
                                        "needs an image to start from"),
    "inpainting without a mask": (lambda s, t: _photo(s, 'INPAINT'), "Inpainting needs a mask"),
    "a mask of another size": (lambda s, t: _photo(s, 'INPAINT', mask=np.ones((10, 10, 3), np.float32)),
                               "paint the mask at the image's size"),
    "an empty mask": (lambda s, t: _photo(s, 'INPAINT', mask=np.zeros((64, 96, 3), np.float32)), "mask is empty"),
    "a strength that runs no step": (lambda s, t: _photo(s, 'IMG2IMG', strength=0.3, steps=2), "run no denoising"),
    "a LoRA row without a file": (lambda s, t: _lora(s, ""), "A LoRA row has no file"),
    "a LoRA file that is missing": (lambda s, t: _lora(s, str(t / "gone.safetensors")), "gone.safetensors"),
    "a LoRA file that is not one": (_not_a_lora, "broken.safetensors"),
    "Canny thresholds the wrong way round": (lambda s, t: _conditions(s, {'CANNY'}, canny_low=220, canny_high=100),
                                             "Canny low threshold"),
    "an empty fixed depth range": (lambda s, t: _conditions(s, {'DEPTH'}, depth_range='FIXED', depth_near=5.0,
                                                             depth_far=2.0), "fixed depth range is empty"),
    "an image source with no image": (lambda s, t: setattr(s.scene_diffusion.conditions.depth, "source", 'IMAGE'),
                                      "none is picked"),
    "a camera inside an object": (lambda s, t: _inside_a_box(s), "is inside"),
    "no armature for OpenPose": (lambda s, t: _conditions(s, {'OPENPOSE'}), "no armature to take a pose from"),
    "an armature of unknown bones": (lambda s, t: _armature(s, ["a", "b", "c"]), "match no rig naming"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_changes_nothing(demo_scene, ext_module, tmp_path, case):
    setup, words = REFUSALS[case]
    setup(demo_scene, tmp_path)
    assert_refused(demo_scene, ext_module, words)


def test_a_failure_in_the_worker_writes_no_capture_and_keeps_the_seed(demo_scene, ext_module, tmp_path):
    """The model folder passes the main thread's checks (it exists) and fails to load on the
    worker, after the conditions were captured: those captures are not written either."""
    settings = demo_scene.scene_diffusion
    (tmp_path / "not-a-model").mkdir()
    settings.model = str(tmp_path / "not-a-model")
    settings.conditions.enabled_kinds = {'DEPTH', 'NORMAL'}
    settings.randomize_seed = True
    seed = settings.seed
    before = datablocks()
    result, made = generate(demo_scene)
    assert result == {'CANCELLED'} and made == []
    outcome = jobs_module().last_outcome()
    assert outcome.level == 'ERROR' and "not-a-model" in outcome.message, outcome.message
    assert datablocks() == before
    assert settings.seed == seed


def test_prepare_for_another_frame_captures_that_frame_and_writes_nothing(demo_scene, ext_module):
    """What a job of many frames does per frame: check and capture at frame N, store nothing."""
    import bpy

    cube = demo_scene.objects["Cube"]
    cube.location.x = -2.0
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 2.0
    cube.keyframe_insert("location", frame=20)
    demo_scene.frame_set(1)
    before = datablocks()
    image_operator = ext_module("operators.image")
    job = image_operator.prepare(bpy.context, frame=20)
    assert datablocks() == before  # no capture stored, nothing else made
    assert demo_scene.frame_current == 1 and cube.location.x == -2.0
    assert job.frame == 20 and job.captured.frame == 20
    conditions = ext_module("scene.conditions")
    expected = conditions.capture_conditions(demo_scene, {"depth"}, frame=20,
                                             width=job.request.width, height=job.request.height)
    (unit,) = job.request.controls
    assert unit.kind == "depth" and np.array_equal(unit.image, expected["depth"].image)
    here = image_operator.prepare(bpy.context)
    assert not np.array_equal(here.request.controls[0].image, unit.image)
