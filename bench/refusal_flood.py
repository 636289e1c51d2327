"""Another user floods credd with connections it must refuse: what it costs (issue 8 item 10).

    sudo .venv/bin/python bench/refusal_flood.py [--clients 64] [--seconds 15]

Needs root and ``setpriv``: the flooders run as uid 65534 against the loopback endpoint and a
unix socket anyone may connect to (handed over as a file descriptor, as systemd would), while
the owner (this process) fetches credentials in a loop on each. Prints, per transport: refused
connections, how many of them read their 403 / were reset, the daemon's log lines about them,
and the owner's requests served (and failed) meanwhile. Loopback only, bounded time.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from credd.client import Client  # noqa: E402
from credd.server.api import Api  # noqa: E402
from credd.server.container import ContainerApi, LoopbackServer  # noqa: E402
from credd.server.unix import UnixServer  # noqa: E402
from credd.testing.clock import FakeClock  # noqa: E402
from credd.testing.memory import MemoryBackend  # noqa: E402
from tests.fixtures.transport import demo_credentials  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
TOKEN = "bench-token-" + "x" * 40

FLOODER = """
import socket, sys, threading, time
kind, where, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
request = b"GET /v1/container-credentials/demo HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
counts = {"403": 0, "reset": 0, "other": 0, "late": 0}
lock = threading.Lock()
end = time.monotonic() + seconds
def run():
    while time.monotonic() < end:
        try:
            if kind == "tcp":
                s = socket.create_connection(("127.0.0.1", int(where)), timeout=10)
            else:
                s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(where)
            data = b""
            with s:
                s.sendall(request)
                while chunk := s.recv(65536):
                    data += chunk
            key = "403" if data.startswith(b"HTTP/1.1 403 ") else "other"
        except OSError:
            key = "late" if data.startswith(b"HTTP/1.1 403 ") else "reset"
        with lock:
            counts[key] += 1
ts = [threading.Thread(target=run) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(counts["403"], counts["reset"], counts["other"], counts["late"])
"""


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def flood(kind: str, where: str, clients: int, seconds: float, owner: Client | None) -> str:
    procs = [
        subprocess.Popen(
            [*NOBODY, sys.executable, "-c", FLOODER, kind, where, "16", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        for _ in range(max(1, clients // 16))
    ]
    served, failed, took = 0, 0, []
    fetch = owner.credentials if owner else None
    while any(p.poll() is None for p in procs):
        start = time.perf_counter()
        try:
            if fetch is not None:
                fetch("demo")
            else:
                with socket.create_connection(("127.0.0.1", int(where)), timeout=10) as s:
                    s.sendall(
                        f"GET /v1/container-credentials/demo HTTP/1.1\r\nHost: 127.0.0.1:{where}"
                        f"\r\nAuthorization: {TOKEN}\r\nConnection: close\r\n\r\n".encode()
                    )
                    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            served += 1
            took.append(time.perf_counter() - start)
        except Exception:  # counted: the owner was not served
            failed += 1
    got = [0, 0, 0, 0]
    for proc in procs:
        out, _ = proc.communicate()
        got = [a + int(b) for a, b in zip(got, out.split(), strict=True)]
    p50 = statistics.median(took) * 1000 if took else float("nan")
    return (
        f"{sum(got)} refused connections ({got[0]} read their 403, {got[3]} read it and then saw a "
        f"reset, {got[1]} reset or EPIPE before reading, {got[2]} other)"
        f"; owner served {served} (failed {failed}, p50 {p50:.2f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if os.getuid() != 0:
        sys.exit("needs root (the flooders run as uid 65534 with setpriv)")
    counter = Counter()
    logging.getLogger("credd.server").addHandler(counter)
    logging.getLogger("credd.server").setLevel(logging.WARNING)
    backend = MemoryBackend(FakeClock())
    backend.add_profile("demo", demo_credentials())
    where = Path(tempfile.mkdtemp(prefix="credd-flood-", dir="/tmp"))
    where.chmod(0o755)
    path = where / "open.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o666)
    listener.listen(512)
    unix = UnixServer(path, Api(backend, backend.clock), listen_fd=listener.detach())
    loop = LoopbackServer(ContainerApi(backend, TOKEN), port=0)
    unix.start()
    loop.start()
    threading.excepthook = lambda _args: None
    try:
        for name, kind, addr, owner in (
            ("unix socket", "unix", str(path), Client(path)),
            ("endpoint", "tcp", str(loop.port), None),
        ):
            before = len(counter.lines)
            result = flood(kind, addr, args.clients, args.seconds, owner)
            during = len(counter.lines) - before
            print(f"{name}: {args.clients} clients for {args.seconds:.0f} s: {result}; "
                  f"{during} log line(s) during the flood")  # fmt: skip
    finally:
        unix.stop()
        loop.stop()
    print(f"log lines in all, counts flushed at stop included: {len(counter.lines)}")
    for line in counter.lines:
        print("  " + line)


if __name__ == "__main__":
    main()
