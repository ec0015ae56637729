"""KuboRpcStore against a recorded-protocol kubo RPC server on 127.0.0.1.

The recorder is a real HTTP/1.1 server in a thread.  It keeps the blocks it is sent by
building the UnixFS DAG of each uploaded multipart ``file`` part with ``DagBuilder``, so
every CID and block it answers is computed, not canned; and it records every request so
the tests can check the method, path, query arguments, headers and multipart parts.

What it answers follows, section by section:

* Kubo RPC API v0 reference, ipfs/ipfs-docs ``docs/reference/kubo/rpc.md``
  (https://docs.ipfs.tech/reference/kubo/rpc/, generated from kubo v0.41.0):
  "Getting started" (every call is POST; arguments are ``arg=`` query keys, flags query
  keys of their own), "HTTP status codes" (200; 500 command error; 400 malformed; 404
  unknown endpoint; 405 wrong method; errors after a streamed 200 go to a trailer),
  "Global options" (``offline``, ``cid-base``: CIDv0 turned into CIDv1 for a base other
  than base58btc), and the sections ``/api/v0/add`` (multipart/form-data parts named
  ``file``; answer ``{"Name","Hash","Size"}``), ``/api/v0/block/get`` (raw block,
  ``Content-Type: application/vnd.ipld.raw``; argument ``arg``), ``/api/v0/block/stat``
  (``{"Key","Size"}``), ``/api/v0/pin/add`` (``{"Pins": [...]}``, ``recursive`` default
  true) and ``/api/v0/pin/rm`` (``{"Pins": [...]}``).
* What the reference leaves out, from go-ipfs-cmds (ipfs/go-ipfs-cmds), the library that
  serves kubo's RPC API: ``error.go`` (error body ``{"Message","Code","Type":"error"}``),
  ``http/responseemitter.go`` (500, or 400 for Code 1; headers ``Trailer: X-Stream-Error``,
  ``X-Chunked-Output: 1`` for a stream of values, ``X-Stream-Output: 1`` for a byte stream,
  ``Access-Control-*-Headers``; answers sent chunked), ``http/handler.go`` (non-POST:
  ``405 - Method Not Allowed`` as text with ``Allow: OPTIONS, POST``; parse errors 400 text),
  ``http/parse.go`` (unknown endpoint 404 text; ``file argument 'path' is required``),
  ``command.go`` (``argument "cid" is required``); and kubo's ``core/commands/add.go``
  (``AddEvent``), ``block.go``, ``pin/pin.go``, ``cmdenv/cidbase.go`` (CIDs in answers in
  base58btc unless ``cid-base`` says otherwise).
* Messages for a missing block and a missing pin, from kubo's sharness tests
  (``t0080-repo.sh``: "block was not found locally (offline): ipld: could not find <cid>")
  and boxo's pinner ("not pinned or pinned indirectly").
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chainml.storage.cid import DAG_PB, Cid, parse_cid
from chainml.storage.errors import BlobNotFound, CorruptBlob, InvalidCid
from chainml.storage.kubo_rpc import ADD_PARAMS, MAX_BLOCK, KuboRpcError, KuboRpcStore
from chainml.storage.unixfs import CHUNK, DagBuilder, cid_v0, cid_v1, decode_node, file_cid
from tests.storage.conformance import BlobStoreContract

# -- the recorder ----------------------------------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_EXPOSED = "X-Stream-Output, X-Chunked-Output, X-Content-Length"
_ADD_DEFAULTS = dict(ADD_PARAMS)  # the only import settings the recorder can honour


def _b58(data: bytes) -> str:
    n, out = int.from_bytes(data, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _encode(cid: Cid, given: str, cid_base: str | None) -> str:
    """A CID as kubo writes it in an answer (cmdenv.GetCidEncoder)."""
    if cid_base == "base32":
        return cid.v1
    if given.startswith("Qm"):
        return cid.v0
    return "z" + _b58(bytes([1, cid.codec]) + cid.multihash)  # CIDv1 in base58btc


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body_chunks: int = 0  # HTTP chunks of a chunked request body
    parts: list[Part] = field(default_factory=list)


class _Fail(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class Kubo:
    """The state of the recorded daemon and the knobs that make it misbehave."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.pins: set[bytes] = set()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.wrong_add_hash = False
        self.tampered: set[bytes] = set()
        self.oversized: set[bytes] = set()  # block/get sends these blocks padded past 2 MiB
        self.add_stream_error: str | None = None  # add fails after its 200: trailer only
        self.failure: str | None = None  # every command fails with this Message
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commands(self) -> list[str]:
        return [r.path.removeprefix("/api/v0/") for r in self.requests]

    # the commands ----------------------------------------------------------------------

    def add(self, query: dict[str, list[str]], parts: list[Part]) -> list[dict[str, str]]:
        for key, value in _ADD_DEFAULTS.items():
            if key in query and query[key] != [value]:
                raise _Fail(f"recorder: {key}={query[key][0]} is not kubo's default")
        if not parts:
            raise _Fail("file argument 'path' is required", code=1)
        events = []
        for part in parts:
            disposition = part.headers.get("content-disposition", "")
            filename = disposition.partition('filename="')[2].partition('"')[0]
            store: dict[bytes, bytes] = {}
            tree_size = 0

            def sink(multihash: bytes, block: bytes) -> None:
                nonlocal tree_size
                store[multihash] = block
                tree_size += len(block)

            builder = DagBuilder(sink)
            builder.write(part.body)
            root = builder.finish()
            with self.lock:
                self.blocks.update(store)
                if query.get("pin", ["true"]) == ["true"]:
                    self.pins.add(root)
            answer = Cid(DAG_PB, root).v0
            if self.wrong_add_hash:
                answer = cid_v0(part.body + b"?")
            events.append({"Name": filename, "Hash": answer, "Size": str(tree_size)})
        return events

    def block(self, given: str, offline: bool) -> tuple[Cid, bytes]:
        try:
            cid = parse_cid(given)
        except InvalidCid:
            raise _Fail(f'invalid path "{given}": invalid cid') from None
        with self.lock:
            block = self.blocks.get(cid.multihash)
        if block is None:
            # a daemon given offline=true, or one with no peers, cannot fetch it
            raise _Fail(f"block was not found locally (offline): ipld: could not find {given}")
        if cid.multihash in self.tampered:
            block = block[:-1] + bytes([block[-1] ^ 1])
        if cid.multihash in self.oversized:
            block += bytes(MAX_BLOCK)
        return cid, block

    def dag(self, root: Cid) -> list[bytes]:
        out, todo = [], [root.multihash]
        while todo:
            mh = todo.pop()
            if mh not in self.blocks:
                raise _Fail(
                    "pin: block was not found locally (offline): ipld: could not find "
                    + Cid(DAG_PB, mh).v1
                )
            out.append(mh)
            todo.extend(decode_node(self.blocks[mh])[0])
        return out


