from __future__ import annotations

import json
import stat

import pytest

from chainml.crypto import Identity
from chainml.node import keystore
from chainml.node.keystore import KeystoreError

WORK = 1 << 10  # a cheap scrypt for tests; new keystores use keystore.SCRYPT_N


def test_round_trip_file_mode_and_no_secret_in_clear(tmp_path):
    ident = Identity.generate()
    path = tmp_path / "k.json"
    keystore.save(ident, path, "correct horse", work=WORK)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert ident.account.private_bytes().hex() not in text
    assert ident.x25519.private_bytes().hex() not in text
    back = keystore.load(path, "correct horse")
    assert back.address == ident.address
    assert back.x25519.private_bytes() == ident.x25519.private_bytes()
    assert json.loads(text)["address"] == ident.address  # readable without the password
    # a standard v3 keystore for the account half
    assert json.loads(text)["account"]["crypto"]["kdf"] == "scrypt"


def test_wrong_password_and_no_overwrite(tmp_path):
    path = tmp_path / "k.json"
    keystore.save(Identity.generate(), path, "pw", work=WORK)
    with pytest.raises(KeystoreError, match="wrong password"):
        keystore.load(path, "pW")
    with pytest.raises(KeystoreError, match="exists"):
        keystore.save(Identity.generate(), path, "pw", work=WORK)
    with pytest.raises(KeystoreError, match="empty password"):
        keystore.save(Identity.generate(), tmp_path / "other.json", "", work=WORK)


def test_tampered_and_swapped_halves_are_refused(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    keystore.save(Identity.generate(), a, "pw", work=WORK)
    keystore.save(Identity.generate(), b, "pw", work=WORK)
    doc_a, doc_b = json.loads(a.read_text()), json.loads(b.read_text())
    swapped = dict(doc_a, x25519=doc_b["x25519"])
    a.write_text(json.dumps(swapped))
    with pytest.raises(KeystoreError):
        keystore.load(a, "pw")
    flipped = json.loads(b.read_text())
    ct = bytearray.fromhex(flipped["x25519"]["ciphertext"])
    ct[0] ^= 1
    flipped["x25519"]["ciphertext"] = ct.hex()
    b.write_text(json.dumps(flipped))
    with pytest.raises(KeystoreError):
        keystore.load(b, "pw")


@pytest.mark.parametrize("content", ["", "[]", "{}", '{"format": "chainml-keystore/1"}'])
def test_malformed_files(tmp_path, content):
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(KeystoreError):
        keystore.load(path, "pw")


def test_missing_file(tmp_path):
    with pytest.raises(KeystoreError, match="no keystore"):
        keystore.load(tmp_path / "nope.json", "pw")
