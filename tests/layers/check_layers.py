#!/usr/bin/env python3
"""The layer rules of daemon/ (docs/architecture.md), checked on the source.

Prints TAP. The rules:
  1. libpq does not leave db/ and app/: no file in api/, nor main.c, names
     libpq (libpq-fe.h, PGresult, PGconn, a PQ...() call, PG_DIAG_...), and
     no header an api/ file includes, directly or through other headers,
     brings in libpq-fe.h (main.c may include db/pg_pool.h to wire the pool).
  2. No include runs up a floor: util (1) < http, db (2) < app (3) < api (4)
     < main.c (5); http/ and db/ do not include each other.
  3. The checker itself still finds a planted violation of each rule.

Usage: check_layers.py [DAEMON_DIR]
"""
import os
import re
import sys
import tempfile

FLOORS = {"util": 1, "http": 2, "db": 2, "app": 3, "api": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
LIBPQ_NAMES = re.compile(r'\bPGresult\b|\bPGconn\b|\bPQ[a-zA-Z]+\s*\(|\bPG_DIAG_[A-Z_]+\b|libpq-fe\.h')
# Where libpq may not be named. main.c wires the pool, so it may include
# db/pg_pool.h, but it decodes no result itself.
LIBPQ_FREE = ("api", "main")
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def sources(daemon):
    for folder, _, files in os.walk(daemon):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                path = os.path.join(folder, f)
                yield os.path.relpath(path, daemon), path


def floor_of(rel):
    top = rel.split(os.sep)[0]
    if top == "main.c":
        return "main", 5
    return top, FLOORS.get(top)


def includes(path):
    with open(path, encoding="utf-8") as f:
        text = COMMENT.sub("", f.read())
    return [(kind, name) for kind, name in INCLUDE.findall(text)]


def reaches_libpq(daemon, rel, seen=None):
    """The chain of project headers from rel to libpq-fe.h, or None."""
    seen = seen if seen is not None else set()
    for kind, name in includes(os.path.join(daemon, rel)):
        if name == "libpq-fe.h":
            return [rel, name]
        if kind == '"' and name not in seen and os.path.exists(os.path.join(daemon, name)):
            seen.add(name)
            chain = reaches_libpq(daemon, name, seen)
            if chain:
                return [rel] + chain
    return None


def check_libpq(daemon):
    problems = []
    for rel, path in sources(daemon):
        folder, _ = floor_of(rel)
        if folder not in LIBPQ_FREE:
            continue
        with open(path, encoding="utf-8") as f:
            text = COMMENT.sub("", f.read())
        for m in LIBPQ_NAMES.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: names libpq ({m.group(0).strip()})")
        chain = reaches_libpq(daemon, rel) if folder == "api" else None
        if chain:
            problems.append(f"{rel}: includes libpq-fe.h through " + " -> ".join(chain))
    return problems


def check_floors(daemon):
    problems = []
    for rel, path in sources(daemon):
        folder, floor = floor_of(rel)
        if floor is None:
            continue
        for kind, name in includes(path):
            if kind != '"':
                continue
            target = name.split("/")[0]
            tfloor = FLOORS.get(target)
            if tfloor is None:
                continue
            if tfloor > floor:
                problems.append(f"{rel}: includes {name}, a floor up ({folder} {floor} -> {target} {tfloor})")
            elif tfloor == floor and target != folder:
                problems.append(f"{rel}: includes {name}, beside its own floor ({folder} -> {target})")
    return problems


def self_test():
    """A tree with one violation of each rule: every one must be found."""
    planted = {
        "util/a.h": '#include "app/b.h"\n',
        "db/c.c": '#include "http/d.h"\n#include "api/e.h"\n',
        "app/b.h": '#include <libpq-fe.h>\n',
        "app/ok.c": '#include "app/b.h"\n',
        "api/e.h": "",
        "api/f.c": '#include "app/b.h"\n',
        "api/g.c": "static void cb(void *d, int err, PGresult *res) { PQgetvalue(res, 0, 0); }\n",
        "http/d.h": "",
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in planted.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        found = "\n".join(check_libpq(root) + check_floors(root))
    expected = ["util/a.h: includes app/b.h", "db/c.c: includes http/d.h", "db/c.c: includes api/e.h",
                "api/f.c: includes libpq-fe.h through", "api/g.c:1: names libpq (PGresult)",
                "api/g.c:1: names libpq (PQgetvalue("]
    missing = [e for e in expected if e not in found]
    wrong = [e for e in ["app/ok.c"] if e in found]
    return [f"missed: {m}" for m in missing] + [f"wrongly flagged: {w}" for w in wrong]


def main():
    daemon = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "daemon")
    checks = [
        ("no file in api/ (nor main.c) touches libpq", lambda: check_libpq(daemon)),
        ("no include runs up a floor", lambda: check_floors(daemon)),
        ("the checker finds planted violations", self_test),
    ]
    print(f"1..{len(checks)}")
    failed = 0
    for i, (name, fn) in enumerate(checks, 1):
        problems = fn()
        print(("ok" if not problems else "not ok") + f" {i} - {name}")
        for p in problems:
            print(f"# {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
