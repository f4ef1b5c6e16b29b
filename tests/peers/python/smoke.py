"""Smoke test for the Python peers (standard library only).

    python3 smoke.py [--python PY] [mcp_sdk_as|authlib_as ...]

Starts each peer with PY (default: $PYPEERS_PYTHON, else the interpreter running this script;
it needs the packages of requirements.txt), runs the whole OAuth + MCP flow against it over
127.0.0.1, prints what it saw, stops it with SIGTERM and checks the exit status. Exits non-zero
on the first failed check. Ends with "N passed, N failed".
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REDIRECT = "http://127.0.0.1:9/cb"  # never fetched: only the Location header is read
PEERS = ["mcp_sdk_as", "authlib_as"]

PASSED = 0
FAILED = 0


class CheckFailed(Exception):
    pass


def check(cond: bool, what: str, detail: Any = None) -> None:
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"  ok   {what}")
    else:
        FAILED += 1
        print(f"  FAIL {what}" + (f": {detail!r}" if detail is not None else ""))
        raise CheckFailed(what)


def show(label: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    print(f"       {label}: {text}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


class Resp:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Resp:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=10) as r:
            return Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.headers, e.read())


def form(url: str, fields: dict[str, str], basic: tuple[str, str] | None = None) -> Resp:
    headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    if basic:
        raw = f"{urllib.parse.quote(basic[0], safe='')}:{urllib.parse.quote(basic[1], safe='')}"
        headers["authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
    return http("POST", url, urllib.parse.urlencode(fields).encode(), headers)


def jsonrpc_result(resp: Resp) -> Any:
    """The JSON-RPC message of an MCP answer, whether plain JSON or one SSE event."""
    ctype = resp.header("content-type") or ""
    if "text/event-stream" in ctype:
        for line in resp.body.decode().splitlines():
            if line.startswith("data:") and line[5:].strip():
                return json.loads(line[5:])
        return None
    return resp.json()


class Peer:
    def __init__(self, python: str, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [python, str(HERE / f"{name}.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        start = time.monotonic()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        self.startup = time.monotonic() - start
        if not line:
            self.proc.kill()
            raise SystemExit(f"{name} did not print a ready line: {self.proc.stderr.read().decode()[-2000:]}")
        self.ready = json.loads(line)

    def stop(self) -> tuple[int, bytes, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -9
        assert self.proc.stdout is not None and self.proc.stderr is not None
        return rc, self.proc.stdout.read(), self.proc.stderr.read().decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(meta: dict[str, Any], client_id: str, resource: str, challenge: str, state: str) -> dict[str, str]:
    """Follows redirects from the authorization endpoint to REDIRECT; returns its query."""
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "mcp:read mcp:write",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
    )
    for _ in range(10):
        r = http("GET", url)
        location = r.header("location")
        if r.status not in (301, 302, 303, 307, 308) or not location:
            raise CheckFailed(f"authorization endpoint answered {r.status}: {r.body[:300]!r}")
        url = urllib.parse.urljoin(url, location)
        if url.startswith(REDIRECT):
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    raise CheckFailed("too many redirects")


def mcp_post(mcp_url: str, token: str | None, message: dict[str, Any], session: str | None = None, version: str | None = None) -> Resp:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if session:
        headers["mcp-session-id"] = session
    if version:
        headers["mcp-protocol-version"] = version
    return http("POST", mcp_url, json.dumps(message).encode(), headers)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "smoke", "version": "0"}},
}


def run(python: str, name: str) -> None:
    print(f"== {name}")
    peer = Peer(python, name, {"LOG_LEVEL": "WARNING"})
    try:
        flow(peer)
    finally:
        rc, rest, stderr = peer.stop()
        print(f"       stderr tail: {stderr.strip()[-600:]!r}")
    check(rc == 0, "SIGTERM: exit status 0", rc)
    check(rest == b"", "nothing on stdout after the ready line", rest[:200])


def flow(peer: Peer) -> None:
    ready = peer.ready
    show("ready line", ready)
    show("startup seconds", f"{peer.startup:.2f}")
    iss, mcp_url, prm_url = ready["issuer"], ready["mcp_url"], ready["prm_url"]
    check(set(ready) >= {"issuer", "mcp_url", "prm_url", "library", "version"}, "ready line has the expected keys")
    check(not iss.endswith("/"), "issuer has no trailing slash", iss)

    # 0. Unauthenticated MCP call: 401 + challenge naming the PRM.
    r = mcp_post(mcp_url, None, INITIALIZE)
    challenge = r.header("www-authenticate") or ""
    show("401 WWW-Authenticate", challenge)
    check(r.status == 401, "/mcp without token: 401", r.status)
    check(f'resource_metadata="{prm_url}"' in challenge, "challenge names the PRM URL")
    r = mcp_post(mcp_url, "not-a-token", INITIALIZE)
    show("401 (bogus token) WWW-Authenticate", r.header("www-authenticate") or "")
    check(r.status == 401, "/mcp with a bogus token: 401", r.status)

    # 1. Discovery.
    r = http("GET", prm_url)
    prm = r.json()
    show("PRM", prm)
    check(r.status == 200 and prm["resource"] == mcp_url, "PRM resource is the MCP URL", prm)
    check(prm["authorization_servers"] == [iss], "PRM names the issuer exactly", prm.get("authorization_servers"))
    root_prm = http("GET", urllib.parse.urljoin(prm_url, "/.well-known/oauth-protected-resource"))
    show("root PRM status", root_prm.status)
    r = http("GET", iss + "/.well-known/oauth-authorization-server")
    meta = r.json()
    show("AS metadata", meta)
    check(r.status == 200 and meta["issuer"] == iss, "AS metadata issuer equals the issuer exactly", meta.get("issuer"))
    check("S256" in meta.get("code_challenge_methods_supported", []), "S256 advertised")
    for key in ("registration_endpoint", "revocation_endpoint", "token_endpoint", "authorization_endpoint"):
        check(key in meta, f"metadata has {key}")
    show("openid-configuration status", http("GET", iss + "/.well-known/openid-configuration").status)

    # 2. DCR, confidential client with client_secret_basic.
    reg_body = {
        "client_name": "smoke",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "application_type": "web",
    }
    r = http("POST", meta["registration_endpoint"], json.dumps(reg_body).encode(), {"content-type": "application/json"})
    reg = r.json()
    show("registration", {k: ("<secret>" if k == "client_secret" else v) for k, v in reg.items()})
    check(r.status == 201, "registration: 201", (r.status, reg))
    check(reg.get("token_endpoint_auth_method") == "client_secret_basic", "registered client_secret_basic")
    cid, secret = reg["client_id"], reg["client_secret"]
    basic = (cid, secret)

    def tokens(state: str) -> tuple[dict[str, Any], dict[str, str]]:
        verifier, chall = pkce()
        q = authorize(meta, cid, mcp_url, chall, state)
        check("code" in q and q.get("state") == state, "authorize: code and state on the redirect", q)
        r = form(
            meta["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": q["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": cid,
                "resource": mcp_url,
            },
            basic,
        )
        check(r.status == 200, "code exchange (Basic + client_id in body): 200", (r.status, r.body[:300]))
        return r.json(), q

    # 3. Authorization with PKCE + resource + state, 4. code exchange.
    tok, q = tokens("state-1")
    show("redirect query", {k: (v[:8] + "…" if k == "code" else v) for k, v in q.items()})
    show("token response", {k: (v[:8] + "…" if k in ("access_token", "refresh_token") else v) for k, v in tok.items()})
    check(tok.get("token_type", "").lower() == "bearer" and isinstance(tok.get("expires_in"), int), "bearer token with expires_in")
    check(bool(tok.get("refresh_token")), "refresh token issued")
    at1, rt1 = tok["access_token"], tok["refresh_token"]

    # 5. MCP: initialize, initialized, tools/list, tools/call.
    r = mcp_post(mcp_url, at1, INITIALIZE)
    init = jsonrpc_result(r)
    sid = r.header("mcp-session-id")
    check(r.status == 200 and init and "result" in init, "MCP initialize: 200", (r.status, r.body[:300]))
    version = init["result"]["protocolVersion"]
    show("initialize", {"protocolVersion": version, "serverInfo": init["result"].get("serverInfo"), "session": bool(sid)})
    r = mcp_post(mcp_url, at1, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid, version)
    check(r.status in (200, 202), "notifications/initialized accepted", r.status)
    r = mcp_post(mcp_url, at1, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid, version)
    names = sorted(t["name"] for t in (jsonrpc_result(r) or {}).get("result", {}).get("tools", []))
    check(names == ["echo", "whoami"], "tools/list: echo, whoami", names)
    r = mcp_post(mcp_url, at1, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}, sid, version)
    who = [c.get("text") for c in (jsonrpc_result(r) or {}).get("result", {}).get("content", [])]
    check(who == ["user-1"], "whoami: user-1", who)
    r = mcp_post(mcp_url, at1, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}, sid, version)
    echoed = [c.get("text") for c in (jsonrpc_result(r) or {}).get("result", {}).get("content", [])]
    check(echoed == ["hi"], "echo: hi", echoed)

    # 6. Refresh: rotation, then reuse of the spent refresh token.
    refresh_fields = {"grant_type": "refresh_token", "client_id": cid, "resource": mcp_url}
    r = form(meta["token_endpoint"], {**refresh_fields, "refresh_token": rt1}, basic)
    check(r.status == 200, "refresh: 200", (r.status, r.body[:300]))
    tok2 = r.json()
    at2, rt2 = tok2["access_token"], tok2.get("refresh_token")
    check(bool(rt2) and rt2 != rt1 and at2 != at1, "refresh rotated both tokens")
    r = form(meta["token_endpoint"], {**refresh_fields, "refresh_token": rt1}, basic)
    show("reuse of spent refresh token", (r.status, r.json()))
    check(r.status == 400 and r.json().get("error") == "invalid_grant", "reuse of spent refresh token: invalid_grant")
    r = form(meta["token_endpoint"], {**refresh_fields, "refresh_token": rt2}, basic)
    check(r.status == 400 and r.json().get("error") == "invalid_grant", "after reuse, the family's newest refresh token fails too", (r.status, r.body))
    check(mcp_post(mcp_url, at2, INITIALIZE).status == 401, "after reuse, the family's access token gets 401")

    # 7. Revocation (new family): access token, then refresh token.
    tok, _ = tokens("state-2")
    atb, rtb = tok["access_token"], tok["refresh_token"]
    check(mcp_post(mcp_url, atb, INITIALIZE).status == 200, "new family: /mcp 200")
    revoke_extra: dict[str, str] = {}
    if peer.ready["library"] == "mcp":
        # mcp 2.3.0's RevocationRequest declares `client_secret: str | None` without a default, so
        # the field is required in the body even when the secret travels in the Basic header.
        r = form(meta["revocation_endpoint"], {"token": atb, "token_type_hint": "access_token", "client_id": cid}, basic)
        show("revoke with Basic + client_id, no client_secret in body", {"status": r.status, "body": r.json()})
        check(r.status == 400 and "client_secret" in r.json().get("error_description", ""),
              "mcp SDK AS revocation: 400 invalid_request 'client_secret: Field required'")
        revoke_extra = {"client_secret": secret}
    r = form(meta["revocation_endpoint"], {"token": atb, "token_type_hint": "access_token", "client_id": cid, **revoke_extra}, basic)
    check(r.status == 200, "revoke access token: 200", (r.status, r.body))
    check(mcp_post(mcp_url, atb, INITIALIZE).status == 401, "revoked access token: /mcp 401")
    r = form(meta["token_endpoint"], {**refresh_fields, "refresh_token": rtb}, basic)
    check(r.status == 200, "refresh still works after access-token revocation", (r.status, r.body[:300]))
    atb2, rtb2 = r.json()["access_token"], r.json()["refresh_token"]
    r = form(meta["revocation_endpoint"], {"token": rtb2, "token_type_hint": "refresh_token", "client_id": cid, **revoke_extra}, basic)
    check(r.status == 200, "revoke refresh token: 200", (r.status, r.body))
    r = form(meta["token_endpoint"], {**refresh_fields, "refresh_token": rtb2}, basic)
    check(r.status == 400 and r.json().get("error") == "invalid_grant", "revoked refresh token: invalid_grant", (r.status, r.body))
    r = mcp_post(mcp_url, atb2, INITIALIZE)
    check(r.status == 401, "access token of a revoked refresh token: /mcp 401", r.status)
    r = form(meta["revocation_endpoint"], {"token": atb2, "token_type_hint": "access_token", "client_id": cid, **revoke_extra}, basic)
    check(r.status == 200, "revoking an already revoked access token: 200", (r.status, r.body))

    # 8. Wrong resource: invalid_target on the redirect.
    _, chall = pkce()
    url = meta["authorization_endpoint"] + "?" + urllib.parse.urlencode(
        {"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT, "state": "s", "code_challenge": chall,
         "code_challenge_method": "S256", "resource": "http://127.0.0.1:9/other"}
    )
    loc = http("GET", url).header("location") or ""
    bad = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    show("unknown resource redirect", bad)
    check(bad.get("error") == "invalid_target", "unknown resource: error=invalid_target")

    # 9. Basic auth WITHOUT client_id in the body.
    verifier, chall = pkce()
    q = authorize(meta, cid, mcp_url, chall, "state-3")
    fields = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT, "code_verifier": verifier, "resource": mcp_url}
    r = form(meta["token_endpoint"], fields, basic)
    answer = r.json()
    shown = {k: (v[:8] + "…" if k in ("access_token", "refresh_token") else v) for k, v in answer.items()}
    show("Basic without client_id in body", {"status": r.status, "body": shown})
    if peer.ready["library"] == "mcp":
        check(r.status == 401 and answer == {"error": "invalid_client", "error_description": "Missing client_id"},
              "mcp SDK AS: Basic without body client_id -> 401 invalid_client 'Missing client_id'")
        r = form(meta["token_endpoint"], {**fields, "client_id": cid}, basic)
        check(r.status == 200, "... and the code was not consumed: same request with client_id: 200", (r.status, r.body[:200]))
        r = form(meta["revocation_endpoint"], {"token": r.json()["access_token"], "client_secret": secret}, basic)
        show("revoke with Basic, no client_id in body", {"status": r.status, "body": r.json()})
        check(r.status == 401, "mcp SDK AS revocation also needs client_id in body: 401")
    else:
        check(r.status == 200, "Authlib AS: Basic without body client_id -> 200")

    # 10. Counters.
    stats = http("GET", iss + "/__stats").json()
    show("stats", stats)
    check(stats["registrations"] == 1, "stats: 1 registration")
    check(stats["refresh_reuse_detected"] == 1, "stats: 1 refresh reuse detected")
    check(stats["revocations"]["access_token"] >= 1 and stats["revocations"]["refresh_token"] == 1, "stats: revocations by type")
    check(stats["token_grants"].get("refresh_token") == 2, "stats: 2 successful refreshes")
    check(stats["mcp_unauthorized"] >= 5, "stats: mcp_unauthorized counted")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=os.environ.get("PYPEERS_PYTHON") or sys.executable)
    parser.add_argument("peers", nargs="*", default=PEERS)
    args = parser.parse_args()
    for name in args.peers:
        try:
            run(args.python, name)
        except CheckFailed:
            break
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
