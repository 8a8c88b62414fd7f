# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference images end to end: rows in the sidebar's list go into the request as display
pixels with their weights, into the recipe, and back with Use These Settings; a row without
an image is refused before anything is captured or written."""
import numpy as np
import pytest
from test_generate_image import datablocks, generate
from ui_recorder import RecordingLayout


def reference_image(name="Style"):
    """An image datablock with a colour ramp (sRGB)."""
    import bpy
    image = bpy.data.images.new(name, 32, 24)
    ramp = np.linspace(0.0, 1.0, 32, dtype=np.float32)
    pixels = np.ones((24, 32, 4), np.float32)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = ramp, ramp[::-1], 0.25
    image.pixels.foreach_set(pixels.ravel())
    return image


def test_reference_rows_reach_the_engine_and_the_recipe(demo_scene, ext_module, requests_made):
    import bpy
    style = reference_image()
    assert bpy.ops.scene_diffusion.reference_add(image=style.name) == {'FINISHED'}
    item = demo_scene.scene_diffusion.references[0]
    item.weight = 0.8
    off = demo_scene.scene_diffusion.references.add()  # a second row, off: left out
    off.image, off.enabled = reference_image("Unused"), False
    result, (made,) = generate(demo_scene)
    assert result == {'FINISHED'}
    (reference,) = requests_made[-1].references
    assert reference.weight == pytest.approx(0.8) and reference.name == "Style"
    np.testing.assert_allclose(reference.image, ext_module("scene.images").display_rgb(style), atol=1e-6)
    recipe = made["scene_diffusion"].to_dict()
    assert recipe["references"] == [{"image": "Style", "weight": pytest.approx(0.8)}]
    assert recipe["ip_adapter"] == ""

    # Use These Settings brings the rows back.
    demo_scene.scene_diffusion.references.clear()
    assert bpy.ops.scene_diffusion.use_recipe(image=made.name) == {'FINISHED'}
    rows = demo_scene.scene_diffusion.references
    assert [(row.image.name, round(row.weight, 3), row.enabled) for row in rows] == [
        ("Style", 0.8, True), ("Unused", 0.6, False)]
    _, (again,) = generate(demo_scene)
    images = ext_module("scene.images")
    np.testing.assert_array_equal(images.get_pixels(again), images.get_pixels(made))


def test_a_row_without_an_image_is_refused_and_changes_nothing(demo_scene):
    demo_scene.scene_diffusion.references.add()
    before = datablocks()
    result, made = generate(demo_scene)
    assert result == {'CANCELLED'} and made == []
    assert datablocks() == before


def test_the_references_panel_lists_rows_and_names_the_default_adapter(demo_scene, ext_module):
    import types

    import bpy
    panel_class = next(cls for cls in ext_module("panels.sidebar").classes
                       if cls.__name__ == "SCENE_DIFFUSION_PT_references")
    demo_scene.scene_diffusion.model = "runwayml/stable-diffusion-v1-5"
    bpy.ops.scene_diffusion.reference_add(image=reference_image().name)
    calls = []
    panel_class.draw(types.SimpleNamespace(layout=RecordingLayout(calls)), bpy.context)
    assert ("template_list", "references") in calls and ("template_ID", "image") in calls
    labels = [call[1] for call in calls if call[0] == "label"]
    assert "Adapter: h94/IP-Adapter's for the model's family" in labels  # not downloaded: family unknown
    assert bpy.ops.scene_diffusion.reference_remove() == {'FINISHED'}
    assert len(demo_scene.scene_diffusion.references) == 0
