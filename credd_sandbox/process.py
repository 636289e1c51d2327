"""Starting and stopping ``python -m credd_sandbox`` as a child process (standard library only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from credd_sandbox.client import AdminClient, SandboxError


class SandboxProcess:
    """The sandbox in a subprocess. ``with SandboxProcess() as sb: sb.endpoint ...``"""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        min_duration: int | None = None,
        python: str = sys.executable,
        log_path: str | None = None,
        moto_log_path: str | None = None,
        log_level: str = "WARNING",
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.min_duration = min_duration
        self.python = python
        self.log_path = log_path
        self.moto_log_path = moto_log_path
        self.log_level = log_level
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"SandboxProcess(endpoint={self.info.get('endpoint')!r}, pid={self.pid})"

    @property
    def endpoint(self) -> str:
        if not self.info:
            raise SandboxError("the sandbox is not started", hint="call start() first")
        return str(self.info["endpoint"])

    @property
    def moto_endpoint(self) -> str:
        return str(self.info.get("moto", ""))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.endpoint)

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "credd_sandbox", "--host", self.host, "--port", str(self.port)]
        cmd += ["--parent-pid", str(os.getpid()), "--log-level", self.log_level]
        if self.min_duration is not None:
            cmd += ["--min-duration", str(self.min_duration)]
        if self.moto_log_path:
            cmd += ["--moto-log", self.moto_log_path]
        return cmd

    def start(self, timeout: float = 60.0) -> SandboxProcess:
        """Start it and wait for its ready line."""
        if self.log_path:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ if self.env is None else self.env)
        # Make this very credd importable in the child even when it is not installed.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL,
            env=env,
        )
        lines: list[bytes] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        try:
            self.info = json.loads(lines[0]) if lines and lines[0] else {}
        except ValueError:
            self.info = {}
        if "endpoint" not in self.info:
            code = self.process.poll()
            self.stop()
            raise SandboxError(
                f"the sandbox did not become ready (exit status {code})",
                hint="run `python -m credd_sandbox --log-level INFO` to see why",
            )
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        proc = self.process
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
