"""The interactive path of Fit and Re-extract: ``invoke``, then ``modal`` driven by timer events and Esc,
with the real worker.

Headless Blender has no event loop, and it runs ``execute`` for 'INVOKE_DEFAULT' (a background window
has no event state); it makes operator instances only inside its own calls, and keeps none afterwards
(``window_manager.operators`` stays empty). So the test is the event loop: it calls the operator class's
own ``invoke`` and ``modal`` with stand-in events, on a stand-in operator that holds the values of the
operator's RNA properties and records ``report``, and with bpy.context whose window manager keeps the
modal handler (the window and the timers are Blender's own)."""

from __future__ import annotations

import inspect
import time
import types

import numpy as np
import pytest
from headless import mesh_arrays
from test_blender import jobs_left, scene_state, worker_processes
from test_ui import draw_everything

from inr_worker import protocol

LONG = 1_000_000  # training steps that never end within a test
FIT = {"resolution": 16, "preset": "FAST", "steps": 60}


class WindowManager:
    """The window manager as the operator sees it: Blender's timers and windows, and the modal
    handler kept here, since nothing headless would send events to one added to a window."""

    def __init__(self, real) -> None:
        self.real, self.handlers, self.timers = real, [], []

    def event_timer_add(self, time_step: float, window=None):
        timer = self.real.event_timer_add(time_step, window=window)
        self.timers.append(timer)
        return timer

    def event_timer_remove(self, timer) -> None:
        self.timers.remove(timer)
        self.real.event_timer_remove(timer)

    def modal_handler_add(self, operator) -> bool:
        self.handlers.append(operator)
        return True

    @property
    def windows(self):
        return self.real.windows


class Context:
    """bpy.context with a window and that window manager; everything else is bpy.context's."""

    def __init__(self, bpy) -> None:
        self._context = bpy.context
        self.window = bpy.context.window_manager.windows[0]
        self.window_manager = WindowManager(bpy.context.window_manager)

    def __getattr__(self, name: str):
        return getattr(self._context, name)


def event(kind: str, value: str = "NOTHING") -> types.SimpleNamespace:
    return types.SimpleNamespace(type=kind, value=value)


class Operator:
    """An instance of operator class ``cls`` as Blender would pass it: the class's own functions bound
    to it, the RNA properties at their defaults (only names that the operator's RNA has can be set),
    and ``report`` recorded."""

    def __init__(self, bpy, idname: str) -> None:
        module, _, name = idname.partition(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        properties = {p.identifier: getattr(p, "default", None) for p in rna.properties if p.identifier != "rna_type"}
        self.__dict__.update(cls=getattr(bpy.types, rna.identifier), rna=rna, reports=[], **properties)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_"):  # the operator's own state (_job, _timer) is not RNA
            assert name in self.rna.properties, f"{self.rna.identifier} has no {name!r}"
            if self.rna.properties[name].type == "ENUM":
                assert value in self.rna.properties[name].enum_items, f"{name}={value!r}"
        self.__dict__[name] = value

    def __getattr__(self, name: str):
        attribute = inspect.getattr_static(self.cls, name)
        if isinstance(attribute, types.FunctionType):
            return types.MethodType(attribute, self)
        return getattr(self.cls, name)

    def report(self, kind: set[str], message: str) -> None:
        self.reports.append((next(iter(kind)), message))


def select_only(bpy, obj) -> None:
    for other in bpy.context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def run_modal(operator, context, until=None, timeout: float = 300.0):
    """Send timer events (every 0.1 s, as the operator's timer asks) until ``modal`` ends or ``until()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = operator.modal(context, event("TIMER"))
        if result != {"PASS_THROUGH"}:
            return result
        if until is not None and until():
            return result
        time.sleep(0.1)
    raise AssertionError("the modal operator did not end")


def invoke(bpy, operator, **properties):
    for name, value in properties.items():
        setattr(operator, name, value)
    context = Context(bpy)
    assert operator.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
    assert context.window_manager.handlers == [operator] and len(context.window_manager.timers) == 1
    return context


def press(bpy, button) -> set[str]:
    """Run a recorded operator button as a click would: its operator, with the properties the panel set."""
    module, _, name = button.args["operator"].partition(".")
    return getattr(getattr(bpy.ops, module), name)(**button.properties)


def surface(obj) -> tuple:
    vertices, triangles = mesh_arrays(obj)
    return vertices, triangles, np.array(obj.matrix_world)


def stored_field(data: bytes) -> tuple[dict, dict]:
    """A field file's tensors and metadata, less the timings it records."""
    tensors, metadata = protocol.read_safetensors(data)
    content = {name: (dtype, shape, bytes(raw)) for name, (dtype, shape, raw) in tensors.items()}
    return content, {key: value for key, value in metadata.items() if not key.endswith("_s")}


@pytest.fixture(scope="module")
def fitted(addon, tmp_path_factory):
    """A .blend with an Icosphere and ``synchronous``, its fit by the synchronous path (one fit for the module)."""
    bpy = addon
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2, location=(1, 2, 3))
    assert bpy.ops.inr.fit_mesh(**FIT) == {"FINISHED"}
    bpy.context.active_object.name = "synchronous"
    path = tmp_path_factory.mktemp("modal") / "fitted.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def open_fitted(bpy, path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return bpy.data.objects["Icosphere"], bpy.data.objects["synchronous"]


