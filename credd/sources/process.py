"""``credential_process``: any helper that prints credentials (the IAM Roles Anywhere signing
helper, saml2aws, gimme-aws-creds, a company script), run by credd so its output is cached,
refreshed ahead of its ``Expiration`` like every node, served on every route and used as the base
of role chains.

The command is split as botocore splits it (POSIX words, no shell), runs in its own process
group with stdin closed and a timeout, and its stdout is parsed as botocore's ``ProcessProvider``
parses it (``Version`` 1, ``AccessKeyId``, ``SecretAccessKey``, optional ``SessionToken``,
``Expiration``, ``AccountId``). An error names the profile and quotes at most the first line of
stderr, never stdout (it may hold secrets). A failing run is backed off by the manager; output
that is not credentials parks the node until the helper or the config is fixed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from datetime import datetime
from typing import Any

from credd.aws import keys as source_keys
from credd.clock import Clock, parse_iso
from credd.errors import CredentialProcessFailed, CredentialProcessInvalid, UsageError
from credd.models import Credentials
from credd.plan.planner import Node

log = logging.getLogger(__name__)


class CredentialProcessSource:
    kind = "process"
    unattended = True
    mfa_source = None

    def __init__(self, node: Node, *, clock: Clock) -> None:
        raw = node.profile.raw
        self.name = node.profile.name
        self._argv = source_keys.process_argv(self.name, raw["credential_process"])
        self._timeout = source_keys.process_timeout(self.name, raw)
        self._clock = clock

    def push_code(self, code: str) -> None:
        raise UsageError(f"{self.name!r} takes no MFA code (its credential_process does)")

    def fetch(self, parent: Credentials | None = None) -> Credentials:
        stdout = self._run()
        creds = parse_output(self.name, stdout, self._clock.now())
        log.info("profile %s: credential_process gave %s", self.name, creds)
        return creds

    def _run(self) -> bytes:
        try:
            proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a timeout ends the helper and anything it started
            )
        except OSError as exc:
            raise CredentialProcessInvalid(
                f"profile {self.name!r}: credential_process cannot be started: "
                f"{self._argv[0]!r} ({exc.strerror or type(exc).__name__})",
                hint="fix credential_process in the AWS config",
            ) from None
        try:
            out, err = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CredentialProcessFailed(
                f"profile {self.name!r}: credential_process did not finish in {self._timeout:g} s",
                hint="check that the helper needs no input (stdin is closed); "
                "credd retries with backoff; credd_process_timeout sets the limit",
            ) from None
        if proc.returncode != 0:
            raise CredentialProcessFailed(
                f"profile {self.name!r}: credential_process exited {proc.returncode}: "
                f"{first_line(err)}",
                hint="run the helper by hand to see what it needs; credd retries with backoff",
            )
        return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def first_line(stderr: bytes | None) -> str:
    """The first non-empty line of stderr, shortened: what a helper prints as its error."""
    text = (stderr or b"").decode("utf-8", "replace")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "(no message on stderr)")
    return line[:200]


def parse_output(name: str, stdout: bytes, now: datetime) -> Credentials:
    """The helper's JSON as botocore's ``ProcessProvider`` reads it; ``CredentialProcessInvalid``
    naming what is wrong (never quoting the output)."""

    def bad(what: str) -> CredentialProcessInvalid:
        return CredentialProcessInvalid(
            f"profile {name!r}: credential_process output {what}",
            hint="it must print one JSON object: Version 1, AccessKeyId, SecretAccessKey, "
            "and SessionToken and Expiration for temporary credentials",
        )

    try:
        data: Any = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("is not JSON") from None
    if not isinstance(data, dict):
        raise bad("is not a JSON object")
    if data.get("Version") != 1:
        raise bad("has no Version 1 (the only version botocore supports)")
    fields: dict[str, str | None] = {}
    for key in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AccountId"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise bad(f"has a {key} that is not a non-empty string")
        fields[key] = value
    if not fields["AccessKeyId"] or not fields["SecretAccessKey"]:
        raise bad("lacks AccessKeyId or SecretAccessKey")
    expiration = None
    if fields["Expiration"]:
        try:
            expiration = parse_iso(fields["Expiration"])
        except ValueError:
            raise bad("has an Expiration that is not an ISO 8601 time") from None
        if expiration <= now:
            raise bad("has already expired")
    return Credentials(
        str(fields["AccessKeyId"]),
        str(fields["SecretAccessKey"]),
        fields["SessionToken"],
        expiration,
        fields["AccountId"],
    )
