"""Validates the capacity-descriptor vectors against schema/resource.schema.json
with the reference `jsonschema` implementation (Draft 2020-12).

Usage: resource_schema.py SCHEMA_DIR
Every valid vector must pass; every invalid vector whose entry in
expected.json says "json_schema": true must fail, and the others (rules JSON
Schema cannot express) must pass. Prints one line per vector; exits 1 on any
disagreement.
"""

import json
import pathlib
import sys

import jsonschema

root = pathlib.Path(sys.argv[1])
schema = json.loads((root / "resource.schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
vectors = root / "vectors" / "resources"
expected = json.loads((vectors / "expected.json").read_text())

bad = 0
for path in sorted((vectors / "valid").glob("*.json")):
    errors = list(validator.iter_errors(json.loads(path.read_text())))
    ok = not errors
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'} valid/{path.name} {errors[0].message if errors else ''}")
for path in sorted((vectors / "invalid").glob("*.json")):
    errors = list(validator.iter_errors(json.loads(path.read_text())))
    want_fail = expected[path.name]["json_schema"]
    ok = bool(errors) == want_fail
    bad += not ok
    print(f"{'ok' if ok else 'FAIL'} invalid/{path.name} schema errors: {len(errors)}")
sys.exit(1 if bad else 0)
