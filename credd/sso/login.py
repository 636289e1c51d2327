"""``credd login``: get an SSO token a person approves, and put it in the shared cache.

Two flows, as the AWS CLI v2 runs them (``SSOTokenFetcherAuth`` / ``SSOTokenFetcher``):

- authorization code + PKCE (default for ``sso_session`` profiles): RegisterClient with
  ``grantTypes = [authorization_code, refresh_token]``, the loopback redirect URI and the
  refresh scope; the browser goes to ``<oidc endpoint>/authorize?...&code_challenge_method=S256``;
  the code comes back to a one-shot server on 127.0.0.1 and is exchanged with the verifier;
- device code (``--device-code``; legacy profiles always): StartDeviceAuthorization, show the
  verification URI and user code, poll CreateToken honouring ``interval`` and ``slow_down``.

A still-valid registration in the CLI's registration cache is reused; a new one is written
there. The token is written to ``~/.aws/sso/cache`` (so the AWS CLI and botocore use it too).
Nothing here prints or logs a token, secret or authorization code.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import string
import uuid
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from credd.aws.clients import ClientFactory
from credd.clock import UTC, Clock, SystemClock
from credd.errors import AwsError, CreddError, LoginRequired
from credd.sso.cache import Registration, SsoToken, TokenCache
from credd.sso.loopback import REGISTERED_REDIRECT, CallbackServer
from credd.sso.oidc import call, error_code, translate
from credd.sso.settings import SsoTarget

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
AUTH_CODE_GRANTS = ("authorization_code", "refresh_token")
#: A cached registration is reused only with more than this left (the CLI's expiry window).
REGISTRATION_WINDOW = timedelta(minutes=15)
DEFAULT_INTERVAL = 5
SLOW_DOWN_DELAY = 5
#: How long a person gets to approve (the CLI waits 10 min for the redirect).
DEFAULT_TIMEOUT = 600.0
_VERIFIER_CHARS = string.ascii_letters + string.digits + "-._~"


def _say_stdout(text: str) -> None:
    print(text, flush=True)


def _open_browser(url: str) -> bool:
    try:
        return bool(webbrowser.open_new_tab(url))
    except webbrowser.Error:
        return False


@dataclass
class LoginIo:
    """Where messages go and how a browser is opened (seams for tests)."""

    say: Callable[[str], None] = _say_stdout
    open_browser: Callable[[str], bool] = field(default=_open_browser)


@dataclass(frozen=True)
class DeviceAuthorization:
    """A started device-code login: the code and links a person needs (no secret), and what
    polling needs (the device code and the registration, kept out of ``repr``)."""

    registration: Registration = field(repr=False)
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    interval: int
    expires_in: int
    deadline: datetime


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 64 unreserved characters, base64url(sha256) without ``=``."""
    verifier = "".join(secrets.choice(_VERIFIER_CHARS) for _ in range(64))
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class LoginFlow:
    """One login for one :class:`SsoTarget`."""

    def __init__(
        self,
        target: SsoTarget,
        *,
        profile: str | None = None,
        cache: TokenCache | None = None,
        clients: ClientFactory | None = None,
        clock: Clock | None = None,
        io: LoginIo | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.profile = profile
        self.clock: Clock = clock or SystemClock()
        self.cache = cache or TokenCache(clock=self.clock)
        self.clients = clients or ClientFactory()
        self.io = io or LoginIo()
        self.timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.clients.unsigned_client(
                "sso-oidc", self.profile, self.target.region
            )
        return self._client

    def _call(self, operation: str, action: str, **params: Any) -> dict[str, Any]:
        return call(
            self.client, operation, target=self.target, action=action, profile=self.profile,
            **params,
        )  # fmt: skip

    # -- registration -----------------------------------------------------------------------

    def registration(self, *, auth_code: bool) -> Registration:
        """A registration fit for the flow: the cached one while it has > 15 min left and
        suits the flow, else a new one (written to the CLI's registration cache)."""
        now = self.clock.now()
        cached = self.cache.read_registration(self.target)
        if (
            cached is not None
            and cached.expires_at - now > REGISTRATION_WINDOW
            and cached.for_auth_code == auth_code
            and (cached.scopes is not None or self.target.legacy)
        ):
            log.info("reusing the client registration for %s", self.target.label)
            return cached
        name = self.target.session_name or str(int(now.timestamp()))
        params: dict[str, Any] = {"clientName": f"credd-{name}", "clientType": "public"}
        if auth_code:
            params.update(
                grantTypes=list(AUTH_CODE_GRANTS),
                redirectUris=[REGISTERED_REDIRECT],
                issuerUrl=self.target.start_url,
            )
        if auth_code or not self.target.legacy:
            params["scopes"] = self.target.login_scopes  # the refresh scope, by default
        reply = self._call("register_client", "RegisterClient", **params)
        registration = Registration(
            client_id=str(reply["clientId"]),
            client_secret=str(reply["clientSecret"]),
            expires_at=datetime.fromtimestamp(int(reply["clientSecretExpiresAt"]), UTC),
            scopes=tuple(params["scopes"]) if "scopes" in params else None,
            grant_types=AUTH_CODE_GRANTS if auth_code else None,
        )
        try:
            self.cache.write_registration(self.target, registration)
        except CreddError as exc:  # the registration cache is only an optimisation
            log.warning("could not cache the client registration: %s", exc.message)
        return registration

    # -- tokens -----------------------------------------------------------------------------

    def _token(self, reply: dict[str, Any], registration: Registration) -> SsoToken:
        now = self.clock.now()
        refresh = reply.get("refreshToken")
        return SsoToken(
            access_token=str(reply["accessToken"]),
            expires_at=now + timedelta(seconds=int(reply.get("expiresIn") or 3600)),
            start_url=self.target.start_url,
            region=self.target.region,
            client_id=registration.client_id,
            client_secret=registration.client_secret,
            registration_expires_at=registration.expires_at,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        )

    def _finish(self, token: SsoToken) -> SsoToken:
        with self.cache.locked(self.target):
            written = self.cache.write(self.target, token, keep_newer=False)
        log.info("SSO login for %s stored in %s", self.target.label, self.cache.path(self.target))
        return written

    def begin_device_code(self) -> DeviceAuthorization:
        """Register (or reuse a registration) and start a device authorization: what a person
        needs to approve it. Nothing is shown or opened here."""
        registration = self.registration(auth_code=False)
        auth = self._call(
            "start_device_authorization",
            "StartDeviceAuthorization",
            clientId=registration.client_id,
            clientSecret=registration.client_secret,
            startUrl=self.target.start_url,
        )
        limit = min(float(auth.get("expiresIn") or self.timeout), self.timeout)
        uri = str(auth["verificationUri"])
        return DeviceAuthorization(
            registration=registration,
            device_code=str(auth["deviceCode"]),
            user_code=str(auth["userCode"]),
            verification_uri=uri,
            verification_uri_complete=str(auth.get("verificationUriComplete") or uri),
            interval=int(auth.get("interval") or DEFAULT_INTERVAL),
            expires_in=int(limit),
            deadline=self.clock.now() + timedelta(seconds=limit),
        )

    def finish_device_code(
        self, auth: DeviceAuthorization, *, sleep: Callable[[float], None] | None = None
    ) -> SsoToken:
        """Poll CreateToken (honouring ``interval`` and ``slow_down``) until the person approves,
        denies or the code expires; returns the token written to the cache. ``sleep`` (default:
        the clock's) may raise to cancel."""
        wait = sleep or self.clock.sleep
        registration = auth.registration
        interval = auth.interval
        while True:
            try:
                reply = self.client.create_token(
                    grantType=DEVICE_GRANT,
                    clientId=registration.client_id,
                    clientSecret=registration.client_secret,
                    deviceCode=auth.device_code,
                )
                return self._finish(self._token(reply, registration))
            except Exception as exc:
                code = error_code(exc)
                if code == "SlowDownException":
                    interval += SLOW_DOWN_DELAY
                elif code != "AuthorizationPendingException":
                    raise self._failed(exc) from None
            if self.clock.now() + timedelta(seconds=interval) > auth.deadline:
                raise LoginRequired(
                    f"nobody approved the SSO login for {self.target.label} in time",
                    hint=f"run it again: {self.target.login_command(self.profile)}",
                )
            wait(interval)

    def device_code(self, *, open_browser: bool = True) -> SsoToken:
        """The device authorization flow; returns the token written to the cache."""
        auth = self.begin_device_code()
        self.io.say(
            f"To sign in to {self.target.label}, open\n\n    {auth.verification_uri}\n\n"
            f"and enter the code\n\n    {auth.user_code}\n\nor open "
            f"{auth.verification_uri_complete}\n(waiting up to {auth.expires_in} s; "
            "Ctrl-C cancels)"
        )
        if open_browser:
            self.io.open_browser(auth.verification_uri_complete)
        return self.finish_device_code(auth)

    def _failed(self, exc: BaseException) -> Exception:
        code = error_code(exc)
        again = self.target.login_command(self.profile)
        if code == "ExpiredTokenException":
            return LoginRequired(
                f"the SSO login for {self.target.label} expired before it was approved",
                hint=f"run it again: {again}",
            )
        if code == "AccessDeniedException":
            return LoginRequired(
                f"the SSO login for {self.target.label} was denied", hint=f"run it again: {again}"
            )
        return translate(exc, target=self.target, action="CreateToken", profile=self.profile)

    def authorize_base(self) -> str:
        """``scheme://host`` of the SSO-OIDC endpoint botocore resolves (the CLI's trick: a
        ``before-call`` handler captures the URL of a call it then short-circuits)."""
        from botocore.awsrequest import AWSResponse

        seen: dict[str, str] = {}

        def capture(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            seen["url"] = str(params.get("url") or "")
            return AWSResponse("", 200, {}, None), {}

        events = self.client.meta.events
        events.register("before-call.sso-oidc.RegisterClient", capture, unique_id="credd-authz")
        try:
            self.client.register_client(clientName="credd-probe", clientType="public")
        finally:
            events.unregister("before-call.sso-oidc.RegisterClient", unique_id="credd-authz")
        parts = urlsplit(seen.get("url", ""))
        if not parts.scheme or not parts.netloc:
            raise AwsError(f"cannot tell the SSO-OIDC endpoint for {self.target.label}")
        return f"{parts.scheme}://{parts.netloc}"

    def authorization_code(self, *, open_browser: bool = True) -> SsoToken:
        """Authorization code + PKCE through a loopback redirect; returns the token written."""
        registration = self.registration(auth_code=True)
        verifier, challenge = pkce_pair()
        state = str(uuid.uuid4())
        with CallbackServer(state) as server:
            query = urlencode(
                {
                    "response_type": "code",
                    "client_id": registration.client_id,
                    "redirect_uri": server.redirect_uri,
                    "state": state,
                    "code_challenge_method": "S256",
                    "scopes": " ".join(self.target.login_scopes),
                    "code_challenge": challenge,
                }
            )
            url = f"{self.authorize_base()}/authorize?{query}"
            opened = open_browser and self.io.open_browser(url)
            self.io.say(
                ("A browser was opened to sign in" if opened else "Open this URL to sign in")
                + f" to {self.target.label}:\n\n    {url}\n\n(waiting up to "
                f"{int(self.timeout)} s; Ctrl-C cancels)"
            )
            result = server.wait(self.timeout)
            redirect = server.redirect_uri
        if result is None:
            raise LoginRequired(
                f"no answer from the browser for the SSO login to {self.target.label}",
                hint=f"run it again: {self.target.login_command(self.profile)}",
            )
        if result.code is None:
            raise LoginRequired(
                f"the SSO login for {self.target.label} was refused ({result.error})",
                hint=f"run it again: {self.target.login_command(self.profile)}",
            )
        try:
            reply = self.client.create_token(
                grantType="authorization_code",
                clientId=registration.client_id,
                clientSecret=registration.client_secret,
                redirectUri=redirect,
                codeVerifier=verifier,
                code=result.code,
            )
        except Exception as exc:
            raise self._failed(exc) from None
        return self._finish(self._token(reply, registration))

    def run(self, *, device_code: bool = False, open_browser: bool = True) -> SsoToken:
        """The flow the AWS CLI would pick: device code for legacy profiles or when asked."""
        if device_code or self.target.legacy:
            return self.device_code(open_browser=open_browser)
        return self.authorization_code(open_browser=open_browser)
