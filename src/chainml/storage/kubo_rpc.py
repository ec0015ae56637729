"""A BlobStore on a kubo daemon the user already runs, spoken to over the Kubo RPC API.

Protocol, as the Kubo RPC API v0 reference documents it (ipfs/ipfs-docs
``docs/reference/kubo/rpc.md``, https://docs.ipfs.tech/reference/kubo/rpc/, generated from
kubo v0.41.0), with the error envelope and headers taken from go-ipfs-cmds, the library
kubo serves the API with (``error.go``, ``http/handler.go``, ``http/responseemitter.go``):

* Every call is ``POST <api>/api/v0/<command>``; positional arguments are ``arg=`` query
  keys and flags are query keys of their own ("Getting started").  Any other method gets
  ``405``.
* ``200`` is success.  A command that fails answers ``500`` (``400`` when the fault is the
  client's) with the JSON body ``{"Message": ..., "Code": <int>, "Type": "error"}``;
  failures before the command runs (malformed request ``400``, forbidden ``403``, unknown
  endpoint ``404``, wrong method ``405``) have a ``text/plain`` body.  An error after a
  streamed ``200`` goes into the ``X-Stream-Error`` trailer, which ``requests`` cannot
  read: a stream cut short that way shows up here as a missing ``Hash`` (``add``) or a
  block that does not hash to its CID (``block/get``), both caught.
* ``add`` takes the file as a ``multipart/form-data`` part named ``file`` and answers one
  JSON object per line, ``{"Name", "Hash", "Size"}`` for the file.  ``block/get`` answers
  the raw block (``application/vnd.ipld.raw``), ``block/stat`` ``{"Key", "Size"}``,
  ``pin/add`` and ``pin/rm`` ``{"Pins": [...]}``.
* The global options ``offline`` (run the command without the network) and ``cid-base``
  (multibase of the CIDs in the answer) apply to every command.

The daemon is trusted to keep bytes, never to name or return them correctly: ``put``
hashes the upload itself while streaming it and rejects an answer naming another CID, and
``open`` fetches the file block by block and hashes every block before reading it.

``has`` asks ``block/stat`` with ``offline=true``: with that global option kubo looks in
its own blockstore only and answers a missing block at once ("block was not found locally
(offline)") instead of searching the network, so ``has`` means "this daemon holds the
blob's root block", as ``LocalBlobStore.has`` does.  Reads (``block/get``) and ``pin`` are
offline too unless the store is made with ``fetch_from_network=True``; then the daemon may
fetch missing blocks from its peers, and a CID nobody has takes until ``timeout`` to fail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from chainml.storage.cid import DAG_PB, Cid, parse_cid
from chainml.storage.errors import BlobNotFound, CorruptBlob, InvalidCid, StorageError
from chainml.storage.store import Closing, Source, iter_source
from chainml.storage.unixfs import CHUNK, MAX_LINKS, DagBuilder, read_file

Params = Sequence[tuple[str, str]]

#: ``ipfs add`` with kubo's defaults, spelled out so that a daemon whose ``Import.*``
#: config says otherwise still builds the DAG ``DagBuilder`` builds.  A flag an older
#: kubo does not know (``max-file-links`` is recent) is ignored by it, and those versions
#: use the same value anyway.
ADD_PARAMS: Final[Params] = (
    ("chunker", f"size-{CHUNK}"),
    ("cid-version", "0"),
    ("raw-leaves", "false"),
    ("hash", "sha2-256"),
    ("trickle", "false"),
    ("max-file-links", str(MAX_LINKS)),
    ("inline", "false"),
    ("nocopy", "false"),
    ("only-hash", "false"),
    ("wrap-with-directory", "false"),
    ("progress", "false"),
    ("pin", "true"),
)
#: kubo refuses blocks over 2 MiB unless told otherwise, and bitswap cannot carry them; no
#: block of a file this store reads is larger, so a longer answer is a broken daemon.
MAX_BLOCK: Final = 2 * 1024 * 1024
_MAX_ANSWER: Final = 1024 * 1024  # a JSON answer of a single-file command
_MAX_ERROR_BODY: Final = 64 * 1024
_MAX_MESSAGE: Final = 2000
_FILE_PART_NAME: Final = "blob"
#: what kubo (boxo) says when it lacks a block: "block was not found locally (offline):
#: ipld: could not find <cid>"; older versions "blockstore: block not found",
#: "merkledag: not found".
_NOT_FOUND: Final = ("not found", "could not find")


class KuboRpcError(StorageError):
    """The daemon could not be reached, refused the call, or answered outside the protocol.

    ``daemon_message`` is the ``Message`` of kubo's error answer (or its text body, or what
    went wrong on the way); the request body is never part of the message.
    """

    def __init__(
        self,
        endpoint: str,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.daemon_message = message
        self.status = status
        self.code = code
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"kubo /api/v0/{endpoint} ({where}): {message}")


class _Upload:
    """What the upload generator reports back to ``put``."""

    def __init__(self) -> None:
        self.complete = False
        self.error: BaseException | None = None


class KuboRpcStore(Closing):
    """Blobs kept by a running kubo daemon, read back verified block by block."""

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        fetch_from_network: bool = False,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an http(s) URL such as http://127.0.0.1:5001")
        base = api_url.rstrip("/")
        if base.endswith("/api/v0"):
            base = base[: -len("/api/v0")]
        self._base = base
        # shown in messages: scheme, host and port, never credentials in the URL
        self._where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.timeout = timeout
        self.fetch_from_network = fetch_from_network
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # no proxy or netrc from the environment: uploads go to the daemon named here
            session.trust_env = False
        self._session = session

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- BlobStore ------------------------------------------------------------------------

    def put(self, source: Source) -> str:
        """``ipfs add`` the bytes, streamed; the CIDv1, checked against a local hash."""
        builder = DagBuilder()
        upload = _Upload()
        boundary = uuid.uuid4().hex
        body = _multipart(source, builder, boundary, upload)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        try:
            with self._call("add", ADD_PARAMS, data=body, headers=headers) as response:
                answers = _json_lines(self._read(response, "add", _MAX_ANSWER), "add")
        except KuboRpcError:
            if upload.error is not None:  # the source failed, not the daemon
                raise upload.error from None
            raise
        if not upload.complete:
            raise KuboRpcError("add", "the daemon answered before the upload ended", status=200)
        expected = Cid(DAG_PB, builder.finish())
        hashes = [a["Hash"] for a in answers if isinstance(a, dict) and "Hash" in a]
        if not hashes:
            raise KuboRpcError("add", "the answer names no Hash", status=200)
        answered = hashes[-1]
        try:
            got = parse_cid(answered) if isinstance(answered, str) else None
        except InvalidCid:
            got = None
        if got != expected:
            raise CorruptBlob(
                f"kubo add answered {str(answered)[:100]!r}, but the bytes sent hash to "
                f"{expected.v0} ({expected.v1})"
            )
        return expected.v1

    def open(self, cid: str) -> Iterator[bytes]:
        """The blob's bytes, one block per request, every block hashed before use."""
        return read_file(parse_cid(cid), self._block)

    def get(self, cid: str) -> bytes:
        return b"".join(self.open(cid))

    def has(self, cid: str) -> bool:
        """Whether the daemon holds the blob's root block, asked without the network."""
        root = parse_cid(cid)
        params = [("arg", root.v1), ("offline", "true"), ("cid-base", "base32")]
        try:
            with self._call("block/stat", params, missing=root) as response:
                answer = _json_object(self._read(response, "block/stat", _MAX_ANSWER), "block/stat")
        except BlobNotFound:
            return False
        if answer.get("Key") != root.v1:
            raise KuboRpcError(
                "block/stat", f"answered for {str(answer.get('Key'))[:100]!r}", status=200
            )
        return True

    # -- pins -----------------------------------------------------------------------------

    def pin(self, cid: str) -> None:
        """Pin the blob recursively (``put`` already pins what it adds)."""
        root = parse_cid(cid)
        params = [("arg", root.v1), ("recursive", "true"), ("progress", "false")]
        params += [("cid-base", "base32"), *self._offline()]
        with self._call("pin/add", params, missing=root) as response:
            answer = _json_object(self._read(response, "pin/add", _MAX_ANSWER), "pin/add")
        _expect_pinned(answer, root, "pin/add")

    def unpin(self, cid: str) -> bool:
        """Remove the blob's recursive pin; False if it was not pinned (nothing to do)."""
        root = parse_cid(cid)
        params = [("arg", root.v1), ("recursive", "true"), ("cid-base", "base32")]
        try:
            with self._call("pin/rm", params) as response:
                answer = _json_object(self._read(response, "pin/rm", _MAX_ANSWER), "pin/rm")
        except KuboRpcError as err:
            # boxo: "not pinned or pinned indirectly"; older kubo: "not pinned"
            if err.status == 500 and "not pinned" in err.daemon_message.lower():
                return False
            raise
        _expect_pinned(answer, root, "pin/rm")
        return True

    # -- the wire -------------------------------------------------------------------------

    def _offline(self) -> list[tuple[str, str]]:
        return [] if self.fetch_from_network else [("offline", "true")]

    def _block(self, cid: Cid) -> bytes:
        with self._call("block/get", [("arg", cid.v1), *self._offline()], missing=cid) as resp:
            try:
                return self._read(resp, "block/get", MAX_BLOCK)
            except _TooLarge:
                raise CorruptBlob(f"block {cid.v1} is larger than {MAX_BLOCK} bytes") from None

    def _call(
        self,
        command: str,
        params: Params,
        *,
        data: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        missing: Cid | None = None,
    ) -> requests.Response:
        """POST the command; the open 200 response, or the daemon's error raised typed.

        ``missing``: the block the command is about; a 500 saying it is not there is
        ``BlobNotFound`` for it.
        """
        try:
            response = self._session.post(
                f"{self._base}/api/v0/{command}",
                params=list(params),
                data=data,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise KuboRpcError(
                command, f"cannot talk to the daemon at {self._where} ({type(exc).__name__})"
            ) from exc
        if response.status_code == 200:
            return response
        with response:
            error = self._error(command, response)
        if (
            missing is not None
            and error.status == 500
            and any(s in error.daemon_message.lower() for s in _NOT_FOUND)
        ):
            raise BlobNotFound(missing.v1) from error
        raise error

    def _error(self, command: str, response: requests.Response) -> KuboRpcError:
        raw = bytearray()
        try:
            for piece in response.iter_content(8192):
                raw += piece
                if len(raw) >= _MAX_ERROR_BODY:
                    break
        except requests.RequestException:
            pass  # what arrived is still the best account of the error
        kind = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        message: str | None = None
        code: int | None = None
        if kind == "application/json":
            try:
                envelope = json.loads(bytes(raw))
            except ValueError:
                envelope = None
            if isinstance(envelope, dict) and isinstance(envelope.get("Message"), str):
                message = envelope["Message"]
                if isinstance(envelope.get("Code"), int):
                    code = envelope["Code"]
        if message is None:
            message = bytes(raw).decode("utf-8", "replace").strip() or response.reason or ""
        return KuboRpcError(
            command, message[:_MAX_MESSAGE] or "no message", status=response.status_code, code=code
        )

    def _read(self, response: requests.Response, command: str, limit: int) -> bytes:
        out = bytearray()
        try:
            for piece in response.iter_content(64 * 1024):
                out += piece
                if len(out) > limit:
                    raise _TooLarge(command)
        except requests.RequestException as exc:
            raise KuboRpcError(
                command, f"the answer broke off ({type(exc).__name__})", status=200
            ) from exc
        return bytes(out)


class _TooLarge(KuboRpcError):
    def __init__(self, command: str) -> None:
        super().__init__(command, "the answer is longer than any valid one", status=200)


def _multipart(
    source: Source, builder: DagBuilder, boundary: str, upload: _Upload
) -> Iterator[bytes]:
    """The ``multipart/form-data`` body of ``add``: one part named ``file``, fed from the
    source piece by piece (sent chunked, never held whole) and hashed on the way."""
    yield (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_FILE_PART_NAME}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    pending = bytearray()
    try:
        for piece in iter_source(source):
            if not piece:
                continue
            piece = bytes(piece)
            builder.write(piece)
            if not pending and len(piece) >= CHUNK:
                yield piece
                continue
            pending += piece
            if len(pending) >= CHUNK:  # many small pieces go out in larger chunks
                yield bytes(pending)
                pending.clear()
    except Exception as exc:
        upload.error = exc
        raise
    yield bytes(pending) + f"\r\n--{boundary}--\r\n".encode()
    upload.complete = True


def _json_lines(body: bytes, command: str) -> list[Any]:
    """The objects of a newline-delimited JSON answer; an error object among them raised."""
    out: list[Any] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise KuboRpcError(command, "the answer is not JSON", status=200) from None
        if isinstance(value, dict) and value.get("Type") == "error":
            message = value.get("Message")
            raise KuboRpcError(command, str(message)[:_MAX_MESSAGE], status=200)
        out.append(value)
    return out


def _json_object(body: bytes, command: str) -> dict[str, Any]:
    values = _json_lines(body, command)
    if len(values) != 1 or not isinstance(values[0], dict):
        raise KuboRpcError(command, "expected one JSON object", status=200)
    return values[0]


def _expect_pinned(answer: dict[str, Any], root: Cid, command: str) -> None:
    pins = answer.get("Pins")
    if not isinstance(pins, list) or root.v1 not in pins:
        raise KuboRpcError(command, f"the answer does not name {root.v1}", status=200)
