"""Schemathesis hooks for Switchboard's fuzz run (scripts/schemathesis).

Every generated request gets an Idempotency-Key of its own. The fuzzer draws keys from the
document's pattern, and its simplest draws ("0", "00") repeat: a second POST with the same key
and body is, by the contract, a replay of the first response — which in a stateful run names a
resource deleted since, and reads as "created resource not found". Real clients send one key per
logical operation; so does this hook. The key's validation is still fuzzed: requests whose key
the generator made invalid on purpose (negative mode) keep it.
"""
import re
import uuid

import schemathesis

VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers
    if headers and "Idempotency-Key" in headers and VALID.match(str(headers["Idempotency-Key"])):
        headers["Idempotency-Key"] = str(uuid.uuid4())
