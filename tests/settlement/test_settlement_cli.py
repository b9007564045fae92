"""`coalition settle`, `settle export`, `verify-statement`, `policy` and `worker --once` on a demo database.

The signature check also runs in a fresh Python process that imports nothing from
Coalition: only ``hashlib``, ``json`` and ``cryptography``, as a merchant would.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from coalition.cli import cli

SECRET = "settle-cli-secret"

OFFLINE_CHECK = r"""
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
doc = json.load(open(sys.argv[1]))
batch_text = doc["batchStatement"]
assert hashlib.sha256(batch_text.encode()).hexdigest() == doc["digest"], "digest"
Ed25519PublicKey.from_public_bytes(base64.b64decode(sys.argv[2])).verify(
    base64.b64decode(doc["signature"]), doc["digest"].encode("ascii"))
mine = doc["merchantStatement"]
node = hashlib.sha256(b"\x00" + bytes.fromhex(doc["nonce"]) + mine.encode()).digest()  # the salted leaf
for step in doc["proof"]:
    sibling = bytes.fromhex(step["sha256"])
    pair = sibling + node if step["side"] == "left" else node + sibling
    node = hashlib.sha256(b"\x01" + pair).digest()
assert node.hex() == json.loads(batch_text)["merchantRoot"], "inclusion proof"
print("OK", json.loads(mine)["figures"]["netMinor"])
"""


def invoke(db_file: Path, *args: str) -> Result:
    env = {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "COALITION_SECRET_KEY": SECRET,
           "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db_file = tmp_path_factory.mktemp("settle") / "demo.db"
    result = invoke(db_file, "demo", "--members", "25", "--merchants", "3", "--seed", "3")
    assert result.exit_code == 0, result.output
    return db_file


def test_settle_export_and_verify_offline(demo_db: Path, tmp_path: Path) -> None:
    end = dt.datetime.now(dt.UTC).isoformat()
    first = invoke(demo_db, "settle", "--period-end", end)
    assert first.exit_code == 0, first.output
    assert "closed" in first.output and "digest" in first.output
    again = invoke(demo_db, "settle", "--period-end", end)
    assert "already closed" in again.output  # same derived key: the same batch

    exported = tmp_path / "m1.json"
    result = invoke(demo_db, "settle", "export", "--batch", "1", "--merchant", "1", "-o", str(exported))
    assert result.exit_code == 0, result.output
    key = json.loads(exported.read_text())["publicKey"]

    ok = invoke(demo_db, "verify-statement", str(exported), "--public-key", key, "--merchant", "1")
    assert ok.exit_code == 0 and "statement verifies" in ok.output and "salted Merkle" in ok.output, ok.output
    not_mine = invoke(demo_db, "verify-statement", str(exported), "--public-key", key, "--merchant", "2")
    assert not_mine.exit_code != 0 and "not merchant 2" in " ".join(not_mine.output.split()), not_mine.output

    fresh = subprocess.run([sys.executable, "-I", "-c", OFFLINE_CHECK, str(exported), key],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert fresh.returncode == 0 and fresh.stdout.startswith("OK"), fresh.stderr

    document = json.loads(exported.read_text())
    statement = json.loads(document["merchantStatement"])
    statement["figures"]["netMinor"] += 1  # the merchant edits its own position
    document["merchantStatement"] = json.dumps(statement, sort_keys=True, separators=(",", ":"))
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    bad = invoke(demo_db, "verify-statement", str(tampered), "--public-key", key)
    assert bad.exit_code != 0 and "does NOT verify" in bad.output
    fresh = subprocess.run([sys.executable, "-I", "-c", OFFLINE_CHECK, str(tampered), key],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert fresh.returncode != 0

    wrong_key = invoke(demo_db, "verify-statement", str(exported), "--public-key", "A" * 43 + "=")
    assert wrong_key.exit_code != 0


def test_policy_show_and_set(demo_db: Path, tmp_path: Path) -> None:
    shown = invoke(demo_db, "policy", "show")
    assert shown.exit_code == 0 and "fundingModel" in shown.output
    bad = invoke(demo_db, "policy", "set", "--funding-model", "BARTER")
    assert bad.exit_code != 0 and "fundingModel must be one of" in bad.output
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    good = invoke(demo_db, "policy", "set", "--funding-model", "redemption", "--reimbursement-rate", "0.85",
                  "--effective-from", later)
    assert good.exit_code == 0, good.output
    assert "REDEMPTION" in good.output and "0.85" in good.output


def test_policy_set_with_an_idempotency_key_appends_once(demo_db: Path) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    args = ("policy", "set", "--point-value-minor", "3", "--effective-from", later, "--idempotency-key", "cli-1")
    first, again = invoke(demo_db, *args), invoke(demo_db, *args)
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert first.output == again.output  # the same version (same id), not a second one
    other = invoke(demo_db, "policy", "set", "--point-value-minor", "4", "--idempotency-key", "cli-1")
    assert other.exit_code != 0 and "cli-1" in other.output


def test_worker_once(demo_db: Path) -> None:
    result = invoke(demo_db, "worker", "--once")
    assert result.exit_code == 0, result.output
    assert "released" in result.output
