"""Files stripectl writes that can hold customer data are owner-only (0600).

Exported deliveries carry Stripe's raw bodies (emails, addresses, client
secrets); drift reports name customers and subscriptions. `open_private`
creates the file 0600 and tightens an existing regular file to 0600 before
a byte is written (a FIFO, /dev/stdout or a terminal keeps its mode).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

PRIVATE = 0o600


def open_private(path: Path | str) -> IO[str]:
    """Open `path` for writing text (truncated), owner-only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
            os.fchmod(fd, PRIVATE)
        return os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path | str, text: str) -> None:
    with open_private(path) as f:
        f.write(text)
