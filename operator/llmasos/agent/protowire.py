"""The protobuf wire format, just enough to speak to the kubelet's gRPC APIs without generated code.

Two kubelet APIs are spoken here: PodResources (the agent reads which devices a pod got) and the DevicePlugin API
(the fake-GPU device plugin of the local cluster). Each needs a handful of string, bool, int and nested-message
fields, so a few small functions replace protoc, generated stubs and a pinned protobuf runtime. Readers skip unknown
fields, as protobuf requires, so newer kubelets that add fields still decode.

Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited (strings, bytes, nested messages, maps), 5 fixed 32-bit.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

Field = tuple[int, int, int | bytes]  # (field number, wire type, value: int for varints, else the raw bytes)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def iter_fields(buf: bytes) -> Iterator[Field]:
    """Yield (field number, wire type, value) of one message in order; length-delimited values are bytes."""
    pos = 0
    value: int | bytes
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire in (FIXED64, FIXED32, LENGTH_DELIMITED):
            if wire == LENGTH_DELIMITED:
                size, pos = read_varint(buf, pos)
            else:
                size = 8 if wire == FIXED64 else 4
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def bytes_fields(buf: bytes, number: int) -> list[bytes]:
    """Every length-delimited value of field `number` (a repeated string or message; the last one for a singular)."""
    return [v for n, w, v in iter_fields(buf) if n == number and w == LENGTH_DELIMITED and isinstance(v, bytes)]


def string_fields(buf: bytes, number: int) -> list[str]:
    return [v.decode() for v in bytes_fields(buf, number)]


def string_field(buf: bytes, number: int) -> str:
    """A singular string: the last value wins, absent is "" (proto3)."""
    values = string_fields(buf, number)
    return values[-1] if values else ""


def varint_field(buf: bytes, number: int) -> int:
    """A singular varint (bool, int32, int64 >= 0): the last value wins, absent is 0 (proto3)."""
    values = [v for n, w, v in iter_fields(buf) if n == number and w == VARINT and isinstance(v, int)]
    return values[-1] if values else 0


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varints are not needed by these APIs")
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a nested message, or bytes."""
    return key(number, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def string(number: int, value: str) -> bytes:
    """A string field; proto3 leaves an empty one out."""
    return ld(number, value.encode()) if value else b""


def varint(number: int, value: int) -> bytes:
    """A varint field (bool or non-negative int); proto3 leaves zero out."""
    return key(number, VARINT) + encode_varint(value) if value else b""
