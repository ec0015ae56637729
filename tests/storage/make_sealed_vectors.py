"""Write docs/protocol/vectors/sealed-v1.json: sealed artifacts in both suites, made once
(the salt is random, so a run writes new bytes; the committed file is what the tests and
any reimplementation check).

    .venv/bin/python -m tests.storage.make_sealed_vectors
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from chainml.crypto.stream import StreamSealer
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import associated_data, seal_artifact

OUT = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "vectors" / "sealed-v1.json"
KEY = bytes(range(100, 132))
ARTIFACT, VERSION, CHUNK = "model-7", 2, 1024
PLAINTEXT = bytes((7 * i + 3) % 256 for i in range(2500))  # three chunks, the last short


def _chunks(ciphertext: bytes, header_len: int) -> list[bytes]:
    body = ciphertext[header_len:]
    size = CHUNK + 16
    return [body[i : i + size] for i in range(0, len(body), size)]


def vector(suite: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalBlobStore(Path(tmp))
        # seal_artifact seals in suite 1; a suite-2 artifact is sealed with the stream API
        if suite == 1:
            sealed = seal_artifact(
                store, KEY, PLAINTEXT, artifact_id=ARTIFACT, version=VERSION, chunk_size=CHUNK
            )
            manifest = sealed.manifest
            ciphertext = store.get(manifest.ciphertext_cid)
            manifest_bytes = manifest.encode()
        else:
            sealer = StreamSealer(
                KEY, associated_data(ARTIFACT, VERSION), chunk_size=CHUNK, suite=suite
            )
            ciphertext = b"".join([*sealer.update(PLAINTEXT), *sealer.finalize()])
            manifest_bytes = b""
        header_len = len(StreamSealer(KEY, b"x", chunk_size=CHUNK, suite=suite).header.encode())
        chunks = _chunks(ciphertext, header_len)
        swapped = ciphertext[:header_len] + chunks[1] + chunks[0] + chunks[2]
        flipped = bytearray(ciphertext)
        flipped[header_len + CHUNK + 16 + 5] ^= 1
        return {
            "suite": suite,
            "key": KEY.hex(),
            "artifact_id": ARTIFACT,
            "version": VERSION,
            "aad": associated_data(ARTIFACT, VERSION).hex(),
            "chunk_size": CHUNK,
            "plaintext": PLAINTEXT.hex(),
            "ciphertext": ciphertext.hex(),
            "header_length": header_len,
            "manifest": manifest_bytes.decode(),
            "refused": [
                {
                    "what": "a bit flipped in chunk 1",
                    "error": "TamperedChunk",
                    "ciphertext": bytes(flipped).hex(),
                },
                {
                    "what": "chunks 0 and 1 swapped",
                    "error": "ReorderedChunk",
                    "ciphertext": swapped.hex(),
                },
                {
                    "what": "cut after chunk 1",
                    "error": "TruncatedStream",
                    "ciphertext": ciphertext[: header_len + 2 * (CHUNK + 16)].hex(),
                },
                {
                    "what": "a byte appended (the final chunk no longer authenticates)",
                    "error": "TamperedChunk",
                    "ciphertext": (ciphertext + b"\0").hex(),
                },
            ],
            "wrong_key": bytes(32).hex(),
        }


def main() -> None:
    doc = {
        "format": "chainml-sealed-vectors/1",
        "description": "sealed artifacts (docs/storage.md): plaintext, key, associated data "
        "and the ciphertext that opens under them; each refused variant names the error",
        "vectors": [vector(1), vector(2)],
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
