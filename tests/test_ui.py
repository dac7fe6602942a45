"""The sidebar panel and the preferences drawn in the states a user reaches without a job running,
against a recording layout that checks every property, operator and icon name against Blender's RNA.
(The running, finished and cancelled job states are drawn by test_modal.py, which runs those jobs.)"""

from __future__ import annotations

import sys

import pytest
from conftest import SHARED
from layout_recording import Recording, draw
from test_blender import ADDON, scene_state

IMAGES = SHARED / "data" / "images"


def addon_classes(bpy, base: type) -> list[type]:
    return [cls for cls in sys.modules[ADDON].classes if issubclass(cls, base)]


def draw_everything(bpy) -> Recording:
    """Every panel and menu of the add-on and its preferences, drawn in the current state; fails on
    any name that Blender does not know. Returns what the panels drew, together."""
    context = bpy.context
    preferences = context.preferences.addons[ADDON].preferences
    panels = [draw(bpy, cls, context) for cls in addon_classes(bpy, bpy.types.Panel)]
    others = [draw(bpy, cls, context) for cls in addon_classes(bpy, bpy.types.Menu)]
    others.append(draw(bpy, type(preferences), context, target=preferences))
    errors = [error for recording in panels + others for error in recording.errors]
    assert not errors, errors
    assert any(recording.items for recording in others[-1:]), "the preferences drew nothing"
    combined = Recording(bpy)
    combined.items = [item for recording in panels for item in recording.items]
    return combined


def test_the_recording_layout_catches_misspelled_names(addon):
    bpy = addon

    class Misspelled:
        def draw(self, context) -> None:
            settings = context.scene.inr_settings
            self.layout.prop(settings, "resolutoin")
            self.layout.operator("inr.fit_mseh", icon="MESH_MONKEY")
            self.layout.operator("inr.fit_mesh", icon="MONKEY_MESH").presett = "FAST"
            self.layout.operator("inr.fit_mesh").preset = "HUGE"
            self.layout.label(txt="Fit")
            self.layout.row().enabeld = False
            self.layout.colum()

    errors = draw(bpy, Misspelled, bpy.context).errors
    assert len(errors) == 8, errors
    for name in ("resolutoin", "inr.fit_mseh", "MONKEY_MESH", "presett", "HUGE", "txt", "enabeld", "colum"):
        assert any(name in error for error in errors), (name, errors)


def test_nothing_selected(scene):
    bpy = pytest.importorskip("bpy")
    panel = draw_everything(bpy)
    assert panel.operators("inr.fit_mesh") and not panel.operators("inr.cancel")
    assert not any(button.enabled for button in panel.operators("inr.extract_mesh"))  # no field to re-extract


def test_a_mesh_then_several_selected(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    settings = scene.inr_settings
    settings.preset, settings.resolution, settings.learned = "FAST", 64, True
    panel = draw_everything(bpy)
    (fit,) = panel.operators("inr.fit_mesh")
    assert fit.enabled and fit.properties == {"preset": "FAST", "resolution": 64, "learned": True}
    assert [item.args["property"] for item in panel.of("prop")][:3] == ["preset", "resolution", "learned"]
    assert not any(button.enabled for button in panel.operators("inr.extract_mesh"))

    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    bpy.data.objects["Suzanne"].select_set(True)
    assert len(bpy.context.selected_objects) == 2
    assert draw_everything(bpy).operators("inr.fit_mesh")[0].enabled


def test_an_image_empty(scene):
    bpy = pytest.importorskip("bpy")
    image = bpy.data.images.load(str(IMAGES / "camera.png"))
    empty = bpy.data.objects.new("Reference", None)
    empty.empty_display_type, empty.data = "IMAGE", image
    scene.collection.objects.link(empty)
    empty.select_set(True)
    bpy.context.view_layer.objects.active = empty
    panel = draw_everything(bpy)
    assert panel.operators("inr.fit_image") and not panel.operators("inr.fit_mesh")  # the image's Fit only


def test_file_import_offers_field_files(addon):
    bpy = addon
    module = sys.modules[ADDON]
    assert module.panel.draw_import_menu in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    menu = draw(bpy, type("ImportMenu", (), {"draw": module.panel.draw_import_menu}), bpy.context)
    assert not menu.errors and len(menu.items) == len(menu.operators("inr.import_field")) == 1


def test_a_failed_job(scene, tmp_path):
    """A worker that exits at once: the error is reported, and the panel and preferences draw as before."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    preferences = bpy.context.preferences.addons[ADDON].preferences
    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'no worker here' >&2\nexit 3\n")
    failing.chmod(0o755)
    preferences.python_path = str(failing)
    try:
        before = scene_state(bpy)
        with pytest.raises(RuntimeError, match="exited with status 3: no worker here"):
            bpy.ops.inr.fit_mesh(resolution=32)
        assert scene_state(bpy) == before
        panel = draw_everything(bpy)
        assert panel.operators("inr.fit_mesh")[0].enabled and not panel.operators("inr.cancel")
    finally:
        preferences.python_path = ""
