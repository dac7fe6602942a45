"""The stdlib-only module that crosses between Blender and the worker."""

from __future__ import annotations

import json
import struct

import pytest

from inr_worker import protocol


def test_safetensors_round_trip(tmp_path):
    tensors = {"a": ("F32", (2, 3), struct.pack("<6f", *range(6))), "b": ("I64", (1,), struct.pack("<q", -7))}
    path = tmp_path / "x.safetensors"
    protocol.write_safetensors(path, tensors, {"format": "x"})
    read, metadata = protocol.read_safetensors(path.read_bytes())
    assert metadata == {"format": "x"}
    assert {name: (dtype, shape, bytes(raw)) for name, (dtype, shape, raw) in read.items()} == tensors
    assert not list(tmp_path.glob("*.partial"))


def test_write_refuses_a_tensor_of_the_wrong_size(tmp_path):
    with pytest.raises(ValueError, match="bytes"):
        protocol.write_safetensors(tmp_path / "x", {"a": ("F32", (2,), b"1234")}, {})


@pytest.mark.parametrize("data", [b"", b"\x00" * 4, struct.pack("<Q", 1000) + b"{}", struct.pack("<Q", 2) + b"[]"])
def test_damaged_bytes_are_a_protocol_error(data):
    with pytest.raises(protocol.ProtocolError):
        protocol.read_safetensors(data)


def _field_bytes(tmp_path, **metadata) -> bytes:
    path = tmp_path / "f.safetensors"
    protocol.write_safetensors(path, {}, metadata)
    return path.read_bytes()


def test_check_field_says_refit_for_another_version(tmp_path):
    data = _field_bytes(tmp_path, format=protocol.FIELD_FORMAT, format_version="999")
    with pytest.raises(protocol.ProtocolError, match="version 999.*re-fit this object"):
        protocol.check_field(data)
    with pytest.raises(protocol.ProtocolError, match="not an inr_addon field"):
        protocol.check_field(_field_bytes(tmp_path, format="other"))
    with pytest.raises(protocol.ProtocolError, match="damaged.*re-fit"):
        protocol.check_field(b"garbage garbage")


def test_job_spec_round_trip_and_validation(tmp_path):
    spec = protocol.JobSpec(task="fit", resolution=128, preset="FAST")
    spec.write(tmp_path)
    assert protocol.JobSpec.read(tmp_path) == spec
    for bad in ({"resolution": 8}, {"resolution": 4096}, {"preset": "HUGE"}, {"task": "paint"}, {"device": "TPU"}):
        with pytest.raises(protocol.ProtocolError):
            protocol.JobSpec(**{"task": "fit", "resolution": 64, **bad}).validate()
    (tmp_path / protocol.JOB_FILE).write_text(json.dumps({"task": "fit", "resolution": 64, "colour": 1}))
    with pytest.raises(protocol.ProtocolError, match="cannot read job"):
        protocol.JobSpec.read(tmp_path)


def test_event_reader_returns_only_complete_lines(tmp_path):
    path = tmp_path / protocol.EVENTS_FILE
    reader = protocol.EventReader(path)
    assert list(reader.read_new()) == []
    path.write_text('{"event": "stage"}\n{"event": "pro')
    assert [e["event"] for e in reader.read_new()] == ["stage"]
    with open(path, "a") as file:
        file.write('gress", "step": 3}\n')
    assert list(reader.read_new()) == [{"event": "progress", "step": 3}]


def test_job_threads_are_all_cores_or_a_positive_count(tmp_path):
    protocol.JobSpec(task="extract", resolution=64, threads=3).write(tmp_path)
    assert protocol.JobSpec.read(tmp_path).threads == 3
    with pytest.raises(protocol.ProtocolError, match="threads"):
        protocol.JobSpec(task="extract", resolution=64, threads=-1).write(tmp_path)
