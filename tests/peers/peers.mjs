// Switchboard "real peers" test fixture.
//
// One Node process that runs, on 127.0.0.1 only:
//
//   * an OAuth 2.1 / OpenID Connect authorization server built on the real
//     `oidc-provider` library (Dynamic Client Registration, PKCE S256, RFC 8707
//     resource indicators with JWT access tokens, rotating refresh tokens), with
//     login and consent auto-approved so that a headless HTTP client can run the
//     authorization code flow without a browser;
//   * an MCP server built on the real `@modelcontextprotocol/sdk` (Streamable
//     HTTP transport) at /mcp, protected by bearer tokens issued by that
//     authorization server, advertising it through RFC 9728 Protected Resource
//     Metadata.
//
// Environment:
//   AS_PORT           authorization server port (default 0 = random)
//   MCP_PORT          MCP server port (default 0 = random)
//   ACCESS_TOKEN_TTL  access token lifetime in seconds (default 3600); lower it
//                     to exercise refresh-on-expiry paths
//   LOGIN_PAGE        "1": instead of auto-approving, the authorization server
//                     shows a sign-in and consent page (user-1 / password
//                     "pass", then Approve or Deny) for a real browser
//   NO_REGISTRATION   "1": no Dynamic Client Registration (no registration_endpoint)
//   STATIC_CLIENT     "1": a pre-registered public client `fixed-public` whose only
//                     redirect URI is https://app.example.com/oauth/callback
//   CLIENT_CREDENTIALS "1": the client credentials grant, for clients registered with it
//
// Two MCP servers share the one authorization server: /mcp (resource A) and
// /b/mcp (resource B), each with its own protected resource metadata and each
// accepting only tokens whose `aud` is exactly its own resource.
//
// Protocol with the test harness:
//   * when both servers listen, exactly one line of JSON is written to stdout:
//       {"issuer": "...", "mcp_url": "...", "prm_url": "...", "mcp_b_url": "...", "as_port": N, "mcp_port": N}
//   * everything else (library notices, request errors) goes to stderr;
//   * SIGTERM / SIGINT close both servers and exit with status 0;
//   * GET <issuer>/__stats returns request counters (see `stats` below);
//   * POST <issuer>/__drop_sessions makes both MCP servers forget their sessions.
//
// See README.md next to this file for a complete curl walk-through.

import { randomUUID } from 'node:crypto';
import http from 'node:http';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';
import { z } from 'zod';

// stdout carries exactly one line (the "ready" JSON). oidc-provider prints its
// notices with console.info, so route every console method to stderr before
// anything else runs.
console.log = console.info = console.debug = console.error;

const HOST = '127.0.0.1';
const USER_ID = 'user-1'; // the fixed end-user every interaction logs in as
const OIDC_SCOPES = ['openid', 'offline_access']; // scopes owned by the AS itself
const MCP_SCOPES = ['mcp:read', 'mcp:write']; // scopes owned by the MCP resource
const REQUIRED_MCP_SCOPE = 'mcp:read'; // needed for any call to /mcp
const ACCESS_TOKEN_TTL = positiveInt(process.env.ACCESS_TOKEN_TTL, 3600);
const LOGIN_PAGE = process.env.LOGIN_PAGE === '1';
// Misconfigurations a tenant meets in the field, for troubleshooting tests:
// NO_REGISTRATION=1 turns Dynamic Client Registration off (no
// registration_endpoint in the metadata); STATIC_CLIENT=1 adds a pre-registered
// public client `fixed-public` whose only redirect URI is someone else's.
const NO_REGISTRATION = process.env.NO_REGISTRATION === '1';
const STATIC_CLIENT = process.env.STATIC_CLIENT === '1';
// CLIENT_CREDENTIALS=1 offers the client credentials grant (RFC 6749 §4.4) to
// clients registered with it, with the same resource-bound JWT access tokens.
const CLIENT_CREDENTIALS = process.env.CLIENT_CREDENTIALS === '1';
const PASSWORD = 'pass';

