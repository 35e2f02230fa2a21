"""Prints criterion's results for the domain micro-benchmarks as a table with targets.

Usage: python benches/domain_table.py TARGET_DIR [--since FILE]
       (TARGET_DIR: cargo's target directory; with --since, only results criterion wrote
       after FILE was last modified, so results of benchmarks that no longer exist, or of
       other runs in a shared target directory, are left out)
"""

import argparse
import json
import os
import pathlib
import sys

TARGETS = {"parse + validate + route (default policy)": 5_000.0}  # ns (issue 17)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target_dir")
    parser.add_argument("--since", help="ignore results older than this file")
    args = parser.parse_args()
    root = pathlib.Path(args.target_dir) / "criterion"
    since = os.stat(args.since).st_mtime if args.since else None
    rows = []
    for bench in sorted(root.glob("*/new/benchmark.json")):
        if since is not None and bench.stat().st_mtime < since:
            continue
        name = json.loads(bench.read_text())["full_id"]
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        rows.append((name, estimates["mean"]["point_estimate"]))
    if not rows:
        sys.exit("no criterion results found under " + str(root))
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"Domain micro-benchmarks (criterion, mean per iteration; bench profile = release; {load} after)")
    print(f"{'benchmark':<45} {'mean':>12}  target (issue)")
    for name, ns in rows:
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target / 1000:.0f} µs per event: {'met' if ns <= target else 'NOT met'}"
        print(f"{name:<45} {ns / 1000:>9.2f} µs  {verdict}")
    missing = [name for name in TARGETS if name not in {n for n, _ in rows}]
    for name in missing:
        print(f"{name:<45} {'-':>12}  missing: no result from this run")
    if missing:
        sys.exit(1)


if __name__ == "__main__":
    main()
