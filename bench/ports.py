"""Ports for the servers the tests and the benchmarks start, below the kernel's
ephemeral range.

A port the kernel hands out (bind to 0) comes from that range, where other servers'
own random ports (a dev server's internal services) and outgoing connections come
from too: one can take it before the server binds it (seen in CI with two test
processes and the fault harness side by side: a dev server's frontend "address
already in use"). Below the range, each user takes its ports from its own share:
the test processes the 12,000 just below it (``tests/support.py``), the benchmarks
and the fault harness the 2,000 below those (``bench/run.py``).
"""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path

# Where in its share a process starts: spread, so that a rerun does not meet the ports
# its previous run may have left in TIME_WAIT; in turn after that, so that two calls
# never give the same port.
_PORTS = itertools.count(random.randrange(1 << 16))


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (at least 15,024, so that every
    share below it is above the privileged ports)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768  # Linux's default
    return max(low, 15_024)


def free_port_below_ephemeral(below: int, size: int) -> int:
    """A free port of the ``size`` ports that start ``below`` ports under the ephemeral
    range."""
    first = ephemeral_low() - below
    for _ in range(size):
        port = first + next(_PORTS) % size
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # another process's, or still in use: the next one
            return port
    raise RuntimeError(f"no free port in {first}-{first + size - 1}")
