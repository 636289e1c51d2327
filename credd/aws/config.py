"""Read ``~/.aws/config`` and ``~/.aws/credentials`` exactly as botocore does.

botocore's own loader does the parsing (``botocore.session.Session.full_config``), so file
locations (``AWS_CONFIG_FILE``, ``AWS_SHARED_CREDENTIALS_FILE``), ``[profile NAME]`` vs
``[default]``, the merge of the credentials file into profiles, ``[services NAME]`` and
``[sso-session NAME]`` sections are whatever botocore says they are.

On top of that, this module turns the profiles that opted in (``credd = true``) into
:class:`ManagedProfile` objects. A profile whose credd keys are wrong becomes a
:class:`BrokenProfile` carrying a clear error: it is shown in ``status`` and never stops the
others.

The keys credd reads (documented in docs/configuration.md)::

    credd                   true/false: manage this profile
    credd_mfa_source        totp | process | person (default: process when mfa_process is set,
                            else totp when a seed is stored, else person)
    credd_session_duration  GetSessionToken duration: 12h, 90m, 3600 (900 s .. 36 h; default 12h)
    credd_file_profile      section written into the credentials file (default NAME-credd; off)
    credd_key_max_age       age past which the IAM user's access key is due for rotation (60d)
    mfa_serial              MFA device ARN (discovered with iam:ListMFADevices when absent)
    mfa_process             command printing an MFA code (aws-vault's key)
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from credd.aws import keys as source_keys
from credd.errors import ConfigError, ProfileNotFound

log = logging.getLogger(__name__)

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
MFA_SOURCES = ("totp", "process", "person")

#: STS GetSessionToken bounds for IAM users (root is 900..3600, not supported by credd).
SESSION_MIN = 900
SESSION_MAX = 129_600
SESSION_DEFAULT = 43_200
#: STS AssumeRole bounds (the role's MaxSessionDuration may be lower; chained roles: 1 h).
ROLE_MIN = 900
ROLE_MAX = 43_200
ROLE_DEFAULT = 3_600
CHAIN_CAP = 3_600
CREDENTIAL_SOURCES = ("Environment",)

_DURATION = re.compile(r"^(?:(\d{1,6})h)?(?:(\d{1,8})m)?(?:(\d{1,9})s?)?$", re.ASCII)
_SECONDS = re.compile(r"[0-9]{1,9}")
#: botocore's own rule for a region name (``botocore.utils.validate_region_name``)
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")
#: every key credd reads from a profile: each must be a one-line value, not a nested section
READ_KEYS = (
    "credd", "credd_mfa_source", "credd_session_duration", "credd_file_profile", "mfa_serial",
    "credd_key_max_age",
    "mfa_process", "region", "role_arn", "source_profile", "credential_source", "external_id",
    "role_session_name", "duration_seconds", "sso_session", "sso_start_url", "sso_region",
    "sso_account_id", "sso_role_name", "aws_access_key_id", "aws_secret_access_key",
)  # fmt: skip
SSO_SESSION_KEYS = ("sso_start_url", "sso_region", "sso_registration_scopes")
_SECTION_NAME = re.compile(r"^[A-Za-z0-9_.@+=,:/-]{1,128}$")


def parse_duration(text: str) -> int:
    """``"12h"``, ``"90m"``, ``"1h30m"``, ``"3600"`` or ``"3600s"`` -> seconds."""
    value = text.strip().lower().replace(" ", "")
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 12h, 90m or 3600)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_age(text: str) -> int:
    """``"60d"``, or any :func:`parse_duration` text (``"1440h"``) -> seconds, more than 0."""
    value = text.strip().lower()
    days = value[:-1] if value.endswith("d") else None
    if days is not None and days.isdigit() and len(days) <= 5:
        seconds = int(days) * 86400
    else:
        seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"not a positive age: {text!r} (use e.g. 60d or 1440h)")
    return seconds


def mfa_command(name: str, text: object) -> list[str]:
    """``mfa_process`` split into the argv credd runs (without a shell), or ``ConfigError``.

    The one check for ``mfa_process``: the config loader, ``credd enable`` and the code source
    that runs the command all use it. The command may hold a secret (``oathtool --totp SEED``):
    no message here repeats it.
    """
    if not isinstance(text, str):
        raise ConfigError(
            f"profile {name!r}: mfa_process is a nested section, not a command",
            hint="write the command on the same line: mfa_process = COMMAND ARGS",
        )
    try:
        argv = shlex.split(text)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ConfigError(
            f"profile {name!r}: mfa_process cannot be split into a command ({exc})",
            hint="credd splits it like a shell, without running one: close each quote, put an "
            "argument with an apostrophe in double quotes (\"Bob's phone\") or escape it (\\')",
        ) from None
    if not argv or not argv[0]:
        raise ConfigError(
            f"profile {name!r}: mfa_process is empty",
            hint="set it to a command that prints the current code, or remove it",
        )
    if any("\0" in arg for arg in argv):
        raise ConfigError(
            f"profile {name!r}: mfa_process contains a NUL character",
            hint="rewrite mfa_process in the AWS config",
        )
    return argv


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


@dataclass(frozen=True)
class ManagedProfile:
    """A profile credd manages, validated. Holds no secret."""

    name: str
    kind: str  # "session-token", "assume-role", "sso", "process", "web-identity"
    mfa_serial: str | None
    mfa_source: str | None  # None: decided at refresh time (process > stored seed > person)
    mfa_process: str | None
    duration_seconds: int
    file_profile: str | None
    region: str | None
    has_file_keys: bool  # long-term keys present in the files (the keyring is preferred)
    #: credd_key_max_age in seconds (None: not set); not part of the node: no session depends on it
    key_max_age: int | None = field(default=None, compare=False)
    raw: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    role: RoleSettings | None = None
    sso: SsoSettings | None = None


@dataclass(frozen=True)
class RoleSettings:
    """botocore's assume-role keys of a profile, validated."""

    role_arn: str
    source_profile: str | None
    credential_source: str | None
    external_id: str | None = field(repr=False)
    role_session_name: str | None
    duration_seconds: int
    duration_set: bool  # duration_seconds was written in the profile
    web_identity_token_file: str | None = None  # AssumeRoleWithWebIdentity (botocore's key)


