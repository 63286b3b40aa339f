"""Fixtures for carbon-source tests: a fake Electricity Maps server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.carbon.fake_server import FakeElectricityMaps


@pytest.fixture
def em_server() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server
