"""Switchboard test peer: an MCP server that is its own OAuth authorization server.

Built on the official MCP Python SDK (`mcp` 2.x: `mcp.server.mcpserver.MCPServer`, the 2.x name
of FastMCP) and its auth module (`mcp.server.auth`): the SDK's own routes, handlers and client
authentication serve `/authorize`, `/token`, `/register` and `/revoke`; this file only supplies
the in-memory `OAuthAuthorizationServerProvider` behind them. One process, one port, 127.0.0.1:

    /.well-known/oauth-authorization-server       RFC 8414 metadata (SDK)
    /.well-known/oauth-protected-resource/mcp     RFC 9728 metadata (SDK)
    /authorize /token /register /revoke           SDK handlers, this provider
    /mcp                                          Streamable HTTP, bearer tokens from this AS
    /__stats                                      test counters (GET)

What the SDK does (mcp 2.3.0, read from mcp/server/auth/*):

* Metadata advertises `token_endpoint_auth_methods_supported: ["client_secret_post",
  "client_secret_basic"]` (never "none", although registration accepts `none` and the token
  endpoint then lets a public client in), `revocation_endpoint_auth_methods_supported` the same,
  `code_challenge_methods_supported: ["S256"]`, `grant_types_supported: ["authorization_code",
  "refresh_token"]`, `response_types_supported: ["code"]`, and no `jwks_uri`, no
  `authorization_response_iss_parameter_supported` (no `iss` on the redirect).
* `ClientAuthenticator` (token AND revocation endpoint) reads `client_id` from the FORM BODY and
  answers `401 {"error": "invalid_client", "error_description": "Missing client_id"}` when it is
  absent, even when an `Authorization: Basic` header carries it. The client is looked up by
  the body's `client_id` and authenticated by the method IT registered: for a
  `client_secret_basic` client the header's id must equal the body's ("Client ID mismatch in
  Basic auth"); a header naming another client is simply ignored. A client registered
  with `client_secret_basic` MUST use the header (a secret in the body is ignored and the
  request fails "Missing or invalid Basic authentication..."); one registered with
  `client_secret_post` must put the secret in the body (a Basic header is ignored). This is
  kept exactly as the SDK ships it on purpose. At /revoke the same failure is
  `401 {"error": "unauthorized_client", "error_description": "Missing client_id"}`.
* /revoke also demands a `client_secret` FIELD in the body: its `RevocationRequest` model
  declares `client_secret: str | None` without a default, so a Basic-only request with
  `client_id` in the body fails `400 {"error": "invalid_request", "error_description":
  "client_secret: Field required"}` (a public `none` client cannot revoke at all, short of
  sending an empty `client_secret=`). The value in the body is not checked for a
  `client_secret_basic` client; the header is.
* /authorize: `code_challenge` is required, `code_challenge_method` may be omitted (the SDK then
  assumes S256) and anything but S256 is `invalid_request`; errors after the client and
  redirect_uri are known are redirects, earlier ones JSON 400.
* Refresh-token reuse and unknown tokens both answer `400 {"error": "invalid_grant",
  "error_description": "refresh token does not exist"}`.
* Registration without `token_endpoint_auth_method` registers `client_secret_post` (not the RFC
  7591 default `client_secret_basic`); `private_key_jwt` is refused; `grant_types` must contain
  `authorization_code`; the token endpoint refuses a grant type the client did not register.
* A client registered without `scope` may not request any scope at /authorize
  (`invalid_scope`), so registration here fills in `default_scopes` (mcp:read mcp:write).
* The `resource` parameter (RFC 8707) reaches the provider at /authorize (AuthorizationParams)
  but NOT at /token: the token handler parses it and drops it. This provider binds the code's
  resource to the tokens; the middleware below only counts the token request's `resource`.
* /mcp without a valid token: `401` with
  `WWW-Authenticate: Bearer error="invalid_token", error_description="Authentication required",
  resource_metadata="http://127.0.0.1:P/.well-known/oauth-protected-resource/mcp"` (also when no
  token was sent at all; no `scope` attribute). Only the path-suffixed PRM exists; the root
  `/.well-known/oauth-protected-resource` is 404, and so is `/.well-known/openid-configuration`.

What this provider adds:

* authorize() auto-approves the fixed user `user-1` and redirects straight to
  `redirect_uri?code=...&state=...` (no login page, no `iss`).
* `resource`, when given, must be the MCP endpoint (trailing slash ignored), else the redirect
  carries `error=invalid_target`. When absent it defaults to the MCP endpoint (the only
  resource), unless REQUIRE_RESOURCE=1, which turns an absent one into `invalid_target`.
  Tokens carry the resource and the SDK's bearer check (`validate_token_resource=True`)
  accepts only tokens issued for this MCP endpoint.
* Opaque random access tokens, lifetime ACCESS_TOKEN_TTL seconds (default 3600, `expires_in`).
* Refresh tokens (for clients registered with the refresh_token grant) rotate on every use;
  presenting a spent one fails with `invalid_grant` and revokes its whole family (every access
  and refresh token descending from that authorization code).
* Revocation: an access token revokes just that token; a refresh token revokes its family.

Environment: PORT (default 0 = random), ACCESS_TOKEN_TTL (3600), REQUIRE_RESOURCE ("1" to
require `resource`), LOG_LEVEL (WARNING).

Protocol with the harness (same as ../peers.mjs): exactly one JSON line on stdout once the
server listens, everything else on stderr, SIGTERM/SIGINT exit with status 0.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import parse_qsl

# SIGTERM/SIGINT before the server runs (imports take about a second): exit 0 at once, nothing
# needs cleaning up yet. _on_signal below takes over once uvicorn is about to start.
signal.signal(signal.SIGTERM, lambda _sig, _frame: os._exit(0))
signal.signal(signal.SIGINT, lambda _sig, _frame: os._exit(0))

# stdout carries exactly one line (the ready JSON); everything printed by anyone else goes to stderr.
READY_OUT = sys.stdout
sys.stdout = sys.stderr

import anyio  # noqa: E402
import uvicorn  # noqa: E402
from mcp.server.auth.middleware.auth_context import get_access_token  # noqa: E402
from mcp.server.auth.provider import (  # noqa: E402
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

HOST = "127.0.0.1"
USER_ID = "user-1"
SCOPES = ["mcp:read", "mcp:write"]
REQUIRED_SCOPES = ["mcp:read"]
CODE_TTL = 300


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"invalid {name}: {raw!r}")
    if value < minimum:
        raise SystemExit(f"invalid {name}: {raw!r}")
    return value


ACCESS_TOKEN_TTL = env_int("ACCESS_TOKEN_TTL", 3600, minimum=1)
REQUIRE_RESOURCE = os.environ.get("REQUIRE_RESOURCE") == "1"
LOG_LEVEL = os.environ.get("LOG_LEVEL", "WARNING").upper()

# Bind first: with port 0 the issuer and resource URLs are only known once the socket is bound.
SOCK = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
SOCK.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
SOCK.bind((HOST, env_int("PORT", 0)))
PORT = SOCK.getsockname()[1]
ISSUER = f"http://{HOST}:{PORT}"  # no trailing slash; AuthSettings preserves it (checked below)
MCP_URL = f"{ISSUER}/mcp"
PRM_URL = f"{ISSUER}/.well-known/oauth-protected-resource/mcp"

# Counters served at GET /__stats.
STATS: dict[str, Any] = {
    "registration_requests": 0,  # every POST /register
    "registrations": 0,  # successful registrations
    "registration_auth_methods": {},  # token_endpoint_auth_method of each registered client
    "authorization_requests": 0,  # every GET/POST /authorize
    "authorizations": 0,  # codes issued
    "token_requests": 0,  # every POST /token
    "token_grants": {},  # successful token responses by grant_type
    "token_errors": {},  # token error responses by error code
    "token_error_count": 0,  # their total
    # How clients authenticated at /token, one count per request for each fact that held:
    "token_auth": {
        "basic_header": 0,  # an Authorization: Basic header was sent
        "client_secret_in_body": 0,
        "client_id_in_body": 0,
        "client_id_missing_from_body": 0,
    },
    # Per request: client_secret_basic (Basic header), client_secret_post (secret in body) or none.
    "token_auth_methods": {},
    # RFC 8707 `resource` on authorization and token requests: {"present": n, "absent": n}.
    "resource_param": {"authorize": {"present": 0, "absent": 0}, "token": {"present": 0, "absent": 0}},
    "refresh_reuse_detected": 0,  # spent refresh tokens presented (each revoked its family)
    "revocation_requests": 0,  # every POST /revoke
    "revocation_errors": {},  # non-200 answers from /revoke, by error code
    "revocations": {"access_token": 0, "refresh_token": 0},  # tokens actually revoked, by type
    "mcp_requests": 0,  # every request to /mcp
    "mcp_unauthorized": 0,  # /mcp answers 401/403
}


def bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def same_resource(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


# ---------------------------------------------------------------------------------------------
# Provider (everything in memory, lost on exit)
# ---------------------------------------------------------------------------------------------


class Code(AuthorizationCode):
    family: str


class Refresh(RefreshToken):
    family: str
    spent: bool = False


class Access(AccessToken):
    family: str
    revoked: bool = False


class InMemoryProvider:
    """OAuthAuthorizationServerProvider for the SDK's auth routes."""

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, Code] = {}
        self.access: dict[str, Access] = {}
        self.refresh: dict[str, Refresh] = {}
        self.revoked_families: set[str] = set()

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id
        self.clients[client_info.client_id] = client_info
        STATS["registrations"] += 1
        bump(STATS["registration_auth_methods"], str(client_info.token_endpoint_auth_method))

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is None:
            if REQUIRE_RESOURCE:
                raise AuthorizeError("invalid_target", "the resource parameter is required")
            resource = MCP_URL
        elif same_resource(params.resource, MCP_URL):
            resource = params.resource
        else:
            raise AuthorizeError("invalid_target", f"unknown resource {params.resource}")
        assert client.client_id
        code = secrets.token_urlsafe(32)
        self.codes[code] = Code(
            code=code,
            scopes=params.scopes or (client.scope.split() if client.scope else list(SCOPES)),
            expires_at=time.time() + CODE_TTL,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=resource,
            subject=USER_ID,
            family=secrets.token_hex(8),
        )
        STATS["authorizations"] += 1
        # Auto-approval: straight back to the client, no login or consent page.
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str) -> Code | None:
        code = self.codes.get(authorization_code)
        if code is None or code.client_id != client.client_id:
            return None
        return code

    def _issue(self, client: OAuthClientInformationFull, scopes: list[str], resource: str | None, family: str) -> OAuthToken:
        assert client.client_id
        now = int(time.time())
        access = secrets.token_urlsafe(32)
        self.access[access] = Access(
            token=access,
            client_id=client.client_id,
            scopes=scopes,
            expires_at=now + ACCESS_TOKEN_TTL,
            resource=resource,
            subject=USER_ID,
            claims={"iss": ISSUER, "sub": USER_ID},
            family=family,
        )
        refresh = None
        if "refresh_token" in client.grant_types:
            refresh = secrets.token_urlsafe(32)
            self.refresh[refresh] = Refresh(
                token=refresh,
                client_id=client.client_id,
                scopes=scopes,
                resource=resource,
                subject=USER_ID,
                family=family,
            )
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=ACCESS_TOKEN_TTL,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )

    async def exchange_authorization_code(self, client: OAuthClientInformationFull, authorization_code: Code) -> OAuthToken:
        self.codes.pop(authorization_code.code, None)  # single use
        return self._issue(client, authorization_code.scopes, authorization_code.resource, authorization_code.family)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> Refresh | None:
        token = self.refresh.get(refresh_token)
        if token is None or token.client_id != client.client_id or token.family in self.revoked_families:
            return None
        if token.spent:
            # Reuse of a rotated-out refresh token: assume it leaked and revoke the whole family.
            STATS["refresh_reuse_detected"] += 1
            self.revoked_families.add(token.family)
            print(f"[mcp-sdk-as] refresh token reuse: family {token.family} revoked", file=sys.stderr)
            return None
        return token

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: Refresh, scopes: list[str]) -> OAuthToken:
        refresh_token.spent = True  # rotation: every refresh token works once
        return self._issue(client, scopes, refresh_token.resource, refresh_token.family)

    async def load_access_token(self, token: str) -> Access | None:
        access = self.access.get(token)
        if access is None or access.revoked or access.family in self.revoked_families:
            return None
        if access.expires_at is not None and access.expires_at < time.time():
            return None
        return access

    async def revoke_token(self, token: Access | Refresh) -> None:
        if isinstance(token, Access):
            token.revoked = True
            STATS["revocations"]["access_token"] += 1
        else:
            self.revoked_families.add(token.family)
            STATS["revocations"]["refresh_token"] += 1


