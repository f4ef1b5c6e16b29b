"""Switchboard test peer: an Authlib authorization server plus an MCP Python SDK resource server.

One process, 127.0.0.1 only, two ports:

* AS port (Flask app, served by werkzeug's threaded server): an OAuth 2.1-style authorization
  server built on Authlib (`authlib.integrations.flask_oauth2.AuthorizationServer`):

      /.well-known/oauth-authorization-server   RFC 8414 metadata
      /register                                 RFC 7591 Dynamic Client Registration (open),
                                                Authlib's ClientRegistrationEndpoint
      /authorize                                authorization code, auto-approved for user-1
      /token                                    authorization_code (PKCE S256 required) and
                                                refresh_token (rotating) grants
      /revoke                                   RFC 7009, Authlib's RevocationEndpoint
      /__stats                                  test counters (GET)

* MCP port (Starlette app from the MCP Python SDK, `MCPServer`, served by uvicorn):

      /mcp                                      Streamable HTTP MCP, tools echo and whoami
      /.well-known/oauth-protected-resource/mcp RFC 9728 metadata naming the Authlib issuer

  Bearer tokens are checked by a custom SDK `TokenVerifier` against the Authlib token store
  (Authlib's `BearerTokenValidator` rules: known, unexpired, unrevoked), and the SDK's
  `validate_token_resource` accepts only tokens bound to this MCP endpoint.

Behaviour (all state in memory, lost on exit):

* Clients may register `client_secret_basic` (Authlib's default when omitted),
  `client_secret_post` or `none` (a public client: no secret is issued). Each client may
  authenticate only with the method it registered. With Basic, `client_id` in the body is
  optional (and is not compared with the header's).
* PKCE is required for every client, S256 only: a missing `code_challenge` or a
  `code_challenge_method` other than S256 (also a missing one) is `invalid_request`. Authlib's
  own `CodeChallenge(required=True)` would only enforce a verifier for public clients and would
  accept `plain`, hence the subclass below.
* RFC 8707: `resource` at /authorize must be the MCP endpoint (trailing slash ignored), else the
  redirect carries `error=invalid_target`; when absent it defaults to the MCP endpoint unless
  REQUIRE_RESOURCE=1. At /token a `resource`, if sent, must equal the one bound to the code or
  refresh token (else `invalid_target`). Authlib itself knows nothing of `resource`; this file
  stores it on the code and tokens.
* The redirect carries `iss` (RFC 9207, Authlib's IssuerParameter), advertised as
  `authorization_response_iss_parameter_supported: true`.
* Access tokens are opaque (Authlib's random generator), ACCESS_TOKEN_TTL seconds. Refresh tokens
  (for clients registered with the refresh_token grant) rotate on every use; a spent one fails
  with `invalid_grant` and revokes its family. Revoking an access token revokes just it;
  revoking a refresh token revokes the family.

Environment: AS_PORT, MCP_PORT (default 0 = random), ACCESS_TOKEN_TTL (3600), REQUIRE_RESOURCE
("1"), LOG_LEVEL (WARNING).

Protocol with the harness (same as ../peers.mjs): exactly one JSON line on stdout once both
servers listen, everything else on stderr, SIGTERM/SIGINT exit with status 0.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from importlib.metadata import version as package_version
from typing import Any

# SIGTERM/SIGINT before the server runs (imports take about a second): exit 0 at once, nothing
# needs cleaning up yet. _on_signal below takes over once uvicorn is about to start.
signal.signal(signal.SIGTERM, lambda _sig, _frame: os._exit(0))
signal.signal(signal.SIGINT, lambda _sig, _frame: os._exit(0))

# stdout carries exactly one line (the ready JSON); everything printed by anyone else goes to stderr.
READY_OUT = sys.stdout
sys.stdout = sys.stderr

import anyio  # noqa: E402
import uvicorn  # noqa: E402
from authlib.common.urls import add_params_to_uri  # noqa: E402
from authlib.integrations.flask_oauth2 import AuthorizationServer  # noqa: E402
from authlib.oauth2 import OAuth2Error  # noqa: E402
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, grants  # noqa: E402
from authlib.oauth2.rfc6749.errors import InvalidRequestError  # noqa: E402
from authlib.oauth2.rfc6750 import BearerTokenValidator  # noqa: E402
from authlib.oauth2.rfc7009 import RevocationEndpoint  # noqa: E402
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oauth2.rfc9207 import IssuerParameter  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from mcp.server.auth.middleware.auth_context import get_access_token  # noqa: E402
from mcp.server.auth.provider import AccessToken  # noqa: E402
from mcp.server.auth.settings import AuthSettings  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

HOST = "127.0.0.1"
USER_ID = "user-1"
SCOPES = ["mcp:read", "mcp:write"]
REQUIRED_SCOPES = ["mcp:read"]
CODE_TTL = 300
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


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

MCP_SOCK = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
MCP_SOCK.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
MCP_SOCK.bind((HOST, env_int("MCP_PORT", 0)))
MCP_PORT = MCP_SOCK.getsockname()[1]
MCP_BASE = f"http://{HOST}:{MCP_PORT}"
MCP_URL = f"{MCP_BASE}/mcp"
PRM_URL = f"{MCP_BASE}/.well-known/oauth-protected-resource/mcp"

app = Flask("authlib_as")
# werkzeug binds in make_server; the issuer is known right after.
AS_SERVER = make_server(HOST, env_int("AS_PORT", 0), app, threaded=True)
AS_PORT = AS_SERVER.server_port
ISSUER = f"http://{HOST}:{AS_PORT}"

LOCK = threading.RLock()  # the stores are shared by werkzeug's threads and the MCP event loop

STATS: dict[str, Any] = {
    "registration_requests": 0,  # every POST /register
    "registrations": 0,  # successful registrations
    "registration_auth_methods": {},  # token_endpoint_auth_method of each registered client
    "authorization_requests": 0,  # every request to /authorize
    "authorizations": 0,  # codes issued
    "token_requests": 0,  # every POST /token
    "token_grants": {},  # successful token responses by grant_type
    "token_errors": {},  # token error responses by error code
    "token_error_count": 0,
    "token_auth": {
        "basic_header": 0,
        "client_secret_in_body": 0,
        "client_id_in_body": 0,
        "client_id_missing_from_body": 0,
    },
    "token_auth_methods": {},  # client_secret_basic / client_secret_post / none, as sent
    "resource_param": {"authorize": {"present": 0, "absent": 0}, "token": {"present": 0, "absent": 0}},
    "refresh_reuse_detected": 0,
    "revocation_requests": 0,
    "revocation_errors": {},
    "revocations": {"access_token": 0, "refresh_token": 0},
    "mcp_requests": 0,
    "mcp_unauthorized": 0,
}


def bump(counter: dict[str, int], key: str) -> None:
    with LOCK:
        counter[key] = counter.get(key, 0) + 1


def same_resource(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


# ---------------------------------------------------------------------------------------------
# Models (Authlib mixins over plain objects) and the in-memory store
# ---------------------------------------------------------------------------------------------


class User:
    def __init__(self, user_id: str) -> None:
        self.id = user_id

    def get_user_id(self) -> str:
        return self.id


USER = User(USER_ID)


class Client(ClientMixin):
    def __init__(self, info: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.client_id: str = info["client_id"]
        self.client_secret: str | None = info.get("client_secret")
        self.info = info
        self.metadata = metadata

    @property
    def auth_method(self) -> str:
        return self.metadata.get("token_endpoint_auth_method", "client_secret_basic")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.metadata.get("redirect_uris") or []
        return uris[0] if uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = (self.metadata.get("scope") or " ".join(SCOPES)).split()
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.metadata.get("redirect_uris") or [])

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and hmac.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in (self.metadata.get("response_types") or ["code"])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.metadata.get("grant_types") or ["authorization_code"])


class Code(AuthorizationCodeMixin):
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at < time.time()


class Token(TokenMixin):
    """One access token and (optionally) the refresh token issued with it."""

    def __init__(self, **fields: Any) -> None:
        self.access_revoked = False
        self.refresh_spent = False
        self.__dict__.update(fields)

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.issued_at + self.expires_in < time.time()

    def is_revoked(self) -> bool:
        return self.access_revoked or self.family in STORE.revoked_families

    def get_user(self) -> User:
        return USER

    def get_client(self) -> Client:
        return STORE.clients[self.client_id]


class Store:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.by_access: dict[str, Token] = {}
        self.by_refresh: dict[str, Token] = {}
        self.revoked_families: set[str] = set()


STORE = Store()


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, unknown or malformed."""

    error = "invalid_target"