def _role(name: str, raw: Mapping[str, Any], minimum: int = ROLE_MIN) -> RoleSettings:
    arn = str(raw["role_arn"]).strip()
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
        raise ConfigError(
            f"profile {name!r}: role_arn = {arn!r} is not an IAM role ARN",
            hint="it looks like arn:aws:iam::123456789012:role/NAME",
        )
    source = str(raw["source_profile"]).strip() if raw.get("source_profile") else None
    cred_source = str(raw["credential_source"]).strip() if raw.get("credential_source") else None
    if source and cred_source:
        raise ConfigError(
            f"profile {name!r} has both source_profile and credential_source",
            hint="keep one of them (botocore refuses both too)",
        )
    token_file = str(raw.get("web_identity_token_file") or "").strip() or None
    if not source and not cred_source and not token_file:
        raise ConfigError(
            f"profile {name!r} has role_arn but neither source_profile nor credential_source",
            hint="add source_profile = PROFILE (the IAM user or role to assume it from)",
        )
    if cred_source and cred_source not in CREDENTIAL_SOURCES:
        raise ConfigError(
            f"profile {name!r}: credential_source = {cred_source} is not supported by credd",
            hint="use Environment, or source_profile",
        )
    duration = ROLE_DEFAULT
    text = raw.get("duration_seconds")
    if text is not None:
        if not _SECONDS.fullmatch(str(text).strip()):
            raise ConfigError(
                f"profile {name!r}: duration_seconds = {str(text)[:40]!r} is not a number",
                hint="set duration_seconds between 900 and 43200",
            )
        duration = int(str(text).strip())
        if not minimum <= duration <= ROLE_MAX:
            raise ConfigError(
                f"profile {name!r}: duration_seconds = {duration}; AssumeRole allows "
                f"{minimum} to {ROLE_MAX} s (and at most the role's MaxSessionDuration)",
                hint="set duration_seconds between 900 and 43200",
            )
    session_name = raw.get("role_session_name")
    if session_name is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", str(session_name)):
        raise ConfigError(
            f"profile {name!r}: role_session_name = {session_name!r} is not allowed by STS",
            hint="2-64 characters: letters, digits and +=,.@-",
        )
    return RoleSettings(
        role_arn=arn,
        source_profile=source,
        credential_source=cred_source,
        external_id=str(raw["external_id"]) if raw.get("external_id") else None,
        role_session_name=str(session_name) if session_name else None,
        duration_seconds=duration,
        duration_set=text is not None,
        web_identity_token_file=None if source or cred_source else token_file,
    )


