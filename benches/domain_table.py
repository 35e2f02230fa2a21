"""Prints criterion's results for the domain micro-benchmarks as a table with targets.

Usage: python benches/domain_table.py TARGET_DIR  (cargo's target directory)
"""

import json
import pathlib
import sys

TARGETS = {"parse + validate + route (default policy)": 10_000.0}  # ns


def main() -> None:
    root = pathlib.Path(sys.argv[1]) / "criterion"
    rows = []
    for bench in sorted(root.glob("*/new/benchmark.json")):
        name = json.loads(bench.read_text())["full_id"]
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        rows.append((name, estimates["mean"]["point_estimate"]))
    print("Domain micro-benchmarks (criterion, mean per iteration)")
    print(f"{'benchmark':<45} {'mean':>12}  target")
    for name, ns in rows:
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target / 1000:.0f} µs: {'met' if ns <= target else 'not met'}"
        print(f"{name:<45} {ns / 1000:>9.2f} µs  {verdict}")
    if not rows:
        sys.exit("no criterion results found under " + str(root))


if __name__ == "__main__":
    main()
