# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for bpy.types.UILayout, which Blender only creates for a window it draws.

It records what a draw function asks for and checks it against Blender's own data: each
property exists on its data, each operator is registered, each icon is one Blender has.
"""


def _icons() -> set:
    import bpy
    return set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class RecordingLayout:
    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.active = True
        self.enabled = True
        self.use_property_split = False
        self.use_property_decorate = True
        self.alert = False

    def _child(self, *_args, **_options):
        return RecordingLayout(self.calls)

    box = column = row = split = column_flow = grid_flow = _child

    def _icon(self, icon: str) -> None:
        assert icon in _icons(), f"no icon {icon!r}"

    def label(self, *, text: str = "", icon: str = 'NONE', **_options) -> None:
        self._icon(icon)
        self.calls.append(("label", text, icon))

    def separator(self, **_options) -> None:
        pass

    def operator(self, idname: str, *, text: str = "", icon: str = 'NONE', **_options):
        import bpy
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name) and getattr(getattr(bpy.ops, category), name).idname(), idname
        self._icon(icon)
        self.calls.append(("operator", idname, text, icon))
        return _OperatorProperties()

    def prop(self, data, name: str, *, icon: str = 'NONE', **_options) -> None:
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self._icon(icon)
        self.calls.append(("prop", name))

    def prop_search(self, data, name: str, search_data, search_name: str, **_options) -> None:
        assert name in data.bl_rna.properties, name
        assert search_name in search_data.bl_rna.properties, search_name
        self.calls.append(("prop_search", name))

    def prop_enum(self, data, name: str, value: str, **_options) -> None:
        assert value in data.bl_rna.properties[name].enum_items.keys(), (name, value)
        self.calls.append(("prop_enum", name, value))

    def progress(self, *, factor: float = 0.0, type: str = 'BAR', text: str = "") -> None:
        assert 0.0 <= factor <= 1.0
        self.calls.append(("progress", text, factor))

    def template_ID(self, data, name: str, **_options) -> None:
        assert name in data.bl_rna.properties, name
        self.calls.append(("template_ID", name))

    def template_list(self, list_type: str, list_id: str, data, name: str, active_data, active_name: str,
                      **_options) -> None:
        import bpy
        assert hasattr(bpy.types, list_type), list_type
        assert name in data.bl_rna.properties and active_name in active_data.bl_rna.properties
        self.calls.append(("template_list", name))

    def icon(self, data) -> int:
        import bpy
        assert isinstance(data, bpy.types.ID), data
        return 0

    def template_icon(self, *, icon_value: int = 0, scale: float = 1.0) -> None:
        self.calls.append(("template_icon", icon_value))

    def template_preview(self, *_args, **_options) -> None:
        self.calls.append(("template_preview",))


class _OperatorProperties:
    """What `layout.operator` returns: properties set on it are simply kept."""
