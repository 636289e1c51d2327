"""The checks behind ``credd doctor`` (the command: credd/cli/doctor.py); one per finding.

Checks, in order: the AWS files parse; they have not lost sections since credd's last-known-good
copy (``--restore-files`` / ``--accept-files`` act on that); each managed profile has a plan and
the secrets that plan needs; the secret store is reachable and unlocked; the daemon answers on
its socket and its container endpoint answers HTTP; the systemd user unit's state; the clock
against STS (the ``Date`` header of an unsigned GetCallerIdentity, sent where the profile's
endpoint settings say). Exit 0 only when no check fails. The JSON schema is in docs/doctor.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TextIO

from credd.aws import config as awsconfig
from credd.clock import Clock, SystemClock
from credd.engine.state import State
from credd.errors import CreddError, SecretMissing
from credd.secrets.store import SecretStore

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MAX_SKEW_SECONDS = 30  # TOTP steps are 30 s; SigV4 itself allows 5 minutes
UNIT = "credd.service"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    message: str
    fix: str | None = None


def _fail(name: str, exc: CreddError) -> Check:
    return Check(name, FAIL, exc.message, exc.hint)


def check_files(
    environ: Mapping[str, str] | None,
) -> tuple[list[Check], awsconfig.AwsConfig | None]:
    try:
        config = awsconfig.load(environ)
    except CreddError as exc:
        return [_fail("aws-files", exc)], None
    managed = len(config.managed) + len(config.broken)
    line = f"the AWS files parse: {len(config.profiles)} profiles, {managed} managed by credd"
    checks = [Check("aws-files", OK, line)]
    if not managed:
        checks[0] = Check(
            "aws-files",
            WARN,
            line,
            "opt a profile in: credd enable PROFILE (docs/configuration.md)",
        )
    return checks, config


def check_backups(environ: Mapping[str, str] | None) -> list[Check]:
    """Each AWS file against credd's last-known-good copy: did it lose sections (a wipe)?"""
    from credd.files import restore as filerestore

    checks = []
    for name, path, errors in filerestore.aws_files(environ):
        try:
            finding = filerestore.inspect(path, errors)
        except CreddError as exc:
            checks.append(Check(name, WARN, f"cannot compare with credd's copy: {exc.message}"))
            continue
        lost, line = filerestore.describe(finding, errors.what)
        if finding.backup is None:
            checks.append(Check(name, SKIP, line))
        elif lost:
            fix = (
                "credd doctor --restore-files (sections holding secret keys only with "
                "--include-keys); if you removed them on purpose: credd doctor --accept-files"
            )
            checks.append(Check(name, FAIL, line, fix))
        else:
            checks.append(Check(name, OK, line))
    return checks


def check_store(store: SecretStore) -> Check:
    from credd.secrets import files as filestore

    try:
        kind, source = filestore.selected()
        backend = store.backend_name()
        store.check()
    except CreddError as exc:
        return _fail("secret-store", exc)
    return Check("secret-store", OK, f"{kind} store usable ({backend}; chosen by {source})")


def check_profile(
    config: awsconfig.AwsConfig, name: str, store: SecretStore, clock: Clock
) -> Check:
    from credd.plan.planner import explain, plan_for
    from credd.sources.codes import code_source_of
    from credd.sources.keys import long_term_keys

    label = f"profile:{name}"
    if name in config.broken:
        return _fail(label, config.broken[name].error)

    try:
        plan = plan_for(config, name, code_source_of(store, strict=True))
        source = plan.code_source  # decided once, by the planner
        for node in plan.nodes():
            keyed = node.kind.from_keys
            if keyed and node.parent is None and node.base and node.base_profile is not None:
                long_term_keys(node.base_profile, store)
            if node.with_code and source == "totp" and store.get_totp_seed(node.base) is None:
                raise SecretMissing(
                    f"profile {node.base!r} uses TOTP codes but no seed is stored",
                    hint=f"credd totp set {node.base}",
                )
    except CreddError as exc:
        return _fail(label, exc)
    text = explain(plan, source)
    if source == "person":
        return Check(label, OK, text, f"give codes with: credd mfa {name}")
    return Check(label, OK, text)


