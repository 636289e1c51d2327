"""``credd env PROFILE`` and ``credd exec PROFILE -- CMD``: point programs at the endpoint.

Both ask the daemon (over its socket) for the endpoint's URL and token file, check the profile
is one it manages, and build the environment a program needs to get refreshing credentials
from the container endpoint, in every SDK (docs/container-endpoint.md):

* **set** ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``
  (new SDKs; re-read on every fetch) and ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (the AWS CLI 2.9
  reads only this one), ``AWS_REGION``/``AWS_DEFAULT_REGION`` when the profile has a region,
  and ``CREDD_PROFILE``;
* **unset** everything botocore tries *before* the container provider: static keys
  (``AWS_ACCESS_KEY_ID``...), ``AWS_PROFILE``/``AWS_DEFAULT_PROFILE`` (a named profile's own
  credentials would win), web identity variables, a relative container URI (it beats the full
  one), ``AWS_CREDENTIAL_FILE`` and ``BOTO_CONFIG`` (legacy providers);
* **hide** a ``[default]`` section with credentials in the shared credentials file (static keys
  there would beat the endpoint and silently run the program as someone else): the program
  gets ``AWS_SHARED_CREDENTIALS_FILE`` pointing at an empty private file, and a note on stderr.
  A ``[default]`` credential source in the *config* file cannot be hidden that way (the config
  holds regions and endpoints): that is an error naming the setting to move.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credd.errors import ConfigError, DaemonUnavailable, ProfileNotManaged, UsageError

__all__ = ["EnvPlan", "build_plan", "register", "render"]

#: botocore's providers that come before the container provider, by environment variable
UNSET = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ACCOUNT_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CREDENTIAL_FILE",
    "BOTO_CONFIG",
)
#: the container provider's variables: they beat IMDS in every SDK
CONTAINER_VARS = (
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
#: set for IMDS, meaningless (or misleading) for the container route
IMDS_ONLY = (
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "CPL_AWS_EC2_API_ROOT_URL",
    "AWS_METADATA_ENDPOINT",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",  # the token is in AWS_CONTAINER_AUTHORIZATION_TOKEN
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
#: keys that make botocore's [default] profile produce credentials on its own
CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "credential_process",
    "role_arn",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "login_session",
)
EMPTY_FILE = "empty-aws-credentials"
BOTO_FILES = ("/etc/boto.cfg", "~/.boto")


@dataclass
class EnvPlan:
    """What to set and unset for one profile, and what to tell the person (stderr)."""

    profile: str
    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def apply(self, environ: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in environ.items() if k not in self.unset}
        env.update(self.set)
        return env


# -- reading the AWS files (as botocore does) -----------------------------------------------


def _parse(path: str) -> dict[str, dict[str, Any]]:
    import botocore.configloader
    import botocore.exceptions

    try:
        parsed: dict[str, dict[str, Any]] = botocore.configloader.raw_config_parse(path)
    except botocore.exceptions.ConfigNotFound:
        return {}
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"cannot parse {path}: {exc}", hint="fix the file") from None
    return parsed


def _files(environ: Mapping[str, str]) -> tuple[str, str]:
    config = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    creds = environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return os.path.expanduser(config), os.path.expanduser(creds)


def _region(
    profile: str, config: dict[str, dict[str, Any]], creds: dict[str, dict[str, Any]]
) -> str | None:
    names = ("default", "profile default") if profile == "default" else (f"profile {profile}",)
    for name in names:
        value = config.get(name, {}).get("region")
        if isinstance(value, str) and value.strip():
            return value.strip()
    value = creds.get(profile, {}).get("region")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _credential_keys(section: Mapping[str, Any]) -> list[str]:
    return [key for key in CREDENTIAL_KEYS if section.get(key)]


def _boto_has_credentials() -> str | None:
    import configparser

    for name in BOTO_FILES:
        path = os.path.expanduser(name)
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_option("Credentials", "aws_access_key_id"):
            return path
    return None


def empty_credentials_file(environ: Mapping[str, str]) -> Path:
    """An empty 0600 file in credd's private runtime dir (never written to)."""
    from credd.paths import ensure_private_dir, runtime_dir

    path = ensure_private_dir(runtime_dir(environ)) / EMPTY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return path


# -- the plan -------------------------------------------------------------------------------


def endpoint_of(status: Mapping[str, Any]) -> tuple[str, str]:
    """The endpoint's base URL and token file from the daemon's status, or a clear error."""
    endpoint = (status.get("daemon") or {}).get("endpoint")
    if not isinstance(endpoint, dict) or not endpoint.get("url") or not endpoint.get("token_file"):
        why = ""
        if isinstance(endpoint, dict):
            err = endpoint.get("error")
            why = f": {err.get('message')}" if isinstance(err, dict) else ": it is turned off"
        raise DaemonUnavailable(
            f"the daemon's container endpoint is not serving{why}",
            hint="restart it with the endpoint on (credd daemon [--endpoint-port N]); "
            "credd status shows why",
        )
    return str(endpoint["url"]), str(endpoint["token_file"])