@dataclass(frozen=True)
class BrokenProfile:
    """A profile that opted in but whose settings are wrong."""

    name: str
    error: ConfigError


@dataclass(frozen=True)
class AwsConfig:
    """What credd knows about the AWS files at one moment."""

    profiles: Mapping[str, Mapping[str, Any]]
    managed: Mapping[str, ManagedProfile]
    broken: Mapping[str, BrokenProfile]
    session_minimum: int = SESSION_MIN
    sso_sessions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: botocore's whole parsed config (with ``[services]``): what the client factory reads
    full: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def require_profile(self, name: str) -> Mapping[str, Any]:
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileNotFound(
                f"no profile named {name!r} in the AWS config or credentials file",
                hint=f"add [profile {name}] to the AWS config, or credd enable {name} --create",
            ) from None


def _kind(name: str, raw: Mapping[str, Any]) -> str:
    if "role_arn" in raw:
        return "web-identity" if source_keys.is_web_identity(raw) else "assume-role"
    if source_keys.is_vault(raw):
        return "vault"
    if "sso_session" in raw or "sso_start_url" in raw or "sso_account_id" in raw:
        return "sso"
    if source_keys.is_process(raw):
        return "process"
    return "session-token"


@dataclass(frozen=True)
class SsoSettings:
    """An SSO profile's keys, validated: ``sso_session`` + ``[sso-session NAME]``, or legacy."""

    session_name: str | None  # None: a legacy profile (start URL and region in the profile)
    start_url: str
    region: str
    scopes: tuple[str, ...]
    account_id: str
    role_name: str

    @property
    def token_key(self) -> str:
        """What names the shared token: the session name, or the start URL for legacy ones."""
        return self.session_name or self.start_url


def _sso(
    name: str, raw: Mapping[str, Any], sessions: Mapping[str, Mapping[str, Any]]
) -> SsoSettings:
    session_name = str(raw["sso_session"]).strip() if raw.get("sso_session") else None
    if session_name is not None:
        section = sessions.get(session_name)
        if section is None:
            raise ConfigError(
                f"profile {name!r}: sso_session = {session_name} but there is no "
                f"[sso-session {session_name}] section",
                hint=f"add it (aws configure sso-session), or fix sso_session in [profile {name}]",
            )
        where = f"[sso-session {session_name}]"
        check_values(where, section, SSO_SESSION_KEYS)
        start_url, region = section.get("sso_start_url"), section.get("sso_region")
        for key in ("sso_start_url", "sso_region"):
            if raw.get(key) and section.get(key) and raw[key] != section[key]:
                raise ConfigError(
                    f"profile {name!r}: {key} differs from the one in {where}",
                    hint="keep it in one place (botocore refuses the mismatch too)",
                )
        scopes_text = str(section.get("sso_registration_scopes") or "sso:account:access")
    else:
        start_url, region = raw.get("sso_start_url"), raw.get("sso_region")
        where = f"[profile {name}]"
        scopes_text = "sso:account:access"
    if not start_url or not region:
        raise ConfigError(
            f"profile {name!r}: {where} needs sso_start_url and sso_region",
            hint="run aws configure sso, or add both keys",
        )
    account = str(raw.get("sso_account_id") or "").strip()
    role = str(raw.get("sso_role_name") or "").strip()
    if not re.fullmatch(r"\d{12}", account):
        raise ConfigError(
            f"profile {name!r}: sso_account_id = {account!r} is not a 12-digit account id",
            hint="copy it from the AWS access portal",
        )
    if not role:
        raise ConfigError(
            f"profile {name!r}: sso_role_name is missing",
            hint="the permission set name shown in the AWS access portal",
        )
    scopes = tuple(s.strip() for s in scopes_text.split(",") if s.strip())
    return SsoSettings(session_name, str(start_url), str(region), scopes, account, role)


