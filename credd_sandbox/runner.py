"""``python -m credd_sandbox``: moto in a child process, then the gateway; one JSON line when ready.

SIGTERM and SIGINT stop both. moto is started in its own session (so a terminal's Ctrl-C reaches
only the sandbox, which stops moto itself) and dies with the sandbox if the sandbox is killed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from credd_sandbox.forward import MotoForwarder
from credd_sandbox.gateway import Gateway, make_gateway_server
from credd_sandbox.motoserver import MotoError, MotoIam, MotoProcess
from credd_sandbox.state import AWS_MIN_DURATION, SandboxState

log = logging.getLogger("credd_sandbox")


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{host!r} is not a loopback address; the sandbox binds loopback only"
    )


def _duration(text: str) -> int:
    value = int(text)
    if not 1 <= value <= AWS_MIN_DURATION:
        raise argparse.ArgumentTypeError(f"--min-duration must be 1..{AWS_MIN_DURATION}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m credd_sandbox",
        description="A local AWS stand-in: strict STS + moto for IAM/S3/SQS, one endpoint URL.",
    )
    parser.add_argument("--host", type=_loopback, default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument(
        "--min-duration",
        type=_duration,
        default=AWS_MIN_DURATION,
        help="smallest DurationSeconds STS accepts (default 900, AWS's bound; lower for demos)",
    )
    parser.add_argument("--ready-file", type=Path, help="also write the ready JSON line here")
    parser.add_argument("--moto-log", help="append moto's own output to this file")
    parser.add_argument("--parent-pid", type=int, help="exit when this parent process goes away")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr")
    return parser.parse_args(argv)


def _write_ready(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    moto = MotoProcess(log_path=args.moto_log)
    try:
        moto_url = moto.start()
    except MotoError as e:
        print(f"credd_sandbox: {e}", file=sys.stderr)
        return 1
    status = 0
    try:
        state = SandboxState(min_duration=args.min_duration)
        gateway = Gateway(state, forwarder=MotoForwarder(moto_url), moto_iam=MotoIam(moto_url))
        server = make_gateway_server(args.host, args.port, gateway)
        host = f"[{args.host}]" if ":" in args.host else args.host
        info: dict[str, Any] = {
            "endpoint": f"http://{host}:{server.server_port}",
            "moto": moto_url,
            "pid": os.getpid(),
            "moto_pid": moto.process.pid if moto.process else None,
            "min_duration_seconds": args.min_duration,
        }
        gateway.info = info
        thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="gateway", daemon=True
        )
        thread.start()
        if args.ready_file:
            _write_ready(args.ready_file, info)
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        log.info("sandbox ready at %s (moto %s)", info["endpoint"], moto_url)
        while not stop.wait(0.5):
            if args.parent_pid and os.getppid() != args.parent_pid:
                log.warning("parent %s went away; stopping", args.parent_pid)
                break
            if moto.process is not None and moto.process.poll() is not None:
                log.error("moto exited with %s; stopping", moto.process.returncode)
                status = 1
                break
        server.shutdown()
        server.server_close()
        thread.join(5)
    finally:
        moto.stop()
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
    return status
