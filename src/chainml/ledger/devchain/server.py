"""Standard Ethereum JSON-RPC over HTTP for the embedded chain, on loopback.

Answers what wallets, web3 libraries and chainml's client use: chain and block queries,
balances, code, nonces, fees, ``eth_call`` and ``eth_estimateGas`` (reverts as error code 3
with the revert data, like geth and Anvil), ``eth_sendRawTransaction`` (auto-mined),
receipts, transactions and logs, the ``finalized`` and ``safe`` block tags, plus the
development methods ``evm_increaseTime``, ``evm_mine``, ``chainml_setFinality``
(``{"depth": k}`` and/or ``{"frozen": true|false}``; answers the finalized block's number)
and ``chainml_reorg`` (a depth; answers the new head).  Malformed requests get JSON-RPC
errors; nothing a client sends crashes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_tester.exceptions import BlockNotFound, TransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils.exceptions import ValidationError as EthValidationError
from rlp.exceptions import RLPException

from chainml.ledger.devchain.chain import CHAIN_ID, CallReverted, DevChain, JournalError

MAX_BODY = 1 << 20
MAX_BATCH = 100
CLIENT_VERSION = "chainml-devchain/0.1"
PRIORITY_FEE = 10**9

_CAMEL = re.compile(r"_([a-z])")
_RENAME = {"coinbase": "miner", "data": "input", "access_list": "accessList"}
_QUANTITY_AS_DATA = {"logsBloom": 256, "nonce": 8}


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _camel(key: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), key)


def to_json(value: Any, key: str = "", *, tx: bool = False) -> Any:
    """eth-tester's Python values as standard JSON-RPC: camelCase keys, hex quantities."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        width = _QUANTITY_AS_DATA.get(key)
        return "0x" + value.to_bytes(width, "big").hex() if width else hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = _RENAME.get(k, _camel(k)) if (tx or k != "data") else _camel(k)
            out[name] = to_json(v, name, tx=False)
        return out
    if isinstance(value, list | tuple):
        return [to_json(v, key) for v in value]
    return value


