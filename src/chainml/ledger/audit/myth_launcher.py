"""Run Mythril's command line, counting the solver queries that ended undecided.

Mythril treats a z3 query that times out as unsatisfiable: the path is dropped and a
violation on it goes unreported.  This launcher (run by Mythril's own interpreter, so it
imports nothing of chainml) counts those queries through Mythril's debug log and prints
``CHAINML-SOLVER-UNKNOWN <n>`` last on stderr; a proof with n > 0 is not a proof.
"""

import atexit
import logging
import sys


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.unknown = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Timeout/Error encountered" in record.getMessage():
            self.unknown += 1


def main() -> None:
    counter = _Count()
    logger = logging.getLogger("mythril.support.model")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    logger.propagate = False
    atexit.register(lambda: sys.stderr.write(f"\nCHAINML-SOLVER-UNKNOWN {counter.unknown}\n"))
    from mythril.interfaces.cli import main as myth_main

    sys.argv = ["myth", *sys.argv[1:]]
    myth_main()


if __name__ == "__main__":
    main()
