"""credd benchmarks, with their floors measured in the same run.

    .venv/bin/python bench/run.py [--json FILE] [--quick] [--check]

1. Socket credential fetch, p50/p99, 1 and 64 concurrent clients, one connection per request
   (what ``credential_process`` does) and keep-alive, against a bare asyncio echo server on a
   unix socket (connect + send + recv + close, same concurrency). Target: p50 within 3x.
2. The loopback container endpoint (bench/endpoint.py): the same four rows over 127.0.0.1 TCP,
   against a bare asyncio TCP echo server in the same run.
3. ``credd get PROFILE`` wall time against ``python -c pass`` (same interpreter; target within
   1.3x) and ``/usr/bin/aws configure export-credentials`` on a static-key profile (target at
   least 5x faster). Runs are interleaved so drift hits both sides alike.
4. Scale (bench/scale.py): 1, 100 and 1,000 role profiles and 1,000 SSO profiles, the real daemon
   against the sandbox: time until all fresh, AWS calls, RSS, threads, fds, idle CPU, ``credd
   status`` latency, marginal memory per profile, ratios to the goals (``--no-scale`` skips it).

Servers run in a separate process (bench/servers.py); loads are bounded counts, loopback only.
"""

from __future__ import annotations

import _socket
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import endpoint as endpoint_section  # noqa: E402
from bench import scale as scale_section  # noqa: E402
from credd.client import build_request, connect, exchange  # noqa: E402

PROFILE = "bench"
AWS = "/usr/bin/aws"
REQUEST_CLOSE = build_request("GET", f"/v1/credentials/{PROFILE}", close=True)
REQUEST_KEEP = build_request("GET", f"/v1/credentials/{PROFILE}", close=False)

Call = Callable[[], None]
LAUNCH = "import sys; from credd.cli.get import main; sys.exit(main(sys.argv[1:]))"


# -- socket latency -------------------------------------------------------------------------


def credd_per_request(path: str) -> Callable[[], Call]:
    def make() -> Call:
        def call() -> None:
            sock = connect(path, 10.0)
            try:
                status, _, _ = exchange(sock, REQUEST_CLOSE)
            finally:
                sock.close()
            if status != 200:
                raise RuntimeError(f"credd answered {status}")

        return call

    return make


def credd_keepalive(path: str) -> Callable[[], Call]:
    def make() -> Call:
        sock = connect(path, 10.0)

        def call() -> None:
            status, _, _ = exchange(sock, REQUEST_KEEP)
            if status != 200:
                raise RuntimeError(f"credd answered {status}")

        return call

    return make


def _echo_roundtrip(sock: _socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("echo server closed early")
        got += len(chunk)


def echo_per_request(path: str) -> Callable[[], Call]:
    def make() -> Call:
        def call() -> None:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.settimeout(10.0)
            try:
                sock.connect(path)
                _echo_roundtrip(sock, REQUEST_CLOSE)
            finally:
                sock.close()

        return call

    return make


def echo_keepalive(path: str) -> Callable[[], Call]:
    def make() -> Call:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(10.0)
        sock.connect(path)
        return lambda: _echo_roundtrip(sock, REQUEST_KEEP)

    return make


def measure(factory: Callable[[], Call], clients: int, per_client: int) -> list[float]:
    """Latencies in ms: ``clients`` threads, each making ``per_client`` calls after a warm-up."""
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients)

    def worker(slot: list[float]) -> None:
        try:
            call = factory()
            for _ in range(5):
                call()
            barrier.wait()
            clock = time.perf_counter
            for _ in range(per_client):
                start = clock()
                call()
                slot.append((clock() - start) * 1000.0)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"benchmark client failed: {errors[0]!r}")
    return [x for slot in results for x in slot]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def socket_bench(base: Path, quick: bool) -> list[dict[str, Any]]:
    credd_sock = str(base / "credd" / "credd.sock")
    echo_sock = str(base / "echo.sock")
    rows = []
    for mode, ours, floor in (
        ("new connection per request", credd_per_request, echo_per_request),
        ("keep-alive", credd_keepalive, echo_keepalive),
    ):
        for clients in (1, 64):
            per_client = (400 if quick else 2000) if clients == 1 else (10 if quick else 40)
            floor_ms = measure(floor(echo_sock), clients, per_client)
            ours_ms = measure(ours(credd_sock), clients, per_client)
            rows.append(endpoint_section.latency_row(mode, clients, ours_ms, floor_ms, pct))
    return rows


# -- credd get wall time --------------------------------------------------------------------


def wall_ms(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000.0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-300:]!r}")
    return elapsed


#: what pip 23 writes for a console script (note ``import re``: ~5 ms on a bare interpreter)
PIP_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from credd.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def plain_venv(base: Path) -> Path | None:
    """A venv with nothing installed (credd found through PYTHONPATH), the launcher credd ships
    (``bin/credd``, installed as-is by pip with its shebang rewritten) and, for reference, the
    wrapper pip would generate from a ``[project.scripts]`` entry point. An editable install's
    import hook loads pathlib and re into *every* interpreter start (~10 ms), which flatters the
    ratios."""
    venv = base / "plain-venv"
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    made = subprocess.run(
        [str(base_python), "-m", "venv", "--without-pip", str(venv)], capture_output=True
    )
    if made.returncode != 0:
        return None
    python = venv / "bin" / "python"
    shipped = (ROOT / "bin" / "credd").read_text().replace("#!python", f"#!{python}", 1)
    for name, text in (("credd", shipped), ("credd-pip-wrapper", PIP_SCRIPT.format(python=python))):
        script = venv / "bin" / name
        script.write_text(text)
        script.chmod(0o755)
    return venv


