"""Validates tool calls against their JSON Schemas with the `jsonschema` package
(an implementation lav did not write).

stdin: {"tools": {name: schema}, "calls": [{"name": ..., "arguments": ...}]}
stdout: {"valid": n, "invalid": [[index, reason], ...]}
"""

import json
import sys

import jsonschema

data = json.load(sys.stdin)
invalid = []
for i, call in enumerate(data["calls"]):
    schema = data["tools"].get(call.get("name"))
    if schema is None:
        invalid.append([i, f"unknown tool {call.get('name')!r}"])
        continue
    try:
        jsonschema.validate(call["arguments"], schema)
    except jsonschema.ValidationError as e:
        invalid.append([i, e.message])
print(json.dumps({"valid": len(data["calls"]) - len(invalid), "invalid": invalid}))
