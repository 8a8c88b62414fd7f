# SPDX-License-Identifier: GPL-3.0-or-later
"""The layer rule of DESIGN.md, checked on every file with Python's own parser.

    panels/ ──► operators/ ──► scene/  (bpy only)
                          └──► engine/ (never bpy)

- engine/ imports no Blender module (bpy, bpy_extras, mathutils, ...) and nothing of the
  add-on outside engine/ (which would bring bpy in through the back door);
- scene/ imports no torch, diffusers, transformers, controlnet_aux or cv2, and neither
  operators/ nor panels/;
- operators/ import no panels/;
- panels/ only draw: no `.new(`/`.remove(`/`.link(`... calls, no `bpy.ops.` calls, no
  assignment to an attribute or item of anything but a UI layout. Registering a draw
  function on a Blender header in register/unregister is the one allowed exception.

Each rule is also run on small offending sources, so a checker that stopped seeing a
violation fails here too.
"""
from __future__ import annotations

import ast
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("engine", "scene", "operators", "panels")

BLENDER_MODULES = {"bpy", "bpy_extras", "mathutils", "bmesh", "gpu", "gpu_extras", "bl_math", "blf", "aud",
                   "idprop", "imbuf", "freestyle", "addon_utils", "bl_ui", "bl_operators"}
HEAVY_MODULES = {"torch", "torchvision", "diffusers", "transformers", "controlnet_aux", "cv2", "accelerate", "peft",
                 "safetensors", "huggingface_hub", "timm"}
# What a layer may import of the add-on's own top-level parts ("." is the add-on's root package).
ADDON_PARTS = {"engine", "scene", "operators", "panels", "dependencies", "preferences", "properties",
               "pose_properties", "segmentation_properties"}
MAY_IMPORT = {
    "engine": {"engine"},
    "scene": {"engine", "scene"},
    "operators": ADDON_PARTS - {"panels"},
    "panels": ADDON_PARTS,
}
# Methods that make, delete or relink data (bpy.data.images.new, objects.link, pixels.foreach_set, ...).
WRITING_METHODS = {"new", "remove", "link", "unlink", "clear", "foreach_set", "keyframe_insert", "keyframe_delete",
                   "driver_add", "driver_remove", "update_tag", "pack", "unpack", "reload", "save", "save_render"}
# Calls that give a UI layout, or a button's operator properties: attributes of those may be set
# (layout.enabled = False, row.alert = True, layout.operator("...").kind = "depth").
LAYOUT_METHODS = {"row", "column", "box", "split", "grid_flow", "column_flow", "panel", "panel_prop", "menu_pie",
                  "operator"}


def python_files(layer: str) -> list[str]:
    """Every .py file of a layer, relative to the repository root."""
    found = []
    for folder, dirs, files in os.walk(os.path.join(REPO_ROOT, layer)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found += [os.path.relpath(os.path.join(folder, name), REPO_ROOT) for name in sorted(files)
                  if name.endswith(".py")]
    return found


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import: absolute names as written, relative ones resolved
    against the add-on's root as ".part.module" (e.g. ".engine.errors", ".dependencies")."""
    depth = package.count(".") + 1  # "engine" is 1 deep: "from .x" stays in it, "from ..x" reaches the root
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module))
                continue
            parts = package.split(".")[: max(0, depth - node.level + 1)]
            base = ".".join(["", *parts, *([node.module] if node.module else [])])
            if node.module:
                found.append((node.lineno, base))
            else:  # from .. import dependencies, preferences
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def import_problems(source: str, layer: str, package: str | None = None) -> list[str]:
    """What a file of `layer` imports that the layer rule forbids."""
    problems = []
    for line, module in imported_modules(ast.parse(source), package or layer):
        if module.startswith("."):
            part = module.split(".")[1]
            if part in ADDON_PARTS and part not in MAY_IMPORT[layer]:
                problems.append(f"line {line}: {layer}/ imports the add-on's {part} ({module})")
            continue
        root = module.split(".")[0]
        if layer == "engine" and root in BLENDER_MODULES:
            problems.append(f"line {line}: engine/ imports Blender's {module}")
        if layer == "engine" and root in ADDON_PARTS - {"engine"}:
            problems.append(f"line {line}: engine/ imports the add-on's {module}")
        if layer == "scene" and root in HEAVY_MODULES:
            problems.append(f"line {line}: scene/ imports {module} (the engine's job)")
    return problems


