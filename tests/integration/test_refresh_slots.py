"""Refreshes waiting for the credentials file do not stop the AWS calls of others (issue 9).

A refresh job holds its scheduler worker until its credentials are in the credentials file, and
that file is written by group commit (one rewrite per batch). With as many workers as AWS call
slots (``CREDD_MAX_INFLIGHT``), every worker ended up waiting for the file's commit while the
call slots sat idle: 1,000 profiles became fresh at the pace of the file, not of AWS (76 s). The
daemon now runs more jobs than call slots.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credd.daemon.main import Daemon
from credd.server.endpoint import EndpointSettings
from tests.fixtures.sandbox import SandboxHandle, unique_name

pytestmark = pytest.mark.integration

SLOTS = 2
ROLES = 8


def write_config(sandbox: SandboxHandle) -> None:
    admin = sandbox.admin
    user = admin.create_user(unique_name("slots"))
    device = admin.create_mfa_device(user)
    code = f"{sys.executable} -c \"import pyotp; print(pyotp.TOTP('{device.seed}').now())\""
    text = (
        f"[profile user]\nregion = us-east-1\nservices = sandbox\nmfa_serial = {device.serial}\n"
        f"mfa_process = {code}\ncredd = true\ncredd_file_profile = off\n\n"
    )
    for i in range(ROLES):
        role = admin.create_role(unique_name(f"r{i}"), trusted=[user.arn], mfa_required=True)
        text += (
            f"[profile r{i}]\nrole_arn = {role.arn}\nsource_profile = user\nregion = us-east-1\n"
            "services = sandbox\ncredd = true\n\n"
        )
    text += "[services sandbox]\nsts =\n  endpoint_url = " + sandbox.endpoint + "\n"
    aws = Path(os.environ["HOME"]) / ".aws"
    aws.mkdir(mode=0o700, exist_ok=True)
    (aws / "config").write_text(text)
    creds = aws / "credentials"
    creds.write_text(
        f"[user]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    creds.chmod(0o600)


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_aws_calls_go_on_while_refreshes_wait_for_the_credentials_file(
    sandbox_clean: SandboxHandle, tmp_path: Path
) -> None:
    write_config(sandbox_clean)
    environ = dict(os.environ, CREDD_MAX_INFLIGHT=str(SLOTS), CREDD_SECRET_STORE="plaintext-file")
    daemon = Daemon(
        tmp_path / "s" / "credd.sock",
        environ=environ,
        endpoint=EndpointSettings.resolve(disabled=True, environ=environ),
    )
    release = threading.Event()
    writer = daemon.manager._refresher.writer
    assert writer is not None
    writer.before_commit = lambda _path: release.wait(120)  # the file's commit is held
    admin = sandbox_clean.admin
    daemon.start()
    try:
        more_than_slots = wait_for(lambda: admin.calls("AssumeRole") > SLOTS, 60)
        release.set()
        assert more_than_slots, f"AssumeRole calls stopped at {admin.calls('AssumeRole')}"
        assert wait_for(lambda: all(p.state == "fresh" for p in daemon.manager.status()), 60), [
            (p.name, p.state) for p in daemon.manager.status()
        ]
        assert admin.calls("AssumeRole") == ROLES  # still one call per node
        text = (Path(os.environ["HOME"]) / ".aws" / "credentials").read_text()
        assert all(f"credd_managed_by = r{i}\n" in text for i in range(ROLES))
    finally:
        release.set()
        daemon.shutdown()