// Counters served at GET <issuer>/__stats, so tests can assert things such as
// "exactly one client registration" or "the token was refreshed once".
const stats = {
  registration_requests: 0, // every POST to the registration endpoint
  registrations: 0, // successful registrations (201)
  authorization_requests: 0, // every GET/POST to the authorization endpoint
  token_requests: 0, // every POST to the token endpoint
  token_grants: {}, // successful token responses, by grant_type
  token_errors: 0, // token endpoint error responses
  mcp_requests: 0, // every request to /mcp
  mcp_unauthorized: 0, // /mcp requests rejected with 401/403
  // Per MCP path ("/mcp", "/b/mcp"): the `aud` of every bearer token presented
  // there, valid or not, counted (read from the JWT without trusting it).
  audiences_presented: {},
};

function positiveInt(value, fallback) {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function portFromEnv(name) {
  const n = Number.parseInt(process.env[name] ?? '0', 10);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid ${name}: ${process.env[name]}`);
  return n;
}

function sendJson(res, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Both servers are created and bound first: with port 0 the real ports (and so
// the issuer and the resource URLs) are only known once they listen. Requests
// are dispatched through `handlers`, filled in once everything is configured
// (just before the ready line); anything arriving earlier gets a 503.
const handlers = {};
function dispatch(name) {
  return (req, res) => {
    if (handlers[name]) handlers[name](req, res);
    else sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'starting up' });
  };
}
const asServer = http.createServer(dispatch('as'));
const mcpServer = http.createServer(dispatch('mcp'));


// Clean exit on SIGTERM / SIGINT, installed before anything slow happens so a
// harness that gives up early still gets status 0.
let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`[peers] ${signal}: shutting down`);
  let transports = [];
  try { // RESOURCES exists only once both servers listen
    transports = [...RESOURCES.values()].flatMap((r) => [...r.sessions.values()]);
  } catch { /* stopping before start-up finished */ }
  await Promise.allSettled(transports.map((t) => t.close()));
  for (const server of [asServer, mcpServer]) {
    server.close();
    server.closeAllConnections();
  }
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve(server.address().port));
  });
}

const asPort = await listen(asServer, portFromEnv('AS_PORT'));
const mcpPort = await listen(mcpServer, portFromEnv('MCP_PORT'));

const ISSUER = `http://${HOST}:${asPort}`;
const MCP_BASE = `http://${HOST}:${mcpPort}`;
const MCP_RESOURCE = `${MCP_BASE}/mcp`; // RFC 8707 resource indicator == token audience
const PRM_PATH = '/.well-known/oauth-protected-resource/mcp'; // RFC 9728 path for /mcp
const PRM_URL = `${MCP_BASE}${PRM_PATH}`;
// The MCP servers by path: resource A at /mcp, resource B at /b/mcp.
const RESOURCES = new Map(['/mcp', '/b/mcp'].map((path) => [path, {
  path,
  resource: `${MCP_BASE}${path}`,
  prmPath: `/.well-known/oauth-protected-resource${path}`,
  sessions: new Map(),
}]));
const KNOWN_RESOURCES = [...RESOURCES.values()].map((r) => r.resource);

// ---------------------------------------------------------------------------
// Authorization server (oidc-provider)
// ---------------------------------------------------------------------------

// A fresh RS256 signing key per process; published at <issuer>/jwks and used
// both for ID tokens and for the JWT access tokens the MCP server verifies.
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(ISSUER, {
  // Plain http on loopback: oidc-provider accepts any web URI as the issuer;
  // nothing else is needed as long as no cookie is marked `secure` (the
  // library only does that when the request itself came over TLS). Cookies are
  // left unsigned (no `cookies.keys`), which the resume shim below relies on.
  jwks: { keys: [signingJwk] },

  // Dynamic Client Registration (RFC 7591) is open: no initial access token.
  // Clients default to the confidential `client_secret_basic` method, but may
  // register `client_secret_post` or `none` (public client) instead.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  responseTypes: ['code'], // OAuth 2.1: authorization code flow only
  clients: STATIC_CLIENT ? [{
    client_id: 'fixed-public',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['https://app.example.com/oauth/callback'],
  }] : [],

  // PKCE is required for every client, and oidc-provider only implements S256
  // (the metadata advertises `code_challenge_methods_supported: ["S256"]`).
  pkce: { required: () => true },

  // Scopes the AS knows (advertised as `scopes_supported`). The MCP scopes
  // are first of all Resource Server scopes (getResourceServerInfo below
  // decides what goes into the /mcp access token), but they are listed here
  // too: oidc-provider validates a registration's `scope` metadata against this
  // list, and MCP clients (the official SDK among them) register with e.g.
  // `"scope": "mcp:read"` taken from the 401 challenge.
  scopes: [...OIDC_SCOPES, ...MCP_SCOPES],

  // The single end-user. Every interaction logs in as USER_ID.
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },

  features: {
    // The built-in development login/consent pages need form posts; they are
    // replaced by the auto-approving /interaction/:uid handler below.
    devInteractions: { enabled: false },
    registration: { enabled: !NO_REGISTRATION, initialAccessToken: false },
    revocation: { enabled: true },
    clientCredentials: { enabled: CLIENT_CREDENTIALS },
    // The MCP server does not verify DPoP proofs, so do not offer DPoP.
    dPoP: { enabled: false },

    // RFC 8707 resource indicators. The only known resource is the MCP
    // endpoint; its access tokens are JWTs (RFC 9068, typ "at+jwt") whose
    // `aud` is the resource URL and whose `scope` is the granted subset of
    // mcp:read / mcp:write. Any other resource value is rejected with
    // `invalid_target`. A request without `resource` gets no default (so an
    // access token for /mcp is only ever issued when the client asked for it,
    // as the MCP authorization spec requires); at the token endpoint
    // oidc-provider falls back to the resource bound to the code/refresh token
    // when `resource` is omitted and `openid` was not requested.
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (!KNOWN_RESOURCES.includes(resourceIndicator)) {
          throw new errors.InvalidTarget(`unknown resource: ${resourceIndicator}`);
        }
        return {
          scope: MCP_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ACCESS_TOKEN_TTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },

  // Refresh tokens: issued to every client registered with the refresh_token
  // grant (the OIDC default additionally requires `offline_access`, which
  // oidc-provider strips from requests that lack prompt=consent; MCP clients do
  // not send that). Rotation is always on: each refresh returns a new refresh
  // token and the old one is consumed (re-using it revokes the grant).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,

  // Interactions: oidc-provider redirects the user agent to this URL whenever
  // login or consent is needed. Our own handler at /interaction/:uid approves
  // everything (see `autoApprove`).
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },

  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
  },

  // No browser is involved: no CORS, and errors that cannot be redirected to
  // the client (e.g. an unknown redirect_uri) are rendered as JSON.
  clientBasedCORS: () => false,
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('registration_create.success', () => { stats.registrations += 1; });
provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params?.grant_type ?? 'unknown';
  stats.token_grants[type] = (stats.token_grants[type] ?? 0) + 1;
});
provider.on('grant.error', (_ctx, err) => {
  stats.token_errors += 1;
  console.error(`[as] token error: ${err.error ?? err.name}: ${err.error_description ?? err.message}`);
});
for (const event of ['authorization.error', 'registration_create.error', 'server_error']) {
  provider.on(event, (_ctx, err) => console.error(`[as] ${event}: ${err.error ?? err.name}: ${err.error_description ?? err.message}`));
}

