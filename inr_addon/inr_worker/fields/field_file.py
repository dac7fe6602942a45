"""A fitted field on disk: the band's bricks, the inside bits, shape and unit frame in one safetensors file.

Everything is checked against the stored shape (:func:`protocol.check_field`) before anything is
allocated, so what a field makes the worker allocate is bounded by its own bytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .. import protocol
from ..sources.sampling import UnitFrame
from .band_field import BandField, FieldConfig
from .colour_field import Colours, read_colours
from .learned_band import LearnedBandField, ResidualConfig, level_keys

_NUMPY_DTYPES = {
    "I8": np.int8,
    "I16": np.int16,
    "U8": np.uint8,
    "U16": np.uint16,
    "I32": np.int32,
    "F32": np.float32,
    "F64": np.float64,
}


@dataclasses.dataclass
class StoredField:
    """A field with what is needed to place its surface back in the mesh's coordinates."""

    model: BandField  # or a LearnedBandField (the band plus a learned residual)
    frame: UnitFrame
    low: np.ndarray  # bounding box of the source mesh, unit frame
    high: np.ndarray
    info: dict[str, str]
    colours: Colours | None = None  # the source's colours, where it had any
    creases: np.ndarray | None = None  # the source mesh's sharp edges, segments (E, 2, 3) in the unit frame


def save_field(path: Path, field: StoredField) -> None:
    """Write the field: band values as int16, brick keys as int32, inside bits packed."""
    arrays = {
        **field.model.stored_arrays(),
        "frame.centre": np.asarray(field.frame.centre, np.float64),
        "frame.scale": np.array([field.frame.scale], np.float64),
        "bounds.low": np.asarray(field.low, np.float64),
        "bounds.high": np.asarray(field.high, np.float64),
    }
    if field.creases is not None:
        arrays[protocol.CREASES] = np.asarray(field.creases, np.float32)
    colour_metadata = {}
    if field.colours is not None:
        arrays.update(field.colours.stored_arrays())
        colour_metadata = field.colours.metadata()
    dtypes = {np.dtype(value): name for name, value in _NUMPY_DTYPES.items()}
    tensors = {
        name: (
            dtypes[array.dtype],
            tuple(array.shape),
            np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(),
        )
        for name, array in arrays.items()
    }
    metadata = {
        "format": protocol.FIELD_FORMAT,
        "format_version": str(protocol.FIELD_FORMAT_VERSION),
        "field_config": json.dumps(dataclasses.asdict(field.model.config)),
        **field.info,
        **colour_metadata,
    }
    if isinstance(field.model, LearnedBandField):
        metadata[protocol.FIELD_KIND_KEY] = protocol.LEARNED_KIND
        metadata[protocol.RESIDUAL_CONFIG_KEY] = json.dumps(dataclasses.asdict(field.model.residual))
    protocol.write_safetensors(path, tensors, metadata)


def load_field(path: Path) -> StoredField:
    """Read a field written by :func:`save_field`; raises ProtocolError (saying to re-fit) if it is not one."""
    data = path.read_bytes()
    metadata = protocol.check_field(data)
    tensors, _ = protocol.read_safetensors(data)
    arrays = {
        name: np.frombuffer(raw, dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
        for name, (dtype, shape, raw) in tensors.items()
    }
    config = FieldConfig(**json.loads(metadata["field_config"]))
    keys = arrays["brick_keys"]
    if len(keys) and (keys[0] < 0 or keys[-1] >= config.bricks_per_side**3 or (np.diff(keys) <= 0).any()):
        raise protocol.ProtocolError(
            "the stored field is damaged (brick keys out of order or range); re-fit this object"
        )
    scale = float(arrays["frame.scale"][0])
    numbers = np.concatenate([arrays[name] for name in ("frame.centre", "frame.scale", "bounds.low", "bounds.high")])
    if not np.isfinite(numbers).all() or not scale > 0:
        raise protocol.ProtocolError("the stored field is damaged (its frame is not finite); re-fit this object")
    model = _model_of(config, metadata, arrays)
    creases = arrays.get(protocol.CREASES)
    if creases is not None and not np.isfinite(creases).all():
        raise protocol.ProtocolError("the stored field is damaged (its sharp edges are not finite); re-fit this object")
    frame = UnitFrame(centre=arrays["frame.centre"].astype(np.float64), scale=scale)
    low, high = arrays["bounds.low"].astype(np.float64), arrays["bounds.high"].astype(np.float64)
    try:
        colours = read_colours(arrays, metadata, model)
    except ValueError as error:
        raise protocol.ProtocolError(f"the stored field's colours are damaged ({error}); re-fit this object") from error
    skipped = (
        "format",
        "format_version",
        "field_config",
        "colour_codes",
        protocol.FIELD_KIND_KEY,
        protocol.RESIDUAL_CONFIG_KEY,
    )
    info = {k: v for k, v in metadata.items() if k not in skipped}
    return StoredField(model=model.eval(), frame=frame, low=low, high=high, info=info, colours=colours, creases=creases)


def _model_of(config: FieldConfig, metadata: dict[str, str], arrays: dict[str, np.ndarray]) -> BandField:
    """The stored band, or the band with its learned residual (its levels' bricks checked against the band's)."""
    if metadata.get(protocol.FIELD_KIND_KEY) != protocol.LEARNED_KIND:
        return BandField.from_stored(config, arrays)
    stored = json.loads(metadata[protocol.RESIDUAL_CONFIG_KEY])
    residual = ResidualConfig(
        level_cells=tuple(stored["level_cells"]), channels=tuple(stored["channels"]), hidden=stored["hidden"]
    )
    for number, cells in enumerate(residual.level_cells):
        expected = len(level_keys(arrays["brick_keys"].astype(np.int64), config.bricks_per_side, cells))
        if len(arrays[f"residual.level{number}"]) != expected:
            raise protocol.ProtocolError(
                "the stored field is damaged (its learned residual does not match its band); re-fit this object"
            )
    if not all(np.isfinite(array).all() for name, array in arrays.items() if name.startswith("residual.")):
        raise protocol.ProtocolError("the stored field is damaged (its learned residual is not finite); re-fit it")
    return LearnedBandField.from_arrays(config, residual, arrays)
