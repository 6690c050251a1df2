#!/usr/bin/env python3
"""Embed the web UI (clients/web/) into kipd as a generated C source.

Run by meson at build time (daemon/app/meson.build); never on the user's side.

    embed.py --list SRC_DIR            print the files that are embedded, one a line
    embed.py SRC_DIR OUT.c             write the C source

Every asset (everything but index.html) is served under /assets/<hash>/<path>,
where <hash> is a SHA-256 over every asset's path and bytes: a change to any
file gives every asset a new URL, so browsers may cache them for a year
(immutable) and relative module imports need no rewriting. index.html is served
at / (and at every unknown path outside /v1/), with its links rewritten from
"/assets/" to "/assets/<hash>/", and is revalidated on every load (no-cache).
Each file also gets a gzip copy (mtime 0, so builds are reproducible) when that
is smaller; kipd sends it when the client accepts gzip.

Vendored files (VENDOR below) come from npm: clients/web/package.json pins
them, package-lock.json holds their integrity hashes, and `npm ci` puts them
into clients/web/node_modules/ before the build (scripts/web-deps, which
scripts/start, scripts/test and tests/package/run call). The build itself has
no network and never runs npm. Of node_modules only the files named in VENDOR
are embedded, each under a path of its own (vendor/...). A missing or stale
node_modules stops the build with the command that fixes it.
"""
import gzip
import hashlib
import json
import os
import sys

SKIP = {"embed.py", "meson.build", "README.md", "package.json", "package-lock.json"}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


NPM_CI = "npm ci --ignore-scripts --no-audit --no-fund"

# (served path, npm package, file in the package). Chart.js's UMD build is
# standalone (it bundles @kurkle/color) and sets window.Chart; both licences
# are served beside it (the MIT licence asks that the notice go with copies).
VENDOR = [
    ("vendor/chart.umd.js", "chart.js", "dist/chart.umd.js"),
    ("vendor/chart.js-LICENSE.txt", "chart.js", "LICENSE.md"),
    ("vendor/kurkle-color-LICENSE.txt", "@kurkle/color", "LICENSE.md"),
]


def vendor_sources(src):
    """{served path: file on disk}; exits with the fix when node_modules is
    missing or holds another version than package-lock.json pins."""
    src = os.path.abspath(src)
    lock_path = os.path.join(src, "package-lock.json")
    with open(lock_path, encoding="utf-8") as f:
        lock = json.load(f)["packages"]
    out = {}
    for served, pkg, rel in VENDOR:
        want = lock.get("node_modules/" + pkg, {}).get("version")
        if want is None:
            fail(f"{pkg} is not in {lock_path}")
        meta = os.path.join(src, "node_modules", pkg, "package.json")
        have = None
        if os.path.exists(meta):
            with open(meta, encoding="utf-8") as f:
                have = json.load(f).get("version")
        path = os.path.join(src, "node_modules", pkg, rel)
        if have != want or not os.path.isfile(path):
            what = "missing" if have is None else f"version {have}, but package-lock.json pins {want}"
            fail(f"{os.path.join(src, 'node_modules', pkg)} is {what}.\n"
                 f"  The web UI's npm packages are installed before the build (the build has no network):\n"
                 f"    (cd {src} && {NPM_CI})\n"
                 f"  or scripts/web-deps; scripts/start and scripts/test do it for you.")
        out[served] = path
    return out


def fail(msg):
    print("embed.py: " + msg, file=sys.stderr)
    sys.exit(1)


def vendor_bytes(served, path):
    with open(path, "rb") as f:
        raw = f.read()
    if served.endswith(".js"):
        # The source map is not shipped, so its comment would name a file
        # that is not there; the banner with the licence stays.
        lines = raw.rstrip(b"\n").split(b"\n")
        if lines and lines[-1].startswith(b"//# sourceMappingURL="):
            raw = b"\n".join(lines[:-1]) + b"\n"
    return raw


def list_files(src):
    out = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules")
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(root, f), src).replace(os.sep, "/")
            if rel in SKIP or f.startswith("."):
                continue
            if os.path.splitext(f)[1] not in TYPES:
                continue
            out.append(rel)
    return out


def c_bytes(name, data):
    lines = []
    for i in range(0, len(data), 16):
        lines.append("  " + ",".join(str(b) for b in data[i:i + 16]) + ",")
    body = "\n".join(lines) if data else "  0"
    return f"static const unsigned char {name}[] = {{\n{body}\n}};\n"


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv):
    if len(argv) == 3 and argv[1] == "--list":
        vendored = vendor_sources(argv[2])
        for rel in list_files(argv[2]):
            print(os.path.join(argv[2], rel))
        for path in vendored.values():
            print(path)
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = argv[1], argv[2]
    files = list_files(src)
    if "index.html" not in files:
        print("embed.py: no index.html in " + src, file=sys.stderr)
        return 1
    data = {}
    for rel in files:
        with open(os.path.join(src, rel), "rb") as f:
            data[rel] = f.read()
    for served, path in vendor_sources(src).items():
        if served in data:
            fail(f"{served} is both a file of {src} and a vendored one")
        files.append(served)
        data[served] = vendor_bytes(served, path)
    tree = hashlib.sha256()
    for rel in files:
        if rel == "index.html":
            continue
        tree.update(rel.encode() + b"\0" + hashlib.sha256(data[rel]).digest())
    prefix = "/assets/" + tree.hexdigest()[:16] + "/"
    data["index.html"] = data["index.html"].replace(b'"/assets/', ('"' + prefix).encode())

    parts = ['/* Generated by clients/web/embed.py at build time. Do not edit. */\n',
             '#include "app/web_assets.h"\n\n']
    entries = []
    for i, rel in enumerate(files):
        raw = data[rel]
        gz = gzip.compress(raw, compresslevel=9, mtime=0)
        has_gz = len(gz) + 64 < len(raw)
        parts.append(c_bytes(f"web__a{i}", raw))
        if has_gz:
            parts.append(c_bytes(f"web__a{i}gz", gz))
        etag = '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'
        etag_gz = '"' + hashlib.sha256(raw).hexdigest()[:20] + '-gz"'
        path = "/" if rel == "index.html" else prefix + rel
        ctype = TYPES[os.path.splitext(rel)[1]]
        entries.append("  {%s, %s, %s, %s, web__a%d, %d, %s, %d, %s}," % (
            c_str(path), c_str(ctype), c_str(etag), c_str(etag_gz), i, len(raw),
            f"web__a{i}gz" if has_gz else "NULL", len(gz) if has_gz else 0,
            "false" if rel == "index.html" else "true"))
    parts.append("\nconst web_asset_t web_assets[] = {\n" + "\n".join(entries) + "\n};\n")
    parts.append(f"const size_t web_assets_count = {len(files)};\n")
    parts.append(f"const char web_assets_prefix[] = {c_str(prefix)};\n")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(parts))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
