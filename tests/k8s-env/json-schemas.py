#!/usr/bin/env python3
"""Writes kubeconform's JSON schemas from a running kube-apiserver's OpenAPI (v2) document:
one standalone schema per kind, $refs inlined, strict (objects with properties accept no others),
named as kubeconform looks them up: <kind>-<group prefix>-<version>.json (core: <kind>-<version>.json).
Served CRDs (e.g. ServiceMonitor) are included, so a chart is checked against exactly the API
it is installed on.

    json-schemas.py OPENAPI_V2_JSON OUT_DIR      (kubectl get --raw /openapi/v2 > OPENAPI_V2_JSON)
"""
import copy
import json
import os
import sys

doc = json.load(open(sys.argv[1]))
out = sys.argv[2]
definitions = doc["definitions"]
os.makedirs(out, exist_ok=True)


def expand(schema, seen):
    """The schema with $refs inlined; a recursive reference becomes an open object."""
    if isinstance(schema, list):
        return [expand(s, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return {}
        return expand(definitions[name], seen | {name})
    result = {k: expand(v, seen) for k, v in schema.items()}
    if result.get("type") == "object" and "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    # int-or-string and friends: the document says only the format
    if result.get("format") == "int-or-string":
        result.pop("type", None)
        result["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    return result


count = 0
for name, definition in definitions.items():
    for gvk in definition.get("x-kubernetes-group-version-kind", []):
        group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
        suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
        schema = expand(copy.deepcopy(definition), {name})
        schema["$schema"] = "http://json-schema.org/schema#"
        with open(os.path.join(out, f"{kind.lower()}{suffix}.json"), "w") as f:
            json.dump(schema, f)
        count += 1
print(f"json-schemas: {count} kinds in {out}", file=sys.stderr)
