"""Run logs of millions of lines: indexing, random access to a window of lines, and `tail`.

    python bench/logfile.py [--lines 2000000] [--repeat 7] [--windows 300]

Writes a log of --lines short lines ("0", "1", ... one a line) into a temporary folder, then:

1. indexes it from scratch with LogIndex.refresh(), --repeat times (the median is quoted; the test
   suite checks the mechanism instead: one pass over the file);
2. reads --windows windows of 40 lines at random starts (and at both ends) through one index: the
   median, the 99th percentile and the slowest of one window, over --repeat rounds (medians quoted);
3. refresh() of the unchanged file (what each poll of the log view costs when nothing was written);
4. tail(path, 3) of the whole file.

Targets from the log view's design: indexing 2M lines well under a second, a window in well under
5 ms (the view draws one screen of lines per frame).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, median_of, timer  # noqa: E402


def write_log(path: Path, lines: int) -> None:
    with open(path, "wb") as f:
        for block in range(0, lines, 100_000):
            f.write("".join(f"{i}\n" for i in range(block, min(lines, block + 100_000))).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--windows", type=int, default=300)
    args = parser.parse_args()

    from mltui.core.runs.logfile import LogIndex, tail

    folder = Path(tempfile.mkdtemp(prefix="mltui-bench-log-"))
    try:
        path = folder / "output.log"
        clock = timer()
        write_log(path, args.lines)
        n = args.lines
        print(f"wrote {n:,} lines ({path.stat().st_size / 1e6:.1f} MB) in {clock():.1f}s")

        def index_once() -> float:
            index = LogIndex(path)
            clock = timer()
            index.refresh()
            took = clock()
            assert index.line_count == n
            return took

        index_once()  # the page cache is warm for every measured pass
        med, figs = median_of(index_once, args.repeat)
        print(f"index from scratch              : median {med * 1000:8.1f} ms ({fmt(figs, ' ms', 1000, 1)})")

        index = LogIndex(path)
        index.refresh()
        rng = random.Random(3)
        starts = [0, n - 1, n - 40, *(rng.randrange(n) for _ in range(args.windows))]

        def windows() -> tuple[float, float, float]:
            times = []
            for start in starts:
                clock = timer()
                got = index.lines(start, 40)
                times.append(clock())
                assert got[0] == str(start)
            times.sort()
            return statistics.median(times), times[int(len(times) * 0.99)], times[-1]

        rounds = [windows() for _ in range(args.repeat)]
        for label, k in (("median", 0), ("p99", 1), ("slowest", 2)):
            figures = [r[k] for r in rounds]
            print(f"one window of 40 lines, {label:7}: median {statistics.median(figures) * 1e6:8.1f} us "
                  f"({fmt(figures, ' us', 1e6, 1)})")

        def unchanged() -> float:
            clock = timer()
            assert index.refresh() is False
            return clock()

        med, figs = median_of(unchanged, args.repeat)
        print(f"refresh of the unchanged file   : median {med * 1e6:8.1f} us ({fmt(figs, ' us', 1e6, 1)})")

        def last_lines() -> float:
            clock = timer()
            assert tail(path, 3) == [str(n - 3), str(n - 2), str(n - 1)]
            return clock()

        med, figs = median_of(last_lines, args.repeat)
        print(f"tail(path, 3)                   : median {med * 1e6:8.1f} us ({fmt(figs, ' us', 1e6, 1)})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