def _dotted(node: ast.AST) -> str:
    """"bpy.types.STATUSBAR_HT_header" for that attribute chain; "" when it is not one."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(names)])
    return ""


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _is_layout(node: ast.AST, layouts: set[str]) -> bool:
    """Whether `node` is a UI layout: self.layout, a `layout` name, or what .row()/.box()... give
    (or a button's operator properties, which .operator() gives)."""
    if isinstance(node, ast.Name):
        return node.id in layouts
    if isinstance(node, ast.Attribute):
        return node.attr == "layout" and isinstance(node.value, ast.Name) and node.value.id == "self"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in LAYOUT_METHODS and _is_layout(node.func.value, layouts)
    return False


def _layout_names(function: ast.AST) -> set[str]:
    """Names that hold a UI layout (or operator properties) in a function: its `layout` parameter,
    and names assigned one."""
    names = {"layout"}
    changed = True
    while changed:  # col = layout.column(); row = col.row(): follow the chain
        changed = False
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and _is_layout(node.value, names):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id not in names:
                        names.add(target.id)
                        changed = True
    return names


def panel_problems(source: str) -> list[str]:
    """What a panels/ file does beyond drawing."""
    tree = ast.parse(source)
    module_names = {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Name)}
    problems = []
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in functions:
        layouts = _layout_names(function)
        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name.startswith("bpy.ops."):
                    problems.append(f"line {node.lineno}: {function.name} runs an operator ({name})")
                elif name in {"setattr", "delattr"}:
                    problems.append(f"line {node.lineno}: {function.name} calls {name}")
                elif isinstance(node.func, ast.Attribute) and node.func.attr in WRITING_METHODS:
                    receiver = _dotted(node.func.value)
                    header = receiver.startswith("bpy.types.") and node.func.attr == "remove"
                    if not (header and function.name == "unregister"):
                        problems.append(f"line {node.lineno}: {function.name} calls .{node.func.attr}() "
                                        f"on {receiver or 'an expression'}")
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, ast.Delete):
                targets = node.targets
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and isinstance(part.ctx, (ast.Store, ast.Del)):
                        if not _is_layout(part.value, layouts):
                            problems.append(f"line {node.lineno}: {function.name} sets "
                                            f"{_dotted(part) or part.attr}")
                    elif isinstance(part, ast.Subscript) and isinstance(part.ctx, (ast.Store, ast.Del)):
                        root = _root(part)
                        # A module's own cache (a dict at module level) is not Blender data.
                        if not (isinstance(part.value, ast.Name) and isinstance(root, ast.Name)
                                and root.id in module_names):
                            problems.append(f"line {node.lineno}: {function.name} sets an item of "
                                            f"{_dotted(part.value) or 'an expression'}")
    for node in ast.walk(tree):  # from bpy import ops; from bpy.ops import ...
        if isinstance(node, ast.ImportFrom) and node.module and (node.module.startswith("bpy.ops") or (
                node.module == "bpy" and any(alias.name == "ops" for alias in node.names))):
            problems.append(f"line {node.lineno}: imports bpy.ops")
    return problems


def _source(path: str) -> str:
    with open(os.path.join(REPO_ROOT, path), encoding="utf-8") as file:
        return file.read()


def _package(path: str) -> str:
    """The package a file's relative imports start from: "engine" for engine/x.py and engine/__init__.py."""
    return os.path.dirname(path).replace(os.sep, ".")


ALL_FILES = [(layer, path) for layer in LAYERS for path in python_files(layer)]


def test_every_layer_has_files_to_check():
    for layer in LAYERS:
        assert python_files(layer), f"{layer}/ has no Python files: the layer checks would check nothing"


@pytest.mark.parametrize("layer, path", ALL_FILES, ids=[path for _, path in ALL_FILES])
def test_imports_follow_the_layers(layer, path):
    assert import_problems(_source(path), layer, _package(path)) == []


@pytest.mark.parametrize("path", python_files("panels"))
def test_panels_only_draw(path):
    assert panel_problems(_source(path)) == []


# --- The checkers catch what they are for ------------------------------------------------

