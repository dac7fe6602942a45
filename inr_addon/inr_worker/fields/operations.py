"""Modelling with fitted fields: booleans with a rounded blend, offset and shell, and morph.

A *composite* field is an operation over placed input fields (each with the 4x4 transform from
its own object space into the result's). It evaluates in its own unit frame, so the extractor
meshes it like a fitted field, and it stands alone: its file embeds each input's field file
(leaf or composite, nested) as bytes.

Distances are converted between frames with the frame scales and, for transforms that are not
rigid, the smallest singular value of the input's placement: the converted value never exceeds
the true distance, which is what the extractor's pruning needs. Every field only knows distances
up to its truncation, so blends and offsets must stay below it.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import igl
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .. import protocol
from ..sources.sampling import UnitFrame
from .band_field import TRUNCATION
from .field_file import StoredField, load_field

COMPOSITE_KEY = protocol.COMPOSITE_KEY
BOOLEANS = ("UNION", "DIFFERENCE", "INTERSECT")
KINDS = (*BOOLEANS, "OFFSET", "MORPH")
BURIED_WINDING = 0.75  # a face whose centre has a larger winding number against the other parts is inside them
SPLIT_DIVISIONS = 64  # before that test, triangles are split until no edge exceeds this share of the size
MAX_SPLITS = 8
MORPH_TIE_BREAK = 0.05  # a morph leans outside by this share of the inputs' reach: opposite plateaus must not cancel
MORPH_ISLAND_SHARE = 0.01  # a morph drops closed pieces and bubbles under this share of its largest solid's volume
USABLE_TRUNCATION = 0.8  # blends and offsets may use this share of what the fields know


class OperationError(ValueError):
    """An operation that cannot be carried out; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Operation:
    """What to do with the inputs. Lengths are in the result object's space (world units)."""

    kind: str
    blend: float = 0.0  # rounded-blend radius of the booleans; 0 is sharp
    distance: float = 0.0  # offset: > 0 grows, < 0 shrinks
    shell: float = 0.0  # offset: > 0 hollows into a wall this thick
    factor: float = 0.5  # morph: 0 the first input, 1 the second

    def check(self, inputs: int) -> None:
        if self.kind not in KINDS:
            raise OperationError(f"unknown operation {self.kind!r}; expected one of {', '.join(KINDS)}")
        needed = {"OFFSET": (1, 1), "MORPH": (2, 2)}.get(self.kind, (2, 1 << 30))
        if not needed[0] <= inputs <= needed[1]:
            count = "one field" if needed == (1, 1) else "two fields" if needed == (2, 2) else "two or more fields"
            raise OperationError(f"{self.kind.lower()} needs {count}, got {inputs}")
        if not all(np.isfinite([self.blend, self.distance, self.shell, self.factor])):
            raise OperationError("the settings must be finite numbers")
        if self.blend < 0 or self.shell < 0:
            raise OperationError("blend and shell must be 0 or more")
        if self.kind == "OFFSET" and self.distance == 0 and self.shell == 0:
            raise OperationError("nothing to do: set an offset distance or a shell thickness")
        if self.kind == "MORPH" and not 0.0 <= self.factor <= 1.0:
            raise OperationError(f"the morph factor {self.factor:g} is outside 0 to 1")


@dataclasses.dataclass
class PlacedInput:
    """An input field, its file bytes and its placement (input object space -> result space)."""

    data: bytes
    field: Any  # StoredField or CompositeField
    placement: np.ndarray  # (4, 4)


@dataclasses.dataclass
class CompositeField:
    """Duck-types StoredField (model, frame, low, high, info) for the extractor and the job runner."""

    operation: Operation
    inputs: list[PlacedInput]
    model: CompositeModel
    frame: UnitFrame
    low: np.ndarray
    high: np.ndarray
    info: dict[str, str]


def truncation_of(field: Any) -> float:
    """Largest distance (unit frame) that the field's values are known up to."""
    return float(getattr(field.model, "truncation", TRUNCATION))


def _smallest_singular_value(matrix: np.ndarray) -> float:
    return float(np.linalg.svd(matrix[:3, :3], compute_uv=False).min())


