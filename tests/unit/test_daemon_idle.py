"""Idle means idle (issue 9): the serve loop's tick does no work per profile unless something
changed. Before the fix every 0.5 s tick built every profile's status (and asked the secret
store about each one's MFA source)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from credd.aws import config as awsconfig
from credd.daemon.main import Daemon
from credd.server.endpoint import EndpointSettings


def build_daemon(tmp_path: Path, profiles: int) -> Daemon:
    aws = Path(os.environ["HOME"]) / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        "".join(
            f"[profile p{i}]\ncredd = true\nmfa_process = echo 123456\n"
            f"mfa_serial = arn:aws:iam::123456789012:mfa/p{i}\n\n"
            for i in range(profiles)
        )
    )
    environ = dict(os.environ)
    return Daemon(
        tmp_path / "s" / "credd.sock",
        environ=environ,
        endpoint=EndpointSettings.resolve(disabled=True, environ=environ),
    )


def test_idle_ticks_build_no_status_and_a_change_builds_one(tmp_path: Path) -> None:
    daemon = build_daemon(tmp_path, 50)
    builds: list[int] = []
    real = daemon.manager.status

    def counting() -> Any:
        builds.append(1)
        return real()

    daemon.manager.status = counting  # type: ignore[method-assign]
    daemon.status_cost_factor = 0.0  # no pacing between builds: each change is seen at once
    daemon.manager.load(awsconfig.load(daemon.environ))  # not started: nothing refreshes
    for _ in range(20):
        daemon.update_status()
    assert len(builds) == 1  # the first tick sees the load, the other 19 do nothing
    daemon.manager.load(awsconfig.load(daemon.environ))  # something changed (a reload)
    for _ in range(20):
        daemon.update_status()
    assert len(builds) == 2
