"""The container endpoint's part of ``bench/run.py``: credentials over loopback TCP.

credd's real ``LoopbackServer`` + ``ContainerApi`` (token, Host and proxy checks, the
``/proc/net/tcp`` owner check on each connection) over the in-memory backend, against a bare
asyncio echo server on 127.0.0.1 measured in the same run: 1 and 64 concurrent clients, a new
connection per request (what botocore's fetcher does: one connection per refresh) and
keep-alive. The request is what botocore sends (``Host``, ``Authorization``, ``Accept``).
"""

from __future__ import annotations

import _socket
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credd.client import exchange

Call = Callable[[], None]
Measure = Callable[[Callable[[], Call], int, int], list[float]]
Pct = Callable[[list[float], float], float]


def request_bytes(port: int, token: str, *, close: bool) -> bytes:
    lines = [
        "GET /v1/container-credentials/bench HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Accept: application/json",
        f"Authorization: {token}",
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _tcp(port: int) -> _socket.socket:
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(10.0)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
    sock.connect(("127.0.0.1", port))
    return sock


def _check(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"the endpoint answered {status}")


def credd_per_request(port: int, token: str) -> Callable[[], Call]:
    payload = request_bytes(port, token, close=True)

    def make() -> Call:
        def call() -> None:
            sock = _tcp(port)
            try:
                _check(exchange(sock, payload)[0])
            finally:
                sock.close()

        return call

    return make


def credd_keepalive(port: int, token: str) -> Callable[[], Call]:
    payload = request_bytes(port, token, close=False)

    def make() -> Call:
        sock = _tcp(port)
        return lambda: _check(exchange(sock, payload)[0])

    return make


def _echo(sock: _socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("echo server closed early")
        got += len(chunk)


def echo_per_request(port: int, payload: bytes) -> Callable[[], Call]:
    def make() -> Call:
        def call() -> None:
            sock = _tcp(port)
            try:
                _echo(sock, payload)
            finally:
                sock.close()

        return call

    return make


def echo_keepalive(port: int, payload: bytes) -> Callable[[], Call]:
    def make() -> Call:
        sock = _tcp(port)
        return lambda: _echo(sock, payload)

    return make


def latency_row(
    mode: str, clients: int, ours_ms: list[float], floor_ms: list[float], pct: Pct
) -> dict[str, Any]:
    """One table row: p50/p99 of credd and of its floor, their ratios, and the 3x target, which
    is about a new connection per request (an SDK refresh); keep-alive rows are reference only."""
    row: dict[str, Any] = {
        "mode": mode,
        "clients": clients,
        "requests": len(ours_ms),
        "credd_p50_ms": pct(ours_ms, 0.50),
        "credd_p99_ms": pct(ours_ms, 0.99),
        "floor_p50_ms": pct(floor_ms, 0.50),
        "floor_p99_ms": pct(floor_ms, 0.99),
    }
    row["ratio_p50"] = row["credd_p50_ms"] / row["floor_p50_ms"]
    row["ratio_p99"] = row["credd_p99_ms"] / row["floor_p99_ms"]
    row["target_met"] = row["ratio_p50"] <= 3.0 if mode != "keep-alive" else None
    return row


def endpoint_bench(base: Path, quick: bool, measure: Measure, pct: Pct) -> list[dict[str, Any]]:
    info = json.loads((base / "endpoint.json").read_text())
    port, token, echo = int(info["port"]), str(info["token"]), int(info["echo_port"])
    rows: list[dict[str, Any]] = []
    for mode, ours, floor in (
        ("new connection per request", credd_per_request, echo_per_request),
        ("keep-alive", credd_keepalive, echo_keepalive),
    ):
        payload = request_bytes(port, token, close=mode != "keep-alive")
        for clients in (1, 64):
            per_client = (400 if quick else 2000) if clients == 1 else (10 if quick else 40)
            floor_ms = measure(floor(echo, payload), clients, per_client)
            ours_ms = measure(ours(port, token), clients, per_client)
            rows.append(latency_row(mode, clients, ours_ms, floor_ms, pct))
    return rows


def report(rows: list[dict[str, Any]]) -> list[str]:
    return latency_table(
        "Container endpoint fetch (ms; floor = bare asyncio echo on 127.0.0.1 TCP)",
        "endpoint",
        rows,
    )


def latency_table(title: str, name: str, rows: list[dict[str, Any]]) -> list[str]:
    """Print rows made by :func:`latency_row`; return the missed targets."""
    misses: list[str] = []
    print(f"\n{title}")
    print(
        f"{'mode':<28}{'clients':>8}{'reqs':>7}{'p50':>8}{'p99':>8}"
        f"{'floor50':>9}{'floor99':>9}{'x p50':>7}{'x p99':>7}  target p50<=3x"
    )
    for r in rows:
        ok = {True: "ok", False: "MISS", None: "(info)"}[r["target_met"]]
        print(
            f"{r['mode']:<28}{r['clients']:>8}{r['requests']:>7}{r['credd_p50_ms']:>8.3f}"
            f"{r['credd_p99_ms']:>8.3f}{r['floor_p50_ms']:>9.3f}{r['floor_p99_ms']:>9.3f}"
            f"{r['ratio_p50']:>7.2f}{r['ratio_p99']:>7.2f}  {ok}"
        )
        if r["target_met"] is False:
            misses.append(f"{name} {r['mode']} x{r['clients']}")
    return misses
