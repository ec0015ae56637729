"""A party's identity at rest: one JSON file, both secrets encrypted under a password.

The account key is a standard Ethereum v3 keystore (scrypt + AES-128-CTR, readable by any
wallet).  The X25519 key is sealed with ChaCha20-Poly1305 under a key derived by scrypt
from the same password with its own salt, and the account address and public key as
associated data, so the halves of two keystores cannot be swapped.  The file is written
with mode 0600; the password never leaves this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account

from chainml.crypto import AccountKey, Identity, X25519KeyPair
from chainml.errors import ChainmlError

FORMAT = "chainml-keystore/1"
SCRYPT_N = 1 << 17  # the work factor for new keystores (~0.3 s here); tests pass less


class KeystoreError(ChainmlError):
    """The keystore is missing, malformed, or the password is wrong."""


def _x25519_key(password: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(password.encode())


def save(identity: Identity, path: Path, password: str, *, work: int = SCRYPT_N) -> None:
    """Write ``identity`` to ``path`` (refuses to overwrite an existing keystore)."""
    path = Path(path)
    if path.exists():
        raise KeystoreError(f"{path} exists; refusing to overwrite a keystore")
    if not password:
        raise KeystoreError("an empty password protects nothing")
    account = Account.encrypt(
        identity.account.private_bytes(), password, kdf="scrypt", iterations=work
    )
    salt, nonce = os.urandom(16), os.urandom(12)
    public = identity.x25519.public_bytes
    aad = bytes.fromhex(identity.address[2:]) + public
    sealed = ChaCha20Poly1305(_x25519_key(password, salt, work)).encrypt(
        nonce, identity.x25519.private_bytes(), aad
    )
    doc = {
        "format": FORMAT,
        "address": identity.address,
        "account": account,
        "x25519": {
            "public": public.hex(),
            "kdf": {"name": "scrypt", "n": work, "r": 8, "p": 1, "salt": salt.hex()},
            "nonce": nonce.hex(),
            "ciphertext": sealed.hex(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"{path} is not a keystore: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeystoreError(f"{path} is not a {FORMAT} file")
    return doc


def load(path: Path, password: str) -> Identity:
    """Decrypt the identity; raises ``KeystoreError`` for a wrong password or a damaged file."""
    doc = _read(path)
    try:
        secret = Account.decrypt(doc["account"], password)
        x = doc["x25519"]
        kdf = x["kdf"]
        if kdf.get("name") != "scrypt":
            raise KeystoreError("unsupported key derivation")
        public = bytes.fromhex(x["public"])
        aad = bytes.fromhex(str(doc["address"])[2:]) + public
        private = ChaCha20Poly1305(
            _x25519_key(password, bytes.fromhex(kdf["salt"]), int(kdf["n"]))
        ).decrypt(bytes.fromhex(x["nonce"]), bytes.fromhex(x["ciphertext"]), aad)
    except KeystoreError:
        raise
    except (ValueError, InvalidTag):
        raise KeystoreError("wrong password, or the keystore was altered") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"keystore field missing or malformed: {exc}") from None
    identity = Identity(
        AccountKey.from_bytes(bytes(secret)), X25519KeyPair.from_private_bytes(private)
    )
    if identity.address != doc["address"] or identity.x25519.public_bytes != public:
        raise KeystoreError("keystore halves do not belong together")
    return identity