def check_values(where: str, raw: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Each of ``keys`` present in ``raw`` is a one-line value, not an indented sub-section."""
    for key in keys:
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(
                f"{where}: {key} is a nested section (indented lines), not a value",
                hint=f"write {key} = VALUE on one line",
            )


def session_minimum(environ: Mapping[str, str]) -> int:
    """900 s, AWS's bound. ``CREDD_MIN_SESSION_SECONDS``, a testing knob for STS stand-ins (the
    sandbox, moto, LocalStack), lowers it so rotations happen in seconds; AWS rejects less."""
    value = environ.get("CREDD_MIN_SESSION_SECONDS", "")
    if value.isdigit() and 0 < int(value) < SESSION_MIN:
        return int(value)
    return SESSION_MIN


def profile_settings(
    name: str,
    raw: Mapping[str, Any],
    minimum: int = SESSION_MIN,
    sso_sessions: Mapping[str, Mapping[str, Any]] | None = None,
) -> ManagedProfile:
    """Validate ``raw`` as credd would manage it (also for unmanaged sources of a role)."""
    return _profile(name, raw, minimum, sso_sessions or {})


def _profile(
    name: str,
    raw: Mapping[str, Any],
    minimum: int = SESSION_MIN,
    sso_sessions: Mapping[str, Mapping[str, Any]] | None = None,
) -> ManagedProfile:
    check_values(f"profile {name!r}", raw, READ_KEYS)
    kind = _kind(name, raw)
    source_keys.check(name, kind, raw)

    source = raw.get("credd_mfa_source")
    if source is not None:
        source = str(source).strip().lower()
        if source not in MFA_SOURCES:
            raise ConfigError(
                f"profile {name!r}: credd_mfa_source = {source!r} is not one of "
                + ", ".join(MFA_SOURCES),
                hint="fix credd_mfa_source in the AWS config",
            )
    mfa_process = raw.get("mfa_process")
    if mfa_process:
        mfa_command(name, mfa_process)
    if source == "process" and not mfa_process:
        raise ConfigError(
            f"profile {name!r}: credd_mfa_source = process but no mfa_process command is set",
            hint="add mfa_process = COMMAND (it must print the current code)",
        )

    duration = SESSION_DEFAULT
    if "credd_session_duration" in raw:
        text = str(raw["credd_session_duration"])
        try:
            duration = parse_duration(text)
        except ValueError as exc:
            raise ConfigError(f"profile {name!r}: credd_session_duration: {exc}") from None
        if not minimum <= duration <= SESSION_MAX:
            raise ConfigError(
                f"profile {name!r}: credd_session_duration = {text} is {duration} s; STS allows "
                f"{minimum} s (15 min) to {SESSION_MAX} s (36 h) for GetSessionToken",
                hint="set credd_session_duration between 15m and 36h",
            )

    key_max_age = None
    if "credd_key_max_age" in raw:
        try:
            key_max_age = parse_age(str(raw["credd_key_max_age"]))
        except ValueError as exc:
            raise ConfigError(
                f"profile {name!r}: credd_key_max_age: {str(exc)[:120]}",
                hint="set it to an age such as 60d or 1440h, or remove it",
            ) from None

    file_profile: str | None = f"{name}-credd"
    if "credd_file_profile" in raw:
        value = str(raw["credd_file_profile"]).strip()
        if value.lower() in FALSE | {"none", ""}:
            file_profile = None
        elif not _SECTION_NAME.match(value) or value == name:
            raise ConfigError(
                f"profile {name!r}: credd_file_profile = {value!r} is not a usable section name"
                + (" (it must differ from the profile itself)" if value == name else ""),
                hint="use letters, digits and -_.@ (e.g. work-session), or off",
            )
        else:
            file_profile = value

    serial = raw.get("mfa_serial")
    if serial is not None:
        serial = str(serial).strip()
        if not serial.startswith("arn:") and not re.fullmatch(r"[A-Z0-9]{9,64}", serial):
            raise ConfigError(
                f"profile {name!r}: mfa_serial = {serial!r} is neither an ARN nor a device serial",
                hint="copy the device ARN from IAM, or remove mfa_serial to discover it",
            )

    region = raw.get("region")
    if region and not _REGION.match(str(region)):
        raise ConfigError(
            f"profile {name!r}: region = {str(region)[:70]!r} is not a region name",
            hint="use a region such as us-east-1 (botocore refuses this one too)",
        )

    return ManagedProfile(
        role=_role(name, raw, min(minimum, ROLE_MIN)) if "role_arn" in raw else None,
        sso=_sso(name, raw, sso_sessions or {}) if kind == "sso" else None,
        name=name,
        kind=kind,
        mfa_serial=serial or None,
        mfa_source=source,
        mfa_process=str(mfa_process) if mfa_process else None,
        duration_seconds=duration,
        file_profile=file_profile,
        region=str(raw["region"]) if raw.get("region") else None,
        has_file_keys=bool(raw.get("aws_access_key_id") and raw.get("aws_secret_access_key")),
        key_max_age=key_max_age,
        raw={k: str(v) for k, v in raw.items() if isinstance(v, str)},
    )


def read_full_config(environ: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """botocore's ``full_config`` (``profiles``, ``sso_sessions``, ``services``...) of the
    current files: the one place credd reads them (the client factory and SSO use the result).

    ``ConfigError`` when botocore itself cannot parse a file (then botocore-based tools fail
    too). Its message names the file, the line and the kind of error, never the line's text:
    a malformed line may be a secret key.
    """
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    if environ is not None:
        # botocore reads these two from os.environ; mirror them for an injected environment.
        for var, key in (
            ("AWS_CONFIG_FILE", "config_file"),
            ("AWS_SHARED_CREDENTIALS_FILE", "credentials_file"),
        ):
            if var in environ:
                session.set_config_variable(key, environ[var])
    try:
        return dict(session.full_config)
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(
            f"the AWS config cannot be parsed: {_parse_error(exc)}",
            hint="fix the file (aws configure list shows the same error)",
        ) from None
    except Exception as exc:  # botocore let something else out: never its text (a secret?)
        raise ConfigError(
            f"the AWS files cannot be read: unexpected {type(exc).__name__} in botocore",
            hint="check the files with aws configure list",
        ) from None


def sections(
    full: Mapping[str, Any],
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The profiles and ``[sso-session]`` sections of a :func:`read_full_config` result."""
    profiles = full.get("profiles")
    sessions = full.get("sso_sessions")
    return (
        {str(k): v for k, v in (profiles or {}).items() if isinstance(v, Mapping)},
        {str(k): v for k, v in (sessions or {}).items() if isinstance(v, Mapping)},
    )