def _not_managed(profile: str, status: Mapping[str, Any]) -> ProfileNotManaged:
    pid = (status.get("daemon") or {}).get("pid")
    reload = f"kill -HUP {pid}" if isinstance(pid, int) else "credd stop, then credd daemon"
    return ProfileNotManaged(
        f"the credd daemon does not manage profile {profile!r}",
        hint=f"enable it with credd enable {profile}, then reload the daemon: {reload}",
    )


def build_plan(
    profile: str, status: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> EnvPlan:
    """The environment changes that point a program at the endpoint for ``profile``.

    Only ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` carries the token: every SDK reads it (the AWS
    CLI 2.9 reads nothing else), the token is stable across daemon restarts, and setting the
    ``_FILE`` variable too makes the JavaScript SDK v3 warn on every fetch.
    """
    from credd.endpoint import profile_url, read_token

    _require_managed(profile, status)
    base, token_file = endpoint_of(status)
    plan = _plan(profile, environ, UNSET + IMDS_ONLY)
    plan.set["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = profile_url(base, profile)
    plan.set["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = read_token(token_file)
    return _finish(plan)


def build_imds_plan(
    profile: str, url: str, status: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> EnvPlan:
    """The environment that points every SDK family at the IMDS endpoint ``url`` for
    ``profile`` (docs/imds.md), with the providers that would win over IMDS switched off."""
    _require_managed(profile, status)
    plan = _plan(profile, environ, UNSET + CONTAINER_VARS)
    # botocore, the CLI, JS, Go, Java, C++; the AWS CLI 2.9 appends paths without a "/"
    plan.set["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = url.rstrip("/") + "/"
    plan.set["AWS_EC2_METADATA_DISABLED"] = "false"
    plan.set["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    plan.set["CPL_AWS_EC2_API_ROOT_URL"] = url  # GDAL
    plan.set["CPL_AWS_AUTODETECT_EC2"] = "NO"  # GDAL: do not look for EC2 hardware first
    plan.set["AWS_METADATA_ENDPOINT"] = url  # Rust object_store (Polars, DataFusion)
    if "AWS_SHARED_CREDENTIALS_FILE" in plan.set:  # GDAL reads its own variable for the file
        plan.set["CPL_AWS_CREDENTIALS_FILE"] = plan.set["AWS_SHARED_CREDENTIALS_FILE"]
    env = os.environ if environ is None else environ
    for name in ("NO_PROXY", "no_proxy"):  # a proxy must never see the endpoint's requests
        hosts = [h for h in env.get(name, "").split(",") if h.strip()]
        plan.set[name] = ",".join([*hosts, *(h for h in LOOPBACK_HOSTS if h not in hosts)])
    return _finish(plan)


def _require_managed(profile: str, status: Mapping[str, Any]) -> None:
    names = [p.get("name") for p in status.get("profiles", [])]
    if profile not in names:
        raise _not_managed(profile, status)


def _plan(profile: str, environ: Mapping[str, str] | None, unset: tuple[str, ...]) -> EnvPlan:
    """What both routes share: the region, the variables to unset, and [default] hidden."""
    env = os.environ if environ is None else environ
    plan = EnvPlan(profile)
    plan.set["CREDD_PROFILE"] = profile
    config_path, creds_path = _files(env)
    config, creds = _parse(config_path), _parse(creds_path)
    region = _region(profile, config, creds)
    if region:
        plan.set["AWS_REGION"] = region
        plan.set["AWS_DEFAULT_REGION"] = region
    plan.unset = list(unset)

    for section in ("default", "profile default"):
        keys = _credential_keys(config.get(section, {}))
        if keys:
            raise ConfigError(
                f"[{section}] in {config_path} sets {', '.join(keys)}: SDKs would use that "
                f"before credd's endpoint, and the program would not run as {profile}",
                hint="move those settings from [default] into a named profile",
            )
    keys = _credential_keys(creds.get("default", {}))
    if keys:
        empty = empty_credentials_file(env)
        plan.set["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
        plan.notes.append(
            f"[default] in {creds_path} has credentials ({', '.join(keys)}) that SDKs would use "
            f"before credd's; the program gets an empty credentials file instead ({empty})"
        )
    boto = _boto_has_credentials()
    if boto:
        empty = empty_credentials_file(env)
        plan.set["BOTO_CONFIG"] = str(empty)
        plan.notes.append(f"{boto} has keys that SDKs would use before credd's; hidden ({empty})")
    return plan


def _finish(plan: EnvPlan) -> EnvPlan:
    plan.unset = [name for name in plan.unset if name not in plan.set]
    return plan


def profile_state(status: Mapping[str, Any], profile: str) -> dict[str, Any]:
    for p in status.get("profiles", []):
        if p.get("name") == profile:
            return dict(p)
    return {}


# -- output ---------------------------------------------------------------------------------


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(plan: EnvPlan, fmt: str) -> str:
    """``sh`` (export/unset lines), ``fish`` (set -gx / set -e) or ``json``."""
    if fmt == "json":
        return json.dumps({"set": plan.set, "unset": plan.unset}, indent=2) + "\n"
    lines: list[str] = []
    if fmt == "fish":
        if plan.unset:  # `set -e` fails on an unset name; the output must still succeed
            lines.append("set -e " + " ".join(plan.unset) + "; or true;")
        lines += [f"set -gx {name} {_fish_quote(value)};" for name, value in plan.set.items()]
    else:
        if plan.unset:
            lines.append("unset " + " ".join(plan.unset) + ";")
        lines += [f"export {name}={shlex.quote(value)};" for name, value in plan.set.items()]
    return "\n".join(lines) + "\n"


# -- commands -------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> dict[str, Any]:
    from credd.client import Client

    return Client(args.socket).status()


def _warn(plan: EnvPlan, status: Mapping[str, Any]) -> None:
    for note in plan.notes:
        sys.stderr.write(f"credd: note: {note}\n")
    state = profile_state(status, plan.profile)
    if state.get("state") not in ("fresh", "refreshing", "pending"):
        waiting = state.get("waiting_for") or (state.get("error") or {}).get("hint") or ""
        sys.stderr.write(
            f"credd: note: {plan.profile} is {state.get('state')}"
            + (f"; {waiting}" if waiting else "")
            + " (the endpoint answers 503 until then)\n"
        )


def _open_imds(args: argparse.Namespace, *, lease: bool) -> str:
    """Ask the daemon for the profile's IMDS endpoint; its base URL."""
    from credd.client import Client, quote_segment

    body = json.dumps({"lease": lease}).encode()
    raw = Client(args.socket).call("POST", f"/v1/imds/{quote_segment(args.profile)}", body)
    endpoint = json.loads(raw).get("imds") or {}
    url = endpoint.get("url")
    if not isinstance(url, str) or not url:
        raise DaemonUnavailable("the daemon did not say where the IMDS endpoint listens")
    if not lease and not endpoint.get("configured"):
        sys.stderr.write(
            f"credd: note: this IMDS endpoint ({url}) lasts until the daemon stops; "
            f"to keep one across restarts set credd_imds = PORT in [profile {args.profile}] "
            "(docs/imds.md)\n"
        )
    return url


def _plan_for(args: argparse.Namespace, status: Mapping[str, Any], *, lease: bool) -> EnvPlan:
    if getattr(args, "imds", False):
        _require_managed(args.profile, status)
        return build_imds_plan(args.profile, _open_imds(args, lease=lease), status)
    return build_plan(args.profile, status)


def _guard(args: argparse.Namespace) -> None:
    """``--min-lifetime``: the profile's credentials last that long (refreshed first when they
    end sooner), or credd fails before the command starts, saying how long is possible."""
    from credd.client import Client

    Client(args.socket).credentials_raw(args.profile, args.min_lifetime)


def cmd_env(args: argparse.Namespace) -> int:
    status = _status(args)
    plan = _plan_for(args, status, lease=False)
    _warn(plan, status)
    sys.stdout.write(render(plan, args.format))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command to run", hint=f"credd exec {args.profile} -- COMMAND ...")
    status = _status(args)
    if args.min_lifetime:
        _guard(args)
    # the lease is this process's: the command keeps its pid, the endpoint ends with it
    plan = _plan_for(args, status, lease=True)
    _warn(plan, status)
    env = plan.apply(os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - the person's own command
    except FileNotFoundError:
        sys.stderr.write(f"credd: {command[0]}: command not found\n")
        return 127
    except OSError as exc:
        sys.stderr.write(f"credd: cannot run {command[0]}: {exc.strerror or exc}\n")
        return 126


IMDS_HELP = (
    "point the program at an IMDSv2 endpoint for PROFILE instead of the container endpoint "
    "(GDAL, DuckDB, object_store/Polars, old SDKs; docs/imds.md)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``env`` and ``exec`` to the main parser's subcommands."""
    socket_help = (
        "the daemon's socket (default: $CREDD_SOCKET, else $XDG_RUNTIME_DIR/credd/credd.sock)"
    )
    p = subparsers.add_parser(
        "env",
        help="print the variables that point a program at the container endpoint for PROFILE",
        description="Print shell lines (or JSON) that point AWS SDKs and the AWS CLI at credd's "
        'container endpoint for PROFILE: eval "$(credd env work)". See '
        "docs/container-endpoint.md.",
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--format",
        choices=("sh", "fish", "json"),
        default="sh",
        help="sh: export/unset lines (default); fish: set -gx / set -e; json: {set, unset}",
    )
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.set_defaults(func=cmd_env)

    p = subparsers.add_parser(
        "exec",
        help="run a command whose AWS credentials come from the container endpoint",
        description="Run COMMAND with the environment `credd env PROFILE` prints (no static "
        "keys), replacing credd: signals and the exit code are the command's own.",
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile the daemon manages")
    p.add_argument("--imds", action="store_true", help=IMDS_HELP)
    p.add_argument(
        "--min-lifetime",
        metavar="DURATION",
        help="start COMMAND only with credentials lasting this long (2h, 90m): refreshed first "
        "when they end sooner; fails at once, saying how long is possible, when the source "
        "cannot give that much",
    )
    p.add_argument("--socket", metavar="PATH", help=socket_help)
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run"
    )
    p.set_defaults(func=cmd_exec)