def _quantity(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcFailure(-32602, f"{name} must be a hex quantity")


def _block_tag(value: Any) -> int | str:
    if value in ("safe", "finalized"):
        return str(value)
    if value in (None, "latest", "pending"):
        return "latest"
    if value == "earliest":
        return "earliest"
    return _quantity(value, "block")


def _call_tx(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RpcFailure(-32602, "transaction must be an object")
    tx: dict[str, Any] = {"from": raw.get("from") or "0x" + "00" * 20}
    if raw.get("to"):
        tx["to"] = raw["to"]
    data = raw.get("input", raw.get("data"))
    tx["data"] = data if isinstance(data, str) else "0x"
    for key, name in (("value", "value"), ("gas", "gas")):
        if raw.get(key) is not None:
            tx[name] = _quantity(raw[key], key)
    return tx


class RpcHandler:
    """JSON-RPC dispatch over a ``DevChain``."""

    def __init__(self, chain: DevChain) -> None:
        self.chain = chain
        t = chain.tester
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "web3_clientVersion": lambda p: CLIENT_VERSION,
            "net_version": lambda p: str(CHAIN_ID),
            "net_listening": lambda p: True,
            "eth_chainId": lambda p: hex(CHAIN_ID),
            "eth_syncing": lambda p: False,
            "eth_accounts": lambda p: [],
            "eth_blockNumber": lambda p: hex(t.get_block_by_number("latest")["number"]),
            "eth_getBlockByNumber": self._block_by_number,
            "eth_getBlockByHash": self._block_by_hash,
            "eth_getBalance": lambda p: hex(t.get_balance(p[0], self._tag(_opt(p, 1)))),
            "eth_getCode": lambda p: t.get_code(p[0], self._tag(_opt(p, 1))),
            "eth_getTransactionCount": lambda p: hex(t.get_nonce(p[0], self._tag(_opt(p, 1)))),
            "eth_gasPrice": lambda p: hex(self._base_fee() + PRIORITY_FEE),
            "eth_maxPriorityFeePerGas": lambda p: hex(PRIORITY_FEE),
            "eth_call": lambda p: (
                "0x" + self.chain.call(_call_tx(p[0]), self._tag(_opt(p, 1))).hex()
            ),
            "eth_estimateGas": lambda p: hex(self.chain.estimate_gas(_call_tx(p[0]))),
            "eth_sendRawTransaction": self._send_raw,
            "eth_getTransactionReceipt": self._receipt,
            "eth_getTransactionByHash": self._transaction,
            "eth_getLogs": self._logs,
            "evm_increaseTime": lambda p: hex(self.chain.increase_time(_quantity(p[0], "seconds"))),
            "evm_mine": self._mine,
            "chainml_setFinality": self._set_finality,
            "chainml_reorg": lambda p: hex(self.chain.reorg(_quantity(p[0], "depth"))),
        }

    def _tag(self, value: Any) -> int | str:
        """A block parameter: a number, ``latest``, ``earliest``, or the number the
        ``finalized`` and ``safe`` tags stand for now."""
        tag = _block_tag(value)
        if tag == "finalized":
            return self.chain.finalized()
        if tag == "safe":
            return self.chain.safe()
        return tag

    def _set_finality(self, p: list[Any]) -> str:
        opts = p[0] if p and isinstance(p[0], dict) else None
        if opts is None or not set(opts) <= {"depth", "frozen"}:
            raise RpcFailure(-32602, 'expected {"depth": quantity, "frozen": bool}')
        frozen = opts.get("frozen")
        if frozen is not None and not isinstance(frozen, bool):
            raise RpcFailure(-32602, "frozen must be true or false")
        depth = _quantity(opts["depth"], "depth") if "depth" in opts else None
        return hex(self.chain.set_finality(depth=depth, frozen=frozen))

    def _mine(self, p: list[Any]) -> str:
        self.chain.mine()
        return "0x0"

    def _base_fee(self) -> int:
        return int(self.chain.tester.get_block_by_number("latest").get("base_fee_per_gas", 0))

    def _block_by_number(self, p: list[Any]) -> Any:
        try:
            block = self.chain.tester.get_block_by_number(
                self._tag(p[0]), full_transactions=bool(_opt(p, 1))
            )
        except BlockNotFound:
            return None
        return to_json(block, tx=True)

    def _block_by_hash(self, p: list[Any]) -> Any:
        try:
            block = self.chain.tester.get_block_by_hash(p[0], full_transactions=bool(_opt(p, 1)))
        except (BlockNotFound, EthValidationError):
            return None
        return to_json(block, tx=True)

    def _send_raw(self, p: list[Any]) -> Any:
        if not isinstance(p[0], str) or not p[0].startswith("0x"):
            raise RpcFailure(-32602, "raw transaction must be hex")
        try:
            return self.chain.send_raw_transaction(p[0])
        except JournalError:
            raise
        except (EthValidationError, TesterValidationError, RLPException, ValueError) as exc:
            raise RpcFailure(-32000, f"transaction rejected: {str(exc)[:200]}") from exc

    def _receipt(self, p: list[Any]) -> Any:
        try:
            receipt = self.chain.tester.get_transaction_receipt(p[0])
        except (TransactionNotFound, EthValidationError):
            return None
        out = to_json(receipt)
        out["transactionHash"] = receipt["transaction_hash"]
        out["logs"] = [self._log(log) for log in receipt["logs"]]
        out.pop("stateRoot", None)
        return out

    def _transaction(self, p: list[Any]) -> Any:
        try:
            return to_json(self.chain.tester.get_transaction_by_hash(p[0]), tx=True)
        except (TransactionNotFound, EthValidationError):
            return None

    @staticmethod
    def _log(log: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = to_json(log)
        out["data"] = log["data"] if isinstance(log["data"], str) else to_json(log["data"])
        out.setdefault("removed", False)
        return out

    def _logs(self, p: list[Any]) -> Any:
        flt = p[0] if p and isinstance(p[0], dict) else None
        if flt is None:
            raise RpcFailure(-32602, "filter must be an object")
        t = self.chain.tester
        head = t.get_block_by_number("latest")["number"]

        def bound(v: Any, default: int) -> int:
            tag = self._tag(v) if v is not None else default
            return head if tag == "latest" else 0 if tag == "earliest" else int(tag)

        lo, hi = bound(flt.get("fromBlock"), head), bound(flt.get("toBlock"), head)
        if hi < lo:
            return []
        logs = t.get_logs(
            from_block=lo, to_block=hi, address=flt.get("address"), topics=flt.get("topics")
        )
        return [self._log(log) for log in logs]

    def handle(self, request: Any) -> dict[str, Any] | None:
        """One JSON-RPC request object in, one response object out (None for notifications)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request")
        rid = request.get("id")
        params = request.get("params", [])
        if not isinstance(params, list):
            return _error(rid, -32602, "params must be an array")
        method = self.methods.get(request["method"])
        if method is None:
            return _error(rid, -32601, f"method {request['method'][:64]} not supported")
        try:
            result = method(params)
        except RpcFailure as exc:
            return _error(rid, exc.code, exc.message, exc.data)
        except CallReverted as exc:
            return _error(rid, 3, "execution reverted", "0x" + exc.data.hex())
        except IndexError:
            return _error(rid, -32602, "missing parameters")
        except JournalError:
            raise
        except (
            EthValidationError,
            TesterValidationError,
            RLPException,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
        ) as exc:
            return _error(rid, -32602, f"invalid parameters: {str(exc)[:200]}")
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def handle_body(self, body: bytes) -> Any:
        try:
            request = json.loads(body)
        except ValueError:
            return _error(None, -32700, "parse error")
        if isinstance(request, list):
            if not request or len(request) > MAX_BATCH:
                return _error(None, -32600, f"a batch holds 1 to {MAX_BATCH} requests")
            return [r for r in (self.handle(item) for item in request) if r is not None]
        return self.handle(request)


def _opt(params: list[Any], index: int) -> Any:
    return params[index] if len(params) > index else None


def _error(rid: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (40 ms on Linux loopback) on every call.
    disable_nagle_algorithm = True
    server: DevChainHTTPServer

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._reply(413, _error(None, -32600, "request body missing or over 1 MiB"))
            self.close_connection = True
            return
        body = self.rfile.read(length)
        self._reply(200, self.server.rpc.handle_body(body))

    def do_GET(self) -> None:
        self._reply(405, _error(None, -32600, "use POST"))

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not logged: payloads may carry data that is nobody's business


class DevChainHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, chain: DevChain, host: str, port: int) -> None:
        self.rpc = RpcHandler(chain)
        super().__init__((host, port), _HTTPHandler)
