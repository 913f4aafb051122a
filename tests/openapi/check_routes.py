#!/usr/bin/env python3
"""Every route `postern routes` prints (method and path) is an operation of
docs/openapi.yaml, and the document describes no other. Usage: check_routes.py POSTERN"""
import json
import os
import subprocess
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def routes(binary):
    out = subprocess.run([binary, "routes"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return {(r["method"], r["path"]) for r in map(json.loads, out.splitlines())}


def operations(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}


def doc_version(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)["info"]["version"]


def binary_version(binary):
    """The project's version as `postern --version` says it (CMakeLists.txt's)."""
    out = subprocess.run([binary, "--version"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return out.split()[-1]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    table = routes(sys.argv[1])
    described = operations(os.path.join(here, "..", "..", "docs", "openapi.yaml"))
    missing = sorted(table - described)
    version = doc_version(os.path.join(here, "..", "..", "docs", "openapi.yaml"))
    if version != binary_version(sys.argv[1]):
        print(f"docs/openapi.yaml info.version {version} is not the project's version")
        sys.exit(1)
    extra = sorted(described - table)
    for m, p in missing:
        print(f"not in docs/openapi.yaml: {m} {p}")
    for m, p in extra:
        print(f"in docs/openapi.yaml but no route: {m} {p}")
    if missing or extra or not table:
        sys.exit(1)
    print(f"{len(table)} routes, each described once; nothing else described")


if __name__ == "__main__":
    main()
