"""The environment that points a program at one of the daemon's endpoints for a profile
(``credd env``/``credd exec``, :mod:`credd.cli.env`), in every SDK:

* **container endpoint** (docs/container-endpoint.md): **set**
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (every SDK
  reads it, the AWS CLI 2.9 nothing else; the token is stable across daemon restarts);
* **IMDS endpoint** (docs/imds.md): **set** ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` and the
  variables of GDAL and ``object_store``, with the container variables unset (they would win);
* both: ``AWS_REGION``/``AWS_DEFAULT_REGION`` when the profile has a region, and
  ``CREDD_PROFILE``; **unset** everything botocore tries *before* them: static keys
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

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credd.errors import ConfigError, DaemonUnavailable, ProfileNotManaged

__all__ = ["EnvPlan", "build_imds_plan", "build_plan", "render"]

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
    from credd.server.endpoint import profile_url, read_token

    require_managed(profile, status)
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
    require_managed(profile, status)
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


def require_managed(profile: str, status: Mapping[str, Any]) -> None:
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
