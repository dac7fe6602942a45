"""A fitted field on disk: weights, shape and unit frame in one safetensors file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from . import protocol
from .model import FieldConfig, NeuralField
from .sampling import UnitFrame

_NUMPY_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


@dataclasses.dataclass
class StoredField:
    """A field with what is needed to place its surface back in the mesh's coordinates."""

    model: NeuralField
    frame: UnitFrame
    low: np.ndarray  # bounding box of the source mesh, unit frame
    high: np.ndarray
    info: dict[str, str]


def save_field(path: Path, field: StoredField) -> None:
    """Write the field; feature grids as float16, the MLP as float32."""
    tensors = {}
    for name, value in field.model.state_dict().items():
        array = value.detach().cpu().numpy()
        dtype = "F16" if name.startswith("grids.") else "F32"
        array = np.ascontiguousarray(array.astype(_NUMPY_DTYPES[dtype]).newbyteorder("<"))
        tensors[name] = (dtype, tuple(array.shape), array.tobytes())
    for name, array in (
        ("frame.centre", field.frame.centre),
        ("frame.scale", np.array([field.frame.scale])),
        ("bounds.low", field.low),
        ("bounds.high", field.high),
    ):
        tensors[name] = ("F64", tuple(np.shape(array)), np.asarray(array, "<f8").tobytes())
    metadata = {
        "format": protocol.FIELD_FORMAT,
        "format_version": str(protocol.FIELD_FORMAT_VERSION),
        "field_config": json.dumps(dataclasses.asdict(field.model.config)),
        **field.info,
    }
    protocol.write_safetensors(path, tensors, metadata)


def load_field(path: Path) -> StoredField:
    """Read a field written by :func:`save_field`; raises ProtocolError if it is not one."""
    data = path.read_bytes()
    metadata = protocol.check_field(data)
    tensors, _ = protocol.read_safetensors(data)
    try:
        arrays = {
            name: np.frombuffer(raw, dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
            for name, (dtype, shape, raw) in tensors.items()
        }
        raw_config = json.loads(metadata["field_config"])
        config = FieldConfig(**{**raw_config, "grid_resolutions": tuple(raw_config["grid_resolutions"])})
        model = NeuralField(config)
        state = {name: torch.from_numpy(arrays[name].astype(np.float32)) for name in model.state_dict()}
        model.load_state_dict(state)
        frame = UnitFrame(centre=arrays["frame.centre"].astype(np.float64), scale=float(arrays["frame.scale"][0]))
        low, high = arrays["bounds.low"].astype(np.float64), arrays["bounds.high"].astype(np.float64)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise protocol.ProtocolError(f"the stored field is damaged ({error}); re-fit this object") from error
    info = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "field_config")}
    return StoredField(model=model.eval(), frame=frame, low=low, high=high, info=info)