// Auto-approval of login + consent, replacing devInteractions.
//
// oidc-provider starts an interaction by redirecting (303) to
// /interaction/<uid>. This handler, reached by a plain GET, immediately
//   1. loads the interaction by the uid in the path (not by its cookie),
//   2. creates (or extends) a Grant for USER_ID and the client covering all
//      requested known scopes (oidc-provider checks the mcp:* ones there too,
//      since they are in `scopes`) and, for the requested MCP resource, the
//      requested mcp:* scopes (what ends up in the JWT access token),
//   3. stores the result {login: USER_ID, consent: grantId} on the interaction
//      (what provider.interactionFinished() does) and redirects (303) to the
//      interaction's returnTo URL (<issuer>/auth/<uid>), where oidc-provider
//      resumes the authorization request and redirects to the client's
//      redirect_uri with `code`, `state` and `iss`.
// Login and consent are answered in one go, so there is a single interaction
// per authorization request: GET /auth -> 303 /interaction/<uid> -> 303
// /auth/<uid> -> 303 <redirect_uri>?code=...
async function autoApprove(res, uid) {
  const interaction = await provider.Interaction.find(uid);
  if (!interaction) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'interaction not found or expired' });
    return;
  }
  const { params } = interaction;
  const requested = new Set(String(params.scope ?? '').split(' ').filter(Boolean));

  let grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  grant ??= new provider.Grant({ accountId: USER_ID, clientId: params.client_id });

  const knownScopes = [...OIDC_SCOPES, ...MCP_SCOPES].filter((s) => requested.has(s));
  if (knownScopes.length) grant.addOIDCScope(knownScopes.join(' '));

  const resources = [params.resource ?? []].flat();
  const mcpScopes = MCP_SCOPES.filter((s) => requested.has(s));
  for (const resource of resources) {
    if (KNOWN_RESOURCES.includes(resource) && mcpScopes.length) {
      grant.addResourceScope(resource, mcpScopes.join(' '));
    }
  }

  const grantId = await grant.save();
  interaction.result = { login: { accountId: USER_ID }, consent: { grantId } };
  await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));

  res.writeHead(303, { location: interaction.returnTo, 'content-length': 0 });
  res.end();
}

