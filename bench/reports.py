"""What the delivery-report check costs per message, beside parse_mail (which includes it).

    .venv/bin/python bench/reports.py [--rounds 5]

Reads the real corpus of tests/support/bouncecorpus.py (fetched and hash-checked on first use):
human replies and delivery reports, each at its worst (allowed domain, [INC-1] kept).
Prints the median of `--rounds` runs, in microseconds per message, and the ratio.
"""

from __future__ import annotations

import argparse
import email
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailbot.parsing import Language, parse_mail
from mailbot.parsing.reports import find_report
from tests.support import bouncecorpus


def per_message(function, items) -> float:
    start = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - start) / len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lang = Language()
    print(f"{'messages':<22}{'n':>5}{'report check us':>17}{'parse_mail us':>15}{'share':>8}")
    for label, paths in (("human replies", bouncecorpus.human_replies()),
                         ("delivery reports", bouncecorpus.delivery_reports())):
        raws = [bouncecorpus.worst_case(p.read_bytes(), p.stem) for p in paths]
        trees = [email.message_from_bytes(raw) for raw in raws]
        check = statistics.median(per_message(find_report, trees) for _ in range(args.rounds))
        parse = statistics.median(per_message(lambda r: parse_mail(r, lang), raws)
                                  for _ in range(args.rounds))
        print(f"{label:<22}{len(raws):>5}{check * 1e6:>17.0f}{parse * 1e6:>15.0f}"
              f"{check / parse:>8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
