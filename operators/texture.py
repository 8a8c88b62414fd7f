# SPDX-License-Identifier: GPL-3.0-or-later
"""Textures on the selected meshes: Generate Texture, Project Image and Show Coverage.

Everything is checked and every view is captured on the main thread before anything is
written (`prepare`); the only change made before the job is a UV map for a mesh that has
none (Smart UV Project, said in the message). The worker paints the textures view by view
(engine/painting.py); each view is shown in the Image Editor as it is made; the textures
are written as new image datablocks, wired into materials, only once the last view is
blended, so a cancel leaves nothing half-made.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import bpy
import numpy as np

from .. import preferences
from ..engine.errors import DiffusionError, NothingInView
from ..engine.painting import Painter, PaintSettings, PaintedTexture, TextureView
from ..engine.requests import GenerationRequest
from ..engine.texture import MAX_TEXTURE, MIN_TEXTURE, Surface, WeightSettings, seen_by
from ..scene import camera as scene_camera
from ..scene import images, materials, uv
from ..scene.conditions import capture_session_for, capture_view
from ..scene.regions import never_seen, regions_in_view
from ..scene.surfaces import surface_of
from ..scene.settings import settings_json
from ..scene.viewpoints import Viewpoint, cameras, viewpoints
from . import capture, jobs
from .base import JobOperator
from .request import checked_request, describe

NOTHING_KEPT = "nothing was written: a texture is written once its last view is blended"


@dataclass(frozen=True)
class Target:
    """One mesh to texture and the UV map it is painted in (`made`: made for it just now)."""
    name: str
    uv_map: str
    made: bool = False


def selected_meshes(context: bpy.types.Context) -> list[bpy.types.Object]:
    selected = list(context.selected_objects)
    if not selected:
        raise DiffusionError("Nothing is selected", "select the meshes to texture")
    meshes = [obj for obj in selected if obj.type == 'MESH']
    if not meshes:
        names = ", ".join(f"'{obj.name}'" for obj in selected[:3])
        raise DiffusionError(f"No mesh is selected ({names} {'is' if len(selected) == 1 else 'are'} not one)",
                             "select the meshes to texture")
    for obj in meshes:
        if len(obj.data.polygons) == 0:
            raise DiffusionError(f"'{obj.name}' has no faces to texture", "select meshes with faces")
    return meshes


def check_texture_size(size: int) -> None:
    if not MIN_TEXTURE <= size <= MAX_TEXTURE:
        raise DiffusionError(f"Texture size {size} is outside {MIN_TEXTURE}..{MAX_TEXTURE}",
                             "set the Texture Size in the Texture panel")


def refuse_unseen(objects: list[bpy.types.Object], views: list[TextureView]) -> None:
    """Refuse an object that no view sees (hidden, behind something, out of frame)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in objects:
        surface = surface_of(obj, depsgraph, None)
        if not any(seen_by(surface, view.view, view.depth) for view in views):
            raise unseen(obj, len(views))


def unseen(obj: bpy.types.Object, count: int) -> DiffusionError:
    return DiffusionError(
        f"'{obj.name}' is not visible from {'the view' if count == 1 else f'any of the {count} views'}: "
        "it is out of frame, hidden from renders or behind other objects",
        "aim the camera at it, or use Orbit views around the selection")


def paint_targets(objects: list[bpy.types.Object]) -> tuple[list[Target], list[Surface]]:
    """UV maps (made where missing: the one change before the job) and the evaluated surfaces."""
    targets = []
    for obj in objects:
        name, made = uv.ensure_uv_map(obj)
        targets.append(Target(obj.name, name, made))
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return targets, [surface_of(obj, depsgraph, target.uv_map) for obj, target in zip(objects, targets)]


def capture_views(context: bpy.types.Context, points: list[Viewpoint], kinds: set[str], width: int, height: int,
                  frame: int, objects: list[bpy.types.Object],
                  prompts: dict[str, str] | None = None) -> list[tuple[Viewpoint, TextureView]]:
    """Every view's Z pass and conditions (captured, not stored), with its viewpoint, and the
    regions of `prompts` (object name -> region prompt) it sees. A view that sees nothing at
    all is left out; when every view is, the objects are not visible from any."""
    scene = context.scene
    options = capture.capture_options(scene.scene_diffusion.conditions)
    views = []
    with capture_session_for(scene, kinds, width, height, frame, options, objects=bool(prompts)) as session, \
            cameras() as made:
        for point in points:
            try:
                captured = capture_view(scene, kinds, made.for_view(point), width, height, frame, options,
                                        depth=True, session=session, objects=bool(prompts))
            except NothingInView:
                continue
            views.append((point, texture_view(scene, point, captured, prompts)))
    if not views:
        raise unseen(objects[0], len(points))
    return views


