"""The liveness endpoint `/livez`: answers while the process and its event loop run, and asks nothing of the API.

kopf's own endpoint (`/healthz` on settings.health_port) answers only once the operator has started (settings, login,
resync task) and its probes pass: that is readiness, "ready to reconcile". Liveness must not depend on the API
server, or a slow API server would turn into restarts; an event loop frozen by a blocking call stops answering here
too, which is the one failure a restart cures.
"""

from __future__ import annotations

import asyncio

_RESPONSES = {
    b"/livez": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=5)
        parts = line.split()
        path = parts[1].split(b"?")[0] if len(parts) >= 2 else b""
        writer.write(_RESPONSES.get(path, _NOT_FOUND))
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_liveness(host: str, port: int) -> asyncio.Server:
    """Start the /livez server on the running loop; close it with `server.close()`."""
    return await asyncio.start_server(_answer, host, port)