# ---------------------------------------------------------------------------------------------
# MCP server
# ---------------------------------------------------------------------------------------------

PROVIDER = InMemoryProvider()
AUTH = AuthSettings(
    issuer_url=ISSUER,  # type: ignore[arg-type]
    resource_server_url=MCP_URL,  # type: ignore[arg-type]
    client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=SCOPES, default_scopes=SCOPES),
    revocation_options=RevocationOptions(enabled=True),
    required_scopes=REQUIRED_SCOPES,
    validate_token_resource=True,
)
if str(AUTH.issuer_url) != ISSUER:  # Switchboard compares issuers exactly
    raise SystemExit(f"AuthSettings changed the issuer: {AUTH.issuer_url!s} != {ISSUER}")

server = MCPServer(
    name="switchboard-test-peer-mcp-sdk-as",
    version="1.0.0",
    auth_server_provider=PROVIDER,
    auth=AUTH,
    log_level=LOG_LEVEL,  # type: ignore[arg-type]
)


@server.tool(description="Returns the given text unchanged.")
def echo(text: str) -> str:
    return text


@server.tool(description="Returns the subject of the access token used for this call.")
def whoami(ctx: Context) -> str:
    # mcp 2.3.0 carries the verified token to the tool through this contextvar (checked); the
    # HTTP request's `user` is only a fallback in case a later SDK version stops doing so.
    token = get_access_token()
    if token is None:
        request = ctx.request_context.request
        user = getattr(request, "user", None) if request is not None else None
        token = getattr(user, "access_token", None)
    return str(getattr(token, "subject", None) or "")