def view_regions(views: list[TextureView]) -> list[dict]:
    """The region prompts the views saw, each once (for the recipe)."""
    seen = {(region.prompt, region.name): None for view in views for region in view.regions}
    return [{"prompt": prompt, "objects": names} for prompt, names in seen]


def texture_view(scene: bpy.types.Scene, point: Viewpoint, captured, prompts: dict[str, str] | None = None
                 ) -> TextureView:
    regions = regions_in_view(prompts, captured.objects).regions if prompts else ()
    return TextureView(point.name, captured.view, captured.z, capture.units_of(scene, captured.conditions), regions)


def current_textures(objects: list[bpy.types.Object]) -> list[np.ndarray | None]:
    found = [materials.texture_of(obj) for obj in objects]
    missing = [obj.name for obj, image in zip(objects, found) if image is None]
    if missing:
        raise DiffusionError(f"{', '.join(repr(name) for name in missing)} has no texture to start from",
                             "generate one first, or turn off Start From Current")
    return [images.display_rgb(image) for image in found]


def view_recipe(view: TextureView) -> dict:
    return {"name": view.name, "width": view.view.width, "height": view.view.height, "type": view.view.type,
            "world_from_camera": view.view.world_from_camera.tolist(), "projection": view.view.projection.tolist()}


def write_texture(obj: bpy.types.Object, target: Target, painted: PaintedTexture, recipe: dict,
                  target_material: bpy.types.Material | None) -> bpy.types.Image:
    """A new texture datablock for `obj`, shown by its material (see scene/materials.py)."""
    image = images.new_image(f"{obj.name} Texture", painted.rgb,
                             {**recipe, "kind": "texture", "object": obj.name, "uv_map": target.uv_map,
                              "covered": round(painted.covered, 4), "made": time.time()})
    if target_material is not None:
        materials.set_base_color(target_material, image, target.uv_map)
    else:
        materials.show_texture(obj, image, target.uv_map)
    return image


def notes(targets: list[Target], painted: list[PaintedTexture], size: int) -> list[str]:
    said = [f"made the UV map '{t.uv_map}' on '{t.name}' (Smart UV Project)" for t in targets if t.made]
    for texture in painted:
        share = texture.overlapped / (size * size)
        if texture.overlapped and share > 1e-4:
            said.append(f"'{texture.name}' has overlapping UVs: the texture is shared where they overlap")
    return said


