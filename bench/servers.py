"""The servers the benchmark talks to, run in their own process (so client and server do not
share a GIL): credd's real unix-socket server and loopback container endpoint over the in-memory
backend, and bare asyncio echo servers (a unix socket, and TCP on 127.0.0.1) as the floors.

    python bench/servers.py DIR      # prints "ready" once all listen; exits when stdin closes

The endpoint's port and token are written to ``DIR/endpoint.json`` with the TCP echo's port.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credd.clock import SystemClock
from credd.models import Credentials
from credd.server.api import Api
from credd.server.container import ContainerApi, LoopbackServer
from credd.server.endpoint import ensure_token
from credd.server.unix import Limits, UnixServer
from credd.testing.memory import MemoryBackend

PROFILE = "bench"


def bench_backend() -> MemoryBackend:
    clock = SystemClock()
    backend = MemoryBackend(clock)
    backend.add_profile(
        PROFILE,
        Credentials(
            access_key_id="ASIABENCHBENCHBENCH1",
            secret_access_key="bench-secret-" + "x" * 27,
            session_token="bench-token-" + "y" * 300,  # about the size of a real STS token
            expiration=clock.now() + timedelta(hours=12),
        ),
    )
    return backend


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def start_echo(path: Path | None) -> int:
    """A bare echo server on its own asyncio loop thread (the same runtime credd's server uses):
    on the unix socket ``path``, or on 127.0.0.1 (any free port, returned) when ``None``."""
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        loop = asyncio.new_event_loop()

        async def serve() -> None:
            if path is not None:
                await loop.create_unix_server(_Echo, str(path), backlog=512)
            else:
                server = await loop.create_server(_Echo, "127.0.0.1", 0, backlog=512)
                port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Event().wait()

        loop.run_until_complete(serve())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return port[0] if port else 0


def main(argv: list[str]) -> int:
    base = Path(argv[0])
    server = UnixServer(
        base / "credd" / "credd.sock",
        Api(bench_backend(), SystemClock()),
        limits=Limits(max_connections=1024),
    )
    server.start()
    start_echo(base / "echo.sock")
    token = ensure_token(base / "credd" / "endpoint-token")
    endpoint = LoopbackServer(
        ContainerApi(bench_backend(), token), port=0, limits=Limits(max_connections=1024)
    )
    endpoint.start()
    echo_port = start_echo(None)
    (base / "endpoint.json").write_text(
        json.dumps({"port": endpoint.port, "token": token, "echo_port": echo_port})
    )
    print("ready", flush=True)
    sys.stdin.read()  # until the driver closes our stdin
    endpoint.stop(2.0)
    server.stop(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
