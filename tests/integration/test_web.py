"""The web UI served by kipd (app/web.c): index.html at / and at every
unknown path outside the API, content-hashed assets with a year's immutable
cache, ETag and 304, gzip when accepted, HEAD, the UI's CSP, and no way out
of the embedded table (path traversal). The API keeps no-store. The one
vendored library (Chart.js) is served from the embedded table too."""
import gzip
import json
import re

import kiptest
from kiptest import RawHttp

UI_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
          "frame-ancestors 'none'")


def get(kipd, path, headers=None, method="GET"):
    with RawHttp(kipd.port) as raw:
        return raw.request(method, path, headers=headers)


def asset_paths(index_body):
    return re.findall(r'(?:src|href)="(/assets/[0-9a-f]{16}/[^"]+)"', index_body.decode())


def test_index_at_root_and_unknown_paths(kipd):
    root = get(kipd, "/")
    assert root.status == 200
    assert root.header("content-type") == "text/html; charset=utf-8"
    assert root.header("cache-control") == "no-cache"
    assert root.header("content-security-policy") == UI_CSP
    assert root.header("x-frame-options") == "DENY"
    assert re.fullmatch(r'"[0-9a-f]{20}"', root.header("etag"))
    assert b'<html lang="da">' in root.body
    assert b"<script>" not in root.body and b"style=" not in root.body, "no inline script or style"
    for path in ("/forloeb", "/forloeb/3b0c52c4-8f0e-4b7e-9d59-5a9d7a0b1c2d", "/opgaver", "/x/y/z?a=1"):
        r = get(kipd, path)
        assert r.status == 200, path
        assert r.body == root.body, path
        assert r.header("etag") == root.header("etag")


def test_assets_are_content_hashed_and_immutable(kipd):
    root = get(kipd, "/")
    paths = asset_paths(root.body)
    assert any(p.endswith("/js/app.js") for p in paths)
    assert any(p.endswith("/css/app.css") for p in paths)
    prefix = {p.split("/")[2] for p in paths}
    assert len(prefix) == 1, "one content hash for the whole tree"
    for p in paths:
        r = get(kipd, p)
        assert r.status == 200, p
        assert r.header("cache-control") == "public, max-age=31536000, immutable"
        assert r.header("content-security-policy") == UI_CSP
        assert r.header("vary") == "Accept-Encoding"
    js = get(kipd, next(p for p in paths if p.endswith("/js/app.js")))
    assert js.header("content-type") == "text/javascript; charset=utf-8"
    h = prefix.pop()
    cat = get(kipd, f"/assets/{h}/i18n/da.json")
    assert cat.status == 200 and cat.header("content-type").startswith("application/json")
    assert b'"login.title"' in cat.body
    # An old or unknown hash, or an unknown file, is 404, never index.html.
    for p in (f"/assets/{'0' * 16}/js/app.js", f"/assets/{h}/js/nope.js", "/assets/"):
        r = get(kipd, p)
        assert r.status == 404, p
        assert b"<html" not in r.body


def test_etag_and_304(kipd):
    root = get(kipd, "/")
    etag = root.header("etag")
    r = get(kipd, "/", {"If-None-Match": etag})
    assert r.status == 304
    assert r.body == b""
    assert r.header("etag") == etag
    assert r.header("cache-control") == "no-cache"
    r = get(kipd, "/", {"If-None-Match": '"something-else"'})
    assert r.status == 200
    css = asset_paths(root.body)[1]
    first = get(kipd, css)
    assert get(kipd, css, {"If-None-Match": first.header("etag")}).status == 304


def test_gzip_when_accepted(kipd):
    root = get(kipd, "/")
    js_path = next(p for p in asset_paths(root.body) if p.endswith("/js/app.js"))
    plain = get(kipd, js_path)
    assert plain.header("content-encoding") is None
    z = get(kipd, js_path, {"Accept-Encoding": "gzip, deflate, br"})
    assert z.header("content-encoding") == "gzip"
    assert gzip.decompress(z.body) == plain.body
    assert z.header("etag") != plain.header("etag")
    assert get(kipd, js_path, {"Accept-Encoding": "gzip;q=0, br"}).header("content-encoding") is None
    assert get(kipd, js_path, {"Accept-Encoding": "identity"}).header("content-encoding") is None