def read_files(
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The profiles and ``[sso-session]`` sections of both AWS files, as botocore reads them."""
    return sections(read_full_config(environ))


def _parse_error(exc: Exception) -> str:
    """What botocore's parse error says, without the offending line's text."""
    kwargs = getattr(exc, "kwargs", None) or {}
    path = kwargs.get("path", "the file")
    cause = kwargs.get("error")
    if cause is None:
        return f"{type(exc).__name__} in {path}"
    what = type(cause).__name__
    if isinstance(cause, UnicodeDecodeError):
        return f"{path} is not UTF-8 text (byte {cause.start})"
    lineno = getattr(cause, "lineno", None)
    errors = getattr(cause, "errors", None)
    if lineno is None and errors:
        lineno = errors[0][0]
    section = getattr(cause, "section", None)
    detail = f"{what} in {path}" + (f", line {lineno}" if lineno else "")
    if section is not None:  # the section's name, never a key (a mangled line may be one)
        detail += f", section [{section}]"
    return detail


def load(environ: Mapping[str, str] | None = None) -> AwsConfig:
    """Load both AWS files through botocore and validate every opted-in profile.

    Raises ``ConfigError`` only when botocore itself cannot parse a file (then botocore-based
    tools fail too); a wrong credd key in one profile marks just that profile broken.
    """
    env = os.environ if environ is None else environ
    full = read_full_config(environ)
    profiles, sso_sessions = sections(full)
    config = build(profiles, sso_sessions, session_minimum(env), full=full)
    for name, bad in config.broken.items():
        log.warning("profile %s is not usable: %s", name, bad.error.message)
    return config


def build(
    profiles: Mapping[str, Mapping[str, Any]],
    sso_sessions: Mapping[str, Mapping[str, Any]],
    minimum: int = SESSION_MIN,
    *,
    full: Mapping[str, Any] | None = None,
) -> AwsConfig:
    """Validate every opted-in profile: a wrong credd key marks just that profile broken.
    ``full`` is the whole parsed config the profiles came from (the client factory's input)."""
    managed: dict[str, ManagedProfile] = {}
    broken: dict[str, BrokenProfile] = {}
    for name, raw in sorted(profiles.items()):
        flag = raw.get("credd")
        if flag is None:
            continue
        try:
            if not parse_bool(str(flag)[:100]):
                continue
        except ValueError as exc:
            broken[name] = BrokenProfile(name, ConfigError(f"profile {name!r}: credd: {exc}"))
            continue
        try:
            managed[name] = _profile(name, raw, minimum, sso_sessions)
        except ConfigError as exc:
            broken[name] = BrokenProfile(name, exc)
    _check_file_profiles(managed, profiles, broken)
    return AwsConfig(
        profiles=profiles,
        managed=managed,
        broken=broken,
        session_minimum=minimum,
        sso_sessions=sso_sessions,
        full=full or {},
    )


def _check_file_profiles(
    managed: dict[str, ManagedProfile],
    profiles: Mapping[str, Mapping[str, Any]],
    broken: dict[str, BrokenProfile],
) -> None:
    """Two managed profiles must not write the same section, nor a managed profile's own.

    A profile using the default section name (``NAME-credd``) keeps it; a profile that chose
    an already claimed name explicitly is the one marked broken.
    """
    claimed: dict[str, str] = {}
    ordered = sorted(managed.values(), key=lambda p: "credd_file_profile" in p.raw)
    for prof in ordered:
        target = prof.file_profile
        if target is None:
            continue
        clash = claimed.get(target) or (target if target in managed else None)
        if clash:
            broken[prof.name] = BrokenProfile(
                prof.name,
                ConfigError(
                    f"profile {prof.name!r}: credd_file_profile {target!r} is also used by "
                    f"{clash!r}",
                    hint="give each managed profile its own credd_file_profile",
                ),
            )
            del managed[prof.name]
            continue
        claimed[target] = prof.name


def profile_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The profile named by ``AWS_PROFILE`` (botocore's rule), if any."""
    env = os.environ if environ is None else environ
    return env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or None
