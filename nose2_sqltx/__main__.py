"""``python -m nose2_sqltx stop-server``: stop throwaway servers kept by ``keep-server``."""

from __future__ import annotations

import sys

from .postmaster import stop_kept_servers

USAGE = "usage: python -m nose2_sqltx stop-server   (stops the servers that keep-server left running)"


def main(argv: list[str]) -> int:
    if argv != ["stop-server"]:
        print(USAGE, file=sys.stderr)
        return 2
    stopped = stop_kept_servers()
    for line in stopped:
        print(f"stopped {line}")
    if not stopped:
        print("no kept server was running")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