@server.custom_route("/__stats", methods=["GET"])
async def stats(_request: Request) -> JSONResponse:
    return JSONResponse(STATS)


class StatsMiddleware:
    """Counts requests and inspects /token and /revoke bodies and answers (pure ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/register" and method == "POST":
            STATS["registration_requests"] += 1
        elif path == "/mcp":
            STATS["mcp_requests"] += 1
        elif path == "/authorize":
            STATS["authorization_requests"] += 1
        watched = path == "/mcp" or (method == "POST" and path in ("/token", "/revoke", "/authorize"))
        if not watched:
            if path == "/authorize":
                query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
                bump(STATS["resource_param"]["authorize"], "present" if query.get("resource") else "absent")
            await self.app(scope, receive, send)
            return

        form: dict[str, str] = {}
        if path != "/mcp":
            # Buffer the body to read the form, then replay it to the SDK handler.
            chunks, more = [], True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            form = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            inner_receive = replay
        else:
            inner_receive = receive

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path == "/token":
            STATS["token_requests"] += 1
            basic = headers.get("authorization", "").lower().startswith("basic ")
            auth = STATS["token_auth"]
            auth["basic_header"] += basic
            auth["client_secret_in_body"] += "client_secret" in form
            auth["client_id_in_body"] += "client_id" in form
            auth["client_id_missing_from_body"] += "client_id" not in form
            method_seen = "client_secret_basic" if basic else "client_secret_post" if "client_secret" in form else "none"
            bump(STATS["token_auth_methods"], method_seen)
            bump(STATS["resource_param"]["token"], "present" if "resource" in form else "absent")
        elif path == "/revoke":
            STATS["revocation_requests"] += 1
        elif path == "/authorize":
            bump(STATS["resource_param"]["authorize"], "present" if form.get("resource") else "absent")

        status = 0
        body_out: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and path != "/mcp":
                body_out.append(message.get("body", b""))
            await send(message)

        await self.app(scope, inner_receive, capture)

        if path == "/mcp":
            if status in (401, 403):
                STATS["mcp_unauthorized"] += 1
            return
        if path == "/authorize":
            return
        try:
            answer = json.loads(b"".join(body_out) or b"{}")
        except ValueError:
            answer = {}
        if path == "/token":
            if status == 200:
                bump(STATS["token_grants"], form.get("grant_type", "?"))
            else:
                bump(STATS["token_errors"], str(answer.get("error", status)))
                STATS["token_error_count"] += 1
        elif status != 200:
            bump(STATS["revocation_errors"], str(answer.get("error", status)))


# ---------------------------------------------------------------------------------------------
# Start-up and shutdown
# ---------------------------------------------------------------------------------------------


USERVER: uvicorn.Server | None = None


def _on_signal(_sig: int, _frame: Any) -> None:
    # Before uvicorn runs: exit at once. While it runs it has its own handlers; when it stops it
    # restores this one and re-raises the signal it caught, which then only confirms the stop.
    if USERVER is None:
        os._exit(0)
    USERVER.should_exit = True


async def main() -> None:
    global USERVER
    app = StatsMiddleware(server.streamable_http_app(host=HOST))
    config = uvicorn.Config(app, log_config=None, log_level=LOG_LEVEL.lower(), access_log=False, lifespan="on")
    userver = USERVER = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(userver.serve, [SOCK])
        while not userver.started:
            if userver.should_exit:
                return
            await anyio.sleep(0.01)
        READY_OUT.write(
            json.dumps(
                {
                    "issuer": ISSUER,
                    "mcp_url": MCP_URL,
                    "prm_url": PRM_URL,
                    "library": "mcp",
                    "version": package_version("mcp"),
                    "as_port": PORT,
                    "mcp_port": PORT,
                }
            )
            + "\n"
        )
        READY_OUT.flush()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=LOG_LEVEL, format="[mcp-sdk-as] %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        anyio.run(main)
    except SystemExit:
        pass
    except KeyboardInterrupt:
        pass
    sys.exit(0)
