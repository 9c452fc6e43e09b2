"""Start-up cost of `callysto --help` against an empty Python start, as a ratio (target: < 3x).

Also shows `callysto env list`, which must import Click and the command tree, for comparison.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 30
CALLYSTO = str(Path(sys.executable).with_name("callysto"))


def median_seconds(argv: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    baseline = median_seconds([sys.executable, "-c", "pass"])
    help_page = median_seconds([CALLYSTO, "--help"])
    command = median_seconds([CALLYSTO, "env", "list", "--json"])
    ratio = help_page / baseline
    print(f"python -c pass        {baseline * 1000:7.1f} ms")
    print(f"callysto --help       {help_page * 1000:7.1f} ms  ratio {ratio:.2f}x (target < 3x)")
    print(f"callysto env list     {command * 1000:7.1f} ms  ratio {command / baseline:.2f}x")
    return 0 if ratio < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