class _PlacedEvaluator:
    """One input seen from the composite's unit frame: an affine map into the input's unit frame
    and a factor that turns its values into composite-unit distances (never larger than the truth)."""

    def __init__(self, placed: PlacedInput, frame: UnitFrame) -> None:
        inverse = np.linalg.inv(placed.placement)
        linear, shift = inverse[:3, :3], inverse[:3, 3]
        source = placed.field.frame
        self.model = placed.field.model
        self.matrix = torch.tensor((frame.scale / source.scale) * linear, dtype=torch.float32)
        self.offset = torch.tensor((linear @ frame.centre + shift - source.centre) / source.scale, dtype=torch.float32)
        self.own_truncation = truncation_of(placed.field)
        self.box_low = torch.tensor(placed.field.low - self.own_truncation, dtype=torch.float32)
        self.box_high = torch.tensor(placed.field.high + self.own_truncation, dtype=torch.float32)
        self.value_scale = source.scale * _smallest_singular_value(placed.placement) / frame.scale
        self.truncation = self.own_truncation * self.value_scale  # composite unit frame

    def to(self, device: torch.device) -> None:
        self.model = self.model.to(device)
        for name in ("matrix", "offset", "box_low", "box_high"):
            setattr(self, name, getattr(self, name).to(device))

    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        local = points @ self.matrix.T + self.offset
        near = ((local >= self.box_low) & (local <= self.box_high)).all(1)
        values = torch.full((len(points),), self.own_truncation, dtype=points.dtype, device=points.device)
        if near.any():
            values[near] = self.model.evaluate(local[near]).to(points.dtype)
        return values.clamp(-self.own_truncation, self.own_truncation) * self.value_scale


def round_union(a: torch.Tensor, b: torch.Tensor, radius: float) -> torch.Tensor:
    """Union of two distance fields; with radius > 0, concave creases get a round fillet of that radius."""
    if radius <= 0:
        return torch.minimum(a, b)
    return torch.clamp(torch.minimum(a, b), min=radius) - torch.hypot(
        torch.clamp(radius - a, min=0), torch.clamp(radius - b, min=0)
    )


def round_intersection(a: torch.Tensor, b: torch.Tensor, radius: float) -> torch.Tensor:
    """Intersection of two distance fields; with radius > 0, convex creases are rounded."""
    return -round_union(-a, -b, radius)


class CompositeModel:
    """The operation as a field: ``evaluate(points)`` in the composite's unit frame, saturating at ``truncation``."""

    def __init__(self, operation: Operation, inputs: list[PlacedInput], frame: UnitFrame) -> None:
        self.operation = operation
        self.parts = [_PlacedEvaluator(placed, frame) for placed in inputs]
        known = min(part.truncation for part in self.parts)
        self.blend = operation.blend / frame.scale
        self.distance = operation.distance / frame.scale
        self.shell = operation.shell / frame.scale
        self.factor = operation.factor
        used = self.blend if operation.kind in BOOLEANS else abs(self.distance) + self.shell
        if operation.kind != "MORPH" and used > USABLE_TRUNCATION * known:
            what = (
                "a blend" if operation.kind in BOOLEANS else "an offset" if not self.shell else "an offset plus shell"
            )
            raise OperationError(
                f"{what} of {used * frame.scale:.4g} is more than these fields know: they hold distances "
                f"up to {USABLE_TRUNCATION * known * frame.scale:.4g} (under a tenth of each source's size)"
            )
        self.truncation = known - (abs(self.distance) + self.shell if operation.kind == "OFFSET" else 0.0)

    def to(self, device: torch.device) -> CompositeModel:
        for part in self.parts:
            part.to(device)
        return self

    @torch.inference_mode()
    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        kind = self.operation.kind
        values = [part.evaluate(points) for part in self.parts]
        if kind == "UNION":
            result = values[0]
            for other in values[1:]:
                result = round_union(result, other, self.blend)
        elif kind == "INTERSECT":
            result = values[0]
            for other in values[1:]:
                result = round_intersection(result, other, self.blend)
        elif kind == "DIFFERENCE":
            tools = values[1]
            for other in values[2:]:
                tools = round_union(tools, other, self.blend)
            result = round_intersection(values[0], -tools, self.blend)
        elif kind == "OFFSET":
            result = values[0] - self.distance
            if self.shell > 0:
                result = torch.maximum(result, -result - self.shell)
        else:  # MORPH: on a common plateau, so that where both fields are saturated the factor decides cleanly
            first, second = (value.clamp(-self.truncation, self.truncation) for value in values)
            lean = MORPH_TIE_BREAK * self.truncation * 4 * self.factor * (1 - self.factor)  # 0 at the inputs
            result = (1 - self.factor) * first + self.factor * second + lean
        return result.clamp(-self.truncation, self.truncation)


