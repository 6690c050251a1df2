"""Check HTTP responses against api/openapi.yaml.

The contract file is loaded lazily, on the first check, because it is
written alongside the daemon. Supported: OpenAPI 3.0 and 3.1, `$ref` inside
the one file (into components/responses, components/schemas, ...), path
templates such as /v1/plans/{id}/participants/{pid}, response keys "404",
"4XX" and "default", several media types per response.

OpenAPI 3.0 schemas are turned into JSON Schema 2020-12 first (`nullable`,
boolean `exclusiveMinimum`/`exclusiveMaximum`). Validation uses
jsonschema.Draft202012Validator with format checking; "date-time" is checked
here as RFC 3339 with an offset because Debian's jsonschema has no checker
for it.
"""

import copy
import datetime
import json
import re
import threading
import urllib.parse
from pathlib import Path

import jsonschema
import yaml

JSON_SCHEMA_2020 = "https://json-schema.org/draft/2020-12/schema"

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _check_date_time(value):
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    text = value.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat in 3.11 accepts fractions of any length.
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def format_checker():
    checker = jsonschema.FormatChecker()
    if "date-time" not in checker.checkers:
        checker.checks("date-time")(_check_date_time)
    return checker


class ContractError(AssertionError):
    """A response does not match the contract."""


def _json_media(media_type):
    return media_type == "application/json" or media_type.endswith("+json")


