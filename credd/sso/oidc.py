"""SSO-OIDC calls (RegisterClient, StartDeviceAuthorization, CreateToken) with their errors
turned into credd errors.

Clients come from the daemon's one factory (:class:`credd.aws.clients.ClientFactory`): unsigned
(``botocore.UNSIGNED``, as botocore's ``SSOTokenProvider`` and the AWS CLI create them) and made
for the profile, so ``[services NAME]`` sections, ``endpoint_url`` and
``AWS_ENDPOINT_URL_SSO_OIDC`` apply exactly as for botocore. Errors go through the one translator,
:func:`credd.aws.errors.translate`.
"""

from __future__ import annotations

from typing import Any

from credd.aws.errors import LOGIN_CODES, Subject, error_code
from credd.aws.errors import translate as _translate
from credd.errors import CreddError
from credd.sso.settings import SsoTarget

__all__ = ["LOGIN_CODES", "call", "error_code", "subject", "translate"]


def subject(target: SsoTarget, profile: str | None = None) -> Subject:
    """How errors about ``target``'s login name it, and how to log in again."""
    return Subject(target.label, login=target.login_command(profile), profile=profile)


def translate(
    exc: BaseException, *, target: SsoTarget, action: str, profile: str | None = None
) -> CreddError:
    """:func:`credd.aws.errors.translate` for a call about ``target``'s login."""
    return _translate(exc, action=action, subject=subject(target, profile))


def call(
    client: Any,
    operation: str,
    *,
    target: SsoTarget,
    action: str,
    profile: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """``client.<operation>(**params)``, with errors translated."""
    try:
        result: dict[str, Any] = getattr(client, operation)(**params)
    except Exception as exc:
        raise translate(exc, target=target, action=action, profile=profile) from None
    return result
