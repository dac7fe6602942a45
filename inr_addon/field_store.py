"""The fitted field, stored inside the .blend as a hidden bytes property of its object."""

from __future__ import annotations

import json

import bpy

from .inr_worker import protocol

FIELD_KEY = "_inr_field"  # a leading underscore hides it from the Custom Properties panel
FACTOR_KEY = "inr_factor"  # a morph's factor: the sidebar's slider edits it, re-extraction applies it
COMPOSITE_KEY = protocol.COMPOSITE_KEY


def has_field(obj: bpy.types.Object | None) -> bool:
    return obj is not None and FIELD_KEY in obj.keys()  # noqa: SIM118 (the stubs give ID no __contains__)


def read_field(obj: bpy.types.Object) -> bytes:
    """The object's field file bytes; raises ProtocolError with a "re-fit" message if unusable."""
    data = obj.get(FIELD_KEY)
    if not isinstance(data, bytes):
        raise protocol.ProtocolError(f"{obj.name} has no fitted field; fit it with Neural Field > Fit first")
    protocol.check_field(data)
    return data


def write_field(obj: bpy.types.Object, data: bytes, source_name: str, preset: str, resolution: int) -> None:
    obj[FIELD_KEY] = data
    obj["inr_source"] = source_name
    obj["inr_preset"] = preset
    obj["inr_resolution"] = resolution


def is_morph(obj: bpy.types.Object | None) -> bool:
    return obj is not None and has_field(obj) and FACTOR_KEY in obj.keys()  # noqa: SIM118 - the stubs give ID no `in`


def with_factor(data: bytes, factor: float) -> bytes:
    """A morph's field bytes with another factor; nothing else changes."""
    metadata = protocol.check_field(data)
    if COMPOSITE_KEY not in metadata:
        raise protocol.ProtocolError("the factor applies only to a morph")
    settings = json.loads(metadata[COMPOSITE_KEY])
    if settings.get("kind") != "MORPH":
        raise protocol.ProtocolError("the factor applies only to a morph")
    settings["factor"] = float(factor)
    return protocol.replace_metadata(data, {**metadata, COMPOSITE_KEY: json.dumps(settings)})


def read_current_field(obj: bpy.types.Object) -> bytes:
    """The object's field bytes as its settings stand now (a morph at its slider's factor)."""
    data = read_field(obj)
    return with_factor(data, float(obj[FACTOR_KEY])) if is_morph(obj) else data


def write_composite(obj: bpy.types.Object, data: bytes, description: str, resolution: int) -> None:
    """Store a composite field (combine, offset, morph); a morph also gets its factor slider."""
    if FIELD_KEY in obj.keys():  # noqa: SIM118 - the stubs give ID no `in`
        del obj[FIELD_KEY]  # assigning bytes over a bytes property keeps only what precedes the first zero byte
    obj[FIELD_KEY] = data
    obj["inr_source"] = description
    obj["inr_preset"] = "modelling"
    obj["inr_resolution"] = resolution
    settings = json.loads(protocol.check_field(data)[COMPOSITE_KEY])
    if settings["kind"] == "MORPH":
        obj[FACTOR_KEY] = float(settings["factor"])
        obj.id_properties_ui(FACTOR_KEY).update(  # type: ignore[attr-defined]  # the stubs say it returns None
            min=0.0, max=1.0, soft_min=0.0, soft_max=1.0, step=5
        )
