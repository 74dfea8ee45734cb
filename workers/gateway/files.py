"""Files a service uploads as evidence (a notice's photograph, a case contact's photos, a
closure's record): each kept under its SHA-256 (the same file twice is one file), its
type checked by its first bytes; the histories keep only the digests."""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from models.notice import Evidence
from workers.gateway import bodies as b
from workers.gateway.problems import Problem


def keep_files(
    files_dir: Path, uploads: list[b.EvidenceUpload], field: str = "evidence"
) -> list[Evidence]:
    """Kept in ``files_dir/evidence``; a refusal names the upload (``field.i``)."""
    kept: list[Evidence] = []
    folder = files_dir / "evidence"
    for i, up in enumerate(uploads):
        try:
            data = base64.b64decode(up.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Problem(422, f"{field}.{i}.content_base64: not base64") from None
        if not data or len(data) > b.EVIDENCE_MAX_BYTES:
            raise Problem(
                422,
                f"{field}.{i}: {len(data)} bytes; a file is 1 byte to "
                f"{b.EVIDENCE_MAX_BYTES // 1_000_000} MB",
            )
        if not data.startswith(b.EVIDENCE_MAGIC[up.media_type]):
            raise Problem(422, f"{field}.{i}: the file is not {up.media_type}")
        digest = hashlib.sha256(data).hexdigest()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{digest}{b.EVIDENCE_SUFFIX[up.media_type]}"
        if not target.exists():
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(target)
        kept.append(
            Evidence(sha256=digest, filename=up.filename, media_type=up.media_type, size=len(data))
        )
    return kept
