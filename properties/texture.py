# SPDX-License-Identifier: GPL-3.0-or-later
"""Texture settings saved with the .blend file: `scene.scene_diffusion.texture`."""
import math

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty

from ..engine.texture import MAX_TEXTURE, MIN_TEXTURE


class SceneDiffusionTexture(bpy.types.PropertyGroup):
    views: EnumProperty(
        name="Views", default='ORBIT',
        items=(('CAMERA', "Scene Camera", "One view: the scene camera"),
               ('ORBIT', "Orbit", "Views around the selection: azimuths at an elevation, plus the top"),
               ('CAMERAS', "Cameras", "Every camera in a collection")),
        description="Where the texture is painted from",
    )
    view_count: IntProperty(name="Views Around", default=4, min=1, max=32,
                            description="How many views go around the selection (orbit)")
    elevation: FloatProperty(name="Elevation", default=math.radians(20.0), min=math.radians(-80.0),
                             max=math.radians(80.0), subtype='ANGLE',
                             description="How high the orbit's views look from (0: level)")
    include_top: BoolProperty(name="Top", default=True, description="Add a view from straight above (orbit)")
    include_bottom: BoolProperty(name="Bottom", default=False,
                                 description="Add a view from straight below (orbit)")
    camera_collection: PointerProperty(type=bpy.types.Collection, name="Camera Collection",
                                       description="The collection whose cameras paint the texture")
    texture_size: IntProperty(name="Texture Size", default=2048, min=MIN_TEXTURE, max=MAX_TEXTURE,
                              subtype='PIXEL', description="Width and height of each object's texture")
    sequential: BoolProperty(
        name="Sequential", default=True,
        description=("Each view after the first repaints only what earlier views did not cover, so views agree "
                     "at their borders; off: every view is generated on its own"))
    weight_exponent: FloatProperty(name="Facing Weight", default=3.0, min=0.0, max=16.0,
                                   description="p in |cos θ|^p: how much more a view facing the surface counts")
    discard_angle: FloatProperty(name="Discard Angle", default=math.radians(80.0), min=math.radians(10.0),
                                 max=math.radians(90.0), subtype='ANGLE',
                                 description="Surfaces seen more obliquely than this get nothing from a view")
    fill: BoolProperty(name="Fill Unseen", default=True,
                       description="Fill what no view saw from the texels around it, in UV space")
    target_material: PointerProperty(
        type=bpy.types.Material, name="Target Material",
        description="Put the texture on this material's Base Color (empty: a new material on each object)")
    from_current: BoolProperty(name="Start From Current", default=False,
                               description="Redraw the objects' current textures (image to image of every view)")
    current_strength: FloatProperty(name="Strength", default=0.5, min=0.05, max=1.0, subtype='FACTOR',
                                    description="How much of the current texture each view redraws")
    project_image: PointerProperty(type=bpy.types.Image, name="Image to Project",
                                   description="The image Project Image puts onto the selected meshes")
    material_mapping: EnumProperty(
        name="Mapping", default='UV',
        items=(('UV', "UV", "The object's UV map"),
               ('BOX', "Box", "Projected from six sides in object space (no UVs needed)")),
        description="How a seamless material's texture is laid on the objects",
    )
    material_scale: FloatProperty(name="Scale", default=1.0, min=0.01, soft_max=20.0,
                                  description="How many times the seamless texture repeats")


classes = (SceneDiffusionTexture,)
register, unregister = bpy.utils.register_classes_factory(classes)
