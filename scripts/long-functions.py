#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 120 lines), longest
first: `scripts/long-functions.py [--limit N] DIR...`. Counts from the `fn`
line to its closing brace; test modules count too. Exit status 1 when any
function is over the limit, so a review (or CI) can hold the line."""
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def functions(path):
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = re.sub(r"//.*", "", lines[j])
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            if started and depth <= 0:
                yield m.group(6), i + 1, j - i + 1
                break
            j += 1
        i += 1


def main():
    args = sys.argv[1:]
    limit = 120
    if args[:1] == ["--limit"]:
        limit, args = int(args[1]), args[2:]
    long = []
    for root in args or ["crates"]:
        for path in sorted(Path(root).rglob("*.rs")):
            for name, line, n in functions(path):
                if n > limit:
                    long.append((n, f"{path}:{line}", name))
    for n, where, name in sorted(long, reverse=True):
        print(f"{n:5} {where} {name}")
    sys.exit(1 if long else 0)


if __name__ == "__main__":
    main()
