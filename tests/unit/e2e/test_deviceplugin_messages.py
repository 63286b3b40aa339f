"""The v1beta1 device-plugin messages: each codec round-trips, known bytes match the proto, unknown fields skip."""

from __future__ import annotations

from e2e.deviceplugin.messages import (
    Device,
    Options,
    PreferredRequest,
    RegisterRequest,
    decode_allocate_response,
    decode_devices,
    decode_id_lists,
    decode_ids,
    decode_options,
    decode_preferred_request,
    decode_register,
    encode_allocate_response,
    encode_devices,
    encode_id_lists,
    encode_ids,
    encode_options,
    encode_preferred_request,
    encode_register,
)
from llmasos.agent.protowire import encode_varint, key, ld, string


def test_register_request_round_trip_and_bytes() -> None:
    req = RegisterRequest("v1beta1", "x.sock", "nvidia.com/gpu", Options(False, True))
    buf = encode_register(req)
    assert decode_register(buf) == req
    assert buf.startswith(b"\x0a\x07v1beta1\x12\x06x.sock\x1a\x0envidia.com/gpu")
    assert buf.endswith(b"\x22\x02\x10\x01")  # options = 4 {get_preferred_allocation_available = 2: true}


def test_options_round_trip() -> None:
    for o in (Options(), Options(True, False), Options(True, True)):
        assert decode_options(encode_options(o)) == o


def test_devices_round_trip_skipping_topology() -> None:
    devices = (Device("GPU-a"), Device("GPU-b", "Unhealthy"))
    assert decode_devices(encode_devices(devices)) == devices
    # a Device with topology = 3 {nodes = 1 {ID = 1: 0}} (what real plugins send) still decodes
    with_topology = ld(1, string(1, "GPU-c") + string(2, "Healthy") + ld(3, ld(1, b"")))
    assert decode_devices(with_topology) == (Device("GPU-c"),)


def test_id_lists_round_trip_keeps_empty_containers() -> None:
    lists = (("GPU-a", "GPU-b"), (), ("GPU-c",))
    assert decode_id_lists(encode_id_lists(lists)) == lists
    assert decode_ids(encode_ids(("GPU-a", "GPU-b"))) == ("GPU-a", "GPU-b")


def test_allocate_response_round_trip_with_unknown_fields() -> None:
    envs = ({"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b", "B": ""}, {})
    buf = encode_allocate_response(envs)
    assert decode_allocate_response(buf) == envs
    # mounts = 2 and annotations = 4 in a container response are skipped
    extra = ld(1, ld(1, string(1, "K") + string(2, "v")) + ld(2, string(1, "/m")) + ld(4, string(1, "a")))
    assert decode_allocate_response(extra) == ({"K": "v"},)


def test_preferred_request_round_trip() -> None:
    reqs = (PreferredRequest(("a", "b", "c"), ("b",), 2), PreferredRequest((), (), 0))
    assert decode_preferred_request(encode_preferred_request(reqs)) == reqs
    assert decode_preferred_request(ld(1, key(3, 0) + encode_varint(4) + key(7, 0) + b"\x01")) == (
        PreferredRequest((), (), 4),
    )
