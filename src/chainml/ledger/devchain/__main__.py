"""``python -m chainml.ledger.devchain serve --datadir D [--host H] [--port P] [--public]
[--finality-depth K]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from chainml.ledger.devchain.process import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chainml.ledger.devchain")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the chain in the foreground until SIGTERM")
    s.add_argument("--datadir", type=Path, required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8545)
    s.add_argument("--public", action="store_true", help="allow a non-loopback address")
    s.add_argument(
        "--finality-depth",
        type=int,
        default=0,
        help="blocks between the head and the finalized block (0: every block is final)",
    )
    args = parser.parse_args()
    depth = args.finality_depth
    serve(args.datadir, args.host, args.port, public=args.public, finality_depth=depth)


if __name__ == "__main__":
    main()