// The LOGIN_PAGE=1 variant: a sign-in and consent page a real browser fills in.
// GET shows the form (self-contained HTML, no scripts); POST checks the
// password and either approves (as above) or records access_denied.
const escapeHtml = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
async function loginPage(res, uid, message = '') {
  const interaction = await provider.Interaction.find(uid);
  if (!interaction) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'interaction not found or expired' });
    return;
  }
  const { params } = interaction;
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>Sign in to the test provider</title></head>
<body><h1>Sign in</h1><p id="message">${escapeHtml(message)}</p>
<p><b>${escapeHtml(params.client_id)}</b> asks for <b id="scopes">${escapeHtml(params.scope ?? '')}</b>
on <b id="resource">${escapeHtml([params.resource ?? []].flat().join(' '))}</b>.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}">
<label>User <input name="login" id="login" autocomplete="off"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" name="decision" value="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form></body></html>`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) });
  res.end(page);
}

async function loginSubmit(req, res, uid) {
  const form = new URLSearchParams(await readBody(req));
  if (form.get('decision') === 'deny') {
    const interaction = await provider.Interaction.find(uid);
    if (!interaction) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'interaction not found or expired' });
      return;
    }
    interaction.result = { error: 'access_denied', error_description: 'the user declined' };
    await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
    res.writeHead(303, { location: interaction.returnTo, 'content-length': 0 });
    res.end();
    return;
  }
  if (form.get('login') !== USER_ID || form.get('password') !== PASSWORD) {
    await loginPage(res, uid, 'Wrong user or password.');
    return;
  }
  await autoApprove(res, uid);
}

// oidc-provider binds the resume step (/auth/<uid>) to the user agent with a
// short-lived `_interaction_resume` cookie. A cookie-less HTTP client (e.g. a
// plain redirect-following client without a cookie jar) would fail there with
// "authorization request has expired". For this test fixture only, the cookie
// is supplied from the uid in the path when the client did not send it, so the
// flow works with or without a cookie jar. Clients that keep cookies are
// unaffected (and additionally keep a login session for USER_ID).
const RESUME_COOKIE = provider.cookieName('resume');
function supplyResumeCookie(req, pathname) {
  const m = /^\/auth\/([\w-]+)$/.exec(pathname);
  if (!m) return;
  const cookies = req.headers.cookie ?? '';
  if (cookies.split(/;\s*/).some((c) => c.startsWith(`${RESUME_COOKIE}=`))) return;
  req.headers.cookie = [cookies, `${RESUME_COOKIE}=${m[1]}`].filter(Boolean).join('; ');
}

const providerCallback = provider.callback();
const INTERACTION_PATH = /^\/interaction\/([\w-]+)$/;

handlers.as = async (req, res) => {
  try {
    const url = new URL(req.url, ISSUER);
    const { pathname } = url;

    if (pathname === '/__stats' && req.method === 'GET') {
      sendJson(res, 200, stats);
      return;
    }
    // Test hook: the MCP servers forget every session (as after a restart), so a client's next
    // request on one gets the spec's 404.
    if (pathname === '/__drop_sessions' && req.method === 'POST') {
      const dropped = [...RESOURCES.values()].reduce((n, r) => n + r.sessions.size, 0);
      for (const r of RESOURCES.values()) r.sessions.clear();
      sendJson(res, 200, { dropped });
      return;
    }
    const interaction = INTERACTION_PATH.exec(pathname);
    if (interaction && req.method === 'GET') {
      await (LOGIN_PAGE ? loginPage(res, interaction[1]) : autoApprove(res, interaction[1]));
      return;
    }
    if (interaction && req.method === 'POST' && LOGIN_PAGE) {
      await loginSubmit(req, res, interaction[1]);
      return;
    }

    if (pathname === '/reg' && req.method === 'POST') stats.registration_requests += 1;
    if (pathname === '/auth') stats.authorization_requests += 1;
    if (pathname === '/token' && req.method === 'POST') stats.token_requests += 1;

    // RFC 8414 metadata: oidc-provider serves only the OIDC discovery path,
    // so the RFC 8414 path is answered by the very same route.
    if (pathname === '/.well-known/oauth-authorization-server') {
      req.url = `/.well-known/openid-configuration${url.search}`;
    }
    supplyResumeCookie(req, pathname);

    providerCallback(req, res);
  } catch (err) {
    console.error('[as] handler error:', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  }
};

// ---------------------------------------------------------------------------
// MCP server (@modelcontextprotocol/sdk, Streamable HTTP, stateful sessions)
// ---------------------------------------------------------------------------

// Tokens are verified with the AS's published JWKS (fetched over HTTP from
// jwks_uri like any resource server would), plus iss, aud == resource, exp.
const jwks = createRemoteJWKSet(new URL(`${ISSUER}/jwks`));

const protectedResourceMetadata = (r) => ({
  resource: r.resource,
  authorization_servers: [ISSUER],
  scopes_supported: MCP_SCOPES,
  bearer_methods_supported: ['header'],
});

// Exactly the challenge the brief specifies for a request without a token; an
// invalid token additionally gets RFC 6750 error attributes.
const challengeFor = (r) => `Bearer resource_metadata="${MCP_BASE}${r.prmPath}", scope="${REQUIRED_MCP_SCOPE}"`;

function reject(res, r, status, error, description) {
  stats.mcp_unauthorized += 1;
  const CHALLENGE = challengeFor(r);
  const challenge = error
    ? `${CHALLENGE}, error="${error}", error_description="${description.replace(/["\\]/g, '')}"`
    : CHALLENGE;
  const body = { error: error ?? 'unauthorized', error_description: description };
  sendJson(res, status, body, { 'www-authenticate': challenge });
}

