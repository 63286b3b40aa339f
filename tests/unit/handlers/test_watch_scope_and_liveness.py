"""Issue 21: the report namespace served in namespaced mode, the watch selectors, the token file, /livez."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kopf
import pytest

from llmasos.errors import ConfigError
from llmasos.handlers.liveness import serve_liveness
from llmasos.handlers.watch_scope import apply_watch_selectors, watch_selectors
from llmasos.settings import Settings, electricitymaps_token, load_settings

CM = ("", "v1", "configmaps")


def test_cluster_wide_serves_everything_and_lists_only_reports() -> None:
    settings = load_settings(env={"LLMASOS_REPORT_NAMESPACE": "llmasos-system"})
    assert settings.served_namespaces() == ()
    labels, fields = watch_selectors(settings)
    assert labels == {CM: "llmasos.io/node-power-report=true"}
    assert fields == {CM: "metadata.namespace=llmasos-system"}


def test_namespaced_mode_adds_the_report_namespace_for_reports_only() -> None:
    settings = load_settings(env={"LLMASOS_NAMESPACES": "ml,research", "LLMASOS_REPORT_NAMESPACE": "agents"})
    assert settings.served_namespaces() == ("ml", "research", "agents")
    _, fields = watch_selectors(settings)
    assert fields[CM] == "metadata.namespace=agents"
    for key in (("llmasos.io", "v1alpha1", "llmjobs"), ("batch", "v1", "jobs"), ("", "v1", "services")):
        assert fields[key] == "metadata.namespace!=agents"


def test_a_watched_report_namespace_changes_nothing_else() -> None:
    settings = load_settings(env={"LLMASOS_NAMESPACES": "ml,agents", "LLMASOS_REPORT_NAMESPACE": "agents"})
    assert settings.served_namespaces() == ("ml", "agents")
    assert set(watch_selectors(settings)[1]) == {CM}
    assert Settings(namespaces=("ml",)).served_namespaces() == ("ml",), "no report namespace: as before"


def test_selectors_reach_kopf_settings() -> None:
    kopf_settings = kopf.OperatorSettings()
    apply_watch_selectors(kopf_settings, Settings(namespaces=("ml",), report_namespace="agents"))
    assert len(kopf_settings.watching.label_selectors) == 1
    assert len(kopf_settings.watching.field_selectors) == 4


def test_token_file_wins_and_is_stripped(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    env = {"LLMASOS_ELECTRICITYMAPS_TOKEN_FILE": str(token), "LLMASOS_ELECTRICITYMAPS_TOKEN": "env"}
    assert electricitymaps_token(env) == "secret"
    assert electricitymaps_token({"LLMASOS_ELECTRICITYMAPS_TOKEN": "env"}) == "env"
    assert electricitymaps_token({}) is None
    with pytest.raises(ConfigError, match="token file"):
        electricitymaps_token({"LLMASOS_ELECTRICITYMAPS_TOKEN_FILE": str(tmp_path / "missing")})


def test_livez_answers_from_the_event_loop() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        server = await serve_liveness("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def get(path: str) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
            writer.close()
            return data

        try:
            return await get("/livez"), await get("/other")
        finally:
            server.close()
            await server.wait_closed()

    live, other = asyncio.run(scenario())
    assert live.startswith(b"HTTP/1.1 200")
    assert live.endswith(b"ok\n")
    assert other.startswith(b"HTTP/1.1 404")
