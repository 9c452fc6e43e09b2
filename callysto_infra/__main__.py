"""Entry point of the `callysto` script. 'callysto --help' is answered from a pre-rendered page
(kept identical to Click's by a test) so that it does not pay for importing Click."""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:] in (["--help"], ["-h"]):
        page = os.path.join(os.path.dirname(__file__), "cli", "help.txt")
        try:
            with open(page, encoding="utf-8") as handle:
                sys.stdout.write(handle.read())
            return
        except FileNotFoundError:
            pass
    from callysto_infra.cli import main as cli

    cli(prog_name="callysto")


if __name__ == "__main__":
    main()
