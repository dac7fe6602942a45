"""The sidebar panel and the preferences drawn in the states a user reaches without a job running,
against a recording layout that checks every property, operator and icon name against Blender's RNA.
(The running, finished and cancelled job states are drawn by test_modal.py, which runs those jobs.)"""

from __future__ import annotations

import re
import sys

import numpy as np
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
    settings.preset, settings.resolution, settings.learned, settings.surface = "FAST", 64, True, "QUADS"
    settings.adaptivity = 0.25
    panel = draw_everything(bpy)
    (fit,) = panel.operators("inr.fit_mesh")
    assert fit.enabled and fit.properties == {
        "preset": "FAST",
        "resolution": 64,
        "selection": "SELECTED",
        "learned": True,
        "surface": "QUADS",
        "adaptivity": 0.25,
    }
    properties = ["preset", "resolution", "surface", "adaptivity", "learned"]
    assert [item.args["property"] for item in panel.of("prop")][:5] == properties
    assert all(button.properties["surface"] == "QUADS" for button in panel.operators("inr.extract_mesh"))
    assert all(button.properties["adaptivity"] == 0.25 for button in panel.operators("inr.extract_mesh"))
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


# --- Words for artists: what was fitted, what a resolution costs, why a button is greyed out -----------------

WORDS_FOR_DEVELOPERS = ("Marching-cubes", "marching cubes", "Training steps", "for blocking out", "Use AUTO")


def drawn_settings(bpy, recording: Recording) -> list:
    """The RNA property of every setting that the recording drew with ``prop``."""
    found = []
    for item in recording.of("prop"):
        data, name = item.args["data"], item.args["property"]
        data = getattr(data, "target", data)
        if not name.startswith('["'):
            found.append(data.bl_rna.properties[name])
    return found


def why_greyed(recording: Recording) -> dict[str, str | None]:
    """Each greyed-out button's operator and the label drawn right after it (None if none)."""
    reasons = {}
    for index, item in enumerate(recording.items):
        if item.kind == "operator" and not item.enabled:
            after = recording.items[index + 1] if index + 1 < len(recording.items) else None
            reasons[item.args["operator"]] = after.args.get("text") if after and after.kind == "label" else None
    return reasons


@pytest.fixture(scope="module")
def monkey_fit(addon, tmp_path_factory):
    """A .blend with Suzanne and its fit at 64 (FAST), and the size the panel promised before the fit."""
    bpy = addon
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add()
    settings = bpy.context.scene.inr_settings
    settings.preset, settings.resolution = "FAST", 64
    promised = [text for text in draw_everything(bpy).texts() if text.startswith("Fit: About")]
    assert bpy.ops.inr.fit_mesh(preset="FAST", resolution=64) == {"FINISHED"}
    path = tmp_path_factory.mktemp("ui") / "monkey.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path, promised