def check_daemon(socket: str | None) -> tuple[Check, dict[str, Any] | None]:
    from credd.client import Client

    client = Client(socket, timeout=5)
    try:
        status = client.status()
    except CreddError as exc:
        return Check("daemon", FAIL, exc.message, exc.hint), None
    daemon = status.get("daemon") or {}
    profiles = status.get("profiles") or []
    fresh = sum(1 for p in profiles if p.get("state") == State.FRESH)
    line = (
        f"credd {daemon.get('version', '?')} (pid {daemon.get('pid', '?')}) answers on "
        f"{client.socket}: {fresh} of {len(profiles)} profiles fresh"
    )
    return Check("daemon", OK, line), daemon


def check_endpoint(daemon: dict[str, Any] | None) -> Check:
    if daemon is None:
        return Check("endpoint", SKIP, "not checked: the daemon does not answer")
    info = daemon.get("endpoint")
    if not isinstance(info, dict) or info.get("state") == "off":
        return Check("endpoint", SKIP, "the container endpoint is turned off")
    if info.get("state") != "serving" or not info.get("url"):
        error = info.get("error") or {}
        return Check(
            "endpoint",
            FAIL,
            f"the container endpoint is not serving: {error.get('message', info.get('state'))}",
            error.get("hint") or "see the daemon's log; choose a port with CREDD_ENDPOINT_PORT",
        )
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(str(info["url"]))
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=5)
    try:
        conn.request("GET", "/")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Check(
            "endpoint",
            FAIL,
            f"the container endpoint {info['url']} does not answer: {exc}",
            "restart the daemon; see its log",
        )
    finally:
        conn.close()
    return Check("endpoint", OK, f"the container endpoint {info['url']} answers (HTTP {status})")


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


def check_systemd(run: Runner = _run) -> Check:
    if shutil.which("systemctl") is None:
        return Check("systemd", SKIP, "not installed / no user systemd (no systemctl)")
    try:
        enabled = run(["systemctl", "--user", "is-enabled", UNIT])
        active = run(["systemctl", "--user", "is-active", UNIT])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("systemd", SKIP, f"not installed / no user systemd ({exc})")
    text = (enabled.stdout + enabled.stderr).strip()
    if "bus" in text.lower() or "XDG_RUNTIME_DIR" in text or "Failed to connect" in text:
        return Check("systemd", SKIP, "not installed / no user systemd (no user manager)")
    state, running = enabled.stdout.strip(), active.stdout.strip()
    if enabled.returncode != 0 and state in ("", "not-found"):
        return Check(
            "systemd", SKIP, f"{UNIT} not installed", "to run at login: credd service install"
        )
    line = f"{UNIT}: {state or 'unknown'}, {running or 'unknown'}"
    if running == "failed":
        return Check(
            "systemd", FAIL, line, f"journalctl --user -u {UNIT}; then credd service install"
        )
    if running != "active" or state != "enabled":
        return Check("systemd", WARN, line, "credd service install (enables and starts it)")
    return Check("systemd", OK, line)


def sts_date(profile: str | None) -> datetime:
    """The server's ``Date`` from an unsigned GetCallerIdentity (refused, but dated)."""
    import botocore.exceptions
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    session = botocore.session.Session(profile=profile)
    region = session.get_config_variable("region") or "us-east-1"
    config = Config(
        signature_version=UNSIGNED,
        connect_timeout=5,
        read_timeout=5,
        retries={"total_max_attempts": 1},
    )
    client = session.create_client("sts", region_name=region, config=config)
    try:
        response = client.get_caller_identity()
        headers = response["ResponseMetadata"]["HTTPHeaders"]
    except botocore.exceptions.ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("date")
    if not date:
        raise ValueError(f"STS at {client.meta.endpoint_url} sent no Date header")
    return parsedate_to_datetime(date)


