"""The settlement policy against the dev chain's finality: its ``finalized`` and ``safe``
tags, a finality the test freezes, a reorganisation, and a view the monitor holds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.devchain import DEV_KEY, DevChainProcess
from chainml.ledger.errors import (
    RpcError,
    SettlementUnsupported,
    SettleSettingError,
    ViewDistrusted,
)
from chainml.ledger.settle import Settlement

DEPTH = 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerClient]:
    with DevChainProcess(tmp_path_factory.mktemp("settle") / "chain", finality_depth=DEPTH) as c:
        client = LedgerClient(c.url, timeout=20)
        yield client
        client.close()


def _pay(client: LedgerClient) -> object:
    dev = LocalSigner.from_key(DEV_KEY)
    return client.transact(dev, to=LocalSigner.generate().address, value=1)


def _mine(client: LedgerClient, n: int) -> None:
    for _ in range(n):
        client.rpc("evm_mine")


def _number(client: LedgerClient, tag: str) -> int:
    return int(str(client.block(tag)["number"]), 16)


def test_settle_values_parse_or_are_refused():
    assert Settlement.parse("finalized").mode == "finalized"
    assert Settlement.parse("safe").mode == "safe"
    assert Settlement.parse("12").mode == 12
    assert Settlement.parse(3).mode == 3
    assert Settlement.parse(None, 2).mode == 2  # absent: the confirmation depth
    assert Settlement.parse("", 0).mode == 0
    for bad in ("final", "-1", -1, True, 1.5, ["finalized"]):
        with pytest.raises(SettleSettingError):
            Settlement.parse(bad)


def test_dev_chain_tags_lag_the_head_and_finality_can_be_frozen(chain: LedgerClient):
    _mine(chain, DEPTH + 2)
    head = chain.block_number()
    assert _number(chain, "finalized") == head - DEPTH
    assert _number(chain, "safe") == head - DEPTH // 2
    assert Settlement("finalized").settled_head(chain) == head - DEPTH
    assert Settlement("safe").settled_head(chain) == head - DEPTH // 2
    assert Settlement(1).settled_head(chain) == head - 1

    frozen = int(str(chain.rpc("chainml_setFinality", [{"frozen": True}])), 16)
    try:
        _mine(chain, 3)
        assert _number(chain, "finalized") == frozen  # the head moved, finality did not
        assert _number(chain, "safe") == chain.block_number() - DEPTH // 2
    finally:
        chain.rpc("chainml_setFinality", [{"frozen": False}])
    assert _number(chain, "finalized") == chain.block_number() - DEPTH
    with pytest.raises(RpcError):
        chain.rpc("chainml_setFinality", [{"frozen": "yes"}])


def test_a_transaction_is_settled_once_finalized_and_never_once_reorganised_away(
    chain: LedgerClient,
):
    policy = Settlement("finalized")
    receipt = _pay(chain)
    assert not policy.receipt_settled(chain, receipt)  # mined, not finalized
    _mine(chain, DEPTH)
    assert policy.receipt_settled(chain, receipt)
    assert Settlement(0).receipt_settled(chain, receipt)

    reorged = _pay(chain)
    assert Settlement(0).receipt_settled(chain, reorged)  # depth 0: settled once mined
    new_head = int(str(chain.rpc("chainml_reorg", ["0x1"])), 16)
    assert new_head == reorged.block_number + 1  # a longer branch without the payment
    assert chain.rpc("eth_getTransactionReceipt", [reorged.tx_hash]) is None
    _mine(chain, DEPTH + 1)
    # its block number is long finalized, but the block there is another one
    assert reorged.block_number <= policy.settled_head(chain)
    assert not policy.receipt_settled(chain, reorged)
    assert not Settlement(0).receipt_settled(chain, reorged)
    with pytest.raises(RpcError):  # a finalized block is never replaced
        chain.rpc("chainml_reorg", [hex(DEPTH + 1)])


def test_a_held_view_settles_nothing_and_sends_nothing(chain: LedgerClient):
    policy = Settlement("finalized")
    client = LedgerClient(chain.url, settlement=policy)
    try:
        assert policy.hold("endpoint http://x is 7 blocks behind")
        assert not policy.hold("again")  # already held
        with pytest.raises(
            ViewDistrusted, match="distrusted: endpoint http://x is 7 blocks behind"
        ):
            policy.settled_head(client)
        before = client.block_number()
        with pytest.raises(ViewDistrusted):
            _pay(client)
        assert chain.block_number() == before  # nothing was sent
        assert policy.release()
        assert not policy.release()
        _pay(client)
        assert chain.block_number() == before + 1
    finally:
        client.close()


def test_the_dev_chain_replays_a_reorganisation(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain", finality_depth=2) as c:
        client = LedgerClient(c.url)
        _mine(client, 3)
        _pay(client)
        client.rpc("chainml_reorg", ["0x1"])
        head, hashes = client.block_number(), [client.block(n)["hash"] for n in range(5)]
        client.close()
        c.stop()
        c.start()
        client = LedgerClient(c.url)
        assert client.block_number() == head
        assert [client.block(n)["hash"] for n in range(5)] == hashes
        client.close()


class _NoTags(ThreadingHTTPServer):
    """A JSON-RPC endpoint of a chain without the finalized/safe tags (an older node): it
    answers a block number and refuses the tags as such nodes do."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _NoTagsHandler)


class _NoTagsHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rid, params = request.get("id"), request.get("params") or []
        if request["method"] == "eth_blockNumber":
            reply: dict[str, object] = {"jsonrpc": "2.0", "id": rid, "result": "0x20"}
        else:
            message = f"invalid argument 0: hex string without 0x prefix: {params[:1]}"
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": message}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_chain_without_the_tags_is_a_typed_error_and_a_depth_still_works():
    server = _NoTags()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    client = LedgerClient(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        for tag in ("finalized", "safe"):
            with pytest.raises(SettlementUnsupported, match=f"no '{tag}' block"):
                Settlement(tag).settled_head(client)
        assert Settlement(12).settled_head(client) == 0x20 - 12
    finally:
        client.close()
        server.shutdown()
        thread.join()
        server.server_close()
