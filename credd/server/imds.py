"""An IMDSv2-compatible endpoint for one profile: what EC2's instance metadata service answers.

Tools that know neither ``credential_process`` nor the container provider (GDAL, DuckDB,
Rust ``object_store``/Polars, old Java and C++ SDK builds) all know the EC2 instance metadata
service. One :class:`ImdsApi` serves one profile, on its own loopback port
(:class:`ImdsServer`, a :class:`~credd.server.loopback.LoopbackServer`: IPv4 loopback only,
the daemon's uid only, ``Host`` checked, proxy and browser headers refused). See docs/imds.md.

Paths (as EC2 answers them)::

    PUT /latest/api/token                            X-aws-ec2-metadata-token-ttl-seconds: 1..21600
    GET /latest/meta-data/iam/security-credentials/  the role name (the profile's name)
    GET /latest/meta-data/iam/security-credentials/ROLE   {"Code": "Success", ..., "Expiration"}
    GET /latest/meta-data/iam/info                   {"Code", "LastUpdated", "InstanceProfileArn",
                                                      "InstanceProfileId"}
    GET /latest/meta-data/placement/region           the profile's region
    GET /latest/meta-data/placement/availability-zone   REGION + "a" (botocore cuts the "a")
    GET /latest/dynamic/instance-identity/document   {"region", "availabilityZone", ...}
    GET /latest/meta-data/instance-id                a fixed, recognisable id

Every ``GET`` needs a token from the ``PUT`` (``X-aws-ec2-metadata-token``; IMDSv1 is refused
with 401 unless ``allow_v1``). Tokens are stateless: the expiry and an HMAC under a key made
when the endpoint starts, so a restarted endpoint invalidates every token (clients fetch a new
one on 401, as on EC2). A ``PUT`` carrying ``X-Forwarded-For`` is refused with 403, as on EC2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import struct
from collections.abc import Callable
from typing import Any

from credd.clock import Clock, isoformat_z
from credd.errors import CreddError, RequestError
from credd.models import Credentials
from credd.plan import lifetime
from credd.server.backend import Backend
from credd.server.http import Request, Response, log_internal_error
from credd.server.limits import Limits
from credd.server.loopback import HOST, LoopbackServer, header_refusal, host_matches
from credd.server.peeruid import TcpOwner

logger = logging.getLogger(__name__)

__all__ = ["IMDS_LIMITS", "ImdsApi", "ImdsServer", "imds_json"]

IMDS_LIMITS = Limits(max_request_bytes=16 * 1024)
TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
MAX_TTL = 21_600
INSTANCE_ID = "i-0c4edd0000000000c"  # "credd": recognisable in any log
_TEXT = (("content-type", "text/plain"), ("cache-control", "no-store"))
_SLASHES = re.compile("/{2,}")

#: Provider of the profile's region (read from the config when the endpoint starts).
RegionOf = Callable[[], str | None]


def imds_json(creds: Credentials, updated: str) -> dict[str, Any]:
    """The EC2 shape: ``Code``, ``LastUpdated``, ``Type``, the keys, ``Token``, ``Expiration``."""
    out: dict[str, Any] = {
        "Code": "Success",
        "LastUpdated": updated,
        "Type": "AWS-HMAC",
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token or "",
    }
    if creds.expiration is not None:
        out["Expiration"] = isoformat_z(creds.expiration)
    return out


def _text(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, (*_TEXT, *headers), text.encode())


def _json(payload: dict[str, Any]) -> Response:
    body = json.dumps(payload, indent=2).encode()
    return Response(200, _TEXT, body)


def _error(err: CreddError) -> Response:
    """A credd error in IMDS's error-document shape (``Code``, ``Message``) with its status."""
    message = f"{err.message} ({err.hint})" if err.hint else err.message
    body = json.dumps({"Code": err.code, "Message": message}).encode()
    return Response(err.http_status, _TEXT, body)