def check_clock(config: awsconfig.AwsConfig | None, clock: Clock) -> Check:
    import botocore.exceptions

    profile = None
    if config is not None:
        names = sorted(config.managed) or (["default"] if "default" in config.profiles else [])
        profile = names[0] if names else None
    try:
        server = sts_date(profile)
    except (botocore.exceptions.BotoCoreError, ValueError, TypeError) as exc:
        return Check(
            "clock", FAIL, f"cannot reach STS to compare clocks: {exc}", "check the network"
        )
    skew = (clock.now() - server).total_seconds()
    where = f"profile {profile}'s STS endpoint" if profile else "STS"
    line = f"the local clock is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} {where}"
    if abs(skew) > MAX_SKEW_SECONDS:
        return Check(
            "clock",
            FAIL,
            line,
            "synchronise the clock (timedatectl set-ntp true, or chrony): MFA codes and "
            "signatures depend on it",
        )
    return Check("clock", OK, line)


def check_key_ages(store: SecretStore, clock: Clock) -> list[Check]:
    """One line per IAM user's stored key: warn when older than ``credd_key_max_age`` (else
    90 days). See docs/keys.md."""
    from credd.actions.rotation import DEFAULT_WARN_AGE, key_ages

    checks = []

    def has_keys(profile: str) -> bool:
        try:
            return store.get_long_term_keys(profile) is not None
        except CreddError:
            return False

    try:
        ages = key_ages(store, clock, has_keys=has_keys)
    except CreddError:
        return []
    for name, age, max_age in ages:
        limit = max_age.total_seconds() if max_age else DEFAULT_WARN_AGE
        if age is None:
            checks.append(Check(f"key-age:{name}", OK, f"{name}: access key age unknown",
                                f"credd keys rotate {name} records it"))  # fmt: skip
        elif age.total_seconds() >= limit:
            checks.append(Check(f"key-age:{name}", WARN,
                                f"{name}: access key is {age.days} days old "
                                f"(rotate every {int(limit // 86400)} days)",
                                f"credd keys rotate {name}"))  # fmt: skip
        else:
            checks.append(Check(f"key-age:{name}", OK, f"{name}: access key {age.days} days old"))
    return checks


def run_checks(
    *,
    socket: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    store: SecretStore | None = None,
    systemd: Runner = _run,
) -> list[Check]:
    clock = clock or SystemClock()
    checks, config = check_files(environ)
    checks += check_backups(environ)
    store = store or SecretStore(allow_prompt=False, passphrase_prompt=sys.stdin.isatty())
    store_check = check_store(store)
    if config is not None:
        for name in sorted({*config.managed, *config.broken}):
            checks.append(check_profile(config, name, store, clock))
    checks.append(store_check)
    if store_check.status == OK:
        checks += check_key_ages(store, clock)
    daemon_check, daemon = check_daemon(socket)
    checks += [daemon_check, check_endpoint(daemon), check_systemd(systemd)]
    checks.append(check_clock(config, clock))
    return checks


def render(checks: list[Check], out: TextIO) -> None:
    for c in checks:
        line = f"{c.status.upper():4}  {c.name}: {c.message}"
        if c.fix and c.status != OK:
            line += f" -> fix: {c.fix}"
        elif c.fix:
            line += f" ({c.fix})"
        out.write(line + "\n")
    failed = sum(1 for c in checks if c.status == FAIL)
    out.write(f"\n{failed} problem(s) found\n" if failed else "\nall checks passed\n")


def report(checks: list[Check]) -> dict[str, Any]:
    return {
        "version": 1,
        "ok": not any(c.status == FAIL for c in checks),
        "checks": [asdict(c) for c in checks],
    }
