"""Sessions that survive restarts: plan-node credentials saved in the secret store.

After every successful refresh the manager hands the node's credentials to :class:`Persist`,
which keeps them in the secret store (:class:`credd.secrets.store.SecretStore`, i.e. the keyring,
never a plain file) under the node's key: ``session:<node key>``, e.g. ``session:session:work`` or
``session:role:admin``. At start each node's saved value is read back; a value that is still
servable becomes the node's credentials, so a restart (even after ``kill -9``) asks nobody for a
code and calls STS only when a refresh is due.

What is saved per node (a JSON object; the secret parts live only in the keyring)::

    {"v": 1, "node": "role:admin", "fingerprint": "<sha256>", "issued_at": "...Z",
     "credentials": {credential_process JSON}}

The fingerprint is a hash of everything that makes the node the node it is: its kind, key,
duration, MFA use, the settings of its profile and of its base profile, the same for every
parent node, plus the STS endpoint overrides from the profile and the environment. A value whose
fingerprint differs from the node's is deleted, never restored: a changed config never brings
back credentials made for other settings.

An index entry (``session:credd-index``) lists the node keys saved, so values of nodes that
no longer exist (a profile removed while the daemon was down) are deleted at the next start.

SSO *tokens* are not saved here: they already live in the shared ``~/.aws/sso/cache``.

A secret store that is unreachable, locked or too slow turns persistence off for the rest of
the process with one warning in the log and a note in ``status`` (``daemon.persistence``); it
never stops credd. Every store call is bounded by the store's own timeout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from credd.clock import Clock, isoformat_z, parse_iso
from credd.errors import CreddError
from credd.models import Credentials
from credd.plan.nodes import Node

log = logging.getLogger(__name__)

VERSION = 1
INDEX = "credd-index"
#: environment variables that point STS (or the SSO portal) somewhere else
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SSO")
_PROFILE_KEYS = ("endpoint_url", "services", "sts_regional_endpoints")
#: a predicate: may these credentials (issued at the datetime) still be served now?
Servable = Callable[[Credentials, datetime], bool]


class SessionStore(Protocol):
    """The part of :class:`credd.secrets.store.SecretStore` persistence uses."""

    def get_session(self, session_id: str) -> dict[str, Any] | None: ...

    def set_session(self, session_id: str, data: dict[str, Any]) -> None: ...

    def delete_session(self, session_id: str) -> bool: ...


@dataclass(frozen=True)
class Restored:
    credentials: Credentials
    issued_at: datetime


def _plain(value: Any) -> Any:
    """A JSON-able, deterministic form of a settings object (dataclasses by compared fields).

    For the settings of one node (its profiles); a node's parents are never walked here but
    by :func:`_node_json`, in a loop, so a chain of any depth costs no recursion.
    """
    if isinstance(value, Node):
        raise TypeError("a Node is serialised by _node_json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


#: Stands for the parent while one node's own fields are serialised. No settings value can
#: produce ``"parent":"<hole>"``: a quote inside a JSON string is always escaped.
_HOLE = "\x00credd-parent\x00"


def _node_json(node: Node) -> str:
    """The node as sorted compact JSON, parents nested under ``parent``: the text ``json.dumps``
    of the nested form gives, built in a loop (and in linear time) for a chain of any depth."""
    hole = f'"parent":{_dumps(_HOLE)}'
    heads: list[str] = []
    tails: list[str] = []
    current: Node | None = node
    while current is not None:
        own = {
            f.name: _HOLE if f.name == "parent" else _plain(getattr(current, f.name))
            for f in dataclasses.fields(current)
            if f.compare
        }
        head, _, tail = _dumps(own).partition(hole)
        heads.append(head + '"parent":')
        tails.append(tail)
        current = current.parent
    return "".join(heads) + "null" + "".join(reversed(tails))


def fingerprint(node: Node, environ: Mapping[str, str] | None = None) -> str:
    """A sha256 of the node's settings (parents included) and the STS endpoint overrides."""
    endpoints: dict[str, Any] = {}
    current: Node | None = node
    while current is not None:
        raw = current.profile.raw
        endpoints[current.key] = {k: str(raw[k]) for k in _PROFILE_KEYS if k in raw}
        current = current.parent
    env = {k: environ[k] for k in _ENDPOINT_VARS if environ and k in environ}
    # == _dumps({"endpoints": ..., "environ": ..., "node": nested}) without the nesting's recursion
    text = f'{{"endpoints":{_dumps(endpoints)},"environ":{_dumps(env)},"node":{_node_json(node)}}}'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Persist:
    """Saves, restores and deletes node credentials in a :class:`SessionStore`."""

    def __init__(
        self,
        store: SessionStore,
        *,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._environ = dict(environ or {})
        self._lock = threading.RLock()
        self._index: set[str] | None = None
        self._problem: str | None = None
        self.saved = 0
        self.restored = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self._problem is None

    def info(self) -> dict[str, Any]:
        """What ``status`` shows under ``daemon.persistence``; never a secret."""
        if self._problem is not None:
            return {"state": "unavailable", "note": self._problem}
        return {
            "state": "on",
            "store": type(self._store).__name__,
            "restored": self.restored,
            "saved": self.saved,
            "dropped": self.dropped,
        }

    # -- the three verbs ------------------------------------------------------------------

    def restore(self, node: Node, servable: Servable) -> Restored | None:
        """The node's saved value if it was made for these settings and may still be served.

        Anything else found (other settings, expired, nearly expired, unreadable) is deleted.
        """
        if not node.kind.saved:
            return None
        with self._lock:
            if not self.enabled:
                return None
            try:
                data = self._store.get_session(node.key)
            except CreddError as exc:
                self._unreadable(node.key, exc)
                return None
            if data is None:
                return None
            restored, why = self._parse(node, data, servable)
            if restored is None:
                log.info("%s: saved session dropped (%s)", node.key, why)
                self.dropped += 1
                self._delete(node.key)
                return None
            self.restored += 1
        log.info(
            "%s: restored saved session %s issued %s",
            node.key,
            restored.credentials,
            isoformat_z(restored.issued_at),
        )
        return restored

    def save(self, node: Node, creds: Credentials, issued_at: datetime) -> None:
        """Keep ``creds`` (issued at ``issued_at``) for ``node``; errors only turn it off."""
        if not node.kind.saved or creds.expiration is None:
            return
        blob = {
            "v": VERSION,
            "node": node.key,
            "fingerprint": fingerprint(node, self._environ),
            "issued_at": isoformat_z(issued_at),
            "credentials": creds.to_process_json(),
        }
        with self._lock:
            if not self.enabled:
                return
            if self._load_index() is None:
                return
            try:
                self._add_to_index(node.key)
                self._store.set_session(node.key, blob)
            except CreddError as exc:
                self._disable(exc)
                return
            self.saved += 1
        log.debug("%s: session saved in the secret store", node.key)

    def delete(self, key: str) -> bool:
        """Forget the saved value of node ``key`` (the node changed or is gone, or ``credd
        forget``). True when one was there."""
        with self._lock:
            if not self.enabled:
                return False
            index = self._load_index()
            if index is not None and key not in index:
                return False  # nothing saved under this key by any credd run
            return self._delete(key)

    def prune(self, keep: set[str]) -> None:
        """Delete saved values of nodes not in ``keep`` (removed from the config)."""
        with self._lock:
            if not self.enabled:
                return
            index = self._load_index()
            for key in sorted((index or set()) - keep):
                log.info("%s: saved session dropped (the node is no longer configured)", key)
                self.dropped += 1
                self._delete(key)

    # -- internals ------------------------------------------------------------------------

    def _parse(
        self, node: Node, data: dict[str, Any], servable: Servable
    ) -> tuple[Restored | None, str]:
        if data.get("v") != VERSION or data.get("node") != node.key:
            return None, "unknown format"
        if data.get("fingerprint") != fingerprint(node, self._environ):
            return None, "saved for other settings"
        try:
            creds = Credentials.from_process_json(data["credentials"])
            issued = parse_iso(str(data["issued_at"]))
        except (KeyError, TypeError, ValueError):
            return None, "unreadable"
        if creds.expiration is None:
            return None, "no expiry"
        now = self._clock.now()
        if not servable(creds, issued):
            return None, f"expired or nearly expired at {isoformat_z(creds.expiration)}"
        if issued > now + timedelta(minutes=5):
            return None, "issued in the future"
        return Restored(creds, issued), ""

    def _unreadable(self, key: str, exc: CreddError) -> None:
        """A read failed: a corrupt entry (deletable) or an unusable store (turn off)."""
        try:
            self._store.delete_session(key)
        except CreddError:
            self._disable(exc)
            return
        log.warning("%s: an unreadable saved session was deleted: %s", key, exc.message)
        self.dropped += 1

    def _delete(self, key: str) -> bool:
        try:
            found = self._store.delete_session(key)
            if self._index is not None and key in self._index:
                self._index.discard(key)
                self._write_index()
        except CreddError as exc:
            self._disable(exc)
            return False
        return bool(found)

    def _load_index(self) -> set[str] | None:
        if self._index is None:
            try:
                data = self._store.get_session(INDEX)
            except CreddError as exc:
                self._unreadable(INDEX, exc)
                if not self.enabled:
                    return None
                data = None
            keys = data.get("keys") if isinstance(data, dict) else None
            listed = keys if isinstance(keys, list) else []
            self._index = {k for k in listed if isinstance(k, str)}
        return self._index

    def _add_to_index(self, key: str) -> None:
        assert self._index is not None
        if key not in self._index:
            self._index.add(key)
            self._write_index()

    def _write_index(self) -> None:
        assert self._index is not None
        self._store.set_session(INDEX, {"v": VERSION, "keys": sorted(self._index)})

    def _disable(self, exc: CreddError) -> None:
        if self._problem is not None:
            return
        self._problem = (
            f"sessions are not saved across restarts: {exc.message}"
            + (f" ({exc.hint})" if exc.hint else "")
            + "; credd keeps working and fetches fresh sessions; restart it once the secret "
            "store works again"
        )
        log.warning("%s", self._problem)
