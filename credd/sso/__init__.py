"""IAM Identity Center (SSO): the token cache shared with the AWS CLI, the refresh-token grant,
and ``credd login``. See docs/sso.md.

- :mod:`credd.sso.settings`: which login a profile uses (:class:`SsoTarget`);
- :mod:`credd.sso.cache`: ``~/.aws/sso/cache`` files (:class:`TokenCache`, :class:`SsoToken`);
- :mod:`credd.sso.oidc`: SSO-OIDC calls (clients from :mod:`credd.aws`) and their errors;
- :mod:`credd.sso.tokens`: when and how to refresh (:class:`TokenStore`, :func:`refresh_due`);
- :mod:`credd.sso.login` / :mod:`credd.sso.loopback`: the login flows;
- :mod:`credd.sso.portal` (accounts and roles a login reaches), :mod:`credd.sso.naming`,
  :mod:`credd.sso.generate` (the pure config edit) and :mod:`credd.sso.populate`: ``credd sso
  populate``.
"""

from __future__ import annotations

from credd.sso.cache import Registration, SsoToken, TokenCache
from credd.sso.settings import (
    SsoTarget,
    load_full_config,
    profiles_using,
    resolve_profile,
    resolve_session,
)
from credd.sso.tokens import TokenStore, refresh_at, refresh_due

__all__ = [
    "Registration",
    "SsoTarget",
    "SsoToken",
    "TokenCache",
    "TokenStore",
    "load_full_config",
    "profiles_using",
    "refresh_at",
    "refresh_due",
    "resolve_profile",
    "resolve_session",
]
