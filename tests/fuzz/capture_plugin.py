"""pytest plugin for tests/fuzz/make-corpus: records every request the
integration tests send through requests (kiptest.Api) as fuzz seeds.

KIPD_FUZZ_CAPTURE=<dir> names the output folder; it gets http/, body/,
query/ and validate/ with one file per distinct input (named by SHA-1).
Credentials are replaced: a seed never holds a live token or session.
"""

import hashlib
import json
import os
import re
import urllib.parse
from pathlib import Path

import requests

OUT = Path(os.environ.get("KIPD_FUZZ_CAPTURE", "fuzz-capture"))
CPR_RE = re.compile(r"^\d{6}-?\d{4}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
UUID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")


def _save(kind, data):
    d = OUT / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def _strings(j):
    if isinstance(j, str):
        yield j
    elif isinstance(j, dict):
        for k, v in j.items():
            yield from _strings(v)
    elif isinstance(j, list):
        for v in j:
            yield from _strings(v)


SECRET_RE = re.compile(r"kipd_(?!fuzz)[A-Za-z0-9_-]{20,}")


def _record(prep):
    # Calendar-feed keys and any other kipd secret in the URL are replaced too.
    url = urllib.parse.urlsplit(SECRET_RE.sub("kipd_fuzzkey0000000000000000000000000000000000", prep.url))
    target = url.path + (f"?{url.query}" if url.query else "")
    body = prep.body or b""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{prep.method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in prep.headers.items():
        kl = k.lower()
        if kl in ("host", "content-length", "connection", "accept-encoding", "user-agent"):
            continue
        if kl == "authorization":
            v = "Bearer kipd_fuzz_0000000000000000000000000000000000000000000"
        elif kl == "cookie":
            v = "kipd_session=fuzz0000000000000000000000000000000000000000"
        elif kl == "x-csrf-token":
            v = "fuzzcsrf0000000000000000000000000000000000"
        lines.append(f"{k}: {v}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    _save("http", ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    if body:
        _save("body", f"{prep.method} {url.path}\n".encode() + body)
        try:
            for s in _strings(json.loads(body)):
                if CPR_RE.match(s) or DATE_RE.match(s) or UUID_RE.match(s) or "@" in s:
                    _save("validate", s.encode())
        except ValueError:
            pass
    if url.query:
        _save("query", f"{prep.method} {target}\n".encode())


_send = requests.Session.send


def _capturing_send(self, request, **kwargs):
    try:
        _record(request)
    except Exception:  # noqa: BLE001 - capturing must never break a test
        pass
    return _send(self, request, **kwargs)


requests.Session.send = _capturing_send
