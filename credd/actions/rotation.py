"""Rotating an IAM user's long-term keys, crash-safe at every step (docs/keys.md).

    journal -> CreateAccessKey -> store the new pair -> verify it (GetCallerIdentity, bounded
    retries for IAM's propagation delay) -> switch the daemon -> DeleteAccessKey(old) -> clear

The **journal** (in the secret store, next to the keys) records the old key id and secret and
the user's other keys before anything changes in IAM. A run that finds a journal first finishes
or undoes the interrupted one, judging by what is *stored*: still the old key -> every key IAM
has beyond the old one and the ones listed before is the interrupted run's orphan and is
deleted; the new key -> it is verified, the daemon switched, the old key deleted. So a kill
between any two steps leaves a working key stored and at most one extra key in IAM, which the
next run removes. ``CREDD_ROTATE_CRASH_AFTER=STEP`` makes the process die (``os._exit``, no
clean-up: as SIGKILL would) right after STEP, for the tests of each step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from credd.clock import Clock, isoformat_z, parse_iso
from credd.errors import AwsError, CreddError
from credd.models import Credentials, mask_key_id

if TYPE_CHECKING:
    from credd.engine.persist import SessionStore  # the journal lives where saved sessions do

log = logging.getLogger(__name__)

STEPS = ("journal", "created", "stored", "verified", "switched", "deleted")
CRASH_ENV = "CREDD_ROTATE_CRASH_AFTER"
VERIFY_DELAYS = (1, 2, 4, 8, 15, 30)  # seconds between GetCallerIdentity attempts (60 s total)
JOURNAL_PREFIX = "rotation:"
META_PREFIX = "key-meta:"
DEFAULT_WARN_AGE = 90 * 86400  # doctor warns past this when credd_key_max_age is not set


class RotationError(AwsError):
    """The rotation could not go on; the journal says where it stopped."""

    code = "rotation_failed"


class KeyHolder(Protocol):
    """Where the profile's long-term keys live (secret store or credentials file)."""

    where: str

    def get(self) -> Credentials: ...

    def put(self, keys: Credentials) -> None: ...


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    status: str
    created: datetime | None


@dataclass
class Outcome:
    old_key: str | None
    new_key: str | None
    recovered: bool = False
    cleaned: tuple[str, ...] = ()
    verify_attempts: int = 0
    created: datetime | None = None

    def sentence(self, profile: str) -> str:
        masked = [mask_key_id(k) for k in self.cleaned]
        parts = []
        if self.recovered:
            parts.append("finished an interrupted rotation")
        if masked:
            parts.append(f"deleted the stale key(s) {', '.join(masked)}")
        if self.new_key and self.old_key and self.new_key != self.old_key:
            parts.append(f"rotated {mask_key_id(self.old_key)} -> {mask_key_id(self.new_key)}")
        return f"profile {profile}: " + ("; ".join(parts) or "nothing to do")


def crash_point(step: str) -> None:
    """Die here (no clean-up, like SIGKILL) when the test hook names this step."""
    if os.environ.get(CRASH_ENV) == step:
        log.warning("rotation: crash injected after step %s", step)
        os._exit(137)


class Iam:
    """The few IAM/STS calls rotation makes, with credd's error translation."""

    def __init__(
        self, make_client: Callable[[str, Credentials], Any], user: str | None, *, label: str = ""
    ) -> None:
        self._client = make_client
        self.user = user  # UserName to send (None: the caller's own user)
        self.label = label or user or ""  # the profile, for messages

    def _call(self, creds: Credentials, action: str, **kwargs: Any) -> Any:
        from credd.aws.errors import translate

        if self.user:
            kwargs.setdefault("UserName", self.user)
        iam = self._client("iam", creds)
        try:
            return getattr(iam, action)(**kwargs)
        except Exception as exc:
            raise translate(exc, profile=self.label, action=f"iam:{action}") from None

    def list_keys(self, creds: Credentials) -> list[AccessKey]:
        reply = self._call(creds, "list_access_keys")
        return [
            AccessKey(k["AccessKeyId"], k["Status"], k.get("CreateDate"))
            for k in reply["AccessKeyMetadata"]
        ]

    def create(self, creds: Credentials) -> tuple[Credentials, datetime | None]:
        key = self._call(creds, "create_access_key")["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"]), key.get("CreateDate")

    def delete(self, creds: Credentials, key_id: str) -> None:
        self._call(creds, "delete_access_key", AccessKeyId=key_id)

    def identity(self, keys: Credentials) -> str:
        return str(self._client("sts", keys).get_caller_identity()["Arn"])


