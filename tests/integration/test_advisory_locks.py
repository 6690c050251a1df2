"""kipd's advisory lock keys, read from the source: each key serves one
purpose. Two purposes sharing a key wait on each other for no reason (the
statistics refresh once took the audit sealer's key, so a long daily pass
left the audit log unsealed while it ran) or, worse, a try-lock skips work
it should do. The table of keys is in docs/architecture.md, and must list
exactly these."""

import re

import kiptest

ROOT = kiptest.ROOT
KEY = re.compile(r"(?<!\d)73058724\d\d(?!\d)")


def _uses():
    """{key: {file}} for every advisory lock key in daemon/ and schema/functions/."""
    uses = {}
    files = [*ROOT.joinpath("daemon").rglob("*.[ch]"), *ROOT.joinpath("schema", "functions").glob("*.sql")]
    for f in files:
        for line in f.read_text().splitlines():
            if line.lstrip().startswith("--"):
                continue
            for key in KEY.findall(line):
                if "hashtextextended" in line:      # a hash seed, not a lock (06_idempotency.sql)
                    continue
                uses.setdefault(key, set()).add(str(f.relative_to(ROOT)))
    return uses


def test_each_advisory_lock_key_has_one_owner():
    uses = _uses()
    assert len(uses) >= 7, uses
    shared = {k: sorted(v) for k, v in uses.items() if len(v) > 1}
    assert shared == {}, f"advisory lock keys used in more than one file: {shared}"


def test_the_keys_are_documented():
    doc = ROOT.joinpath("docs", "architecture.md").read_text()
    table = doc[doc.index("### Advisory locks"):]
    table = table[:table.index("\n#", 1)] if "\n#" in table[1:] else table
    documented = set(KEY.findall(table))
    assert documented == set(_uses()), (sorted(documented), sorted(_uses()))