def test_modal_fit_applies_like_the_synchronous_fit_reports_progress_and_undoes(fitted):
    bpy = pytest.importorskip("bpy")
    source, synchronous = open_fitted(bpy, fitted)
    expected, expected_field = surface(synchronous), stored_field(synchronous["_inr_field"])
    select_only(bpy, source)
    bpy.ops.ed.undo_push(message="before the modal fit")
    objects_before = {obj.name for obj in bpy.data.objects}

    operator = Operator(bpy, "inr.fit_mesh")
    context = invoke(bpy, operator, **FIT)
    drawn = []

    def draw_while_running() -> bool:
        drawn.append(draw_everything(bpy))
        return False

    assert run_modal(operator, context, until=draw_while_running) == {"FINISHED"}
    assert context.window_manager.timers == []
    assert drawn, "the job ended before the panel was drawn"
    for panel in drawn:
        (cancel,) = panel.operators("inr.cancel")
        assert cancel.enabled and cancel.properties == {"object_name": source.name}
        assert len(panel.of("progress")) == 1 and not panel.operators("inr.fit_mesh")
    assert [kind for kind, _ in operator.reports] == ["INFO"]

    result = bpy.context.active_object
    assert {obj.name for obj in bpy.data.objects} - objects_before == {result.name}
    assert result.name == source.name + "_inr" and result.select_get() and not source.select_get()
    assert result.users_collection[0] == source.users_collection[0]
    for got, want in zip(surface(result), expected, strict=True):
        assert np.array_equal(got, want)
    assert stored_field(result["_inr_field"]) == expected_field
    assert (result["inr_source"], result["inr_preset"], result["inr_resolution"]) == (source.name, "FAST", 16)
    assert not worker_processes() and not jobs_left(bpy)

    finished = draw_everything(bpy)  # the finished job: its field object, active
    assert any(button.enabled for button in finished.operators("inr.extract_mesh"))
    assert any(f"Field of {source.name}" in text for text in finished.texts())

    # Blender pushes an undo step when an operator with the UNDO option finishes from its event
    # handler; headless, the test is that handler, so it pushes the step as Blender would.
    assert "UNDO" in operator.bl_options
    bpy.ops.ed.undo_push(message=operator.bl_label)
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert {obj.name for obj in bpy.data.objects} == objects_before


def test_esc_cancels_a_modal_fit_within_2_s_and_changes_nothing(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    bystander = bpy.context.active_object
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=1)
    source = bpy.context.active_object
    before = scene_state(bpy)
    operator = Operator(bpy, "inr.fit_mesh")
    context = invoke(bpy, operator, resolution=16, preset="FAST", steps=LONG)
    panels = []

    def training() -> bool:
        panels.append(draw_everything(bpy))
        return any(progress.args["factor"] > 0 for progress in panels[-1].of("progress"))

    assert run_modal(operator, context, until=training) == {"PASS_THROUGH"}
    (progress,) = panels[-1].of("progress")
    assert progress.args["text"].startswith("Training ") and f"/{LONG}" in progress.args["text"]
    assert panels[-1].operators("inr.cancel")[0].properties == {"object_name": "Icosphere"}
    select_only(bpy, bystander)  # another object active: the job is listed with its own cancel button
    (other,) = draw_everything(bpy).operators("inr.cancel")
    assert other.args["icon"] == "X" and other.properties == {"object_name": "Icosphere"}
    select_only(bpy, source)

    start = time.monotonic()
    assert operator.modal(context, event("ESC", "PRESS")) == {"CANCELLED"}
    assert time.monotonic() - start < 2.0
    assert operator.reports == [("WARNING", "Fit cancelled")]
    assert context.window_manager.timers == []
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)
    idle = draw_everything(bpy)
    assert idle.operators("inr.fit_mesh") and not idle.operators("inr.cancel")


def test_modal_reextract_applies_like_the_synchronous_one_and_esc_keeps_the_mesh(fitted):
    bpy = pytest.importorskip("bpy")
    _, target = open_fitted(bpy, fitted)
    select_only(bpy, target)
    fitted = surface(target)
    assert bpy.ops.inr.extract_mesh(resolution=20) == {"FINISHED"}
    expected = surface(target)
    assert len(expected[0]) != len(fitted[0])
    target.data.clear_geometry()
    target["inr_resolution"] = 0

    operator = Operator(bpy, "inr.extract_mesh")
    context = invoke(bpy, operator, resolution=20)
    assert run_modal(operator, context) == {"FINISHED"}
    for got, want in zip(surface(target), expected, strict=True):
        assert np.array_equal(got, want)
    assert target["inr_resolution"] == 20

    before = scene_state(bpy)
    context = invoke(bpy, operator, resolution=32)
    start = time.monotonic()
    assert operator.modal(context, event("ESC", "PRESS")) == {"CANCELLED"}
    assert time.monotonic() - start < 2.0
    assert operator.reports[-1] == ("WARNING", "Re-extract cancelled")
    assert scene_state(bpy) == before and target["inr_resolution"] == 20
    for got, want in zip(surface(target), expected, strict=True):
        assert np.array_equal(got, want)
    assert not worker_processes() and not jobs_left(bpy)

    context = invoke(bpy, operator, resolution=32)  # the panel's Cancel button instead of Esc
    (cancel,) = draw_everything(bpy).operators("inr.cancel")
    assert press(bpy, cancel) == {"FINISHED"}
    assert run_modal(operator, context) == {"CANCELLED"}
    assert operator.reports[-1] == ("WARNING", "Re-extract cancelled")
    assert scene_state(bpy) == before and context.window_manager.timers == []
    assert not worker_processes() and not jobs_left(bpy)
