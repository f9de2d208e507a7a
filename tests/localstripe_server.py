"""Launch localstripe bound to 127.0.0.1 with its own state file.

localstripe (GPL, test-only) binds every interface and keeps its state in a
fixed /tmp/localstripe.pickle; both are wrong for parallel, loopback-only
tests, so this launcher swaps in a per-run path and a loopback socket.
Usage: python tests/localstripe_server.py PORT STATE_FILE
"""

from __future__ import annotations

import pickle
import sys

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    port, state = int(sys.argv[1]), sys.argv[2]

    def dump(self: resources.Store) -> None:
        with open(state, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump  # type: ignore[method-assign]
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
