# SPDX-License-Identifier: GPL-3.0-or-later
"""Background settings saved with the .blend file: `scene.scene_diffusion.world` (the 360°
World panorama) and `scene.scene_diffusion.backdrop` (the camera backdrop)."""
import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty

# Panorama widths: 2:1 images whose halves are multiples of 8 (1024×512 .. 8192×4096).
MIN_WORLD_WIDTH, MAX_WORLD_WIDTH = 512, 8192


class SceneDiffusionWorld(bpy.types.PropertyGroup):
    width: IntProperty(name="Width", default=2048, min=MIN_WORLD_WIDTH, max=MAX_WORLD_WIDTH, step=512,
                       subtype='PIXEL', description="Width of the panorama; its height is half of it (2:1)")
    from_scene: BoolProperty(
        name="From Scene", default=True,
        description=("Steer the panorama by the scene around the camera (the enabled conditions captured as "
                     "360° panoramas), so the World lines up with the geometry; off, or with nothing around: "
                     "text to image"))
    origin: PointerProperty(type=bpy.types.Object, name="Origin",
                            description="Where the panorama is seen from (empty: the scene camera)")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=10.0,
                            description="The World's light strength (its Background node)")
    rotation: FloatProperty(name="Rotation", default=0.0, subtype='ANGLE',
                            description="Turn the panorama about the vertical (its Mapping node)")
    target: EnumProperty(
        name="Target", default='NEW',
        items=(('NEW', "New World", "Make a new World and use it in the scene; the previous one is kept"),
               ('CURRENT', "Current World", "Replace only the image of the current World's Environment Texture")),
        description="Where the panorama goes")
    start: EnumProperty(
        name="Start From", default='NOTHING',
        items=(('NOTHING', "Nothing", "A new panorama"),
               ('CURRENT', "Current World", "Redraw the current World's panorama at the strength below"),
               ('EXTEND', "Extend Image", "Keep an image as the camera's view and paint the rest of the sphere "
                                          "around it (outpainting)")),
        description="What the panorama starts from")
    start_strength: FloatProperty(name="Strength", default=0.6, min=0.05, max=1.0, subtype='FACTOR',
                                  description="How much of the current World's panorama is redrawn")
    extend_image: PointerProperty(type=bpy.types.Image, name="Image",
                                  description="The picture seen by the scene camera, to extend into a full sphere")
    fix_poles: BoolProperty(name="Fix Poles", default=True,
                            description=("Repaint the zenith and the nadir as views straight up and down, so the "
                                         "top and bottom of the sphere are not a pinched smear"))
    refine_strength: FloatProperty(
        name="Detail Strength", default=0.35, min=0.05, max=1.0, subtype='FACTOR',
        description="Above the model's own size, how much each window of the enlarged panorama is redrawn")


class SceneDiffusionBackdrop(bpy.types.PropertyGroup):
    foreground: EnumProperty(
        name="Foreground", default='SELECTED',
        items=(('SELECTED', "Selected", "The selected objects stand in front of the backdrop"),
               ('COLLECTION', "Collection", "The objects of a collection stand in front of the backdrop")),
        description="What is left out of the backdrop (it is rendered in front of it)")
    collection: PointerProperty(type=bpy.types.Collection, name="Collection",
                                description="The foreground's collection")
    shadow_catcher: BoolProperty(
        name="Shadow Catcher", default=False,
        description=("Make the rest of the scene shadow catchers, so the foreground's shadows fall onto the "
                     "backdrop in renders"))
    show_in_camera: BoolProperty(name="Show in Camera", default=True,
                                 description="Show the backdrop as the camera's background image in the viewport")
    composite: BoolProperty(
        name="Composite", default=True,
        description=("Put renders over the backdrop in the compositor (Film > Transparent on; nothing of your "
                     "compositor is removed)"))


classes = (SceneDiffusionWorld, SceneDiffusionBackdrop)
register, unregister = bpy.utils.register_classes_factory(classes)