class Rotator:
    """One profile's rotation. ``iam_credentials`` gives what signs the IAM calls (the keys
    themselves, or an MFA session where the user's policy demands one)."""

    def __init__(
        self,
        profile: str,
        *,
        keys: KeyHolder,
        journal: SessionStore,
        iam: Iam,
        iam_credentials: Callable[[], Credentials],
        clock: Clock,
        switch: Callable[[], None] = lambda: None,
        delete_inactive: bool = True,
    ) -> None:
        self.profile = profile
        self.keys = keys
        self.journal = journal
        self.iam = iam
        self.iam_credentials = iam_credentials
        self.clock = clock
        self.switch = switch
        self.delete_inactive = delete_inactive
        self._journal_id = JOURNAL_PREFIX + profile

    # -- the happy path ---------------------------------------------------------------------

    def rotate(self) -> Outcome:
        pending = self.journal.get_session(self._journal_id)
        if pending is not None:
            recovered = self.recover(pending)
            recovered.recovered = True
            if recovered.new_key != recovered.old_key:
                return recovered  # the interrupted rotation got as far as storing: finished
            outcome = self._rotate()  # rolled back: rotate now
            outcome.recovered = True
            outcome.cleaned = recovered.cleaned + outcome.cleaned
            return outcome
        return self._rotate()

    def _rotate(self) -> Outcome:
        old = self.keys.get()
        creds = self.iam_credentials()
        existing = self.iam.list_keys(creds)
        cleaned = self._make_room(creds, old, existing)
        others = [k.key_id for k in existing if k.key_id not in cleaned]
        self.journal.set_session(
            self._journal_id,
            {
                "v": 1,
                "old": old.access_key_id,
                "old_secret": old.secret_access_key,
                "before": others,
                "started": isoformat_z(self.clock.now()),
            },
        )
        crash_point("journal")
        new, created = self.iam.create(creds)
        log.info("profile %s: created access key %s", self.profile, new.masked_key_id)
        crash_point("created")
        self.keys.put(new)
        self._remember_age(new.access_key_id, created)
        crash_point("stored")
        outcome = self._finish(old, new)
        outcome.cleaned = tuple(cleaned) + outcome.cleaned
        outcome.created = created
        return outcome

    def _make_room(
        self, creds: Credentials, old: Credentials, existing: list[AccessKey]
    ) -> list[str]:
        """The two-keys limit: an Inactive second key is deleted (it signs nothing); an active
        one is someone's, so credd stops and says which."""
        others = [k for k in existing if k.key_id != old.access_key_id]
        if old.access_key_id not in {k.key_id for k in existing}:
            raise RotationError(
                f"profile {self.profile}: the stored key {old.masked_key_id} is not one of the "
                "IAM user's keys",
                hint="store the user's current keys (credd keys set) before rotating",
            )
        if len(existing) < 2:
            return []
        inactive = [k for k in others if k.status != "Active"]
        if inactive and self.delete_inactive:
            for k in inactive:
                self.iam.delete(creds, k.key_id)
                log.info("profile %s: deleted inactive key %s", self.profile, mask_key_id(k.key_id))
            return [k.key_id for k in inactive]
        other = others[0]
        raise RotationError(
            f"profile {self.profile}: the IAM user already has two access keys (the limit); "
            f"the other one, {mask_key_id(other.key_id)}, is {other.status} and not the stored one",
            hint="deactivate it (aws iam update-access-key --status Inactive) if nothing uses "
            "it, then rotate again: credd deletes inactive keys to make room",
        )

    def _finish(self, old: Credentials, new: Credentials) -> Outcome:
        old_key_id = old.access_key_id
        try:
            attempts = self.verify(new)
        except RotationError:
            if old.secret_access_key:
                self.keys.put(old)  # keep serving the key that works; the next run cleans up
            raise
        crash_point("verified")
        self.switch()
        crash_point("switched")
        creds = self.iam_credentials()
        present = {k.key_id for k in self.iam.list_keys(creds)}
        if old_key_id in present and old_key_id != new.access_key_id:
            self.iam.delete(creds, old_key_id)
            log.info("profile %s: deleted the old key %s", self.profile, mask_key_id(old_key_id))
        crash_point("deleted")
        self.journal.delete_session(self._journal_id)
        return Outcome(old_key_id, new.access_key_id, verify_attempts=attempts)

    def verify(self, keys: Credentials) -> int:
        """GetCallerIdentity with the new key until it answers (IAM propagates new keys within
        seconds, not at once); bounded, waits on the injected clock. Returns the attempts."""
        delays = (*VERIFY_DELAYS, None)
        for attempt, delay in enumerate(delays, 1):
            try:
                self.iam.identity(keys)
                return attempt
            except Exception as exc:  # botocore ClientError or a connection error
                if delay is None:
                    raise RotationError(
                        f"profile {self.profile}: the new key {keys.masked_key_id} still does "
                        f"not work after {attempt} attempts ({type(exc).__name__})",
                        hint="the old key stays stored and in use; run credd keys rotate "
                        "again later: it deletes the unverified key and rotates afresh",
                    ) from None
                log.info("profile %s: new key not accepted yet; retry in %d s", self.profile, delay)
                self.clock.sleep(delay)
        raise AssertionError("unreachable")

    # -- recovery ---------------------------------------------------------------------------

    def recover(self, journal: dict[str, Any]) -> Outcome:
        old_id = str(journal.get("old", ""))
        before = set(journal.get("before") or [])
        stored = self.keys.get()
        if stored.access_key_id == old_id:
            creds = self.iam_credentials()
            orphans = [
                k.key_id
                for k in self.iam.list_keys(creds)
                if k.key_id != old_id and k.key_id not in before
            ]
            for key_id in orphans:
                self.iam.delete(creds, key_id)
                log.info("profile %s: deleted orphan key %s", self.profile, mask_key_id(key_id))
            self.journal.delete_session(self._journal_id)
            return Outcome(old_id, old_id, cleaned=tuple(orphans))
        old = Credentials(old_id, str(journal.get("old_secret") or ""))
        outcome = self._finish(old, stored)
        outcome.cleaned = (old_id,)
        return outcome

    def _remember_age(self, key_id: str, created: datetime | None) -> None:
        remember_key_age(self.journal, self.profile, key_id, created or self.clock.now())