def _convert_openapi30(node):
    """OpenAPI 3.0 schema dialect -> JSON Schema 2020-12, recursively."""
    if isinstance(node, list):
        return [_convert_openapi30(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert_openapi30(v) for k, v in node.items()}
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(key), bool):
            if out[key] and bound in out:
                out[key] = out.pop(bound)
            else:
                del out[key]
    if out.get("nullable") is True:
        del out["nullable"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = list(out["enum"]) + [None]
        return {"anyOf": [out, {"type": "null"}]}
    if out.get("nullable") is False:
        del out["nullable"]
    return out


def _template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = ""
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            rx += r"[^/]+"
        else:
            rx += re.escape(part)
    return re.compile("^" + rx + "$")


class OpenApi:
    """The contract. Thread-safe lazy loading; validators are cached."""

    def __init__(self, path=None, spec=None):
        self.path = Path(path) if path else None
        self._spec_in = spec
        self._lock = threading.Lock()
        self._loaded = False
        self._validators = {}

    # ---- loading ---------------------------------------------------------
    def load(self):
        with self._lock:
            if self._loaded:
                return self
            if self._spec_in is not None:
                spec = copy.deepcopy(self._spec_in)
            else:
                if not self.path.exists():
                    raise ContractError(
                        f"{self.path} does not exist: responses cannot be checked against the contract")
                with open(self.path, encoding="utf-8") as f:
                    spec = yaml.safe_load(f)
            if not isinstance(spec, dict) or "paths" not in spec:
                raise ContractError(f"{self.path}: not an OpenAPI document (no 'paths')")
            version = str(spec.get("openapi", ""))
            if not version.startswith("3."):
                raise ContractError(f"{self.path}: unsupported openapi version {version!r}")
            if version.startswith("3.0"):
                spec = _convert_openapi30(spec)
            self.version = version
            self.spec = spec
            self._compile_paths()
            self._loaded = True
            return self

    def _compile_paths(self):
        bases = {""}
        for server in self.spec.get("servers") or []:
            url = str(server.get("url", ""))
            base = urllib.parse.urlparse(url).path.rstrip("/")
            bases.add(base)
        self.templates = []
        for template, item in (self.spec.get("paths") or {}).items():
            item = self.resolve(item)
            n_params = template.count("{")
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            for base in bases:
                self.templates.append((base + template, template, item, n_params, literal))
        # Most specific first: fewer parameters, then more literal text.
        self.templates.sort(key=lambda t: (t[3], -t[4]))
        self._regexes = [(_template_regex(full), template, item)
                         for full, template, item, _, _ in self.templates]

    def resolve(self, node, seen=None):
        """Follow $ref (same file only) until a non-ref node."""
        seen = seen or set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ContractError(f"$ref cycle at {ref}")
            seen.add(ref)
            node = self.pointer(ref)
        return node

    def pointer(self, ref):
        if not ref.startswith("#/"):
            raise ContractError(f"only same-file $ref is supported, got {ref!r}")
        node = self.spec
        for token in ref[2:].split("/"):
            token = urllib.parse.unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(token)]
            elif isinstance(node, dict) and token in node:
                node = node[token]
            else:
                raise ContractError(f"unresolvable $ref {ref!r}")
        return node

    # ---- lookup ----------------------------------------------------------
    def match_path(self, path):
        """(template, path item) for a concrete path, or (None, None)."""
        self.load()
        path = urllib.parse.unquote(path)
        for rx, template, item in self._regexes:
            if rx.match(path):
                return template, item
        return None, None

    def problem_schema(self):
        schemas = (self.spec.get("components") or {}).get("schemas") or {}
        for name in schemas:
            if name.lower() in ("problem", "problemdetails", "problem_details", "error"):
                return {"$ref": "#/components/schemas/" + name}
        for name in schemas:
            if "problem" in name.lower():
                return {"$ref": "#/components/schemas/" + name}
        return None

    def documented_response(self, method, path, status):
        """Return (template, response object or None, why-not, kind).

        kind is None when found, else "path" (no template matches),
        "method" (the template has no such operation) or "status"."""
        template, item = self.match_path(path)
        if template is None:
            return None, None, f"path {path} matches no path template in the contract", "path"
        op = item.get(method.lower())
        if op is None:
            return template, None, f"{method} {template} is not in the contract", "method"
        responses = {str(k): v for k, v in (op.get("responses") or {}).items()}
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                return template, self.resolve(responses[key]), None, None
        return template, None, (f"status {status} is not documented for {method} {template} "
                                f"(documented: {', '.join(sorted(responses))})"), "status"

    # ---- validation ------------------------------------------------------
    def _validator(self, key, schema):
        v = self._validators.get(key)
        if v is None:
            root = {k: val for k, val in self.spec.items() if not k.startswith("$")}
            root["$schema"] = JSON_SCHEMA_2020
            root["allOf"] = [schema]
            v = jsonschema.Draft202012Validator(root, format_checker=format_checker())
            self._validators[key] = v
        return v

    def _validate_json(self, key, schema, data, what):
        v = self._validator(key, schema)
        errors = sorted(v.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
        if errors:
            lines = []
            for e in errors[:6]:
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                lines.append(f"  at {where}: {e.message[:300]}")
            body = json.dumps(data, ensure_ascii=False)
            raise ContractError(f"{what}: body does not match the contract schema:\n"
                                + "\n".join(lines) + f"\n  body: {body[:1500]}")

    def check(self, method, path, status, content_type, body):
        """Raise ContractError unless the response is what the contract documents.

        method: "GET"...; path: the concrete request path (no query);
        status: int; content_type: the Content-Type header or None;
        body: bytes.
        """
        self.load()
        what = f"{method} {path} -> {status}"
        media = (content_type or "").split(";")[0].strip().lower()
        is_json = _json_media(media)
        data = None
        if is_json and body:
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise ContractError(f"{what}: Content-Type {media} but the body is not JSON: {e}: "
                                    f"{body[:300]!r}")

        template, response, reason, kind = self.documented_response(method, path, status)
        if response is None:
            if kind == "status":
                raise ContractError(f"{what}: {reason}")
            # Paths and methods the contract does not have: only a problem
            # answer (404, 405, ...) is acceptable, and it must have the
            # contract's problem shape.
            if media != "application/problem+json":
                raise ContractError(f"{what}: {reason}, and the answer is not a problem "
                                    f"(Content-Type {content_type!r})")
            if status < 400:
                raise ContractError(f"{what}: {reason}, yet it answered {status}")
            schema = self.problem_schema()
            if schema is not None and data is not None:
                self._validate_json(("problem",), schema, data, what)
            return

        content = response.get("content") or {}
        if not body:
            if content and method != "HEAD" and status not in (204, 304):
                raise ContractError(f"{what}: empty body, the contract documents "
                                    f"{', '.join(content)}")
            return
        if not content:
            raise ContractError(f"{what}: the contract documents no body, got "
                                f"{content_type!r} {body[:200]!r}")
        media_obj = None
        for key in content:
            if key.lower() == media:
                media_obj = content[key]
                break
        if media_obj is None:
            for key in content:
                k = key.lower()
                if k == "*/*" or (k.endswith("/*") and media.startswith(k[:-1])):
                    media_obj = content[key]
                    break
        if media_obj is None:
            raise ContractError(f"{what}: Content-Type {content_type!r} not documented "
                                f"(documented: {', '.join(content)})")
        media_obj = self.resolve(media_obj) or {}
        schema = media_obj.get("schema")
        if schema is None or not is_json:
            return
        self._validate_json((template, method.upper(), str(status), media), schema, data, what)
