#!/usr/bin/env python3
"""Checks what the fake GitHub API answered, and what the adapter sent it,
against GitHub's official OpenAPI description (npm @octokit/openapi,
generated/api.github.com.json).

    openapi_check.py <api.github.com.json> <journal.jsonl>

Each journal line is one exchange: method, path, operation (the OpenAPI
path), status, request (the JSON body sent, or null) and response (the
JSON body answered, or null for a 304). Each response is validated against
its operation's schema for that status (a status the operation does not
document, such as a 429, against GitHub's basic-error), and each request
body against the operation's requestBody. OpenAPI 3.0's `nullable: true`
becomes a JSON Schema null type first.

Prints one line of counts; exits 1 with every violation listed.
"""
import json
import sys

import jsonschema


def nullable(node):
    """OpenAPI 3.0 nullable -> JSON Schema, in place, everywhere."""
    if isinstance(node, list):
        for x in node:
            nullable(x)
        return node
    if not isinstance(node, dict):
        return node
    for v in node.values():
        nullable(v)
    if node.pop("nullable", False):
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = node["enum"] + [None]
        elif t is None:
            inner = {k: node.pop(k) for k in list(node.keys())}
            node["anyOf"] = [inner, {"type": "null"}]
    return node


def main():
    spec_path, journal_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    components = nullable(spec["components"])
    paths = spec["paths"]
    for p in paths.values():
        nullable(p)

    def schema(s):
        return {"allOf": [s], "components": components}

    def resolve(obj, kind):
        if "$ref" in obj:
            return components[kind][obj["$ref"].split("/")[-1]]
        return obj

    basic_error = schema({"$ref": "#/components/schemas/basic-error"})
    problems = []
    counts = {"responses": 0, "requests": 0, "not_modified": 0, "undocumented": 0}
    operations = set()
    with open(journal_path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    for n, e in enumerate(lines, 1):
        where = f"#{n} {e['method']} {e['path']} -> {e['status']}"
        op = paths.get(e["operation"], {}).get(e["method"].lower())
        if op is None:
            problems.append(f"{where}: no operation {e['method']} {e['operation']!r} in GitHub's API")
            continue
        operations.add(op["operationId"])
        if e["request"] is not None:
            body = op.get("requestBody")
            if body is None:
                problems.append(f"{where}: a request body, which {op['operationId']} does not take")
            else:
                s = resolve(body, "requestBodies")["content"]["application/json"]["schema"]
                for err in jsonschema.Draft7Validator(schema(s)).iter_errors(e["request"]):
                    problems.append(f"{where}: request body: {err.json_path}: {err.message[:300]}")
                counts["requests"] += 1
        status = str(e["status"])
        if status == "304":
            counts["not_modified"] += 1
            continue
        documented = op["responses"].get(status)
        if documented is None:
            counts["undocumented"] += 1
            s = basic_error
        else:
            resp = resolve(documented, "responses")
            content = resp.get("content", {}).get("application/json")
            if content is None:
                if e["response"] not in (None, "", {}):
                    problems.append(f"{where}: a body, where {op['operationId']} {status} has none")
                continue
            s = schema(content["schema"])
        for err in jsonschema.Draft7Validator(s).iter_errors(e["response"]):
            problems.append(f"{where}: response: {err.json_path}: {err.message[:300]}")
        counts["responses"] += 1
    print(
        "openapi: checked responses={responses} requests={requests} not_modified={not_modified} "
        "undocumented_status={undocumented}".format(**counts),
        f"operations={len(operations)}",
    )
    if problems:
        print(f"{len(problems)} violations of GitHub's OpenAPI description:")
        for p in problems[:200]:
            print("  " + p)
        sys.exit(1)
    if counts["responses"] == 0:
        print("nothing was checked")
        sys.exit(1)


if __name__ == "__main__":
    main()