def remember_key_age(store: SessionStore, profile: str, key_id: str, when: datetime) -> None:
    """Record when ``key_id`` was created (rotation) or stored (``keys set``, the best age credd
    knows without IAM), for ``status`` and ``doctor``."""
    meta = {"AccessKeyId": key_id, "CreateDate": isoformat_z(when)}
    store.set_session(META_PREFIX + profile, meta)


def forget_key_age(store: SessionStore, profile: str) -> None:
    """The profile's keys were deleted: no age to show any more."""
    store.delete_session(META_PREFIX + profile)


def recorded_key(store: SessionStore, profile: str) -> tuple[str, datetime | None] | None:
    """``(key id, when it was created or stored)`` as credd recorded it next to the keys, or
    ``None``. Only the key id and a date: reading it never reads a secret."""
    try:
        meta = store.get_session(META_PREFIX + profile)
    except CreddError:
        return None
    if not meta or not isinstance(meta.get("AccessKeyId"), str):
        return None
    try:
        return meta["AccessKeyId"], parse_iso(str(meta["CreateDate"]))
    except (KeyError, ValueError):
        return meta["AccessKeyId"], None


def key_created(store: SessionStore, profile: str, key_id: str) -> datetime | None:
    """When the stored key was created, as recorded at rotation or ``keys set`` time."""
    recorded = recorded_key(store, profile)
    return recorded[1] if recorded and recorded[0] == key_id else None


def key_ages(
    store: Any, clock: Clock, *, has_keys: Callable[[str], bool] | None = None
) -> list[tuple[str, timedelta | None, timedelta | None]]:
    """``(profile, age of its key, credd_key_max_age)`` for every IAM-user profile credd manages
    whose key credd recorded (``keys set``/``import``, rotation). Reads the recorded key id and
    date only, never the keys: ``credd status`` has no business with a secret. ``has_keys``
    (``doctor``, which checks the keys anyway) adds profiles with keys but no record, age
    unknown."""
    from credd.aws import config as awsconfig

    out = []
    for name, managed in awsconfig.load().managed.items():
        if managed.kind != "session-token":
            continue
        recorded = recorded_key(store, name)
        if recorded is None and not (has_keys and has_keys(name)):
            continue
        created = recorded[1] if recorded else None
        # validated at load: a wrong value made the profile broken, not this list
        max_age = timedelta(seconds=managed.key_max_age) if managed.key_max_age else None
        out.append((name, clock.now() - created if created else None, max_age))
    return out