// Returns the SDK's AuthInfo for a valid bearer token, or answers the request
// with 401/403 and returns undefined.
async function authenticate(req, res, r) {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer ([^\s]+)$/i.exec(header);
  if (!match) {
    reject(res, r, 401, undefined, 'bearer token required');
    return undefined;
  }
  let aud = 'unreadable';
  try { aud = String(decodeJwt(match[1]).aud); } catch { /* not a JWT */ }
  const seen = (stats.audiences_presented[r.path] ??= {});
  seen[aud] = (seen[aud] ?? 0) + 1;
  let payload;
  try {
    ({ payload } = await jwtVerify(match[1], jwks, {
      issuer: ISSUER,
      audience: r.resource,
      typ: 'at+jwt',
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    reject(res, r, 401, 'invalid_token', `token rejected: ${err.code ?? err.message}`);
    return undefined;
  }
  if (payload.aud !== r.resource) { // a single audience, exactly the resource
    reject(res, r, 401, 'invalid_token', 'token audience is not this resource');
    return undefined;
  }
  const scopes = String(payload.scope ?? '').split(' ').filter(Boolean);
  if (!scopes.includes(REQUIRED_MCP_SCOPE)) {
    reject(res, r, 403, 'insufficient_scope', `scope ${REQUIRED_MCP_SCOPE} required`);
    return undefined;
  }
  return {
    token: match[1],
    clientId: String(payload.client_id ?? ''),
    scopes,
    expiresAt: payload.exp,
    resource: new URL(r.resource),
    extra: { sub: payload.sub },
  };
}

// One McpServer + transport per MCP session (Mcp-Session-Id).
function createMcpServer() {
  const server = new McpServer({ name: 'switchboard-test-peer', version: '1.0.0' });
  server.registerTool('echo', {
    description: 'Returns the given text unchanged.',
    inputSchema: { text: z.string() },
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('whoami', {
    description: 'Returns the subject (sub) of the access token used for this call.',
  }, async (extra) => ({ content: [{ type: 'text', text: String(extra.authInfo?.extra?.sub ?? '') }] }));
  return server;
}

async function handleMcp(req, res, r) {
  const { sessions } = r;
  stats.mcp_requests += 1;
  const auth = await authenticate(req, res, r);
  if (!auth) return;
  req.auth = auth; // read by the SDK transport and passed to tools as extra.authInfo

  const sessionId = req.headers['mcp-session-id'];
  let body;
  if (req.method === 'POST') {
    const raw = await readBody(req);
    try {
      body = JSON.parse(raw);
    } catch {
      sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
      return;
    }
  }

  let transport = sessionId ? sessions.get(sessionId) : undefined;
  if (sessionId && !transport) {
    sendJson(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
    return;
  }
  if (!transport) {
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => { sessions.set(id, transport); },
    });
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await createMcpServer().connect(transport);
  }
  await transport.handleRequest(req, res, body);
}

handlers.mcp = async (req, res) => {
  try {
    const { pathname } = new URL(req.url, MCP_BASE);
    const byPrm = [...RESOURCES.values()].find((r) => r.prmPath === pathname);
    if (byPrm && req.method === 'GET') {
      sendJson(res, 200, protectedResourceMetadata(byPrm));
    } else if (RESOURCES.has(pathname)) {
      await handleMcp(req, res, RESOURCES.get(pathname));
    } else {
      // Includes the root /.well-known/oauth-protected-resource: only the
      // path-suffixed metadata document exists.
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    console.error('[mcp] handler error:', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    else res.destroy();
  }
};

// ---------------------------------------------------------------------------
// Ready line
// ---------------------------------------------------------------------------

process.stdout.write(`${JSON.stringify({
  issuer: ISSUER,
  mcp_url: MCP_RESOURCE,
  prm_url: PRM_URL,
  mcp_b_url: RESOURCES.get('/b/mcp').resource,
  as_port: asPort,
  mcp_port: mcpPort,
})}\n`);

