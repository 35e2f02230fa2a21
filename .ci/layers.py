#!/usr/bin/env python3
"""Checks the architecture rules of docs/architecture.md on the source (run by `make lint`):

1. No import cycle between the top-level modules of the workers crate (a module's file
   or folder): the graph of `crate::X` references must be acyclic.
2. Layers: a module imports only modules of its own layer or below
   (commands → workers → settle/report → aws); `aws` imports nothing of the crate but
   itself.
3. Only `workers/src/aws/` names AWS SDK crates outside test code (`#[cfg(test)]`
   modules), and the domain crate (`shared/`) names none at all.

Prints what it checked; exits 1 with the offending references otherwise.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "workers" / "src"
LAYERS = {
    # commands
    "approvals": 4, "dlq": 4, "emit": 4, "policy_cmd": 4, "runbooks_cmd": 4, "provision": 4, "run": 4, "history": 4, "undo_cmd": 4, "ledger_report": 4,
    "lambda": 4, "cli": 4, "logging": 4,
    # workers
    "router": 3, "executor": 3, "handoff": 3, "worker": 3,
    # settling, the report and terminal output
    "settle": 2, "notify": 2, "report": 2, "output": 2, "error": 2,
    # the AWS edge
    "aws": 1,
}
SDK = re.compile(r"\b(aws_sdk_\w+|aws_config|aws_smithy_\w+|aws_credential_types)::")
REF = re.compile(r"\bcrate::(\w+)")


def non_test(text: str) -> str:
    """The file's code: without its `#[cfg(test)]` module (by convention the last item)
    and without comments (doc links are not imports)."""
    i = text.find("#[cfg(test)]")
    code = text if i < 0 else text[:i]
    return "\n".join(l for l in code.splitlines() if not l.lstrip().startswith("//"))


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def main() -> int:
    problems = []
    edges = {}
    # Test-only files (a `#[cfg(test)] mod tests;` or test helpers) may name the SDK.
    files = sorted(
        p for p in SRC.rglob("*.rs")
        if p.name not in ("lib.rs", "main.rs") and p.name != "tests.rs" and not p.name.startswith("test_")
    )
    for f in files:
        text = non_test(f.read_text())
        m = module_of(f)
        for target in set(REF.findall(text)):
            if target == m:
                continue
            edges.setdefault(m, set()).add(target)
            if target in LAYERS and m in LAYERS and LAYERS[target] > LAYERS[m]:
                problems.append(f"{f.relative_to(ROOT)}: layer {m} ({LAYERS[m]}) imports {target} ({LAYERS[target]})")
        if m != "aws" and SDK.search(text):
            problems.append(f"{f.relative_to(ROOT)}: names an AWS SDK crate outside workers/src/aws/")
    for f in sorted((ROOT / "shared").rglob("*.rs")):
        if SDK.search(f.read_text()):
            problems.append(f"{f.relative_to(ROOT)}: the domain crate names an AWS SDK crate")
    # Cycle check (depth-first search over module edges).
    state = {}

    def visit(n, stack):
        state[n] = 1
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                problems.append("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            elif state.get(t) is None:
                visit(t, stack + [t])
        state[n] = 2

    for n in sorted(edges):
        if state.get(n) is None:
            visit(n, [n])
    modules = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    print(f"layers: {len(files)} files, {len(modules)} modules, {sum(len(v) for v in edges.values())} module imports checked")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
