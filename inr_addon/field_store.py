"""The fitted field, stored inside the .blend as a hidden bytes property of its object."""

from __future__ import annotations

import bpy

from .inr_worker import protocol

FIELD_KEY = "_inr_field"  # a leading underscore hides it from the Custom Properties panel


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