class ImdsApi:
    """The IMDS answers for ``profile`` over a :class:`~credd.server.backend.Backend`.

    ``port`` is set by the server once bound (it is part of the ``Host`` check).
    """

    def __init__(
        self,
        backend: Backend,
        profile: str,
        clock: Clock,
        *,
        region: RegionOf | None = None,
        allow_v1: bool = False,
        port: int = 0,
    ) -> None:
        self.backend = backend
        self.profile = profile
        self.clock = clock
        self.region_of = region or (lambda: None)
        self.allow_v1 = allow_v1
        self.port = port
        self._key = secrets.token_bytes(32)

    # -- tokens -----------------------------------------------------------------------------

    def _mac(self, expires: int) -> bytes:
        return hmac.new(self._key, struct.pack("!Q", expires), hashlib.sha256).digest()[:24]

    def issue_token(self, ttl: int) -> str:
        expires = int(self.clock.now().timestamp()) + ttl
        raw = struct.pack("!Q", expires) + self._mac(expires)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def token_valid(self, token: str) -> bool:
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return False
        if len(raw) != 32:
            return False
        (expires,) = struct.unpack("!Q", raw[:8])
        if not hmac.compare_digest(raw[8:], self._mac(expires)):
            return False
        return bool(expires > self.clock.now().timestamp())

    # -- checks -----------------------------------------------------------------------------

    def check(self, request: Request) -> Response | None:
        """The refusal for ``request``, or ``None`` when it may be answered."""
        refusal = header_refusal(request)
        if refusal is not None:
            # EC2 refuses a token PUT with X-Forwarded-For; credd refuses any proxied request
            return _text(403, f"Forbidden: requests through a {refusal} are refused")
        if not host_matches(request, self.port):
            return _text(403, f"Forbidden: the Host header must be {HOST}:{self.port}")
        path = self._path(request)
        if path == TOKEN_PATH:
            if request.method != "PUT":
                return _text(405, "Method Not Allowed", (("allow", "PUT"),))
            return None
        if request.method != "GET":
            return _text(405, "Method Not Allowed", (("allow", "GET"),))
        tokens = [value for name, value in request.headers if name == TOKEN_HEADER]
        if not tokens:
            if self.allow_v1:
                return None
            return _text(401, "Unauthorized: IMDSv2 only; PUT /latest/api/token first")
        if len(tokens) != 1 or not self.token_valid(tokens[0].strip()):
            return _text(401, "Unauthorized: the token is invalid or expired")
        return None

    # -- answers ----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        ttls = [value for name, value in request.headers if name == TTL_HEADER]
        text = ttls[0].strip() if len(ttls) == 1 else ""
        if not text.isdigit() or not 1 <= int(text) <= MAX_TTL:
            return _text(400, f"Bad Request: {TTL_HEADER} must be 1-{MAX_TTL}")
        ttl = int(text)
        return _text(200, self.issue_token(ttl), (("x-aws-ec2-metadata-token-ttl-seconds", text),))

    def _metadata(self, path: str) -> Response | None:
        """Answers that need no credentials; ``None`` for the credentials path."""
        region = self.region_of()
        if path in ("/latest/meta-data/placement/region",):
            return _text(200, region) if region else _text(404, "Not Found: no region set")
        if path == "/latest/meta-data/placement/availability-zone":
            return _text(200, region + "a") if region else _text(404, "Not Found: no region set")
        if path == "/latest/meta-data/instance-id":
            return _text(200, INSTANCE_ID)
        if path == CREDENTIALS_PATH:
            return _text(200, self.profile)
        if path == "/latest/meta-data/iam/info":
            return _json(self._info())
        if path == "/latest/dynamic/instance-identity/document":
            return _json(self._identity(region))
        if path == f"{CREDENTIALS_PATH}/{self.profile}":
            return None
        return _text(404, "Not Found")

    def _account(self) -> str:
        creds = self._held()
        return creds.account_id if creds and creds.account_id else "000000000000"

    def _info(self) -> dict[str, Any]:
        return {
            "Code": "Success",
            "LastUpdated": isoformat_z(self.clock.now()),
            "InstanceProfileArn": f"arn:aws:iam::{self._account()}:instance-profile/{self.profile}",
            "InstanceProfileId": "AIPACREDD0000000000000",
        }

    def _identity(self, region: str | None) -> dict[str, Any]:
        return {
            "accountId": self._account(),
            "architecture": "x86_64",
            "availabilityZone": f"{region}a" if region else None,
            "imageId": "ami-00000000000000000",
            "instanceId": INSTANCE_ID,
            "instanceType": "credd.local",
            "pendingTime": isoformat_z(self.clock.now()),
            "privateIp": HOST,
            "region": region,
            "version": "2017-09-30",
        }

    def _held(self) -> Credentials | None:
        nowait = getattr(self.backend, "credentials_nowait", None)
        try:
            creds = nowait(self.profile) if nowait is not None else None
        except Exception:  # the full path reports it
            return None
        return creds if isinstance(creds, Credentials) else None

    @staticmethod
    def _path(request: Request) -> str:
        """The path with repeated and trailing slashes folded: a base URL ending in ``/`` (what
        the AWS CLI 2.9 needs) makes some SDKs ask for ``//latest/...``."""
        path = _SLASHES.sub("/", request.path)
        return path.rstrip("/") if path != "/" else path

    def handle_nowait(self, request: Request) -> Response | None:
        """Refusals, tokens, metadata and credentials held right now, on the event loop."""
        refused = self.check(request)
        if refused is not None:
            return refused
        path = self._path(request)
        if path == TOKEN_PATH:
            return self._token(request)
        answer = self._metadata(path)
        if answer is not None:
            return answer
        creds = self._held()
        if creds is None or request.header(lifetime.HEADER):
            return None  # not held, or a lifetime guard that may refresh first
        return _json(imds_json(creds, isoformat_z(self.clock.now())))

    def handle(self, request: Request) -> Response:
        """The full path (may block while a first fetch runs); never raises."""
        quick = self.handle_nowait(request)
        if quick is not None:
            return quick
        try:
            creds = lifetime.guarded(self.backend, self.profile, request.header(lifetime.HEADER))
        except CreddError as err:
            return _error(err)
        except Exception as exc:  # its text may hold a secret: log the type and the stack only
            log_internal_error(logger, "the IMDS endpoint", exc)
            return _error(CreddError("credd hit an internal error", hint="see the daemon's log"))
        return _json(imds_json(creds, isoformat_z(self.clock.now())))


class ImdsServer(LoopbackServer):
    """Serves an :class:`ImdsApi` on ``127.0.0.1:port`` (``0``: any free port)."""

    thread_name = "credd-imds"
    client_hint = "the IMDS endpoint speaks HTTP/1.1"
    port_hint = "choose another port for credd_imds (0 = any free port)"

    def __init__(
        self,
        api: ImdsApi,
        *,
        port: int,
        host: str = HOST,
        limits: Limits = IMDS_LIMITS,
        uid: int | None = None,
        owners: TcpOwner | None = None,
    ) -> None:
        super().__init__(api, port=port, host=host, limits=limits, uid=uid, owners=owners)
        self.imds = api

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def error_response(self, err: CreddError) -> Response:
        if isinstance(err, RequestError) or err.http_status < 500:
            return _text(err.http_status, err.message)
        return _error(err)
