"""Seed 000's notebook workflow through the container endpoint: s3fs/aiobotocore in a program run
under ``credd exec``, with no profile and no keys in its environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonFactory, remember

pytestmark = pytest.mark.integration

PROGRAM = """
import json, os, sys
import s3fs
assert not any(k in os.environ for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
fs = s3fs.S3FileSystem(endpoint_url=sys.argv[1])
fs.mkdir("notebook-data")
for name in ("scene-1.tif", "scene-2.tif", "notes.txt"):
    with fs.open(f"notebook-data/granules/{name}", "wb") as f:
        f.write(name.encode())
tifs = [p for p in fs.ls("notebook-data/granules") if p.endswith(".tif")]
print(json.dumps({"tifs": sorted(tifs), "read": fs.cat(tifs[0]).decode()}))
"""


def test_s3fs_lists_and_reads_a_bucket_under_credd_exec(
    daemons: DaemonFactory, tmp_path: Path
) -> None:
    user, dev = daemons.sandbox.new_user_with_mfa("nb")
    remember(user.secret_access_key, dev.seed)
    daemons.store.set_long_term_keys("nb", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("nb", dev.seed)
    daemons.write_config("[profile nb]\nregion = us-east-1\nservices = sandbox\ncredd = true\n")
    d = daemons.start()
    d.wait_state("nb", "fresh")
    program = tmp_path / "notebook.py"
    program.write_text(PROGRAM)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "credd.cli",
            "exec",
            "nb",
            "--",
            sys.executable,
            str(program),
            daemons.sandbox.endpoint,
        ],
        env=daemons.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["tifs"] == [
        "notebook-data/granules/scene-1.tif",
        "notebook-data/granules/scene-2.tif",
    ]
    assert out["read"] == "scene-1.tif"
    # the sandbox saw the S3 calls signed with credd's session credentials, one MFA session
    assert daemons.sandbox.admin.calls("GetSessionToken") == 1
