# SPDX-License-Identifier: GPL-3.0-or-later
"""ADE20K classes and colours for segmentation ControlNets, and guessing a class from names.

The segmentation ControlNets (SD 1.5 control_v11p_sd15_seg, and the SDXL ones after it)
were trained on ADE20K label maps drawn with the 150-class palette below: the one
controlnet_aux (`util.ade_palette`), mmsegmentation (`ade_palette`) and the diffusers
ControlNet docs use, class i drawn in colour i. The class order is ADE20K's
(objectInfo150, mmsegmentation's `ade_classes`). A colour the palette does not have (black)
means "no class" to those models; we only use it where the person asks for no class.

Pure Python + numpy, no bpy: scene/segmentation.py gathers the names from Blender.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "ADE20K_CLASSES", "ADE20K_PALETTE", "FALLBACK_CLASSES", "class_index", "class_colour",
    "guess_class", "fallback_classes", "labels_to_control",
]

# ADE20K's 150 classes in label order (mmsegmentation writes 'bed ' with a space; trimmed).
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

# RGB colour of each class, in the order above (equal to controlnet_aux.util.ade_palette();
# tests/engine/test_segmentation.py checks it against that function).
ADE20K_PALETTE: np.ndarray = np.array([
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80],
    [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7],
    [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4],
    [255, 51, 7], [204, 70, 3], [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
    [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255],
    [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255],
    [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
    [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0],
    [153, 255, 0], [0, 0, 255], [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
    [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255], [0, 255, 112], [0, 255, 133],
    [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0], [0, 143, 255], [51, 255, 0],
    [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0], [0, 255, 153],
    [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194],
    [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255],
    [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255],
    [163, 255, 0], [255, 235, 0], [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255],
    [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112], [92, 255, 0], [0, 224, 255],
    [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
    [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255],
    [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0],
    [173, 0, 255], [0, 245, 255], [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255],
    [184, 255, 0], [0, 133, 255], [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
], dtype=np.uint8)
ADE20K_PALETTE.setflags(write=False)

_INDEX = {name: index for index, name in enumerate(ADE20K_CLASSES)}

# Words in object, mesh and material names -> class. Class names themselves are matched
# too (see guess_class). Not here on purpose: Blender's primitive names ("Plane" is not an
# airplane, "Cube" not a box, "Cylinder", "Sphere", "Torus", "Monkey"), which say nothing
# about what the object stands for.
_SYNONYMS: dict[str, str] = {
    "floors": "floor", "flooring": "floor", "parquet": "floor", "tiles": "floor",
    "walls": "wall",
    "ground": "earth", "terrain": "earth", "soil": "earth", "dirt": "earth", "landscape": "earth",
    "lawn": "grass", "turf": "grass",
    "trees": "tree", "oak": "tree", "pine": "tree", "birch": "tree", "fir": "tree", "maple": "tree",
    "bush": "plant", "shrub": "plant", "fern": "plant", "hedge": "plant", "foliage": "plant",
    "leaves": "plant", "ivy": "plant",
    "flowers": "flower", "rose": "flower", "tulip": "flower",
    "human": "person", "man": "person", "woman": "person", "boy": "person", "girl": "person",
    "child": "person", "people": "person", "character": "person", "body": "person",
    "mannequin": "person", "humanoid": "person",
    "cars": "car", "sedan": "car", "taxi": "car", "vehicle": "car", "automobile": "car",
    "tables": "table",
    "chairs": "chair",
    "couch": "sofa", "settee": "sofa",
    "window": "windowpane", "windows": "windowpane", "glazing": "windowpane",
    "doors": "door",
    "lamps": "lamp",
    "ocean": "sea",
    "mountains": "mountain", "cliff": "mountain",
    "hills": "hill",
    "stone": "rock", "stones": "rock", "boulder": "rock", "rocks": "rock",
    "buildings": "building",
    "houses": "house", "cottage": "house", "cabin": "house",
    "street": "road", "highway": "road", "asphalt": "road",
    "pavement": "sidewalk",
    "stair": "stairs", "staircase": "stairs", "steps": "stairs",
    "pillar": "column", "columns": "column", "pillars": "column",
    "cupboard": "cabinet", "cabinets": "cabinet",
    "shelves": "shelf",
    "bookshelf": "bookcase", "bookshelves": "bookcase",
    "books": "book",
    "crate": "box", "boxes": "box", "crates": "box",
    "curtains": "curtain", "drape": "curtain", "drapes": "curtain",
    "picture": "painting", "paintings": "painting", "artwork": "painting",
    "carpet": "rug", "mat": "rug",
    "pillows": "pillow",
    "cushions": "cushion",
    "vases": "vase",
    "bottles": "bottle",
    "flags": "flag",
    "yacht": "boat", "canoe": "boat",
    "lorry": "truck",
    "bike": "bicycle", "motorbike": "minibike", "scooter": "minibike",
    "aeroplane": "airplane", "aircraft": "airplane", "jet": "airplane",
    "statue": "sculpture", "bust": "sculpture",
    "bath": "bathtub", "tub": "bathtub",
    "fridge": "refrigerator",
    "tv": "television receiver", "television": "television receiver",
    "laptop": "computer", "pc": "computer",
    "dog": "animal", "cat": "animal", "horse": "animal", "bird": "animal", "cow": "animal",
    "sheep": "animal", "fish": "animal",
    "bin": "ashcan", "trashcan": "ashcan", "dustbin": "ashcan",
    "pond": "lake",
    "dome": "sky", "skydome": "sky", "skybox": "sky",
    "handrail": "railing", "banister": "bannister",
    "lantern": "light", "streetlamp": "streetlight",
    "cooker": "stove",
    "dresser": "chest of drawers",
    "island": "kitchen island",
}

# Classes for objects whose names say nothing: things a generated image can show as some
# object in the scene without inventing a room, a landscape or a person around it.
FALLBACK_CLASSES: tuple[str, ...] = (
    "box", "sculpture", "base", "vase", "case", "pot", "basket", "barrel", "column", "ball",
    "plaything", "bag", "tray", "tank", "cushion", "bottle",
)

_MULTIWORD = sorted((name for name in ADE20K_CLASSES if " " in name), key=len, reverse=True)


def class_index(name: str) -> int:
    """Label index (0..149) of an ADE20K class name; ValueError for an unknown name."""
    try:
        return _INDEX[name]
    except KeyError:
        raise ValueError(f"{name!r} is not an ADE20K class") from None


def class_colour(name: str) -> tuple[int, int, int]:
    """RGB colour of an ADE20K class."""
    return tuple(int(v) for v in ADE20K_PALETTE[class_index(name)])


def _words(text: str) -> str:
    """'CoffeeTable.001' -> 'coffee table': Blender's number suffix dropped, camel case and
    separators split, lower case."""
    text = re.sub(r"\.\d+$", "", text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def guess_class(names: Iterable[str]) -> str | None:
    """The ADE20K class the first telling name stands for, or None.

    names: in priority order (the object's name, its data's, its materials'). In each, a
    multi-word class name ("coffee table") wins over single words, then words are tried
    left to right as class names and as synonyms (_SYNONYMS).
    """
    for name in names:
        words = _words(name)
        if not words:
            continue
        padded = f" {words} "
        for multiword in _MULTIWORD:
            if f" {multiword} " in padded:
                return multiword
        for word in words.split():
            if word in _INDEX:
                return word
            if word in _SYNONYMS:
                return _SYNONYMS[word]
    return None


def fallback_classes(names: Sequence[str]) -> dict[str, str]:
    """A class from FALLBACK_CLASSES per name: stable (from a hash of the name, so an object
    keeps its colour from frame to frame and capture to capture) and distinct between the
    given names while there are enough classes (a taken class moves a name on to the next)."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    count = len(FALLBACK_CLASSES)
    for name in sorted(set(names)):
        start = zlib.crc32(name.encode("utf-8")) % count
        choice = FALLBACK_CLASSES[start]
        if len(taken) < count:
            for step in range(count):
                candidate = FALLBACK_CLASSES[(start + step) % count]
                if candidate not in taken:
                    choice = candidate
                    break
        taken.add(choice)
        result[name] = choice
    return result


def labels_to_control(labels: np.ndarray) -> np.ndarray:
    """A segmentation ControlNet image from class labels.

    labels: HxW integer ADE20K class indices, -1 where no class (drawn black).
    Returns HxWx3 uint8 in the ADE20K palette.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an HxW integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= len(ADE20K_CLASSES)):
        raise ValueError("labels must be ADE20K class indices 0..149, or -1")
    table = np.zeros((len(ADE20K_CLASSES) + 1, 3), np.uint8)
    table[1:] = ADE20K_PALETTE
    return table[labels.astype(np.int64) + 1]
