"""The inference provider, a node role.

The role finds a model version granted to this node on the Models contract (the newest
valid grant, or the version named in ``[inference] model_version``), gets its key the way
the grant says (owner-wrapped, or k-of-n from the guardians' nodes), opens it in memory
only, and serves it through ``chainml.inference.service``: ``POST /v1/infer`` (plain,
sealed both ways) and ``POST /v1/infer/he`` (CKKS, for an MLP trained with x² or a
regression).  Receipts are kept in the node's SQLite state the moment they are signed;
every ``max_receipts`` receipts or ``max_age`` seconds per client, the role posts their
Merkle root, count and amount on the Receipts contract, exactly once (``Actions``), and
keeps the listing the client checks the batch against (``GET /v1/receipts/batches/{id}``).

A version whose manifest names a proof bundle (``chainml.inference.zkml``) is also served
in mode ``plain-zk``: the role rebuilds the proving key from the opened weights and the
bundle, and serves proofs only if its verifying key is the bundle's.  A client that
``connect``s with ``proofs=`` fetches the bundle the manifest on chain names (from any
content-addressed store: each blob is checked against its CID) and verifies every answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests

from chainml.crypto.keys import AccountKey, Identity
from chainml.errors import ChainmlError
from chainml.inference.client import InferenceClient, ModelInfo
from chainml.inference.he import UnsupportedModel, compile_model
from chainml.inference.receipts import Batch, Receipt, ReceiptBook, ReceiptError, reason_hash
from chainml.inference.service import (
    InferenceService,
    Limits,
    ServedModel,
)
from chainml.inference.zkml import (
    ZkError,
    ZkProver,
    ZkVerifier,
    committed_bundle,
    private_dir,
)
from chainml.ledger.bindings import Chainml
from chainml.ledger.errors import LedgerError
from chainml.node.access import LedgerChainView
from chainml.node.core import Node
from chainml.node.models import manifest_of, open_in_memory
from chainml.node.state import NodeState, SqliteReplayCache
from chainml.node.workers import Actions
from chainml.storage.errors import StorageError
from chainml.training.errors import TrainingError
from chainml.training.models import CNN, classifier_from_safetensors

log = logging.getLogger("chainml.node.inference")


class SqliteReceipts:
    """The provider's receipts, durable from the moment they are signed: a counter never
    repeats for a client, and a receipt is billed in exactly one batch."""

    def __init__(
        self,
        state: NodeState,
        account: AccountKey,
        *,
        chain_id: int,
        receipts_contract: str,
        clock: Callable[[], float],
    ) -> None:
        self.state = state
        self.account = account
        self.chain_id = chain_id
        self.receipts_contract = receipts_contract
        self.clock = clock

    def issue(
        self, client: str, model_version: int, request_hash: bytes, response_hash: bytes, price: int
    ) -> Receipt:
        rows = self.state.query(
            "SELECT COALESCE(MAX(counter), 0) FROM receipts WHERE client = ?", (client,)
        )
        counter = int(rows[0][0]) + 1
        receipt = Receipt(
            self.account.address, client, model_version, request_hash, response_hash, price, counter
        ).signed(self.account, self.chain_id, self.receipts_contract)
        self.state.execute(
            "INSERT INTO receipts (client, counter, body, price, issued) VALUES (?, ?, ?, ?, ?)",
            (client, counter, json.dumps(receipt.to_doc()), str(price), self.clock()),
        )
        return receipt

    def _rows(self, where: str, params: tuple[Any, ...], limit: int = -1) -> list[Receipt]:
        rows = self.state.query(
            f"SELECT body FROM receipts WHERE {where} ORDER BY counter LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [Receipt.from_doc(json.loads(body)) for (body,) in rows]

    def owed(self, client: str) -> int:
        """On every request: the prices alone, not the receipts, are read."""
        rows = self.state.query(
            "SELECT price FROM receipts WHERE client = ? AND batch IS NULL", (client,)
        )
        return sum(int(price) for (price,) in rows)

    def due(self, max_receipts: int, max_age: float) -> list[Batch]:
        """First the batches cut but not yet recorded (a pass stopped after sending: the
        same receipts, so the same root and action); then, per client, the oldest
        receipts in no batch (at most ``max_receipts``) once there are that many or the
        oldest is ``max_age`` seconds old."""
        cut = self.state.query(
            "SELECT DISTINCT client, root FROM receipts WHERE batch IS NULL AND root IS NOT NULL"
        )
        clients = self.state.query(
            "SELECT client FROM receipts WHERE batch IS NULL AND root IS NULL GROUP BY client"
            " HAVING COUNT(*) >= ? OR MIN(issued) <= ?",
            (max_receipts, self.clock() - max_age),
        )
        return [
            Batch.of(
                client, self._rows("client = ? AND root = ? AND batch IS NULL", (client, root))
            )
            for client, root in cut
        ] + [
            Batch.of(
                client,
                self._rows(
                    "client = ? AND batch IS NULL AND root IS NULL", (client,), max_receipts
                ),
            )
            for (client,) in clients
        ]

    def _update(self, column: str, value: Any, batch: Batch) -> None:
        counters = [r.counter for r in batch.receipts]
        marks = ",".join("?" * len(counters))
        self.state.execute(
            f"UPDATE receipts SET {column} = ? WHERE client = ? AND batch IS NULL"  # noqa: S608
            f" AND counter IN ({marks})",
            (value, batch.client, *counters),
        )

    def cut(self, batch: Batch) -> None:
        """Note the root a batch is about to be posted with, so that it can be listed
        the moment it is on chain."""
        self._update("root", batch.root, batch)

    def mark(self, batch: Batch, batch_id: int) -> None:
        """Record which batch billed these receipts (``-1``: the chain refused to bill)."""
        self._update("batch", batch_id, batch)

    def listing(self, batch_id: int, root: bytes | None = None) -> list[Receipt]:
        """The receipts billed in a batch: by its id once recorded, else by its root."""
        found = self._rows("batch = ?", (batch_id,))
        if not found and root is not None:
            found = self._rows("root = ? AND batch IS NULL", (root,))
        return found


IMAGE_RANGE = (0.0, 1.0)


def serve_model(blob: bytes, version: int, *, price: int, batch_price: int) -> ServedModel:
    """A ``ServedModel`` from safetensors bytes; a CKKS plan when the model has one."""
    model, params, activation = classifier_from_safetensors(blob)
    try:
        if isinstance(model, CNN):  # images: pixels in [0, 1], the range the plan is sized for
            plan = compile_model(model, input_range=IMAGE_RANGE)
        else:
            plan = compile_model(params, activation)
    except UnsupportedModel:
        plan = None
    if isinstance(model, CNN):
        n_features = int(np.prod(model.input_shape))
    else:
        n_features = int(params["w" if "w" in params else "w0"].shape[0])
    return ServedModel(
        version=version,
        predict=model.logits,
        n_features=n_features,
        plan=plan,
        price=price,
        batch_price=batch_price,
    )


class NoGrant(ChainmlError):
    """No valid grant of a model version to this node."""


class ProviderRole:
    def __init__(
        self,
        node: Node,
        *,
        price: int,
        batch_price: int,
        max_receipts: int,
        max_age: float,
        model_version: int = 0,
        clock: Callable[[], float],
        limits: Limits | None = None,
        open_version: Callable[[Node, int, int], bytes] | None = None,
    ) -> None:
        self.node = node
        self.cm: Chainml = node.cm
        self.price, self.batch_price = price, batch_price
        self.max_receipts, self.max_age = max_receipts, max_age
        self.model_version = model_version
        self._grant_id = 0
        self._open = open_version or (lambda n, v, g: open_in_memory(n, v, grant_id=g))
        # the provers' circuits and proving keys hold the weights: in memory where the
        # machine has a memory-backed directory (the model is opened in memory only), else
        # beside the store; what a killed run left there is removed here
        base = private_dir() or Path(node.config.store).parent
        self._zk_dir = base / f"chainml-zk-{node.identity.address.lower()}"
        shutil.rmtree(self._zk_dir, ignore_errors=True)
        self.receipts = SqliteReceipts(
            node.state,
            node.identity.account,
            chain_id=node.client.chain_id,
            receipts_contract=self.cm.receipts.address,
            clock=clock,
        )
        self.actions = Actions(node.state, node.client)
        self.service = InferenceService(
            node.identity.account,
            node.identity.x25519,
            chain_id=node.client.chain_id,
            receipts_contract=self.cm.receipts.address,
            model=None,
            balance=self.cm.receipts.available,
            ledger=self.receipts,
            replays=SqliteReplayCache(node.state, horizon=(limits or Limits()).max_skew),
            clock=clock,
            limits=limits,
        )

    # -- the model ------------------------------------------------------------------------

    def _grant(self) -> tuple[int, int]:
        """(version, grant id) of the newest valid grant to this node."""
        me = self.node.identity.address.lower()
        for event in reversed(self.cm.models.contract.past_events("GrantIssued")):
            grant_id, version = int(event.args["grant_id"]), int(event.args["version_id"])
            if str(event.args["grantee"]).lower() != me:
                continue
            if self.model_version and version != self.model_version:
                continue
            if self.cm.models.functions.grant_valid(grant_id):
                return version, grant_id
        raise NoGrant("no valid grant of a model to this node")

    def load(self) -> bool:
        """Serve the granted model: load it once, and stop serving it as soon as its grant
        is revoked or expires (then look for another); True while one is served."""
        if self.service.model is not None:
            if self.cm.models.functions.grant_valid(self._grant_id):
                return True
            log.warning("grant %d is no longer valid: model unloaded", self._grant_id)
            self.unload()
        try:
            version, grant_id = self._grant()
            blob = self._open(self.node, version, grant_id)
            model = serve_model(blob, version, price=self.price, batch_price=self.batch_price)
            self.service.model = self._with_proofs(model, blob)
            self._grant_id = grant_id
        except ChainmlError as exc:
            log.debug("no model to serve yet: %s", type(exc).__name__)
            return False
        served = self.service.model
        mode = "plain and CKKS" if served.plan is not None else "plain only"
        mode += ", with proofs" if served.prover is not None else ""
        log.info("serving model version %d through grant %d (%s)", version, grant_id, mode)
        return True

    def _with_proofs(self, model: ServedModel, blob: bytes) -> ServedModel:
        """``model`` with a prover, if its version's manifest names a proof bundle and
        these weights give the bundle's verifying key; else ``model`` as it is."""
        try:
            manifest_cid = self.cm.models.version(model.version).manifest_cid
            if not manifest_of(self.node, model.version).zk_bundle:
                return model
            bundle, cid = committed_bundle(manifest_cid, self.node.store.get)
            _, params, activation = classifier_from_safetensors(blob)
            self._zk_dir.mkdir(parents=True, exist_ok=True)
            prover = ZkProver(bundle, params, activation, workdir=self._zk_dir)
        except (ZkError, StorageError, TrainingError) as exc:
            log.warning("version %d served without proofs: %s", model.version, exc)
            return model
        return dataclasses.replace(model, prover=prover, zk_bundle=cid)

    def unload(self) -> None:
        """Stop serving the model; its prover's files are removed."""
        model, self.service.model = self.service.model, None
        if model is not None and model.prover is not None:
            model.prover.close()

    def info(self) -> dict[str, Any] | None:
        model = self.service.model
        if model is None:
            return None
        return {
            "provider": self.node.identity.address,
            "x25519": self.node.identity.x25519.public_bytes.hex(),
            "max_body": self.service.limits.max_body,
            **model.info(),
        }

    # -- billing --------------------------------------------------------------------------

    def listing(self, batch_id: int) -> list[Receipt]:
        """What ``GET /v1/receipts/batches/{id}`` lists: a batch this provider posted."""
        if batch_id <= 0 or batch_id > self.cm.receipts.functions.batch_count():
            return []
        info = self.cm.receipts.batch(batch_id)
        if info.provider.lower() != self.node.identity.address.lower():
            return []
        return self.receipts.listing(batch_id, bytes(info.receipt_root))

    def _posted(self, batch: Batch) -> int | None:
        """The id of a batch already on chain with this root, client and provider."""
        pair = {"provider": self.node.identity.address, "client": batch.client}
        for event in self.cm.receipts.contract.past_events("BatchPosted", where=pair):
            if bytes(event.args["receipt_root"]) == batch.root:
                return int(event.args["batch_id"])
        return None

    def post_due(self) -> int:
        """Post the batches that are due; the number posted."""
        posted, contract = 0, self.cm.receipts.contract
        for batch in self.receipts.due(self.max_receipts, self.max_age):
            first, last = batch.receipts[0].counter, batch.receipts[-1].counter
            key = f"post_batch:{batch.client}:{first}-{last}"
            self.receipts.cut(batch)

            def send(b: Batch = batch) -> str:
                return str(
                    self.node.client.send(
                        self.node.identity.account,
                        to=contract.address,
                        data=contract.abi.encode_call(
                            "post_batch", [b.client, b.root, b.count, b.amount]
                        ),
                        wait=False,
                    )
                )

            def on_chain(b: Batch = batch) -> bool:
                return self._posted(b) is not None

            done = self.actions.perform(key, done_on_chain=on_chain, send=send)
            batch_id = self._posted(batch) if done else None
            self.receipts.mark(batch, batch_id if batch_id is not None else -1)
            if batch_id is None:
                log.warning("batch %s refused on chain: the client could not pay", key)
                continue
            posted += 1
            log.info("posted batch %d: %d receipts, %d wei", batch_id, batch.count, batch.amount)
        return posted

    def tick(self) -> None:
        self.load()
        self.post_due()

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except (ChainmlError, LedgerError, OSError) as exc:
                log.warning("provider pass failed: %s", type(exc).__name__)
            stop.wait(interval)
        self.unload()  # the node stops: its prover's files (they hold the weights) go
        shutil.rmtree(self._zk_dir, ignore_errors=True)


