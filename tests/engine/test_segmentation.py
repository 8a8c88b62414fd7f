# SPDX-License-Identifier: GPL-3.0-or-later
"""ADE20K palette, class guessing and label maps (pure numpy, no bpy)."""
import ast
import importlib.util
import os

import numpy as np
import pytest

from engine.segmentation import (
    ADE20K_CLASSES, ADE20K_PALETTE, FALLBACK_CLASSES, class_colour, class_index, fallback_classes,
    guess_class, labels_to_control,
)


def _controlnet_aux_palette() -> list[list[int]]:
    """controlnet_aux.util.ade_palette's list, read from its source: importing the package
    would load torch and every detector for one constant."""
    spec = importlib.util.find_spec("controlnet_aux")
    with open(os.path.join(os.path.dirname(spec.origin), "util.py")) as file:
        tree = ast.parse(file.read())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "ade_palette")
    returned = next(node for node in ast.walk(function) if isinstance(node, ast.Return))
    return ast.literal_eval(returned.value)


def test_palette_is_controlnet_aux_ade20k_palette():
    assert ADE20K_PALETTE.shape == (150, 3) and ADE20K_PALETTE.dtype == np.uint8
    assert ADE20K_PALETTE.tolist() == _controlnet_aux_palette()
    assert not ADE20K_PALETTE.flags.writeable


def test_classes_are_ade20k_order():
    assert len(ADE20K_CLASSES) == 150 == len(set(ADE20K_CLASSES))
    assert ADE20K_CLASSES[:5] == ("wall", "building", "sky", "floor", "tree")
    assert ADE20K_CLASSES[12] == "person" and ADE20K_CLASSES[-1] == "flag"
    assert class_colour("sky") == (6, 230, 230) and class_colour("floor") == (80, 50, 50)
    assert class_colour("person") == (150, 5, 61)
    with pytest.raises(ValueError):
        class_index("spaceship")


@pytest.mark.parametrize("names, expected", [
    (["Floor"], "floor"),
    (["CoffeeTable.001"], "coffee table"),
    (["coffee_table"], "coffee table"),
    (["Oak Tree"], "tree"),
    (["GroundPlane"], "earth"),
    (["Couch"], "sofa"),
    (["SM_Chair_02"], "chair"),
    (["Plane"], None),  # a primitive's name is not an airplane
    (["Cube", "Cube", "Material"], None),
    (["Cube", "Cube.001", "Grass"], "grass"),  # the material tells
    (["Wall", "Floor"], "wall"),  # the object's own name first
    ([""], None),
])
def test_guess_class_from_names(names, expected):
    assert guess_class(names) == expected


def test_every_guess_is_an_ade20k_class():
    from engine import segmentation
    assert set(segmentation._SYNONYMS.values()) <= set(ADE20K_CLASSES)
    assert set(FALLBACK_CLASSES) <= set(ADE20K_CLASSES)


def test_fallback_classes_are_stable_and_distinct():
    names = ["Cube", "Sphere", "Cylinder", "Torus", "Suzanne"]
    first = fallback_classes(names)
    assert first == fallback_classes(list(reversed(names)))
    assert len(set(first.values())) == len(names)
    # Adding an object does not move the others unless it takes a class first in name order.
    assert fallback_classes(["Cube"])["Cube"] == fallback_classes(["Cube", "Zeppelin"])["Cube"]
    many = fallback_classes([f"Thing {i}" for i in range(40)])
    assert len(many) == 40 and set(many.values()) == set(FALLBACK_CLASSES)


def test_labels_to_control_paints_the_palette_and_black_for_none():
    labels = np.array([[-1, 0, 2], [3, 149, 12]], np.int16)
    image = labels_to_control(labels)
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[0, 1].tolist() == [120, 120, 120] and image[0, 2].tolist() == [6, 230, 230]
    assert image[1, 1].tolist() == ADE20K_PALETTE[149].tolist()


def test_labels_out_of_range_are_programming_errors():
    with pytest.raises(ValueError):
        labels_to_control(np.array([[150]]))
    with pytest.raises(ValueError):
        labels_to_control(np.zeros((2, 2), np.float32))


def test_engine_segmentation_does_not_import_bpy():
    import engine.segmentation
    with open(engine.segmentation.__file__) as file:
        assert "import bpy" not in file.read()