def test_head(kipd):
    full = get(kipd, "/")
    with RawHttp(kipd.port) as raw:
        r = raw.request("HEAD", "/")
        assert r.status == 200
        assert r.body == b""
        assert int(r.header("content-length")) == len(full.body)
        assert r.header("etag") == full.header("etag")
        # the connection is still usable: nothing was sent after the head
        again = raw.request("GET", "/healthz")
        assert again.status == 200


def test_path_traversal_never_leaves_the_table(kipd):
    root = get(kipd, "/")
    h = asset_paths(root.body)[0].split("/")[2]
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/../../etc/passwd",
                 f"/assets/{h}/../../../etc/passwd", f"/assets/{h}/%2e%2e/js/app.js",
                 f"/assets/{h}/js/../../../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/schema/../meson.build"):
        r = get(kipd, path)
        assert b"root:" not in r.body, path
        assert b"project(" not in r.body, path
        assert r.status in (200, 404), (path, r.status)
        if r.status == 200:
            assert r.body == root.body, path


def test_api_stays_the_api(kipd, admin):
    me = admin.get("/v1/me")
    assert me.status_code == 200
    assert me.headers["Cache-Control"] == "no-store"
    r = get(kipd, "/v1/nothing-here")
    assert r.status == 404
    assert r.header("content-type").startswith("application/problem+json")
    assert r.header("cache-control") == "no-store"
    assert "script-src" not in r.header("content-security-policy")
    for path in ("/v1", "/healthz/x", "/metrics/x", "/readyz/"):
        r = get(kipd, path)
        assert b"<html" not in r.body, path
    assert get(kipd, "/healthz").header("cache-control") == "no-store"
    # Only GET and HEAD serve the app; other methods stay problems.
    r = get(kipd, "/forloeb", method="DELETE")
    assert r.status == 404
    assert r.header("content-type").startswith("application/problem+json")


def test_the_vendored_chart_library(kipd):
    """Chart.js, pinned in clients/web/package-lock.json, is embedded from node_modules by embed.py: its
    UMD build at vendor/chart.umd.js (the locked version's banner, no source map comment, a gzip copy),
    its licences beside it; nothing else of node_modules, and not the npm files themselves."""
    lock = json.loads((kiptest.ROOT / "clients" / "web" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/chart.js"]["version"]
    h = asset_paths(get(kipd, "/").body)[0].split("/")[2]
    js = get(kipd, f"/assets/{h}/vendor/chart.umd.js")
    assert js.status == 200
    assert js.header("content-type") == "text/javascript; charset=utf-8"
    assert js.header("cache-control") == "public, max-age=31536000, immutable"
    assert js.body.startswith(f"/*!\n * Chart.js v{version}\n".encode())
    assert b"sourceMappingURL" not in js.body
    gz = get(kipd, f"/assets/{h}/vendor/chart.umd.js", {"Accept-Encoding": "gzip"})
    assert gz.header("content-encoding") == "gzip"
    assert gzip.decompress(gz.body) == js.body
    for name, who in (("chart.js-LICENSE.txt", b"Chart.js Contributors"), ("kurkle-color-LICENSE.txt", b"Jukka Kurkela")):
        lic = get(kipd, f"/assets/{h}/vendor/{name}")
        assert lic.status == 200 and lic.header("content-type") == "text/plain; charset=utf-8"
        assert b"The MIT License" in lic.body and who in lic.body
    for path in ("package.json", "package-lock.json", "node_modules/chart.js/dist/chart.umd.js",
                 "node_modules/chart.js/package.json", "vendor/chart.umd.js.map"):
        assert get(kipd, f"/assets/{h}/{path}").status == 404, path
