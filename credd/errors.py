"""Every error credd raises on purpose.

Each error carries a stable ``code`` (sent on the socket and in ``status --json``), an
``exit_code`` for the CLI, an ``http_status`` for the socket, and a ``hint`` telling the person
what to run next. Messages are built from fields and never contain a secret.

The tree::

    CreddError                      code             exit  http
     ├── UsageError                 bad_usage         2    400
     ├── ConfigError                config_invalid    3    422
     │    ├── ProfileNotFound       profile_not_found 3    404
     │    └── ProfileNotManaged     profile_not_managed 3  404
     ├── NeedsPerson                needs_person      4    503
     │    ├── NeedsMfa              needs_mfa         4    503
     │    └── LoginRequired         login_required    4    503
     ├── MfaError                   mfa_error         4    409
     │    ├── MfaCodeRejected       mfa_code_rejected 4    409
     │    ├── MfaCodeReused         mfa_code_reused   4    409
     │    └── MfaProcessFailed      mfa_process_failed 4   502
     ├── DaemonUnavailable          daemon_unavailable 5   503
     ├── SecretStoreError           secret_store_unavailable 6 503  (transient)
     │    ├── SecretStoreLocked     secret_store_locked 6  503  (transient)
     │    │    └── SecretStoreSealed secret_store_locked 6  503  (the file store, this process)
     │    └── SecretMissing         secret_missing    6    404
     ├── AwsError                   aws_error         7    502
     │    ├── CredentialProcessFailed credential_process_failed 7 502 (transient)
     │    │    └── CredentialProcessInvalid credential_process_invalid 7 502
     │    ├── WebIdentityTokenExpired web_identity_token_expired 7 502 (transient)
     │    ├── AwsUnreachable        aws_unreachable   7    502  (transient)
     │    ├── AwsThrottled          aws_throttled     7    502  (transient)
     │    └── AwsAccessDenied       aws_access_denied 7    502
     ├── VaultError                 vault_error       7    502
     │    ├── VaultUnreachable      vault_unreachable 7    502  (transient)
     │    └── VaultDenied           vault_denied      7    502
     ├── CredentialsFileError       credentials_file_error 8 500
     │    ├── ForeignSection        foreign_section   8    409
     │    └── SsoCacheError         sso_cache_error   8    500
     ├── NotReady                   not_ready         9    503  (transient)
     ├── LifetimeUnavailable        lifetime_unavailable 10 409
     └── RequestError               bad_request       2    400
          ├── Forbidden             forbidden         2    403
          ├── NotFound              not_found         2    404
          ├── MethodNotAllowed      method_not_allowed 2   405
          ├── RequestTimeout        request_timeout   2    408
          └── RequestTooLarge       request_too_large 2    413

This module is imported by the ``credential_process`` client: standard library only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from datetime import timedelta


class CreddError(Exception):
    """Base of every error credd raises on purpose."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_json(self) -> dict[str, Any]:
        """The JSON error object sent on the socket: ``{"code", "message", "hint"?}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class UsageError(CreddError):
    """The command line was not understood."""

    code = "bad_usage"
    exit_code = 2
    http_status = 400


class ConfigError(CreddError):
    """The AWS config or a credd key in it is wrong."""

    code = "config_invalid"
    exit_code = 3
    http_status = 422


class ProfileNotFound(ConfigError):
    """No such profile in the AWS config or credentials file."""

    code = "profile_not_found"
    http_status = 404


class ProfileNotManaged(ConfigError):
    """The profile exists but credd does not manage it."""

    code = "profile_not_managed"
    http_status = 404


class NeedsPerson(CreddError):
    """A person must act (type an MFA code, log in) before credentials can be had."""

    code = "needs_person"
    exit_code = 4
    http_status = 503


class NeedsMfa(NeedsPerson):
    """An MFA code from a person is needed."""

    code = "needs_mfa"


class MfaError(CreddError):
    """An MFA code could not be obtained or was not accepted."""

    code = "mfa_error"
    exit_code = 4
    http_status = 409


class MfaCodeRejected(MfaError):
    """AWS said the MFA code was wrong."""

    code = "mfa_code_rejected"


class MfaCodeReused(MfaError):
    """That MFA code was already used with this device; AWS would reject it."""

    code = "mfa_code_reused"


class MfaProcessFailed(MfaError):
    """The ``mfa_process`` command failed or printed no code."""

    code = "mfa_process_failed"
    http_status = 502


class DaemonUnavailable(CreddError):
    """The credd daemon cannot be reached on its socket."""

    code = "daemon_unavailable"
    exit_code = 5
    http_status = 503


class SecretStoreError(CreddError):
    """The OS keyring (or chosen secret store) cannot be used; retried with backoff.

    Transient: a Secret Service that went away (a restart, a late start at login, a D-Bus
    hiccup) comes back by itself, and a locked one is unlocked by its owner's next login;
    neither tells credd. A missing secret needs a person: :class:`SecretMissing` is not."""

    code = "secret_store_unavailable"
    exit_code = 6
    http_status = 503
    transient = True


class SecretStoreLocked(SecretStoreError):
    """The keyring is locked."""

    code = "secret_store_locked"


class SecretStoreSealed(SecretStoreLocked):
    """The encrypted file store cannot be unlocked by this process (no passphrase, or a wrong
    one): only a restart with the right passphrase helps, so it is not retried."""

    transient = False


class SecretMissing(SecretStoreError):
    """A secret credd needs is not in the keyring."""

    code = "secret_missing"
    http_status = 404
    transient = False


class AwsError(CreddError):
    """AWS answered with an error credd cannot fix by itself."""

    code = "aws_error"
    exit_code = 7
    http_status = 502


class AwsUnreachable(AwsError):
    """AWS (or its configured endpoint) could not be reached; retried with backoff."""

    code = "aws_unreachable"
    transient = True


class AwsThrottled(AwsError):
    """AWS throttled the call; retried with backoff."""

    code = "aws_throttled"
    transient = True


class AwsAccessDenied(AwsError):
    """AWS refused the call (bad keys, missing permission, bad duration...)."""

    code = "aws_access_denied"


class CredentialProcessFailed(AwsError):
    """A profile's ``credential_process`` helper failed (exit status, timeout); backed off."""

    code = "credential_process_failed"
    transient = True


