"""Draw the add-on's panels and preferences headless, into a layout that records every call and
checks each name it meets against Blender's own RNA: UILayout's functions, their parameters and
attributes, the icon enum, the properties of the data drawn with ``prop``, the operators and their
properties. A misspelled name fails here instead of blanking a panel on an artist's machine."""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any


@dataclasses.dataclass
class Item:
    """One call on a layout: ``kind`` is the UILayout function, ``args`` its arguments by name."""

    kind: str
    args: dict[str, Any]
    layout: RecordingLayout
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)  # set on an operator button

    @property
    def enabled(self) -> bool:
        """False if this item's layout or any layout above it was disabled."""
        layout: RecordingLayout | None = self.layout
        while layout is not None:
            if layout.settings.get("enabled", True) is False:
                return False
            layout = layout.parent
        return True


class Recording:
    """Everything drawn, in order, and the errors found on the way."""

    def __init__(self, bpy) -> None:
        self.bpy = bpy
        self.items: list[Item] = []
        self.errors: list[str] = []
        ui = bpy.types.UILayout.bl_rna
        self.functions = ui.functions
        self.layout_properties = ui.properties
        self.icons = set(ui.functions["prop"].parameters["icon"].enum_items.keys())

    def of(self, kind: str) -> list[Item]:
        return [item for item in self.items if item.kind == kind]

    def operators(self, idname: str) -> list[Item]:
        return [item for item in self.of("operator") if item.args["operator"] == idname]

    def texts(self) -> list[str]:
        return [str(item.args.get("text", "")) for item in self.items]

    def check(self, where: str, fact: bool, message: str) -> None:
        if not fact:
            self.errors.append(f"{where}: {message}")


class OperatorButton:
    """What ``layout.operator`` returns: the operator's properties, checked as they are set."""

    def __init__(self, recording: Recording, item: Item, rna_properties: Any) -> None:
        object.__setattr__(self, "_recording", recording)
        object.__setattr__(self, "_item", item)
        object.__setattr__(self, "_rna", rna_properties)

    def __setattr__(self, name: str, value: Any) -> None:
        operator = self._item.args["operator"]
        if self._rna is not None:
            known = name in self._rna
            self._recording.check(operator, known, f"operator has no property {name!r}")
            if known and self._rna[name].type == "ENUM" and not self._rna[name].is_enum_flag:
                items = self._rna[name].enum_items.keys()
                self._recording.check(operator, value in items, f"{name}={value!r} is not one of {list(items)}")
        self._item.properties[name] = value


class RecordingLayout:
    """Stands in for ``bpy.types.UILayout``: records calls, checks names, returns sub-layouts."""

    def __init__(self, recording: Recording, parent: RecordingLayout | None = None) -> None:
        object.__setattr__(self, "recording", recording)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "settings", {})

    def __setattr__(self, name: str, value: Any) -> None:
        self.recording.check("UILayout", name in self.recording.layout_properties, f"no attribute {name!r}")
        self.settings[name] = value

    def __getattr__(self, name: str) -> Any:
        recording = self.recording
        if name not in recording.functions:
            recording.check("UILayout", False, f"no function {name!r}")
            return lambda *args, **kwargs: RecordingLayout(recording, self)
        function = recording.functions[name]
        inputs = [p for p in function.parameters if not p.is_output]
        outputs = [p for p in function.parameters if p.is_output]

        def call(*args: Any, **kwargs: Any) -> Any:
            where = f"UILayout.{name}"
            recording.check(where, len(args) <= len(inputs), f"takes at most {len(inputs)} positional arguments")
            named = dict(zip((p.identifier for p in inputs), args, strict=False))
            for key in kwargs:
                recording.check(where, key in function.parameters, f"has no parameter {key!r}")
            named.update(kwargs)
            item = Item(name, named, self)
            recording.items.append(item)
            self._check_names(where, named)
            results = [self._result(p, item) for p in outputs]
            return None if not results else results[0] if len(results) == 1 else tuple(results)

        return call

    def _result(self, output: Any, item: Item) -> Any:
        target = getattr(output, "fixed_type", None)
        if target is not None and target.identifier == "UILayout":
            return RecordingLayout(self.recording, self)
        if target is not None and target.identifier == "OperatorProperties":
            return OperatorButton(self.recording, item, self._operator_properties(item.args.get("operator", "")))
        return None

    def _operator_properties(self, idname: str) -> Any:
        module, _, name = idname.partition(".")
        try:
            return getattr(getattr(self.recording.bpy.ops, module), name).get_rna_type().properties
        except (AttributeError, KeyError):
            return None

    def _check_names(self, where: str, named: dict[str, Any]) -> None:
        recording = self.recording
        if named.get("icon"):
            recording.check(where, named["icon"] in recording.icons, f"unknown icon {named['icon']!r}")
        if "operator" in named:
            recording.check(
                where,
                self._operator_properties(named["operator"]) is not None,
                f"unknown operator {named['operator']!r}",
            )
        if "menu" in named:
            recording.check(where, hasattr(recording.bpy.types, named["menu"]), f"unknown menu {named['menu']!r}")
        for data_key, property_key in (("data", "property"), ("search_data", "search_property")):
            if data_key in named and property_key in named:
                self._check_property(where, named[data_key], named[property_key], named.get("value"))

    def _check_property(self, where: str, data: Any, name: str, value: Any) -> None:
        recording = self.recording
        data = data.target if isinstance(data, DrawingSelf) else data
        rna = getattr(data, "bl_rna", None)
        if rna is None:
            recording.check(where, False, f"{data!r} is not Blender data, cannot draw {name!r}")
            return
        if name.startswith('["') and name.endswith('"]'):  # a custom property
            recording.check(where, name[2:-2] in data, f"{rna.identifier} has no custom property {name}")
            return
        known = name in rna.properties
        recording.check(where, known, f"{rna.identifier} has no property {name!r}")
        if known and value is not None and rna.properties[name].type == "ENUM":
            items = rna.properties[name].enum_items.keys()
            recording.check(where, value in items, f"{rna.identifier}.{name} has no item {value!r}")


class DrawingSelf:
    """The ``self`` that ``draw`` gets: the class's own functions bound to this object, a recording
    ``layout``, and every other attribute read from ``target`` (the preferences, or the class)."""

    def __init__(self, cls: type, target: Any, layout: RecordingLayout) -> None:
        self.cls, self.target, self.layout = cls, target, layout

    def __getattr__(self, name: str) -> Any:
        attribute = inspect.getattr_static(self.cls, name, None)
        if isinstance(attribute, types.FunctionType):
            return types.MethodType(attribute, self)
        return getattr(self.target, name)


def draw(bpy, cls: type, context: Any, target: Any = None) -> Recording:
    """Draw ``cls`` (a Panel, Menu or AddonPreferences class) as Blender would; returns the recording."""
    recording = Recording(bpy)
    poll = getattr(cls, "poll", None)
    if poll is not None and not poll(context):
        return recording
    drawer = DrawingSelf(cls, cls if target is None else target, RecordingLayout(recording))
    if "draw_header" in vars(cls):
        cls.draw_header(drawer, context)
    cls.draw(drawer, context)
    return recording
