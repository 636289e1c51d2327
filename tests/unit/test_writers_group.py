"""Group commit in the credentials-file writer (issue 9): threads writing at the same time share
one rewrite. Before, 1,000 profiles made fresh together queued 1,000 rewrites on the file lock and
timed out on it ("another process has held the lock ... for more than 10 s")."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import botocore.session

from credd.files.credentials import CredentialsFileWriter, SectionWrite
from credd.models import Credentials

EXPIRES = datetime.now(timezone.utc) + timedelta(hours=1)


def write_of(i: int) -> SectionWrite:
    creds = Credentials(f"ASIAEXAMPLE{i:09d}", "s" * 40, "t" * 100, EXPIRES)
    return SectionWrite(f"p{i}-credd", f"p{i}", creds, {})


def test_concurrent_writers_share_one_rewrite_and_every_section_lands(clean_env: Path) -> None:
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.parent.mkdir(mode=0o700)
    path.write_text("[mine]\naws_access_key_id = AKIAEXAMPLEMINE00000\n")
    writer = CredentialsFileWriter()
    rewrites: list[int] = []
    others = 19

    def hold_first(_path: Path) -> None:
        rewrites.append(1)
        if len(rewrites) == 1:  # the first rewrite waits until the other writers have joined
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                gathering = writer._gathering
                if gathering is not None and len(gathering.writes) == others:
                    break
                time.sleep(0.01)

    writer.before_commit = hold_first
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            writer.write([write_of(i)])
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=write, args=(0,))
    first.start()
    while not rewrites:
        time.sleep(0.01)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, others + 1)]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join(60)
    assert errors == []
    assert len(rewrites) == 2  # the first writer's own, then one for the 19 that joined
    text = path.read_text()
    assert "[mine]" in text
    for i in range(others + 1):
        creds = botocore.session.Session(profile=f"p{i}-credd").get_credentials()
        assert creds is not None and creds.access_key == f"ASIAEXAMPLE{i:09d}"