def get_commands(credd_sock: str, venv: Path | None) -> dict[str, list[str]]:
    """Floors and every way of running the fast path, in this venv and in a plain one."""
    args = [PROFILE, "--socket", credd_sock]
    py = sys.executable
    cmds = {
        "[venv] python -c pass": [py, "-c", "pass"],
        "[venv] credd.cli.get.main (python -c)": [py, "-c", LAUNCH, *args],
        "[venv] python -m credd.cli.get": [py, "-m", "credd.cli.get", *args],
    }
    script = Path(sys.executable).parent / "credd"
    if script.exists():
        cmds["[venv] credd get (console script)"] = [str(script), "get", *args]
    if venv is not None:
        plain = str(venv / "bin" / "python")
        cmds["[plain] python -c pass"] = [plain, "-c", "pass"]
        cmds["[plain] credd.cli.get.main (python -c)"] = [plain, "-c", LAUNCH, *args]
        cmds["[plain] credd get (shipped launcher)"] = [str(venv / "bin" / "credd"), "get", *args]
        cmds["[plain] credd get (pip wrapper, reference)"] = [
            str(venv / "bin" / "credd-pip-wrapper"),
            "get",
            *args,
        ]
    return cmds


def aws_env(base: Path, env: dict[str, str]) -> dict[str, str]:
    creds = base / "aws-credentials"
    creds.write_text(
        "[benchstatic]\naws_access_key_id = AKIABENCHSTATIC00001\n"
        "aws_secret_access_key = bench-static-secret-000000000000000000\n"
    )
    config = base / "aws-config"
    config.write_text("[profile benchstatic]\nregion = us-east-1\n")
    out = dict(env)
    out.update(
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_CONFIG_FILE=str(config),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(base),
    )
    return out


def get_bench(base: Path, quick: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # An installed package has its .pyc files; so must this run, for every command alike
    # (kept out of the source tree).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    venv = plain_venv(base)
    cmds = get_commands(str(base / "credd" / "credd.sock"), venv)
    notes: list[str] = [] if venv else ["skipped the plain venv: python -m venv failed"]
    for name, cmd in list(cmds.items()):
        try:
            wall_ms(cmd, env)  # warm-up (writes .pyc files) and a check that it works
        except RuntimeError as exc:
            notes.append(f"skipped {name}: {exc}")
            del cmds[name]
    runs = 15 if quick else 60
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):  # interleaved
        for name, cmd in cmds.items():
            times[name].append(wall_ms(cmd, env))
    aws_times: list[float] = []
    if Path(AWS).exists():
        env_aws = aws_env(base, env)
        cmd = [AWS, "configure", "export-credentials", "--profile", "benchstatic"]
        wall_ms(cmd, env_aws)
        aws_times = [wall_ms(cmd, env_aws) for _ in range(3 if quick else 8)]
    else:
        notes.append(f"skipped the AWS CLI: {AWS} is missing")
    result: dict[str, Any] = {
        "runs": runs,
        "median_ms": {name: statistics.median(v) for name, v in times.items()},
        "notes": notes,
    }
    if aws_times:
        result["median_ms"]["aws configure export-credentials"] = statistics.median(aws_times)
    return result


# -- report ---------------------------------------------------------------------------------


def report(sockets: list[dict[str, Any]], get: dict[str, Any]) -> list[str]:
    misses = endpoint_section.latency_table(
        "Socket credential fetch (ms; floor = bare asyncio echo on a unix socket)",
        "socket",
        sockets,
    )
    med = get["median_ms"]
    aws = med.get("aws configure export-credentials")

    def floor_of(name: str) -> float:
        group = name.split("]")[0] + "]" if name.startswith("[") else "[venv]"
        return float(med.get(f"{group} python -c pass", med["[venv] python -c pass"]))

    print(
        f"\n`credd get` wall time (median of {get['runs']} runs, ms; x python = against the"
        " same group's floor)"
    )
    print(f"{'command':<44}{'median':>9}{'x python':>10}{'aws / it':>10}")
    for name, value in med.items():
        speedup = f"{aws / value:>10.1f}" if aws else f"{'-':>10}"
        print(f"{name:<44}{value:>9.2f}{value / floor_of(name):>10.2f}{speedup}")
    for name, value in med.items():
        if "credd" not in name or "python -m" in name or "reference" in name:
            continue  # -m pays for runpy (~4 ms); pip's own wrapper is not shipped
        floor = floor_of(name)
        if value / floor > 1.3:
            misses.append(f"{name}: {value / floor:.2f}x python (target <= 1.3x)")
        if aws and aws / value < 5:
            misses.append(f"{name}: only {aws / value:.1f}x faster than the AWS CLI")
    for note in get["notes"]:
        print(f"note: {note}")
    print("\ntargets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return misses


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-scale", action="store_true", help="skip bench/scale.py (minutes)")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="credd-bench-"))
    servers = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "servers.py"), str(base)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert servers.stdout is not None and servers.stdin is not None
        if servers.stdout.readline().strip() != "ready":
            raise RuntimeError("bench servers did not start")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, servers pid {servers.pid}")
        sockets = socket_bench(base, args.quick)
        endpoint = endpoint_section.endpoint_bench(base, args.quick, measure, pct)
        get = get_bench(base, args.quick)
    finally:
        if servers.stdin is not None:
            servers.stdin.close()
        servers.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    misses = endpoint_section.report(endpoint) + report(sockets, get)
    scale: list[dict[str, Any]] = []
    if not args.no_scale:
        print("\nscale (bench/scale.py): the real daemon and the sandbox, N profiles")
        sizes = ["--roles", "1,100", "--sso", "100", "--idle", "5"] if args.quick else []
        scale = scale_section.run(sizes)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "socket": sockets,
                    "endpoint": endpoint,
                    "get": get,
                    "scale": scale,
                    "misses": misses,
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