def _handler(kubo: Kubo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        # methods: POST only (OPTIONS answered with Allow), as go-ipfs-cmds' handler

        def _refuse(self) -> None:
            self._body()
            self._record()
            self._text(405, "405 - Method Not Allowed", {"Allow": "OPTIONS, POST"})

        do_GET = do_PUT = do_DELETE = do_PATCH = _refuse

        def do_HEAD(self) -> None:
            self._record()
            self.send_response(405)
            self.send_header("Allow", "OPTIONS, POST")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_OPTIONS(self) -> None:
            self._body()
            self._record()
            self.send_response(204)
            self.send_header("Allow", "OPTIONS, POST")
            self.end_headers()

        def do_POST(self) -> None:
            body, chunks = self._body()
            record = self._record(chunks)
            url = urlsplit(self.path)
            command = url.path.removeprefix("/api/v0/")
            routes = {
                "add": self._add,
                "block/get": self._block_get,
                "block/stat": self._block_stat,
                "pin/add": self._pin_add,
                "pin/rm": self._pin_rm,
            }
            if not url.path.startswith("/api/v0/") or command not in routes:
                self._text(404, "404 page not found")
                return
            if command != "add" and not record.query.get("arg"):
                self._text(400, 'argument "cid" is required')
                return
            try:
                if kubo.failure is not None:
                    raise _Fail(kubo.failure)
                routes[command](record, body)
            except _Fail as fail:
                self._error(fail.message, fail.code)

        # the commands

        def _add(self, record: Recorded, body: bytes) -> None:
            content_type = record.headers.get("content-type", "")
            if not content_type.startswith("multipart/form-data"):
                self._text(400, "file argument 'path' is required")
                return
            boundary = content_type.partition("boundary=")[2].strip('"')
            try:
                record.parts = _multipart(body, boundary)
            except ValueError as exc:
                self._text(400, f"multipart: {exc}")
                return
            if kubo.add_stream_error is not None:
                # the error comes after the 200 and its headers: in the trailer only
                self._preamble(200, "application/json", {"X-Chunked-Output": "1"})
                self._chunks([], trailer=kubo.add_stream_error)
                return
            events = kubo.add(record.query, record.parts)
            self._stream(
                "application/json",
                [json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events],
                {"X-Chunked-Output": "1"},
            )

        def _block_get(self, record: Recorded, body: bytes) -> None:
            _, block = kubo.block(record.query["arg"][0], _flag(record, "offline"))
            self._stream("application/vnd.ipld.raw", [block], {"X-Stream-Output": "1"})

        def _block_stat(self, record: Recorded, body: bytes) -> None:
            given = record.query["arg"][0]
            cid, block = kubo.block(given, _flag(record, "offline"))
            key = _encode(cid, given, _option(record, "cid-base"))
            self._single({"Key": key, "Size": len(block)})

        def _pin_add(self, record: Recorded, body: bytes) -> None:
            pins = []
            for given in record.query["arg"]:
                cid, _ = kubo.block(given, _flag(record, "offline"))
                with kubo.lock:
                    kubo.dag(cid)  # a recursive pin needs every block
                    kubo.pins.add(cid.multihash)
                pins.append(_encode(cid, given, _option(record, "cid-base")))
            self._single({"Pins": pins})

        def _pin_rm(self, record: Recorded, body: bytes) -> None:
            pins = []
            for given in record.query["arg"]:
                cid = parse_cid(given)
                with kubo.lock:
                    if cid.multihash not in kubo.pins:
                        raise _Fail("not pinned or pinned indirectly")
                    kubo.pins.discard(cid.multihash)
                pins.append(_encode(cid, given, _option(record, "cid-base")))
            self._single({"Pins": pins})

        # the wire

        def _body(self) -> tuple[bytes, int]:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out, chunks = bytearray(), 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # request trailers
                        return bytes(out), chunks
                    out += self.rfile.read(size)
                    self.rfile.read(2)
                    chunks += 1
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length), 0

        def _record(self, chunks: int = 0) -> Recorded:
            url = urlsplit(self.path)
            record = Recorded(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body_chunks=chunks,
            )
            with kubo.lock:
                kubo.requests.append(record)
            return record

        def _text(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
            # Go's http.Error
            body = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _preamble(self, status: int, content_type: str, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Access-Control-Allow-Headers", _EXPOSED)
            self.send_header("Access-Control-Expose-Headers", _EXPOSED)
            self.send_header("Trailer", "X-Stream-Error")
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _chunks(self, pieces: list[bytes], trailer: str | None = None) -> None:
            for piece in pieces:
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n")
            if trailer is not None:
                self.wfile.write(f"X-Stream-Error: {trailer}\r\n".encode())
            self.wfile.write(b"\r\n")

        def _stream(self, content_type: str, pieces: list[bytes], extra: dict[str, str]) -> None:
            self._preamble(200, content_type, extra)
            self._chunks(pieces)

        def _single(self, value: object) -> None:
            # cmds.EmitOnce: no X-Chunked-Output, one JSON value
            self._stream("application/json", [json.dumps(value).encode() + b"\n"], {})

        def _error(self, message: str, code: int) -> None:
            envelope = {"Message": message, "Code": code, "Type": "error"}
            self._preamble(400 if code == 1 else 500, "application/json", {})
            self._chunks([json.dumps(envelope).encode() + b"\n"])

    return Handler


def _flag(record: Recorded, name: str) -> bool:
    return record.query.get(name, ["false"])[0] in ("true", "")


def _option(record: Recorded, name: str) -> str | None:
    return record.query.get(name, [None])[0]


def _multipart(body: bytes, boundary: str) -> list[Part]:
    if not boundary:
        raise ValueError("no boundary")
    delimiter = b"--" + boundary.encode()
    if not body.startswith(delimiter + b"\r\n"):
        raise ValueError("body does not start with the boundary")
    parts, pos = [], len(delimiter) + 2
    while True:
        head_end = body.find(b"\r\n\r\n", pos)
        end = body.find(b"\r\n" + delimiter, head_end + 4)
        if head_end < 0 or end < 0:
            raise ValueError("truncated part")
        headers = {}
        for line in body[pos:head_end].decode().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        parts.append(Part(headers, body[head_end + 4 : end]))
        pos = end + 2 + len(delimiter)
        if body[pos : pos + 4] == b"--\r\n":
            return parts
        if body[pos : pos + 2] != b"\r\n":
            raise ValueError("bad delimiter")
        pos += 2


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def kubo() -> Iterator[Kubo]:
    server = Kubo()
    yield server
    server.close()


@pytest.fixture
def client(kubo: Kubo) -> Iterator[KuboRpcStore]:
    with KuboRpcStore(kubo.url, timeout=5) as store:
        yield store


class TestKuboRpcContract(BlobStoreContract):
    @pytest.fixture
    def store(self, client: KuboRpcStore) -> KuboRpcStore:
        return client


# -- put and read back ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3_000_000])
def test_round_trip(kubo: Kubo, client: KuboRpcStore, size: int):
    data = random.Random(size).randbytes(size)
    cid = client.put(data)
    assert cid == cid_v1(data)

    (add,) = kubo.requests
    assert (add.method, add.path) == ("POST", "/api/v0/add")
    assert add.query == {
        "chunker": ["size-262144"],
        "cid-version": ["0"],
        "raw-leaves": ["false"],
        "hash": ["sha2-256"],
        "trickle": ["false"],
        "max-file-links": ["174"],
        "inline": ["false"],
        "nocopy": ["false"],
        "only-hash": ["false"],
        "wrap-with-directory": ["false"],
        "progress": ["false"],
        "pin": ["true"],
    }
    assert add.headers["content-type"].startswith("multipart/form-data; boundary=")
    # streamed: chunked transfer, no length known up front
    assert add.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in add.headers
    if size > 2 * CHUNK:
        assert add.body_chunks > 2
    (part,) = add.parts
    assert part.headers["content-disposition"].startswith('form-data; name="file"; filename=')
    assert part.headers["content-type"] == "application/octet-stream"
    assert part.body == data
    assert parse_cid(cid).multihash in kubo.pins  # pin=true

    assert client.get(cid) == data
    reads = kubo.requests[1:]
    assert all((r.method, r.path) == ("POST", "/api/v0/block/get") for r in reads)
    assert all(r.query["offline"] == ["true"] for r in reads)
    fetched = [parse_cid(r.query["arg"][0]).multihash for r in reads]
    assert fetched[0] == parse_cid(cid).multihash  # the root first, then its leaves
    assert len(fetched) == len(set(fetched)) == (1 if size <= CHUNK else 1 + -(-size // CHUNK))
    assert set(fetched) <= set(kubo.blocks)


def test_put_streams_a_one_shot_source_and_a_file(kubo: Kubo, client: KuboRpcStore, tmp_path):
    data = random.Random(7).randbytes(CHUNK * 2 + 3)
    pieces = (data[i : i + 999] for i in range(0, len(data), 999))  # consumed once
    assert client.put(pieces) == cid_v1(data)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    assert client.put(path) == cid_v1(data)
    assert kubo.requests[0].parts[0].body == kubo.requests[1].parts[0].body == data


def test_open_streams_block_by_block(kubo: Kubo, client: KuboRpcStore):
    data = random.Random(3).randbytes(3 * CHUNK)
    cid = client.put(data)
    stream = client.open(cid)
    assert kubo.commands() == ["add"]  # nothing fetched before the first piece is asked for
    assert next(stream) == data[:CHUNK]
    assert kubo.commands() == ["add", "block/get", "block/get"]  # root, first leaf
    assert b"".join(stream) == data[CHUNK:]


def test_open_with_network_fetch_leaves_offline_off(kubo: Kubo):
    with KuboRpcStore(kubo.url, timeout=5, fetch_from_network=True) as store:
        cid = store.put(b"from the network")
        assert store.get(cid) == b"from the network"
    assert "offline" not in kubo.requests[-1].query


# -- a daemon that lies --------------------------------------------------------------------


def test_wrong_hash_on_add(kubo: Kubo, client: KuboRpcStore):
    kubo.wrong_add_hash = True
    data = random.Random(4).randbytes(CHUNK + 10)
    with pytest.raises(CorruptBlob, match=cid_v0(data)):
        client.put(data)


def test_tampered_block(kubo: Kubo, client: KuboRpcStore):
    data = random.Random(5).randbytes(3 * CHUNK)
    cid = client.put(data)
    leaf = file_cid(data[CHUNK : 2 * CHUNK])  # the second leaf
    assert leaf.multihash in kubo.blocks
    kubo.tampered.add(leaf.multihash)
    pieces = client.open(cid)
    assert next(pieces) == data[:CHUNK]  # the first leaf is fine
    with pytest.raises(CorruptBlob, match=leaf.v1):
        next(pieces)


def test_oversized_block(kubo: Kubo, client: KuboRpcStore):
    cid = client.put(b"small")
    kubo.oversized.add(parse_cid(cid).multihash)
    with pytest.raises(CorruptBlob, match=f"block {cid} is larger than"):
        client.get(cid)


def test_add_failing_after_its_200(kubo: Kubo, client: KuboRpcStore):
    # "If an error happens during the stream, it will be included in a Trailer response
    # header": requests cannot read trailers, but an answer without a Hash is refused
    kubo.add_stream_error = "context canceled"
    with pytest.raises(KuboRpcError, match="no Hash") as caught:
        client.put(b"data")
    assert caught.value.status == 200


def test_tampered_root(kubo: Kubo, client: KuboRpcStore):
    cid = client.put(b"small")
    kubo.tampered.add(parse_cid(cid).multihash)
    with pytest.raises(CorruptBlob, match=cid):
        client.get(cid)


# -- absent blobs, errors, unreachable daemons ---------------------------------------------


def test_unknown_cid(kubo: Kubo, client: KuboRpcStore):
    cid = cid_v1(b"nobody stored this")
    with pytest.raises(BlobNotFound, match=cid) as caught:
        client.get(cid)
    assert "block was not found locally" in str(caught.value.__cause__)
    assert not client.has(cid)
    stat = kubo.requests[-1]
    assert (stat.method, stat.path) == ("POST", "/api/v0/block/stat")
    assert stat.query == {"arg": [cid], "offline": ["true"], "cid-base": ["base32"]}


def test_has(kubo: Kubo, client: KuboRpcStore):
    cid = client.put(b"present")
    assert client.has(cid)
    assert client.has(cid_v0(b"present"))  # asked as CIDv1 whatever form it was given in
    assert kubo.requests[-1].query["arg"] == [cid]


def test_missing_inner_block(kubo: Kubo, client: KuboRpcStore):
    data = random.Random(6).randbytes(2 * CHUNK + 1)
    cid = client.put(data)
    leaf = file_cid(data[CHUNK : 2 * CHUNK])
    del kubo.blocks[leaf.multihash]
    with pytest.raises(BlobNotFound, match=leaf.v1):
        client.get(cid)


def test_daemon_error_carries_the_message(kubo: Kubo, client: KuboRpcStore):
    kubo.failure = "repo: datastore is full"
    secret = b"TOP-SECRET-WEIGHTS " * 100
    with pytest.raises(KuboRpcError) as caught:
        client.put(secret)
    err = caught.value
    assert (err.endpoint, err.status, err.code) == ("add", 500, 0)
    assert err.daemon_message == "repo: datastore is full"
    assert "repo: datastore is full" in str(err)
    assert b"TOP-SECRET" not in str(err).encode()
    assert kubo.requests[0].parts == []  # failed before the command looked at the upload

    with pytest.raises(KuboRpcError, match="datastore is full"):
        client.get(cid_v1(b"x"))  # a 500 that is not "not found" is not BlobNotFound
    with pytest.raises(KuboRpcError, match="datastore is full"):
        client.has(cid_v1(b"x"))


def test_unknown_endpoint_text_error(kubo: Kubo):
    with KuboRpcStore(kubo.url + "/elsewhere", timeout=5) as store:
        with pytest.raises(KuboRpcError) as caught:
            store.has(cid_v1(b"x"))
    assert caught.value.status == 404
    assert caught.value.daemon_message == "404 page not found"


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with KuboRpcStore(f"http://user:pw@127.0.0.1:{port}", timeout=2) as store:
        with pytest.raises(KuboRpcError) as caught:
            store.put(b"hello")
        assert caught.value.status is None
        assert "pw" not in str(caught.value)
        assert isinstance(caught.value.__cause__, requests.ConnectionError)
        with pytest.raises(KuboRpcError):
            store.get(cid_v1(b"hello"))
        with pytest.raises(KuboRpcError):
            store.has(cid_v1(b"hello"))
    assert time.monotonic() - started < 5


def test_a_failing_source_is_not_blamed_on_the_daemon(client: KuboRpcStore):
    def pieces() -> Iterator[bytes]:
        yield b"a" * CHUNK
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        client.put(pieces())


@pytest.mark.parametrize("bad", ["", "Qm123", "b" + "a" * 58, "../../etc/passwd", "bafy!!"])
def test_malformed_cid_before_any_request(kubo: Kubo, client: KuboRpcStore, bad: str):
    for call in (client.open, client.get, client.has, client.pin, client.unpin):
        with pytest.raises(InvalidCid):
            call(bad)
    assert kubo.requests == []


# -- pins ----------------------------------------------------------------------------------


def test_pin_and_unpin(kubo: Kubo, client: KuboRpcStore):
    data = random.Random(8).randbytes(CHUNK + 1)
    cid = client.put(data)
    root = parse_cid(cid).multihash

    assert client.unpin(cid) is True
    rm = kubo.requests[-1]
    assert (rm.method, rm.path) == ("POST", "/api/v0/pin/rm")
    assert rm.query == {"arg": [cid], "recursive": ["true"], "cid-base": ["base32"]}
    assert root not in kubo.pins
    assert client.unpin(cid) is False  # "not pinned or pinned indirectly": nothing to do

    assert client.pin(cid_v0(data)) is None
    add = kubo.requests[-1]
    assert (add.method, add.path) == ("POST", "/api/v0/pin/add")
    assert add.query == {
        "arg": [cid],
        "recursive": ["true"],
        "progress": ["false"],
        "cid-base": ["base32"],
        "offline": ["true"],
    }
    assert root in kubo.pins


def test_pin_of_an_absent_blob(kubo: Kubo, client: KuboRpcStore):
    with pytest.raises(BlobNotFound):
        client.pin(cid_v1(b"absent"))


def test_pin_rm_other_error_is_raised(kubo: Kubo, client: KuboRpcStore):
    cid = client.put(b"pinned")
    kubo.failure = "pinner: lock held"
    with pytest.raises(KuboRpcError, match="pinner: lock held"):
        client.unpin(cid)


# -- the recorder itself answers as kubo does ------------------------------------------------


def test_recorder_refuses_get_with_405(kubo: Kubo):
    answer = requests.get(kubo.url + "/api/v0/block/stat?arg=" + cid_v1(b"x"), timeout=5)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "OPTIONS, POST"
    assert answer.text == "405 - Method Not Allowed\n"


def test_recorder_error_envelope_and_headers(kubo: Kubo):
    answer = requests.post(kubo.url + "/api/v0/block/get?arg=" + cid_v1(b"x"), timeout=5)
    assert answer.status_code == 500
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Trailer"] == "X-Stream-Error"
    body = answer.json()
    assert body["Type"] == "error" and body["Code"] == 0
    assert body["Message"].startswith("block was not found locally (offline): ipld: could not find")
    missing = requests.post(kubo.url + "/api/v0/block/get", timeout=5)
    assert (missing.status_code, missing.text) == (400, 'argument "cid" is required\n')


def test_recorder_answers_in_base58btc_without_cid_base(kubo: Kubo, client: KuboRpcStore):
    cid = client.put(b"abc")
    plain = requests.post(f"{kubo.url}/api/v0/block/stat?arg={cid}", timeout=5).json()
    assert plain["Key"].startswith("z")  # CIDv1 in kubo's default base
    v0 = cid_v0(b"abc")
    assert requests.post(f"{kubo.url}/api/v0/block/stat?arg={v0}", timeout=5).json()["Key"] == v0
