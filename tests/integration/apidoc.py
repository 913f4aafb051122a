"""Every answer the integration tests get is checked against docs/openapi.yaml: the
operation found by method and route template, the response by status code (a status the
document does not list fails), the media type, and a JSON body validated against the
response's schema with its $refs resolved in the whole document. A mismatch fails the test
with a message naming the method, the path, the status and what is wrong."""
import json
import os
import re
import threading
import urllib.parse

import yaml
from jsonschema import Draft202012Validator

DOC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                        "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The ports of the gateways' API listeners now running (harness.Gateway keeps it): the
# answers the harness's clients get there are checked.
LISTENERS = set()

_lock = threading.Lock()
_state = {}


class Mismatch(AssertionError):
    """An answer that docs/openapi.yaml does not describe."""


def _load():
    with _lock:
        if not _state:
            with open(DOC_PATH, encoding="utf-8") as f:
                doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            ops = []
            for path, item in doc["paths"].items():
                pattern = re.compile("^" + re.sub(r"\\\{[^/]*?\\\}", "[^/]+",
                                                  re.escape(path)) + "$")
                for method, op in item.items():
                    if method in METHODS:
                        ops.append((method.upper(), pattern, path.count("{"), path, op))
            _state.update(doc=doc, ops=ops, validators={})
    return _state


def _resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(doc, node["$ref"])
    return node


def _pointer(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _escape(part):
    return part.replace("~", "~0").replace("/", "~1")


def _validator(state, pointer):
    """A validator of the schema at pointer, whose $refs ("#/components/...") resolve in
    the document itself: the document is the root schema, its keywords other than $ref
    unknown to JSON Schema and so ignored."""
    v = state["validators"].get(pointer)
    if v is None:
        root = dict(state["doc"])
        root["$ref"] = pointer
        v = state["validators"][pointer] = Draft202012Validator(root)
    return v


def operation(method, path):
    """(template, operation) of the route that takes method and path, or (None, None). A
    template with fewer variables wins, as the route table tries fixed paths first."""
    state = _load()
    # The router sees the path percent-decoded, as libmicrohttpd hands it over.
    path = urllib.parse.unquote(path.split("?", 1)[0])
    found = [(n, template, op) for m, pattern, n, template, op in state["ops"]
             if m == method and pattern.match(path)]
    if not found:
        return None, None
    _, template, op = min(found, key=lambda f: f[0])
    return template, op


def _media(headers):
    ctype = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return ctype or None


def _fail(method, path, status, what):
    raise Mismatch(f"openapi: {method} {path.split('?', 1)[0]} -> {status}: {what}")


def _validate(state, method, path, status, pointer, body):
    try:
        value = json.loads(body)
    except ValueError as e:
        _fail(method, path, status, f"the body is not JSON ({e}): {body[:200]!r}")
    errors = sorted(_validator(state, pointer).iter_errors(value), key=lambda e: e.path)
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(the body)"
        _fail(method, path, status, f"at {where}: {e.message} (schema "
                                    f"{'/'.join(str(p) for p in e.absolute_schema_path)})")


def check(method, path, status, headers, body):
    """Fails (Mismatch) unless the answer status/headers/body to method path is one
    docs/openapi.yaml describes. headers: lower-case names; body: bytes."""
    if method == "HEAD":
        return
    state = _load()
    media = _media(headers)
    template, op = operation(method, path)
    if op is None:
        # No route takes it: the router answers 404 or 405 in the management API's shape.
        if media == "application/json":
            _validate(state, method, path, status, "#/components/schemas/Error", body)
        return
    response = op["responses"].get(str(status)) or op["responses"].get("default")
    if response is None:
        _fail(method, path, status, f"status {status} is not documented for "
                                    f"{method} {template}")
    ref = response.get("$ref") if isinstance(response, dict) else None
    response = _resolve(state["doc"], response)
    content = response.get("content") or {}
    if not content:
        if body:
            _fail(method, path, status, f"a body where {method} {template} documents none: "
                                        f"{body[:200]!r}")
        return
    if media not in content:
        _fail(method, path, status, f"Content-Type {media} is not one of "
                                    f"{sorted(content)} documented for {method} {template}")
    if media != "application/json" or "schema" not in content[media]:
        return
    base = ref or "#/paths/%s/%s/responses/%s" % (_escape(template), method.lower(),
                                                   "default" if str(status) not in
                                                   op["responses"] else str(status))
    pointer = base + "/content/application~1json/schema"
    _validate(state, method, path, status, pointer, body)


# Read once, when a suite starts, so that no timed request of a test pays for it.
_load()
