"""The strict STS (and IAM ListMFADevices): the rules moto does not enforce.

Each handler takes the authenticated caller and the request parameters and returns the XML
``...Result`` body, or raises :class:`AwsFault` with AWS's own code and wording.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable

import pyotp

from credd.clock import isoformat_z
from credd_sandbox.awsxml import AwsFault, element
from credd_sandbox.iam_keys import ACCESS_KEY_ACTIONS
from credd_sandbox.state import ACCOUNT_ID, Device, KeyRecord, SandboxState

log = logging.getLogger(__name__)

GST_MAX = 129_600
GST_DEFAULT = 43_200
ROLE_DEFAULT = 3_600
CHAINING_CAP = 3_600
ROLE_MAX = 43_200
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_TOKEN_CODE = re.compile(r"^\d{6}$")

INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."
UNKNOWN_DEVICE = (
    "MultiFactorAuthentication failed, unable to validate MFA code. Please verify your MFA "
    "serial number is valid and associated with this user."
)

Params = dict[str, str]
Handler = Callable[[SandboxState, KeyRecord, Params], str]


def _validation(message: str) -> AwsFault:
    return AwsFault("ValidationError", message, 400)


def _duration(params: Params, default: int, low: int, high: int) -> int:
    raw = params.get("DurationSeconds")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _validation("DurationSeconds must be an integer.") from None
    if value < low:
        raise _validation(
            f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise _validation(
            f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value less than or equal to {high}"
        )
    return value


def _mfa_args(params: Params) -> tuple[str, str] | None:
    serial, code = params.get("SerialNumber"), params.get("TokenCode")
    if not serial and not code:
        return None
    if not serial or not code:
        raise AwsFault(
            "AccessDenied",
            "MultiFactorAuthentication failed, must provide both MFA serial number and one "
            "time pass code.",
            403,
        )
    if not _TOKEN_CODE.match(code):
        raise _validation(
            "1 validation error detected: Value at 'tokenCode' failed to satisfy constraint: "
            "Member must have length 6 and satisfy regular expression pattern: [\\d]*"
        )
    return serial, code


def check_code(state: SandboxState, caller: KeyRecord, serial: str, code: str) -> None:
    """Accept ``code`` for ``serial`` once: the caller's device, ±1 step, never reused."""
    with state.lock:
        device: Device | None = state.devices.get(serial)
        if device is None or caller.user_name is None or device.user_name != caller.user_name:
            raise AwsFault("AccessDenied", UNKNOWN_DEVICE, 403)
        totp = pyotp.TOTP(device.seed)
        step = int(state.totp_time() // totp.interval)
        matched = next(
            (
                c
                for c in (step - 1, step, step + 1)
                if hmac.compare_digest(totp.generate_otp(c), code)
            ),
            None,
        )
        if matched is None:
            log.info("MFA code rejected for %s: not valid now", serial)
            raise AwsFault("AccessDenied", INVALID_CODE, 403)
        if matched <= device.last_counter:
            log.info("MFA code rejected for %s: already used", serial)
            raise AwsFault("AccessDenied", INVALID_CODE, 403)
        device.last_counter = matched


def _credentials_xml(record: KeyRecord) -> str:
    assert record.expiration is not None and record.token is not None
    return (
        "<Credentials>"
        + element("AccessKeyId", record.access_key_id)
        + element("SecretAccessKey", record.secret)
        + element("SessionToken", record.token)
        + element("Expiration", isoformat_z(record.expiration))
        + "</Credentials>"
    )


def get_session_token(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    if caller.kind != "user":
        raise AwsFault("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
    duration = _duration(params, GST_DEFAULT, state.min_duration, GST_MAX)
    mfa = _mfa_args(params)
    if mfa is not None:
        check_code(state, caller, *mfa)
    record = state.issue(
        kind="session",
        arn=caller.arn,
        principal_id=caller.principal_id,
        user_name=caller.user_name,
        duration=duration,
        mfa=mfa is not None,
    )
    return _credentials_xml(record)


def get_federation_token(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    """Long-term keys only; the session carries no MFA (so it can never satisfy an MFA policy)."""
    if caller.kind != "user":
        raise AwsFault(
            "AccessDenied", "Cannot call GetFederationToken with session credentials", 403
        )
    name = params.get("Name", "")
    if not re.fullmatch(r"[\w+=,.@-]{2,32}", name):
        raise _validation("Name must be 2-32 characters: letters, digits and +=,.@-")
    duration = _duration(params, GST_DEFAULT, state.min_duration, GST_MAX)
    record = state.issue(
        kind="session",
        arn=f"arn:aws:sts::{ACCOUNT_ID}:federated-user/{name}",
        principal_id=f"{ACCOUNT_ID}:{name}",
        user_name=None,
        duration=duration,
        mfa=False,
    )
    return (
        _credentials_xml(record)
        + "<FederatedUser>"
        + element("FederatedUserId", record.principal_id)
        + element("Arn", record.arn)
        + "</FederatedUser>"
    )


def get_caller_identity(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    """The caller's account is the one in its ARN (SSO role credentials can be for any
    account), as AWS answers."""
    parts = caller.arn.split(":")
    account = parts[4] if len(parts) > 5 and parts[4].isdigit() else ACCOUNT_ID
    return (
        element("Arn", caller.arn)
        + element("UserId", caller.principal_id)
        + element("Account", account)
    )


def _trusts(trusted: tuple[str, ...], caller: KeyRecord) -> bool:
    names = {caller.arn, f"arn:aws:iam::{ACCOUNT_ID}:root", ACCOUNT_ID, "*"}
    if caller.role_arn:
        names.add(caller.role_arn)
    return any(p in names for p in trusted)


def assume_role(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    role_arn = params.get("RoleArn", "")
    session_name = params.get("RoleSessionName", "")
    if not role_arn or not session_name:
        raise _validation("RoleArn and RoleSessionName are required.")
    if not _SESSION_NAME.match(session_name):
        raise _validation(
            f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed "
            "to satisfy constraint: Member must satisfy regular expression pattern: "
            "[\\w+=,.@-]* and have length between 2 and 64"
        )
    denied = AwsFault(
        "AccessDenied",
        f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        403,
    )
    with state.lock:
        role = state.roles.get(role_arn)
    if role is None or not _trusts(role.trusted, caller):
        raise denied
    if role.external_id is not None and not hmac.compare_digest(
        role.external_id, params.get("ExternalId", "")
    ):
        raise denied
    duration = _duration(params, ROLE_DEFAULT, state.min_duration, ROLE_MAX)
    if caller.kind != "user" and duration > CHAINING_CAP:
        raise _validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed "
            "by role chaining."
        )
    if duration > role.max_session_duration:
        raise _validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    mfa = _mfa_args(params)
    if role.mfa_required and mfa is None and not caller.mfa:
        raise denied
    if mfa is not None:
        check_code(state, caller, *mfa)
    record = state.issue(
        kind="role",
        arn=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.name}/{session_name}",
        principal_id=f"{role.role_id}:{session_name}",
        user_name=None,
        duration=duration,
        mfa=mfa is not None or caller.mfa,
        role_arn=role.arn,
    )
    return (
        _credentials_xml(record)
        + "<AssumedRoleUser>"
        + element("AssumedRoleId", record.principal_id)
        + element("Arn", record.arn)
        + "</AssumedRoleUser>"
    )


def list_mfa_devices(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    user_name = params.get("UserName") or caller.user_name
    if user_name is None:
        raise _validation("Must specify userName when calling with non-User credentials")
    with state.lock:
        if user_name not in state.users:
            raise AwsFault("NoSuchEntity", f"The user with name {user_name} cannot be found.", 404)
        devices = state.devices_of(user_name)
    members = "".join(
        "<member>"
        + element("UserName", d.user_name)
        + element("SerialNumber", d.serial)
        + element("EnableDate", isoformat_z(d.enabled))
        + "</member>"
        for d in devices
    )
    return f"<IsTruncated>false</IsTruncated><MFADevices>{members}</MFADevices>"


STS_ACTIONS: dict[str, Handler] = {
    "GetSessionToken": get_session_token,
    "GetCallerIdentity": get_caller_identity,
    "AssumeRole": assume_role,
    "GetFederationToken": get_federation_token,
}
IAM_ACTIONS: dict[str, Handler] = {"ListMFADevices": list_mfa_devices, **ACCESS_KEY_ACTIONS}
