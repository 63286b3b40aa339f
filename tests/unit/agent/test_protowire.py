"""The shared protobuf wire codec: round-trips, proto3 defaults, unknown fields skipped, truncation is an error."""

from __future__ import annotations

import pytest

from llmasos.agent.protowire import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    bytes_fields,
    encode_varint,
    iter_fields,
    key,
    ld,
    read_varint,
    string,
    string_field,
    string_fields,
    varint,
    varint_field,
)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    buf = encode_varint(value) + b"\xff"
    assert read_varint(buf, 0) == (value, len(buf) - 1)


def test_varint_known_bytes_and_errors() -> None:
    assert encode_varint(300) == b"\xac\x02"
    with pytest.raises(ValueError, match="truncated"):
        read_varint(b"\x80", 0)
    with pytest.raises(ValueError, match="too long"):
        read_varint(b"\xff" * 11, 0)
    with pytest.raises(ValueError, match="negative"):
        encode_varint(-1)


def test_message_round_trip_with_repeated_and_nested_fields() -> None:
    msg = string(1, "a") + varint(2, 7) + ld(3, string(1, "x")) + ld(3, string(1, "y")) + string(1, "b")
    assert string_field(msg, 1) == "b"  # the last singular value wins
    assert string_fields(msg, 1) == ["a", "b"]
    assert varint_field(msg, 2) == 7
    assert [string_field(m, 1) for m in bytes_fields(msg, 3)] == ["x", "y"]


def test_proto3_defaults_are_left_out_and_read_back() -> None:
    assert string(1, "") == b""
    assert varint(2, 0) == b""
    assert string_field(b"", 1) == ""
    assert varint_field(b"", 2) == 0


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = key(9, VARINT) + encode_varint(5) + key(10, FIXED64) + b"\0" * 8 + key(11, FIXED32) + b"\0" * 4
    msg = unknown + string(1, "kept") + ld(12, b"\x01\x02")
    assert string_field(msg, 1) == "kept"
    assert [(n, w) for n, w, _ in iter_fields(msg)] == [
        (9, VARINT), (10, FIXED64), (11, FIXED32), (1, LENGTH_DELIMITED), (12, LENGTH_DELIMITED)
    ]


@pytest.mark.parametrize("buf", [ld(1, b"abc")[:-1], key(10, FIXED64) + b"\0" * 7, key(1, 3) + b"\0"])
def test_truncated_or_unsupported_is_an_error(buf: bytes) -> None:
    with pytest.raises(ValueError, match=r"truncated|unsupported"):
        list(iter_fields(buf))