def test_settings_speak_to_artists(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    panel = draw_everything(bpy)
    preferences = bpy.context.preferences.addons[ADDON].preferences
    fit_rna = bpy.ops.inr.fit_mesh.get_rna_type().properties
    scene = bpy.context.scene
    settings = [drawn_settings(bpy, panel), preferences.bl_rna.properties, fit_rna]
    settings += [
        group.bl_rna.properties for group in (scene.inr_settings, scene.inr_modelling, scene.inr_image_settings)
    ]
    settings += [getattr(bpy.ops.inr, name).get_rna_type().properties for name in ("extract_mesh", "import_field")]
    texts = [prop.description for props in settings for prop in props if prop.identifier != "rna_type"]
    texts += [item.description for props in settings for prop in props for item in getattr(prop, "enum_items", [])]
    for text in texts:
        assert not any(words in text for words in WORDS_FOR_DEVELOPERS), text
    assert all(item.args.get("text") != "" for item in panel.of("prop")), "a setting drawn without its name"
    assert all(not item.description.startswith("Use ") for item in preferences.bl_rna.properties["device"].enum_items)
    modelling = bpy.context.scene.inr_modelling.bl_rna.properties
    assert modelling["blend"].name == "Fillet Radius" and modelling["factor"].name == "Morph Factor"
    assert "cost" in fit_rna["resolution"].description or "faces" in fit_rna["resolution"].description
    labels = [item.args.get("text") for item in panel.items if item.kind in ("label", "prop")]
    for heading, setting in (("Combine", "operation"), ("Offset", "distance"), ("Morph", "factor")):
        assert heading in labels, labels  # each group of settings under its heading
        index = panel.items.index(next(item for item in panel.of("prop") if item.args["property"] == setting))
        assert heading in [item.args.get("text") for item in panel.items[:index] if item.kind == "label"]


def test_greyed_out_buttons_say_why(monkey_fit):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.open_mainfile(filepath=str(monkey_fit[0]))
    result = bpy.data.objects["Suzanne_inr"]
    reasons = why_greyed(draw_everything(bpy))  # one field object, the modelling settings at their defaults
    assert set(reasons) == {"inr.combine", "inr.offset", "inr.morph"}, reasons
    assert all(reasons.values()), reasons
    assert "Distance" in reasons["inr.offset"] and "second object made by Fit" in reasons["inr.combine"]

    bpy.context.scene.inr_modelling.distance = 0.05
    assert "inr.offset" not in why_greyed(draw_everything(bpy))

    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = bpy.data.objects["Suzanne"]  # a source, not a field
    reasons = why_greyed(draw_everything(bpy))
    assert {"inr.combine", "inr.offset", "inr.morph", "inr.extract_mesh"} <= set(reasons), reasons
    assert all(reasons.values()), reasons
    assert "Suzanne was not made by Fit" in reasons["inr.offset"]

    bpy.context.view_layer.objects.active = None
    reasons = why_greyed(draw_everything(bpy))
    assert reasons["inr.fit_mesh"] == "Fit: no active object; select a mesh or a point cloud"
    del result


def test_the_panel_says_what_a_resolution_will_cost(monkey_fit):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.open_mainfile(filepath=str(monkey_fit[0]))
    result = bpy.data.objects["Suzanne_inr"]
    made = len(result.data.polygons)
    (promised,) = monkey_fit[1]  # drawn before the fit: "Fit: About 20k triangles, 0.44 MB in the .blend"
    count = re.search(r"About ([\d.,]+)(k|M)? triangles", promised)
    estimate = float(count.group(1).replace(",", "")) * {"k": 1e3, "M": 1e6, None: 1}[count.group(2)]
    assert 0.75 < estimate / made < 1.33, (promised, made)

    settings = bpy.context.scene.inr_settings
    settings.resolution = 512  # the field object is active: what Re-extract would make
    texts = [item for item in draw_everything(bpy).of("label") if item.args["text"].startswith("Re-extract: About")]
    assert len(texts) == 1 and texts[0].args["icon"] == "ERROR", [item.args for item in texts]
    assert f"{made * 64 / 1e6:.2g}M triangles" in texts[0].args["text"]


def test_fit_names_every_object_it_fuses(scene):
    from test_modal import Operator

    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    bpy.ops.mesh.primitive_monkey_add()  # active, with the Cube still selected
    bpy.data.objects["Cube"].select_set(True)
    settings = bpy.context.scene.inr_settings
    settings.preset, settings.resolution = "FAST", 24
    panel = draw_everything(bpy)
    (fit,) = panel.operators("inr.fit_mesh")
    assert fit.args["text"] == "Fit 2 Objects as One" and fit.properties["selection"] == "SELECTED"
    before_fit = panel.items[: panel.items.index(fit)]
    assert before_fit[-1].kind == "prop" and before_fit[-1].args["property"] == "selection"

    operator = Operator(bpy, "inr.fit_mesh")
    operator.resolution, operator.preset = 24, "FAST"
    assert operator.execute(bpy.context) == {"FINISHED"}
    assert operator.reports[-1][0] == "INFO"
    assert operator.reports[-1][1].startswith("Fitted 2 objects as one: Suzanne, Cube; Suzanne_inr has"), (
        operator.reports
    )


def test_a_camera_active_with_meshes_selected_fits_the_meshes(scene):
    from test_modal import Operator

    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    bpy.ops.object.camera_add(location=(0, -5, 0))  # active, Suzanne still selected
    bpy.data.objects["Suzanne"].select_set(True)
    assert bpy.context.active_object.name == "Camera"
    assert draw_everything(bpy).operators("inr.fit_mesh")[0].enabled

    operator = Operator(bpy, "inr.fit_mesh")
    operator.resolution, operator.preset = 24, "FAST"
    assert operator.execute(bpy.context) == {"FINISHED"}
    assert (
        next(message for _, message in operator.reports)
        == "Fitting Suzanne; Camera is not used (not a mesh or a point cloud)"
    )
    assert bpy.context.active_object.name == "Suzanne_inr"
    assert np.allclose(
        np.array(bpy.context.active_object.matrix_world), np.array(bpy.data.objects["Suzanne"].matrix_world)
    )
