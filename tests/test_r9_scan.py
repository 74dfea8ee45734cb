"""The R9 scan of bench/r9.py finds what it must (so that a clean scan after a fuzzed or
faulted season means something): a full identity or account number in a file, a
table, a history payload; a bank file others may read."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sqlalchemy import text

from bench import r9
from store.db import make_engine, upgrade
from tests.support import make_national_id


def test_it_finds_numbers_and_names_no_number(tmp_path: Path) -> None:
    nid, account = make_national_id(7), "6230201234567890123"
    assert r9.kinds_in(f"身份证 {nid}") == ["national id"]
    assert r9.kinds_in(f"账号 {account}") == ["account number"]
    # Masked, hashed or a MAC's hex: nothing.
    assert r9.kinds_in("6230***********0123 341225********0017 a1b2" + "0" * 20 + "c3") == []
    # A SHA-256 whose digits happen to run 18 long and pass the check digit: a digest,
    # not a number (a CI run's chain head was taken for one).
    digest = "9f3c" + nid + "e0" + "ab" * 20
    assert len(digest) == 64 and r9.kinds_in(f'"hash": "{digest}"') == []
    assert r9.kinds_in(f"申请人{nid}号") == ["national id"]  # between characters: found
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "report.md").write_text(f"| {nid} |", encoding="utf-8")
    (tmp_path / "outbox").mkdir()
    bank = tmp_path / "outbox" / "b1.csv"
    bank.write_text(account, encoding="utf-8")
    bank.chmod(0o644)
    findings = r9.scan_files(tmp_path)
    assert findings == [
        "file files/report.md: national id",
        "file outbox/b1.csv: readable by others",
    ]
    assert all(nid not in f and account not in f for f in findings)
    bank.chmod(0o600)
    assert r9.scan_files(tmp_path) == ["file files/report.md: national id"]


def test_it_reads_tables_and_history_payloads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO places (code, name, level, parent_code) VALUES (:c, :n, 'village', '')"
            ),
            {"c": "341225100201", "n": "账户6230201234567890123"},
        )
    assert r9.scan_database(engine) == ["table places, row 1, column name: account number"]
    payload = base64.b64encode(json.dumps({"n": make_national_id(3)}).encode()).decode()
    history = json.dumps({"events": [{"input": {"payloads": [{"data": payload}]}}]})
    assert r9.scan_history_json("wf", history) == ["history wf, a payload: national id"]


def test_no_digest_in_an_id_reads_as_an_account_number() -> None:
    """A 1,000-application season's R9 scan found two update ids ending in sixteen
    decimal digits: a hex digest is all decimal about once in 1,800. The digests in ids
    (a workflow id's keyed hash of the identity number, an update id's digest of the
    body) are base32: of 10,000 identity numbers, none hashes to a run of digits."""
    from models.privacy import keyed_hash

    hashes = [keyed_hash(b"county key", f"3412252000010{n:05d}") for n in range(10_000)]
    assert all(len(h) == 16 for h in hashes)
    assert not [h for h in hashes if h.isdigit()]
    assert not r9.kinds_in(" ".join(f"county-subsidy/2027/341225/{h}" for h in hashes))