@pytest.mark.parametrize("layer, source, words", [
    ("engine", "import bpy\n", "engine/ imports Blender's bpy"),
    ("engine", "def f():\n    from mathutils import Vector\n", "Blender's mathutils"),
    ("engine", "import bpy_extras.object_utils as u\n", "Blender's bpy_extras.object_utils"),
    ("engine", "from ..scene import images\n", "engine/ imports the add-on's scene"),
    ("engine", "from .. import dependencies\n", "engine/ imports the add-on's dependencies"),
    ("scene", "import torch\n", "scene/ imports torch"),
    ("scene", "def f():\n    import cv2\n", "scene/ imports cv2"),
    ("scene", "from diffusers import StableDiffusionPipeline\n", "scene/ imports diffusers"),
    ("scene", "from transformers.models import clip\n", "scene/ imports transformers.models"),
    ("scene", "from controlnet_aux import OpenposeDetector\n", "scene/ imports controlnet_aux"),
    ("scene", "from ..operators import jobs\n", "scene/ imports the add-on's operators"),
    ("operators", "from ..panels import sidebar\n", "operators/ imports the add-on's panels"),
])
def test_forbidden_imports_are_caught(layer, source, words):
    problems = import_problems(source, layer)
    assert len(problems) == 1 and words in problems[0], problems


@pytest.mark.parametrize("layer, source", [
    ("engine", "import numpy as np\nfrom .errors import DiffusionError\nfrom . import weights\n"),
    ("scene", "import bpy\nfrom mathutils import Matrix\nfrom ..engine.errors import DiffusionError\n"),
    ("operators", "import bpy\nfrom ..scene import images\nfrom .. import dependencies\n"),
])
def test_allowed_imports_pass(layer, source):
    assert import_problems(source, layer) == []


DRAW = "class P:\n    def draw(self, context):\n        layout = self.layout\n{}\n"


@pytest.mark.parametrize("body, words", [
    ("        bpy.data.images.new('x', 4, 4)", "calls .new() on bpy.data.images"),
    ("        context.scene.collection.objects.link(ob)", "calls .link() on context.scene.collection.objects"),
    ("        bpy.data.objects.remove(ob)", "calls .remove() on bpy.data.objects"),
    ("        image.pixels.foreach_set(values)", "calls .foreach_set() on image.pixels"),
    ("        bpy.ops.scene_diffusion.generate_image()", "runs an operator (bpy.ops.scene_diffusion.generate_image)"),
    ("        context.scene.scene_diffusion.steps = 4", "sets context.scene.scene_diffusion.steps"),
    ("        settings = context.scene.scene_diffusion\n        settings.seed += 1", "sets settings.seed"),
    ("        context.scene['recipe'] = 'x'", "sets an item of context.scene"),
    ("        setattr(context.scene, 'frame_current', 3)", "calls setattr"),
    ("        del context.scene.camera", "sets context.scene.camera"),
])
def test_panels_that_change_data_are_caught(body, words):
    problems = panel_problems("import bpy\n" + DRAW.format(body))
    assert len(problems) == 1 and words in problems[0], problems


def test_panels_importing_operators_to_run_are_caught():
    assert panel_problems("from bpy import ops\n") == ["line 1: imports bpy.ops"]


def test_drawing_and_registering_a_header_pass():
    source = ("import bpy\n_cache = {}\n"
              + DRAW.format("        col = layout.column(align=True)\n        row = col.row()\n"
                            "        row.enabled = False\n        layout.box().alert = True\n"
                            "        row.operator('scene_diffusion.lora_remove', text='', icon='REMOVE')\n"
                            "        row.operator('scene_diffusion.detect_condition').kind = 'depth'\n"
                            "        props = col.operator('scene_diffusion.capture')\n        props.kind = 'canny'\n"
                            "        _cache['x'] = 1\n        row.prop(context.scene, 'frame_current')")
              + "def register():\n    bpy.types.STATUSBAR_HT_header.append(draw)\n"
              + "def unregister():\n    bpy.types.STATUSBAR_HT_header.remove(draw)\n")
    assert panel_problems(source) == []
    # The header's remove anywhere but unregister is not that exception.
    assert panel_problems("import bpy\ndef draw(self, context):\n    bpy.types.STATUSBAR_HT_header.remove(draw)\n")