def _box_corners(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.array(
        [[(low, high)[i][0], (low, high)[j][1], (low, high)[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    )


def placed_box(placed: PlacedInput) -> tuple[np.ndarray, np.ndarray]:
    """The input's bounding box in the result's space."""
    corners = placed.field.frame.from_unit(_box_corners(placed.field.low, placed.field.high))
    moved = corners @ placed.placement[:3, :3].T + placed.placement[:3, 3]
    return moved.min(0), moved.max(0)


def build(operation: Operation, inputs: list[PlacedInput]) -> CompositeField:
    """The composite field of ``operation`` over ``inputs``; raises OperationError for what cannot be done."""
    operation.check(len(inputs))
    boxes = [placed_box(placed) for placed in inputs]
    lows, highs = np.array([box[0] for box in boxes]), np.array([box[1] for box in boxes])
    if operation.kind == "INTERSECT":
        low, high = lows.max(0), highs.min(0)
        if (low >= high).any():
            raise OperationError("nothing is left: the shapes do not overlap")
    elif operation.kind == "DIFFERENCE":
        low, high = lows[0], highs[0]
    else:
        low, high = lows.min(0), highs.max(0)
    margin = operation.blend + max(operation.distance, 0.0)
    low, high = low - margin, high + margin
    frame = UnitFrame(centre=(low + high) / 2, scale=float((high - low).max()))
    model = CompositeModel(operation, inputs, frame)
    info = {"operation": operation.kind, "inputs": str(len(inputs))}
    return CompositeField(operation, inputs, model, frame, frame.to_unit(low), frame.to_unit(high), info)


def split_long_triangles(
    vertices: np.ndarray, triangles: np.ndarray, parts: np.ndarray, longest: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A triangle soup with the same surface, each triangle split in four until no edge is longer than ``longest``."""
    corners = np.asarray(vertices, np.float64)[triangles]  # (T, 3, 3)
    done_corners, done_parts = [], []
    for _ in range(MAX_SPLITS):
        edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(1)
        long = edges > longest
        done_corners.append(corners[~long])
        done_parts.append(parts[~long])
        corners, parts = corners[long], parts[long]
        if not len(corners):
            break
        a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        corners = np.concatenate([np.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
        parts = np.tile(parts, 4)
    done_corners.append(corners)
    done_parts.append(parts)
    soup = np.concatenate(done_corners)
    return soup.reshape(-1, 3), np.arange(len(soup) * 3).reshape(-1, 3), np.concatenate(done_parts)


def union_of_parts(vertices: np.ndarray, triangles: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The triangles of several parts fitted as one solid, less what lies inside another part.

    The fitted magnitude is the distance to the nearest triangle, so faces buried inside the union
    would leave a valley of near-zero values inside the solid (and, where the fit errs, a pocket).
    Long triangles are split first, then those whose centre has a winding number inside the other
    parts are dropped; what is left is the union's surface, up to a small triangle at the seams.
    """
    vertices, parts = np.asarray(vertices, np.float64), np.asarray(parts)
    longest = float(np.ptp(vertices, 0).max()) / SPLIT_DIVISIONS
    soup, soup_triangles, soup_parts = split_long_triangles(vertices, triangles, parts, longest)
    centres = soup[soup_triangles].mean(1)
    buried = np.zeros(len(soup_triangles), dtype=bool)
    for part in np.unique(parts):
        mine = np.flatnonzero(soup_parts == part)
        winding = igl.fast_winding_number(vertices, triangles[parts != part], centres[mine])
        buried[mine] = np.abs(winding) > BURIED_WINDING
    if buried.all():
        return vertices, triangles
    return soup, soup_triangles[~buried]


# --- files ---------------------------------------------------------------------------------


def save_composite(path: Path, field: CompositeField) -> None:
    """Write the composite with its inputs' field files embedded (as U8 tensors), so that it stands alone."""
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for index, placed in enumerate(field.inputs):
        tensors[f"input.{index}.field"] = ("U8", (len(placed.data),), bytes(placed.data))
        tensors[f"input.{index}.placement"] = ("F64", (4, 4), np.asarray(placed.placement, "<f8").tobytes())
    settings = {**dataclasses.asdict(field.operation), "inputs": len(field.inputs)}
    metadata = {
        "format": protocol.FIELD_FORMAT,
        "format_version": str(protocol.FIELD_FORMAT_VERSION),
        COMPOSITE_KEY: json.dumps(settings),
        **{key: value for key, value in field.info.items() if key not in (COMPOSITE_KEY, "format", "format_version")},
    }
    protocol.write_safetensors(path, tensors, metadata)


def load_field_bytes(data: bytes) -> StoredField | CompositeField:
    """A fitted or composite field from its file bytes; raises ProtocolError if it cannot be used."""
    metadata = protocol.check_field(data)
    if COMPOSITE_KEY not in metadata:
        with tempfile.TemporaryDirectory(prefix="inr_leaf_") as folder:
            path = Path(folder) / protocol.FIELD_FILE
            path.write_bytes(data)
            return load_field(path)
    tensors, _ = protocol.read_safetensors(data)
    try:
        settings = json.loads(metadata[COMPOSITE_KEY])
        count = int(settings.pop("inputs"))
        operation = Operation(**settings)
    except (ValueError, TypeError, KeyError) as error:
        raise protocol.ProtocolError(f"the stored composite field is damaged ({error}); make it again") from error
    inputs = []
    for index in range(count):
        if f"input.{index}.field" not in tensors or f"input.{index}.placement" not in tensors:
            raise protocol.ProtocolError(
                f"the composite field refers to input {index + 1}, which is not stored in it "
                "(it was deleted before the result was made stand-alone); make the result again from its inputs"
            )
        raw = bytes(tensors[f"input.{index}.field"][2])
        placement = np.frombuffer(tensors[f"input.{index}.placement"][2], "<f8").reshape(4, 4).copy()
        inputs.append(PlacedInput(raw, load_field_bytes(raw), placement))
    try:
        return build(operation, inputs)
    except OperationError as error:
        raise protocol.ProtocolError(f"the stored composite field cannot be evaluated: {error}") from error


def load_any_field(path: Path) -> StoredField | CompositeField:
    """Read a fitted or a composite field file."""
    return load_field_bytes(path.read_bytes())


# --- extraction ----------------------------------------------------------------------------


def empty_message(operation: Operation) -> str:
    """What to tell the user when the operation leaves no surface."""
    if operation.kind == "DIFFERENCE":
        return "nothing is left: the other shapes cover all of the active one"
    if operation.kind == "OFFSET":
        return f"nothing is left: shrinking by {-operation.distance:g} removes the whole shape"
    if operation.kind == "MORPH":
        return f"nothing is left at factor {operation.factor:g}: the shapes do not overlap"
    return "nothing is left: the shapes do not overlap"


def surface_pieces(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's connected piece of a closed surface, and each piece's signed volume (< 0: a cavity)."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
    _, labels = connected_components(graph, directed=False)
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    pieces = labels[triangles[:, 0]]
    return pieces, np.bincount(pieces, weights=np.einsum("ij,ij->i", a, np.cross(b, c)) / 6)


def _shell_has_cavity(model: CompositeModel, vertices: np.ndarray, device: torch.device) -> bool:
    """Whether some of a shell's surface lies deeper in its source than half the wall: the cavity's side."""
    points = torch.from_numpy(np.asarray(vertices, np.float32)).to(device)
    return bool((model.parts[0].evaluate(points) - model.distance < -0.5 * model.shell).any())


def drop_islands(vertices: np.ndarray, triangles: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """The closed surface without its pieces (solids or cavities) under ``share`` of its largest solid's volume."""
    pieces, volumes = surface_pieces(vertices, triangles)
    kept = np.abs(volumes[pieces]) >= share * volumes.max()
    used, triangles = np.unique(triangles[kept], return_inverse=True)
    return vertices[used], triangles.reshape(-1, 3)


def finish_surface(
    field: CompositeField, vertices: np.ndarray, triangles: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """The composite's extracted surface (unit frame) as its operation wants it: a shell must enclose a
    cavity (else OperationError); a morph drops its specks."""
    operation = field.operation
    if operation.kind == "OFFSET" and operation.shell > 0 and not _shell_has_cavity(field.model, vertices, device):
        raise OperationError(f"the shell of {operation.shell:g} is thicker than the shape: no cavity is left inside it")
    if operation.kind == "MORPH":  # where a thin part fades out, its ridge can leave specks
        return drop_islands(vertices, triangles, MORPH_ISLAND_SHARE)
    return vertices, triangles


def operate_job(job_dir: Path, spec: protocol.JobSpec) -> CompositeField:
    """Build the composite that ``spec.operation`` describes from the job's input files and save it."""
    request = dict(spec.operation)
    try:
        files = request.pop("inputs")
        placements = [np.array(matrix, np.float64).reshape(4, 4) for matrix in request.pop("placements")]
        operation = Operation(**request)
    except (KeyError, TypeError, ValueError) as error:
        raise protocol.ProtocolError(f"the operation in the job is malformed ({error})") from error
    if len(files) != len(placements):
        raise protocol.ProtocolError("the operation has a different number of inputs and placements")
    inputs = []
    for name, placement in zip(files, placements):
        data = (job_dir / name).read_bytes()
        inputs.append(PlacedInput(data, load_field_bytes(data), placement))
    field = build(operation, inputs)
    save_composite(job_dir / spec.field, field)
    return field
