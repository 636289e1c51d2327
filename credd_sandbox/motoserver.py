"""moto's server in a child process, and the few IAM calls the sandbox makes on it directly.

The child (``python -m credd_sandbox.motoserver``) runs moto's own ``ThreadedMotoServer`` on an
ephemeral loopback port and reports the port on its stdout, so there is no race for a port.
It dies with its parent (``PR_SET_PDEATHSIG`` plus a parent check).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlencode

log = logging.getLogger(__name__)

_IAM_NS = {"iam": "https://iam.amazonaws.com/doc/2010-05-08/"}
_PR_SET_PDEATHSIG = 1
# moto reads the service from the credential scope and never checks the signature.
_MOTO_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIASANDBOXADMIN0000/20260101/us-east-1/iam/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


class MotoError(RuntimeError):
    """moto did not start, or answered an admin call with an error."""

    def __init__(self, message: str, status: int = 502, code: str = "moto_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent goes (Linux); no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent went before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class MotoProcess:
    """A running moto server child."""

    python: str = sys.executable
    log_path: str | None = None
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> str:
        if self.log_path:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.python, "-m", "credd_sandbox.motoserver", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file or subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the sandbox, which stops moto itself
        )
        assert self.process.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(
            target=lambda: result.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        line = result[0] if result else b""
        try:
            port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise MotoError("moto server did not start (see --moto-log)") from None
        self.url = f"http://127.0.0.1:{port}"
        log.info("moto server pid %s at %s", self.process.pid, self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class MotoIam:
    """IAM calls on moto for what the admin API creates, so moto-side IAM agrees."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, action: str, **params: str) -> ET.Element:
        host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            body = urlencode({"Action": action, "Version": "2010-05-08", **params})
            conn.request(
                "POST",
                "/",
                body=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                    "Authorization": _MOTO_AUTH,
                    "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                },
            )
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        root = ET.fromstring(data)  # noqa: S314 - our own moto child on loopback
        if response.status >= 400:
            code = root.findtext(".//iam:Code", "", _IAM_NS) or root.findtext(".//Code", "")
            status = 409 if code == "EntityAlreadyExists" else 502
            raise MotoError(f"moto {action} failed: {code or response.status}", status, code)
        return root

    def create_user(self, name: str) -> tuple[str, str]:
        """Create ``name``; returns (arn, user id)."""
        root = self._call("CreateUser", UserName=name)
        return (
            root.findtext(".//iam:User/iam:Arn", "", _IAM_NS),
            root.findtext(".//iam:User/iam:UserId", "", _IAM_NS),
        )

    def create_access_key(self, name: str) -> tuple[str, str]:
        """A new key for ``name``; returns (access key id, secret)."""
        root = self._call("CreateAccessKey", UserName=name)
        return (
            root.findtext(".//iam:AccessKey/iam:AccessKeyId", "", _IAM_NS),
            root.findtext(".//iam:AccessKey/iam:SecretAccessKey", "", _IAM_NS),
        )

    def create_role(self, name: str, trust_policy: str, max_session_duration: int) -> str:
        """Create role ``name``; returns its ARN."""
        root = self._call(
            "CreateRole",
            RoleName=name,
            AssumeRolePolicyDocument=trust_policy,
            MaxSessionDuration=str(max_session_duration),
        )
        return root.findtext(".//iam:Role/iam:Arn", "", _IAM_NS)


def main() -> None:
    """Child entry point: run moto on 127.0.0.1:0, print ``{"port": N}``, wait for SIGTERM."""
    parent = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    die_with_parent(parent)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing else goes to the parent's pipe
    while not stop.wait(1.0):
        if os.getppid() != parent:
            break
    server.stop()


if __name__ == "__main__":
    main()
