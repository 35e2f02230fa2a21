"""Puts the output of the last `make bench` into README.md's Performance section.

Usage: python3 benches/readme.py bench-results/bench.txt README.md

The section is everything between the markers `<!-- bench:start -->` and
`<!-- bench:end -->`; the markers stay, the text between them is replaced by the bench
output in a code block. The README must already have both markers once each.
"""

from __future__ import annotations

import sys
from pathlib import Path

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    output, readme = Path(argv[1]), Path(argv[2])
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        print(f"{readme}: needs the markers {START} and {END}, once each, in that order",
              file=sys.stderr)
        return 1
    before, rest = text.split(START)
    _, after = rest.split(END)
    tables = output.read_text().rstrip("\n")
    readme.write_text(f"{before}{START}\n```\n{tables}\n```\n{END}{after}")
    print(f"{readme}: Performance section replaced by {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
