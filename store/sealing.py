"""Sealed values: identity and account numbers travel through workflow histories encrypted.

The Web UI stays readable (everything else is plain JSON), while the numbers
themselves are only opened by the activities that need them (payment files).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

from models.authority import derive
from models.privacy import keyed_hash


class Keys:
    """Keys derived from the deployment secret, one per purpose."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the deployment secret must be at least 16 bytes")
        self.id_hash = hmac.new(secret, b"aidflow/id-hash/v1", hashlib.sha256).digest()
        fernet_key = hmac.new(secret, b"aidflow/seal/v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(fernet_key))
        # R10: credentials' keys derive from this one (gateway, workers); internal
        # messages between workflows are sealed with the other (workers only).
        self.authority = derive(secret, "authority")
        self.internal = derive(secret, "internal")
        # The audit chain's key (store/chain.py): the database never holds it.
        self.audit = derive(secret, "audit")

    def hash_id(self, national_id: str) -> str:
        return keyed_hash(self.id_hash, national_id)

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode() if value else ""

    def open(self, sealed: str) -> str:
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("a sealed value does not open with this deployment's key") from None