class SCENE_DIFFUSION_OT_generate_texture(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.generate_texture"
    bl_label = "Generate Texture"
    bl_description = ("Paint a UV texture on each selected mesh from one view or many, steered by the scene's "
                      "conditions, into a new image on its material")
    bl_options = {'REGISTER', 'UNDO'}

    def prepare(self, context) -> jobs.Steps:
        scene = context.scene
        settings = scene.scene_diffusion
        texture = settings.texture
        prefs = preferences.addon_preferences(context)
        objects = selected_meshes(context)
        check_texture_size(texture.texture_size)
        size = scene_camera.output_size(scene)
        changes = {"strength": texture.current_strength} if texture.from_current else {}
        base = checked_request(context, size.width, size.height, start_from=False, **changes)
        start = current_textures(objects) if texture.from_current else None
        frame = scene.frame_current
        points = viewpoints(scene, texture, objects, size.width, size.height, frame)
        # Every view is captured before the job: every refusal comes before anything is
        # written, and no render runs beside the worker (see FACTS: with a context override,
        # a render beside a thread running numpy or torch crashes Blender 5.0.1).
        prompts = capture.region_prompts(scene)
        views = [view for _, view in capture_views(context, points, capture.enabled_kinds(scene), size.width,
                                                    size.height, frame, objects, prompts)]
        unseen = never_seen(prompts, [region for view in views for region in view.regions])
        refuse_unseen(objects, views)
        panel = settings_json(scene)
        seed = settings.draw_seed()
        base = dataclasses.replace(base, seed=seed)
        # Every check passed: the UV maps missing are made now, the one change before the job.
        targets, surfaces = paint_targets(objects)
        paint = PaintSettings(size=texture.texture_size, sequential=texture.sequential, fill=texture.fill,
                              weights=WeightSettings(exponent=texture.weight_exponent,
                                                     discard_angle=texture.discard_angle))
        painter = Painter(surfaces, paint, start)
        return texture_steps(painter, views, base, targets, texture.target_material, scene.name,
                             preferences.model_cache_dir(context), preferences.engine_placement(prefs), panel, unseen)


def texture_steps(painter: Painter, views: list[TextureView], base: GenerationRequest, targets: list[Target],
                  target_material: bpy.types.Material | None, scene_name: str, cache_dir: str,
                  placement: tuple[str | None, str | None], panel: str = "", unseen: list[str] = ()) -> jobs.Steps:
    """The job of a texture: each view generated and blended on the worker (its geometry, and
    the next one's, made beside it on the painter's background thread); the textures are
    written by `finish` once the last one is blended."""
    painted: list[PaintedTexture] = []
    generated: list[int] = []
    count = len(views)

    def work(item: tuple[int, TextureView], report, cancel):
        try:
            return paint_view(item, report, cancel)
        except BaseException:
            painter.settle()  # the job ends only once the painter's own threads are idle
            raise

    def paint_view(item: tuple[int, TextureView], report, cancel):
        index, view = item
        painter.look_ahead(views[index:index + 2])
        request = painter.request_for(view, dataclasses.replace(base, seed=base.seed + index))
        image = None
        if request is not None:
            image = jobs.engine(cache_dir, *placement).generate(request, report, cancel).images[0]
            painter.add(view, image)
        if index == count - 1:
            painted.extend(painter.finish())
        return image

    def write(index: int, image) -> None:
        if image is not None:
            images.show_preview(image)
            generated.append(index)

    def finish(_count: int) -> str:
        recipe = {**describe(base), "views": [view_recipe(view) for view in views],
                  "texture_size": painter.settings.size, "sequential": int(painter.settings.sequential),
                  "weight_exponent": painter.settings.weights.exponent,
                  "discard_angle": painter.settings.weights.discard_angle, "scene": scene_name,
                  "generated_views": generated, "settings": panel, "regions": view_regions(views),
                  "from_current": int(any(start is not None for start in painter.start))}
        if recipe["from_current"]:
            recipe["strength"] = base.strength  # each view redrew the current texture at it
        made = []
        for target, texture in zip(targets, painted):
            obj = bpy.data.objects.get(target.name)
            if obj is None:
                continue  # deleted while the job ran
            image = write_texture(obj, target, texture, recipe, target_material)
            made.append(f"'{obj.name}' ('{image.name}')")
        scene = bpy.data.scenes.get(scene_name)
        if scene is not None and scene.scene_diffusion.seed != base.seed:
            scene.scene_diffusion.seed = base.seed
        message = (f"Textured {', '.join(made)} ({painter.settings.size}², {len(views)} "
                   f"view{'s' if len(views) != 1 else ''}, seed {base.seed})")
        for note in notes(targets, painted, painter.settings.size):
            message += f"; {note}"
        if unseen:
            message += "; region prompts in no view (skipped): " + ", ".join(unseen)
        return message

    return jobs.Steps("Generate Texture", work=work, write=write, finish=finish, count=count,
                      prepare=lambda index: (index, views[index]), noun="view", kept=lambda _written: NOTHING_KEPT)


class SCENE_DIFFUSION_OT_project_image(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.project_image"
    bl_label = "Project Image"
    bl_description = ("Project an image from a camera onto the selected meshes' textures: exactly what the camera "
                      "sees of each surface takes the image's colour there")
    bl_options = {'REGISTER', 'UNDO'}

    image: bpy.props.StringProperty(name="Image", description="The image datablock to project")
    camera: bpy.props.StringProperty(name="Camera", description="The camera object to project from (empty: the "
                                                                "scene camera)")

    def prepare(self, context) -> jobs.Steps:
        scene = context.scene
        texture = scene.scene_diffusion.texture
        objects = selected_meshes(context)
        check_texture_size(texture.texture_size)
        picture = bpy.data.images.get(self.image) if self.image else None
        if picture is None:
            raise DiffusionError(f"No image named '{self.image}'" if self.image else "No image to project is picked",
                                 "pick the image to project in the Texture panel")
        width, height = picture.size
        if width == 0 or height == 0:
            raise DiffusionError(f"The image '{picture.name}' has no pixels (its file may be missing)",
                                 "reload it, or pick another image")
        camera = None
        if self.camera:
            camera = bpy.data.objects.get(self.camera)
            if camera is None or camera.type != 'CAMERA':
                raise DiffusionError(f"No camera named '{self.camera}'", "name a camera object, or leave it empty "
                                                                         "for the scene camera")
        pixels = images.display_rgb(picture)
        options = capture.capture_options(scene.scene_diffusion.conditions)
        try:
            captured = capture_view(scene, set(), camera, width, height, scene.frame_current, options, depth=True)
        except NothingInView:
            raise unseen(objects[0], 1) from None
        view = TextureView(captured.view.name, captured.view, captured.z)
        refuse_unseen(objects, [view])
        start = [_start_texture(obj) for obj in objects]
        targets, surfaces = paint_targets(objects)
        # One view: its colour wherever it sees the surface, whatever the angle (up to the discard angle).
        weights = WeightSettings(exponent=0.0, discard_angle=texture.discard_angle)
        painter = Painter(surfaces, PaintSettings(size=texture.texture_size, fill=False, weights=weights), start)
        target_material = texture.target_material
        painted: list[PaintedTexture] = []
        name = picture.name

        def work(_item, report, cancel):
            painter.add(view, pixels)
            painted.extend(painter.finish())

        def finish(_count: int) -> str:
            recipe = {"projected": name, "views": [view_recipe(view)], "texture_size": texture_size}
            made = [write_texture(bpy.data.objects[target.name], target, texture_, recipe, target_material).name
                    for target, texture_ in zip(targets, painted) if target.name in bpy.data.objects]
            message = f"Projected '{name}' from '{view.name}' onto {', '.join(repr(m) for m in made)}"
            for note in notes(targets, painted, texture_size):
                message += f"; {note}"
            return message

        texture_size = texture.texture_size
        return jobs.Steps("Project Image", work=work, write=lambda index, result: None, finish=finish)


class SCENE_DIFFUSION_OT_show_coverage(JobOperator, bpy.types.Operator):
    bl_idname = "scene_diffusion.show_coverage"
    bl_label = "Show Coverage"
    bl_description = ("Write what the Texture panel's views would see of each selected mesh as an image: white "
                      "where views count fully, dark where they barely do, red where no view sees the surface")
    bl_options = {'REGISTER'}

    def prepare(self, context) -> jobs.Steps:
        scene = context.scene
        texture = scene.scene_diffusion.texture
        objects = selected_meshes(context)
        check_texture_size(texture.texture_size)
        missing = [obj.name for obj in objects if uv.uv_map_of(obj) is None]
        if missing:
            raise DiffusionError(f"{', '.join(repr(name) for name in missing)} has no UV map yet",
                                 "Generate Texture makes one (Smart UV Project), or unwrap it yourself")
        size = scene_camera.output_size(scene)
        points = viewpoints(scene, texture, objects, size.width, size.height, scene.frame_current)
        views = [view for _, view in capture_views(context, points, set(), size.width, size.height,
                                                   scene.frame_current, objects)]
        depsgraph = context.evaluated_depsgraph_get()
        surfaces = [surface_of(obj, depsgraph, uv.uv_map_of(obj)) for obj in objects]
        painter = Painter(surfaces, PaintSettings(size=texture.texture_size, weights=WeightSettings(
            exponent=texture.weight_exponent, discard_angle=texture.discard_angle)))
        sums: list[np.ndarray] = []

        def work(_item, report, cancel):
            blank = [np.zeros((view.view.height, view.view.width, 3), np.float32) for view in views]
            for view, image in zip(views, blank):
                painter.add(view, image)
            sums.extend(coverage_image(cells.inside, accumulated.weight_sum)
                        for cells, accumulated in zip(painter.texels, painter.sums))

        def finish(_count: int) -> str:
            made = []
            for obj, rgb in zip(objects, sums):
                image = images.new_image(f"{obj.name} Coverage", rgb, {"kind": "coverage", "object": obj.name,
                                                                        "views": len(views)}, colorspace="Non-Color")
                images.show_in_image_editors(image)
                made.append(f"'{image.name}'")
            return f"Coverage of {len(views)} view{'s' if len(views) != 1 else ''}: {', '.join(made)}"

        return jobs.Steps("Show Coverage", work=work, write=lambda index, result: None, finish=finish)


def coverage_image(inside: np.ndarray, weight_sum: np.ndarray) -> np.ndarray:
    """HxWx3: the weight sum as grey (1 and more: white), red where no view sees an island texel."""
    rgb = np.repeat(np.clip(weight_sum, 0.0, 1.0)[..., None], 3, axis=2).astype(np.float32)
    rgb[inside & (weight_sum <= 0)] = (1.0, 0.0, 0.0)
    return rgb


def _start_texture(obj: bpy.types.Object) -> np.ndarray | None:
    """The object's current texture, kept where the projection does not reach."""
    image = materials.texture_of(obj)
    return images.display_rgb(image) if image is not None else None


classes = (SCENE_DIFFUSION_OT_generate_texture, SCENE_DIFFUSION_OT_project_image, SCENE_DIFFUSION_OT_show_coverage)
register, unregister = bpy.utils.register_classes_factory(classes)
