"""The servers the benchmark talks to, run in their own process (so client and server do not
share a GIL): credd's real unix-socket server over the in-memory backend, and a bare asyncio
echo server on another socket as the floor.

    python bench/servers.py DIR      # prints "ready" once both listen; exits when stdin closes
"""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credd.clock import SystemClock
from credd.models import Credentials
from credd.server.api import Api
from credd.server.memory import MemoryBackend
from credd.server.unix import Limits, UnixServer

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


def start_echo(path: Path) -> None:
    """A bare echo server on its own asyncio loop thread (the same runtime credd's server uses)."""
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()

        async def serve() -> None:
            await loop.create_unix_server(_Echo, str(path), backlog=512)
            ready.set()
            await asyncio.Event().wait()

        loop.run_until_complete(serve())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()


def main(argv: list[str]) -> int:
    base = Path(argv[0])
    server = UnixServer(
        base / "credd" / "credd.sock",
        Api(bench_backend(), SystemClock()),
        limits=Limits(max_connections=1024),
    )
    server.start()
    start_echo(base / "echo.sock")
    print("ready", flush=True)
    sys.stdin.read()  # until the driver closes our stdin
    server.stop(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
