#!/usr/bin/env python3
"""Converts docs/openapi.yaml to JSON, written as a C string constant, so the binary serves
GET /api/openapi.json with no file to install. Run by the build (CMakeLists.txt).
Usage: openapi-c.py IN.yaml OUT.c"""
import json
import sys

import yaml


def c_literal(text):
    """The UTF-8 bytes of text as C string literal lines. Octal escapes take at most three
    digits, so no escape can swallow the character after it; '?' is escaped because C11
    still reads trigraphs."""
    out, line = [], []
    for b in text.encode("utf-8"):
        c = chr(b)
        if c in '"\\?':
            line.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            line.append(c)
        else:
            line.append("\\%03o" % b)
        if len(line) >= 96:
            out.append('\t"%s"' % "".join(line))
            line = []
    if line:
        out.append('\t"%s"' % "".join(line))
    return "\n".join(out)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    body = ("/* Generated from docs/openapi.yaml by scripts/openapi-c.py; do not edit. */\n"
            "#include <stddef.h>\n\n"
            "extern const char api_openapi_json[];\n"
            "extern const size_t api_openapi_json_len;\n\n"
            "const char api_openapi_json[] =\n%s;\n"
            "const size_t api_openapi_json_len = sizeof(api_openapi_json) - 1;\n"
            % c_literal(text))
    with open(dst, "w", encoding="utf-8") as f:
        f.write(body)


if __name__ == "__main__":
    main()