# ---------------------------------------------------------------------------------------------
# Authorization server
# ---------------------------------------------------------------------------------------------

METADATA: dict[str, Any] = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "registration_endpoint": f"{ISSUER}/register",
    "revocation_endpoint": f"{ISSUER}/revoke",
    "scopes_supported": SCOPES,
    "response_types_supported": ["code"],
    "response_modes_supported": ["query"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_methods_supported": AUTH_METHODS,
    "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
    "code_challenge_methods_supported": ["S256"],
    "authorization_response_iss_parameter_supported": True,
}


class S256CodeChallenge(CodeChallenge):
    """PKCE required for every client (not only public ones), S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE is required)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


def validate_resource_at_authorize(grant: Any, redirect_uri: str) -> None:
    """Hook after Authlib validated the authorization request (errors redirect to the client)."""
    resource = grant.request.payload.data.get("resource")
    if not resource:
        if REQUIRE_RESOURCE:
            raise InvalidTargetError("the resource parameter is required")
    elif not same_resource(resource, MCP_URL):
        raise InvalidTargetError(f"unknown resource {resource}")


def check_token_resource(bound: str | None) -> None:
    resource = request.form.get("resource")
    if resource and not (bound and same_resource(resource, bound)):
        raise InvalidTargetError(f"resource {resource} was not granted")


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_hook("after_validate_authorization_request_payload", validate_resource_at_authorize)

    def save_authorization_code(self, code: str, req: Any) -> None:
        data = req.payload.data
        with LOCK:
            STORE.codes[code] = Code(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.client.get_allowed_scope(req.payload.scope),
                user_id=req.user.id,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                resource=data.get("resource") or MCP_URL,
                family=secrets.token_hex(8),
                expires_at=time.time() + CODE_TTL,
            )
        bump(STATS, "authorizations")

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        with LOCK:
            found = STORE.codes.get(code)
        if found and found.client_id == client.client_id and not found.is_expired():
            return found
        return None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        with LOCK:
            STORE.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> User:
        return USER

    def validate_token_request(self) -> None:
        super().validate_token_request()
        check_token_resource(self.request.authorization_code.resource)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        with LOCK:
            token = STORE.by_refresh.get(refresh_token)
            if token is None or token.family in STORE.revoked_families:
                return None
            if token.refresh_spent:
                # Reuse of a rotated-out refresh token: revoke the whole family.
                STORE.revoked_families.add(token.family)
                STATS["refresh_reuse_detected"] += 1
                print(f"[authlib-as] refresh token reuse: family {token.family} revoked", file=sys.stderr)
                return None
            return token

    def authenticate_user(self, refresh_token: Token) -> User:
        return USER

    def revoke_old_credential(self, refresh_token: Token) -> None:
        with LOCK:
            refresh_token.refresh_spent = True

    def validate_token_request(self) -> None:
        super().validate_token_request()
        check_token_resource(self.request.refresh_token.resource)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        with LOCK:
            lookups = [STORE.by_access, STORE.by_refresh]
            if token_type_hint == "refresh_token":
                lookups.reverse()
            for table in lookups:
                if token_string in table:
                    return table[token_string]
        return None

    def revoke_token(self, token: Token, req: Any) -> None:
        # Counted only when something was still valid (the SDK peer counts the same way).
        with LOCK:
            if token.family in STORE.revoked_families:
                return
            if req.form["token"] == token.access_token:
                if not token.access_revoked:
                    token.access_revoked = True
                    STATS["revocations"]["access_token"] += 1
            else:
                STORE.revoked_families.add(token.family)
                STATS["revocations"]["refresh_token"] += 1


class Registration(ClientRegistrationEndpoint):
    def authenticate_token(self, req: Any) -> bool:
        return True  # open registration: no initial access token

    def get_server_metadata(self) -> dict[str, Any]:
        return METADATA

    def generate_client_info(self, req: Any) -> dict[str, Any]:
        info = super().generate_client_info(req)
        if (req.payload.data or {}).get("token_endpoint_auth_method") == "none":
            # A public client gets no secret (RFC 7591 §3.2.1 then wants no expiry either).
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], req: Any) -> Client:
        client = Client(client_info, client_metadata)
        with LOCK:
            STORE.clients[client.client_id] = client
            STATS["registrations"] += 1
        bump(STATS["registration_auth_methods"], client.auth_method)
        return client


def query_client(client_id: str) -> Client | None:
    with LOCK:
        return STORE.clients.get(client_id)


def save_token(token: dict[str, Any], req: Any) -> None:
    source = req.refresh_token or req.authorization_code  # the grant being exchanged
    record = Token(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        token_type=token.get("token_type", "Bearer"),
        scope=token.get("scope", ""),
        expires_in=int(token["expires_in"]),
        issued_at=int(time.time()),
        client_id=req.client.client_id,
        user_id=USER_ID,
        resource=source.resource,
        family=source.family,
    )
    with LOCK:
        STORE.by_access[record.access_token] = record
        if record.refresh_token:
            STORE.by_refresh[record.refresh_token] = record


class Issuer(IssuerParameter):
    def get_issuer(self) -> str:
        return ISSUER


app.config.update(
    OAUTH2_SCOPES_SUPPORTED=SCOPES,
    OAUTH2_REFRESH_TOKEN_GENERATOR=True,
    OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": ACCESS_TOKEN_TTL, "refresh_token": ACCESS_TOKEN_TTL},
)
authorization = AuthorizationServer(app, query_client=query_client, save_token=save_token)
authorization.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
authorization.register_grant(RefreshTokenGrant)
authorization.register_endpoint(Revocation)
authorization.register_endpoint(Registration)
authorization.register_extension(Issuer())


@app.get("/.well-known/oauth-authorization-server")
def metadata() -> Any:
    return jsonify(METADATA)


@app.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    # Auto-approval: user-1 grants everything at once, no login or consent page.
    try:
        grant = authorization.get_consent_grant(end_user=USER)
    except OAuth2Error as error:
        response = authorization.handle_error_response(request, error)
        if response.location:  # RFC 9207: error redirects carry iss as well
            response.location = add_params_to_uri(response.location, {"iss": ISSUER})
        return response
    return authorization.create_authorization_response(grant_user=USER, grant=grant)


@app.post("/token")
def token() -> Any:
    return authorization.create_token_response()


@app.post("/revoke")
def revoke() -> Any:
    return authorization.create_endpoint_response(Revocation.ENDPOINT_NAME)


@app.post("/register")
def register() -> Any:
    return authorization.create_endpoint_response(Registration.ENDPOINT_NAME)


@app.get("/__stats")
def stats() -> Any:
    with LOCK:
        return jsonify(json.loads(json.dumps(STATS)))


@app.before_request
def count_request() -> None:
    path, method = request.path, request.method
    if path == "/register" and method == "POST":
        bump(STATS, "registration_requests")
    elif path == "/authorize":
        bump(STATS, "authorization_requests")
        bump(STATS["resource_param"]["authorize"], "present" if request.values.get("resource") else "absent")
    elif path == "/revoke" and method == "POST":
        bump(STATS, "revocation_requests")
    elif path == "/token" and method == "POST":
        form = request.form
        basic = request.headers.get("Authorization", "").lower().startswith("basic ")
        with LOCK:
            STATS["token_requests"] += 1
            auth = STATS["token_auth"]
            auth["basic_header"] += basic
            auth["client_secret_in_body"] += "client_secret" in form
            auth["client_id_in_body"] += "client_id" in form
            auth["client_id_missing_from_body"] += "client_id" not in form
        seen = "client_secret_basic" if basic else "client_secret_post" if "client_secret" in form else "none"
        bump(STATS["token_auth_methods"], seen)
        bump(STATS["resource_param"]["token"], "present" if "resource" in form else "absent")


@app.after_request
def count_response(response: Any) -> Any:
    if request.method != "POST" or request.path not in ("/token", "/revoke"):
        return response
    try:
        answer = json.loads(response.get_data() or b"{}")
    except ValueError:
        answer = {}
    error = str(answer.get("error", response.status_code)) if isinstance(answer, dict) else str(response.status_code)
    if request.path == "/token":
        if response.status_code == 200:
            bump(STATS["token_grants"], request.form.get("grant_type", "?"))
        else:
            bump(STATS["token_errors"], error)
            bump(STATS, "token_error_count")
    elif response.status_code != 200:
        bump(STATS["revocation_errors"], error)
    return response


# ---------------------------------------------------------------------------------------------
# MCP resource server (MCP Python SDK)
# ---------------------------------------------------------------------------------------------


class AuthlibTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        with LOCK:
            return STORE.by_access.get(token_string)


class AuthlibTokenVerifier:
    """mcp TokenVerifier over the Authlib token store."""

    validator = AuthlibTokenValidator()

    async def verify_token(self, token: str) -> AccessToken | None:
        found = self.validator.authenticate_token(token)
        try:
            # Scopes are left to the SDK (required_scopes, 403 insufficient_scope).
            self.validator.validate_token(found, [], None)
        except OAuth2Error:
            return None
        assert found is not None
        return AccessToken(
            token=token,
            client_id=found.client_id,
            scopes=found.scope.split(),
            expires_at=found.issued_at + found.expires_in,
            resource=found.resource,  # checked against MCP_URL by validate_token_resource
            subject=found.user_id,
            claims={"iss": ISSUER, "sub": found.user_id},
        )


mcp_server = MCPServer(
    name="switchboard-test-peer-authlib-rs",
    version="1.0.0",
    token_verifier=AuthlibTokenVerifier(),
    auth=AuthSettings(
        issuer_url=ISSUER,  # type: ignore[arg-type]
        resource_server_url=MCP_URL,  # type: ignore[arg-type]
        required_scopes=REQUIRED_SCOPES,
        validate_token_resource=True,
    ),
    log_level=LOG_LEVEL,  # type: ignore[arg-type]
)


@mcp_server.tool(description="Returns the given text unchanged.")
def echo(text: str) -> str:
    return text


@mcp_server.tool(description="Returns the subject of the access token used for this call.")
def whoami(ctx: Context) -> str:
    token = get_access_token()  # see the same tool in mcp_sdk_as.py
    if token is None:
        req = ctx.request_context.request
        user = getattr(req, "user", None) if req is not None else None
        token = getattr(user, "access_token", None)
    return str(getattr(token, "subject", None) or "")


class McpStats:
    """Counts /mcp requests and their 401/403 answers (pure ASGI)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await self.inner(scope, receive, send)
            return
        bump(STATS, "mcp_requests")

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                bump(STATS, "mcp_unauthorized")
            await send(message)

        await self.inner(scope, receive, watch)


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
    if str(AuthSettings(issuer_url=ISSUER, resource_server_url=None).issuer_url) != ISSUER:  # type: ignore[arg-type]
        raise SystemExit("AuthSettings changed the issuer")
    threading.Thread(target=AS_SERVER.serve_forever, name="authlib-as", daemon=True).start()
    config = uvicorn.Config(
        McpStats(mcp_server.streamable_http_app(host=HOST)),
        log_config=None,
        log_level=LOG_LEVEL.lower(),
        access_log=False,
        lifespan="on",
    )
    userver = USERVER = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(userver.serve, [MCP_SOCK])
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
                        "library": "authlib",
                        "version": package_version("authlib"),
                        "mcp_version": package_version("mcp"),
                        "as_port": AS_PORT,
                        "mcp_port": MCP_PORT,
                    }
                )
                + "\n"
            )
            READY_OUT.flush()
    finally:
        AS_SERVER.shutdown()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=LOG_LEVEL, format="[authlib-as] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(LOG_LEVEL)  # its per-request lines are INFO
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        anyio.run(main)
    except (SystemExit, KeyboardInterrupt):
        pass
    sys.exit(0)
