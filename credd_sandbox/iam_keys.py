"""IAM access keys with AWS's rules, answered by the sandbox (not moto).

moto 5.2 enforces the two-keys-per-user quota, but its ``GetAccessKeyLastUsed`` never records a
use (``ServiceName: N/A``), an ``Inactive`` key still authenticates (moto checks no signature),
and keys it creates are unknown to the gateway, so they could sign nothing. Here:
CreateAccessKey (``LimitExceeded`` beyond two), DeleteAccessKey, UpdateAccessKey (an
``Inactive`` key is refused by the gateway), ListAccessKeys, GetAccessKeyLastUsed (recorded by
the gateway on every authenticated request). A user can be given the common "deny IAM without
MFA" policy (``aws:MultiFactorAuthPresent``): then these calls need an MFA-backed session.
Session credentials issued from a key stay valid after it is deleted, until they expire.
"""

from __future__ import annotations

import logging

from credd.clock import isoformat_z
from credd_sandbox.awsxml import AwsFault, element
from credd_sandbox.state import KeyRecord, SandboxState, random_id, random_secret

log = logging.getLogger(__name__)

Params = dict[str, str]
MAX_KEYS = 2


def _target_user(state: SandboxState, caller: KeyRecord, params: Params, action: str) -> str:
    user_name = params.get("UserName") or caller.user_name
    if user_name is None:
        raise AwsFault(
            "ValidationError", "Must specify userName when calling with non-User credentials", 400
        )
    with state.lock:
        if user_name not in state.users:
            raise AwsFault("NoSuchEntity", f"The user with name {user_name} cannot be found.", 404)
        needs_mfa = user_name in state.mfa_policies
    if needs_mfa and not caller.mfa:
        raise AwsFault(
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: iam:{action} on resource: user "
            f"{user_name} with an explicit deny in an identity-based policy",
            403,
        )
    return user_name


def _owned_key(state: SandboxState, user_name: str, params: Params) -> KeyRecord:
    key_id = params.get("AccessKeyId", "")
    record = state.key(key_id)
    if record is None or record.kind != "user" or record.user_name != user_name:
        raise AwsFault("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)
    return record


def create_access_key(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    user_name = _target_user(state, caller, params, "CreateAccessKey")
    with state.lock:
        if len(state.user_keys(user_name)) >= MAX_KEYS:
            raise AwsFault("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", 409)
        user = state.users[user_name]
        key_id = random_id("AKIA", 16)
        while key_id in state.keys:
            key_id = random_id("AKIA", 16)
        record = KeyRecord(
            access_key_id=key_id,
            secret=random_secret(),
            kind="user",
            arn=user.arn,
            principal_id=user.user_id,
            user_name=user_name,
            created=state.clock.now().replace(microsecond=0),
        )
        state.keys[key_id] = record
    log.info("created access key ...%s for %s", key_id[-4:], user_name)
    assert record.created is not None
    return (
        "<AccessKey>"
        + element("UserName", user_name)
        + element("AccessKeyId", key_id)
        + element("Status", record.status)
        + element("SecretAccessKey", record.secret)
        + element("CreateDate", isoformat_z(record.created))
        + "</AccessKey>"
    )


def delete_access_key(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    user_name = _target_user(state, caller, params, "DeleteAccessKey")
    with state.lock:
        record = _owned_key(state, user_name, params)
        del state.keys[record.access_key_id]
    log.info("deleted access key ...%s of %s", record.access_key_id[-4:], user_name)
    return ""


def update_access_key(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    user_name = _target_user(state, caller, params, "UpdateAccessKey")
    status = params.get("Status", "")
    if status not in ("Active", "Inactive"):
        raise AwsFault("ValidationError", "Status must be Active or Inactive.", 400)
    with state.lock:
        _owned_key(state, user_name, params).status = status
    return ""


def list_access_keys(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    user_name = _target_user(state, caller, params, "ListAccessKeys")
    members = "".join(
        "<member>"
        + element("UserName", user_name)
        + element("AccessKeyId", k.access_key_id)
        + element("Status", k.status)
        + (element("CreateDate", isoformat_z(k.created)) if k.created else "")
        + "</member>"
        for k in state.user_keys(user_name)
    )
    return f"<IsTruncated>false</IsTruncated><AccessKeyMetadata>{members}</AccessKeyMetadata>"


def get_access_key_last_used(state: SandboxState, caller: KeyRecord, params: Params) -> str:
    record = state.key(params.get("AccessKeyId", ""))
    if record is None or record.kind != "user" or record.user_name is None:
        raise AwsFault("AccessDenied", "The access key cannot be found or is not yours.", 403)
    _target_user(state, caller, {"UserName": record.user_name}, "GetAccessKeyLastUsed")
    used = record.last_used
    inner = (
        (element("LastUsedDate", isoformat_z(used)) if used else "")
        + element("ServiceName", record.last_used_service or "N/A")
        + element("Region", record.last_used_region or "N/A")
    )
    return element("UserName", record.user_name) + f"<AccessKeyLastUsed>{inner}</AccessKeyLastUsed>"


ACCESS_KEY_ACTIONS = {
    "CreateAccessKey": create_access_key,
    "DeleteAccessKey": delete_access_key,
    "UpdateAccessKey": update_access_key,
    "ListAccessKeys": list_access_keys,
    "GetAccessKeyLastUsed": get_access_key_last_used,
}