class CredentialProcessInvalid(CredentialProcessFailed):
    """The helper printed something that is not credentials: parked until fixed."""

    code = "credential_process_invalid"
    transient = False


class WebIdentityTokenExpired(AwsError):
    """The token in ``web_identity_token_file`` has expired; retried as it is rotated."""

    code = "web_identity_token_expired"
    transient = True


class VaultError(CreddError):
    """OpenBao/Vault answered with an error credd cannot fix by itself (a path, a role)."""

    code = "vault_error"
    exit_code = 7
    http_status = 502


class VaultUnreachable(VaultError):
    """OpenBao/Vault could not be reached, is sealed or failed on its side; retried with backoff."""

    code = "vault_unreachable"
    transient = True


class VaultDenied(VaultError):
    """OpenBao/Vault refused the token or the login (revoked, expired, not allowed)."""

    code = "vault_denied"


class CredentialsFileError(CreddError):
    """The shared credentials file could not be read or written."""

    code = "credentials_file_error"
    exit_code = 8
    http_status = 500


class ForeignSection(CredentialsFileError):
    """A section credd would write exists and is not credd's own: it is never overwritten."""

    code = "foreign_section"
    http_status = 409


class NotReady(CreddError):
    """Credentials are being fetched right now; ask again in a moment."""

    code = "not_ready"
    exit_code = 9
    http_status = 503
    transient = True


class RequestError(CreddError):
    """A request on the socket was malformed."""

    code = "bad_request"
    exit_code = 2
    http_status = 400


class Forbidden(RequestError):
    """The caller may not use this socket or endpoint."""

    code = "forbidden"
    http_status = 403


class NotFound(RequestError):
    """No such path."""

    code = "not_found"
    http_status = 404


class MethodNotAllowed(RequestError):
    """The path exists but not for that method."""

    code = "method_not_allowed"
    http_status = 405


class RequestTimeout(RequestError):
    """The client was too slow to send its request."""

    code = "request_timeout"
    http_status = 408


class RequestTooLarge(RequestError):
    """The request was larger than the limit."""

    code = "request_too_large"
    http_status = 413


class LoginRequired(NeedsPerson):
    """An SSO login is needed: no token, or its refresh token or client registration ended.

    ``recheck_after``: when to look at the shared cache again (a login made elsewhere, ``aws
    sso login``, lands there); ``None``: only when asked."""

    code = "login_required"
    recheck_after: timedelta | None = None


class SsoCacheError(CredentialsFileError):
    """A file in the SSO token cache (``~/.aws/sso/cache``) cannot be read or written."""

    code = "sso_cache_error"


class LifetimeUnavailable(CreddError):
    """The caller asked for credentials lasting longer than the source can give (a lifetime
    guard: ``credd get --min-lifetime``, ``X-Credd-Min-Lifetime``)."""

    code = "lifetime_unavailable"
    exit_code = 10
    http_status = 409


def _all_subclasses(cls: type[CreddError]) -> list[type[CreddError]]:
    out: list[type[CreddError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


_CLASSES: list[type[CreddError]] = [CreddError, *_all_subclasses(CreddError)]
BY_CODE: dict[str, type[CreddError]] = {c.code: c for c in _CLASSES}


def from_json(body: dict[str, Any]) -> CreddError:
    """Rebuild an error sent by the daemon (``{"code", "message", "hint"?}``)."""
    cls = BY_CODE.get(str(body.get("code", "")), CreddError)
    return cls(str(body.get("message", "unknown error")), hint=body.get("hint"))