# -- the client's side: HTTP to the provider, receipts checked against the chain -----------


def http_transport(
    base_url: str, timeout: float = 120.0
) -> Callable[[str, bytes], tuple[int, bytes]]:
    """``post(path, body) -> (status, body)`` against a provider node's API."""
    session = requests.Session()

    def post(path: str, body: bytes) -> tuple[int, bytes]:
        try:
            answer = session.post(
                base_url.rstrip("/") + path,
                data=body,
                headers={"content-type": "application/octet-stream"},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise ProviderUnreachable(f"{base_url}: {type(exc).__name__}") from None
        return answer.status_code, answer.content

    return post


class ProviderUnreachable(ChainmlError):
    """The provider's node did not answer."""


def connect(
    cm: Chainml,
    identity: Identity,
    provider: str,
    *,
    book: ReceiptBook | None = None,
    wait: float = 0.0,
    proofs: Callable[[str], bytes] | None = None,
) -> InferenceClient:
    """An ``InferenceClient`` for the provider registered on chain as ``provider``: its
    endpoint and X25519 key come from the Registry, the served model from its API (asked
    again for up to ``wait`` seconds while the provider serves none yet).  With
    ``proofs`` (``fetch(cid) -> bytes`` from a content-addressed store), the client can
    ask for proven answers (``predict_proven``): it verifies them against the bundle that
    the served version's manifest on chain names (``ZkError`` if there is none)."""
    party = cm.registry.party(provider)
    base = party.endpoint.rstrip("/")
    deadline = time.monotonic() + wait
    while True:
        try:
            answer = requests.get(base + "/v1/infer/model", timeout=30)
            if answer.status_code == 200:
                info = ModelInfo.from_doc(answer.json())
                break
            problem = f"{base} serves no model ({answer.status_code})"
        except requests.RequestException as exc:
            problem = f"{base}: {type(exc).__name__}"
        except ValueError:
            raise ProviderUnreachable(f"{base} describes its model in no known form") from None
        if time.monotonic() >= deadline:
            raise ProviderUnreachable(problem)
        time.sleep(0.2)
    if info.provider.lower() != provider.lower() or info.x25519 != party.x25519_key:
        raise ProviderUnreachable("the node at that endpoint is not the registered provider")
    verifier = None
    if proofs is not None:
        manifest_cid = cm.models.version(info.model_version).manifest_cid
        verifier = ZkVerifier(committed_bundle(manifest_cid, proofs)[0])
    return InferenceClient(
        identity,
        info,
        chain_id=cm.receipts.client.chain_id,
        receipts_contract=cm.receipts.address,
        post=http_transport(base),
        clock=time.time,
        book=book,
        zk=verifier,
    )


def fetch_listing(base_url: str, batch_id: int) -> list[Receipt] | None:
    """The receipts a provider lists for a batch; None if it cannot be reached; an empty
    list if it lists nothing (or nothing well-formed) for it."""
    try:
        answer = requests.get(f"{base_url.rstrip('/')}/v1/receipts/batches/{batch_id}", timeout=30)
    except requests.RequestException:
        return None
    try:
        docs = answer.json() if answer.status_code == 200 else []
        return [Receipt.from_doc(d) for d in docs]
    except (ValueError, TypeError):
        return []  # a listing that does not parse cannot match what the client holds


def check_batches(
    cm: Chainml, identity: Identity, book: ReceiptBook, *, dispute: bool = True
) -> list[tuple[int, str]]:
    """Check every open batch billed to this client against the receipts it holds and the
    provider's listing; dispute (on chain) each one that does not match.  Returns
    (batch id, "ok", "pending" — the provider did not answer, ask again — or the error's
    kind) per batch looked at."""
    out = []
    window = int(cm.receipts.functions.dispute_window())
    mine = {"client": identity.address}
    for event in cm.receipts.contract.past_events("BatchPosted", where=mine):
        batch_id = int(event.args["batch_id"])
        if batch_id in book.checked:
            continue
        info = cm.receipts.batch(batch_id)
        if info.status != 1:  # already settled or disputed
            continue
        listed = fetch_listing(cm.registry.party(info.provider).endpoint, batch_id)
        if listed is None:  # provider unreachable: ask again, until half the window is gone
            if LedgerChainView(cm).now() < info.posted_at + window // 2:
                out.append((batch_id, "pending"))
                continue
            listed = []
        batch = Batch(
            identity.address,
            bytes(info.receipt_root),
            info.receipt_count,
            info.amount,
            tuple(listed),
        )
        try:
            book.check(batch, info.provider)
            verdict = "ok"
        except ReceiptError as exc:
            verdict = type(exc).__name__
            if dispute:
                cm.receipts.dispute(identity.account, batch_id, reason_hash(exc))
        book.checked.add(batch_id)
        out.append((batch_id, verdict))
    return out
