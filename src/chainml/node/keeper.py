"""What a node keeps: the blobs of the jobs it took part in and of the models granted to it,
pinned in its own IPFS peer so that they outlive the party that published them.

On IPFS a blob lives as long as some peer pins it.  The aggregator pins what it publishes
(the store pins every ``put``), but a trainer that must later show what its round counted,
an auditor, or a grantee whose model's publisher goes away, each needs its own copy.  The
keeper reads the chain and pins, in the node's own store:

- for every job this node created, aggregates or joined (``JobCreated``, ``Joined``): each
  recorded round's record (``RoundRecorded.aggregate_cid``) and every blob the record names
  (``docs/protocol/schemas/round-record-2.schema.json``: the transcript, which holds the
  trainers' signed commitments, each masked input, the norm claims of a round with proofs,
  and the sealed model's manifest and ciphertext);
- for every grant to this node (``GrantIssued``): the version's manifest and ciphertext and
  the grant's key bundle.

Pinning fetches what is missing from peers over bitswap and verifies every block (the
store's ``pin``).  A pin that fails (the publisher offline, a blob nobody serves) is kept
and tried again on the next pass; nothing is unpinned.  The rule is a function of public
chain facts only, so any party can tell what a node keeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from chainml.errors import ChainmlError
from chainml.ledger.abi import Event
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import BoundContract
from chainml.storage.cid import parse_cid
from chainml.storage.store import BlobStore

log = logging.getLogger("chainml.keeper")

# the round record's fields that name one blob, and those that name one per trainer
RECORD_BLOBS = ("transcript", "model_manifest", "model_ciphertext")


class Pinning(Protocol):
    def pin(self, cid: str) -> None: ...


@dataclass(frozen=True)
class Kept:
    """One blob pinned, and why (``job 3 round 2 record``, ``grant 4 ciphertext``)."""

    cid: str
    why: str


def can_pin(store: BlobStore) -> bool:
    return callable(getattr(store, "pin", None))


def record_blobs(record: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, CID) for every blob a round record names."""
    for key in RECORD_BLOBS:
        if isinstance(record.get(key), str):
            yield key, record[key]
    inputs = record.get("inputs")
    norm = record.get("norm")
    claims = norm.get("claims") if isinstance(norm, dict) else None
    refused = norm.get("refused") if isinstance(norm, dict) else None
    for who, cid in sorted(inputs.items()) if isinstance(inputs, dict) else ():
        if isinstance(cid, str):
            yield f"inputs/{who}", cid
    for who, cid in sorted(claims.items()) if isinstance(claims, dict) else ():
        if isinstance(cid, str):
            yield f"claims/{who}", cid
    for who, why in sorted(refused.items()) if isinstance(refused, dict) else ():
        if isinstance(why, dict) and isinstance(why.get("claim"), str) and why["claim"]:
            yield f"claims/{who}", why["claim"]  # kept as evidence against its sender


def _is_cid(text: str) -> bool:
    try:
        parse_cid(text)
    except (ChainmlError, ValueError):
        return False
    return True


class Keeper:
    """One pass a ``tick``; see the module.  ``address`` is this node's account."""

    def __init__(
        self,
        address: str,
        cm: Chainml,
        store: BlobStore,
        *,
        on_kept: Callable[[Kept], None] | None = None,
    ) -> None:
        if not can_pin(store):
            raise ValueError("the keeper needs a store that pins (the ipfs or kubo backend)")
        self.address = address.lower()
        self.cm = cm
        self.store = store
        self.pins: Pinning = store  # type: ignore[assignment]  # can_pin checked it
        self.on_kept = on_kept
        self.jobs: set[int] = set()
        self.kept: dict[str, str] = {}  # cid -> why, pinned
        self.pending: dict[str, str] = {}  # cid -> why, to pin (again) on the next pass
        self._records: set[str] = set()  # round records: once pinned, what they name is wanted
        self._from_block = 0

    def _mine(self, value: object) -> bool:
        return str(value).lower() == self.address

    def tick(self) -> list[Kept]:
        """Read the blocks since the last pass, then pin everything still wanted."""
        head = self.cm.jobs.client.block_number()
        if head >= self._from_block:
            jobs, models = self.cm.jobs.contract, self.cm.models.contract

            def since(contract: BoundContract, name: str) -> list[Event]:
                return contract.past_events(name, from_block=self._from_block, to_block=head)

            for event in since(jobs, "JobCreated"):
                if self._mine(event.args["requester"]) or self._mine(event.args["aggregator"]):
                    self.jobs.add(int(event.args["job_id"]))
            for event in since(jobs, "Joined"):
                if self._mine(event.args["participant"]):
                    self.jobs.add(int(event.args["job_id"]))
            for event in since(jobs, "RoundRecorded"):
                job_id, round_no = int(event.args["job_id"]), int(event.args["round"])
                if job_id in self.jobs:
                    cid = str(event.args["aggregate_cid"])
                    self._records.add(cid)
                    self._want(cid, f"job {job_id} round {round_no}")
            for event in since(models, "GrantIssued"):
                if self._mine(event.args["grantee"]):
                    grant_id = int(event.args["grant_id"])
                    version = self.cm.models.version(int(event.args["version_id"]))
                    self._want(version.manifest_cid, f"grant {grant_id} manifest")
                    self._want(version.ciphertext_cid, f"grant {grant_id} ciphertext")
                    ref = str(event.args["wrapped_key_ref"])
                    if _is_cid(ref):
                        self._want(ref, f"grant {grant_id} key bundle")
            self._from_block = head + 1
        return self._pin_pending()

    def _want(self, cid: str, why: str) -> None:
        if cid not in self.kept:
            self.pending.setdefault(cid, why)

    def _pin_pending(self) -> list[Kept]:
        done: list[Kept] = []
        while self.pending:
            progress = False
            for cid, why in list(self.pending.items()):
                try:
                    self.pins.pin(cid)
                    if cid in self._records:
                        self._read_record(cid, why)
                except (ChainmlError, OSError) as exc:
                    log.warning("keeper: %s (%s) not pinned yet: %s", why, cid, exc)
                    continue
                del self.pending[cid]
                self.kept[cid] = why
                done.append(Kept(cid, why))
                if self.on_kept is not None:
                    self.on_kept(done[-1])
                progress = True
            if not progress:
                break  # what is left waits for the next pass
        return done

    def _read_record(self, cid: str, why: str) -> None:
        """A pinned round record: want every blob it names."""
        try:
            record = json.loads(self.store.get(cid))
        except ValueError as exc:
            log.warning("keeper: %s (%s) is not a round record: %s", why, cid, exc)
            record = {}
        if isinstance(record, dict):
            for field, blob in record_blobs(record):
                self._want(blob, f"{why} {field}")
