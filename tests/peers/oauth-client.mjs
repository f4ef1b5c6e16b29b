// A stock MCP client that authorizes itself with the SDK's own OAuth support, for driving
// Switchboard's gateway as an OAuth authorization server (or peers.mjs's authorization server)
// from tests and by hand:
//
//   node oauth-client.mjs <mcp url> [--cimd URL] [--call TOOL [--args JSON]] [--refresh] [--reuse]
//                                   [--revoke] [--timeout MS]
//
// It is `Client` + `StreamableHTTPClientTransport` with an `authProvider` (the SDK's
// OAuthClientProvider interface, everything kept in memory). The first connect gets a 401; the SDK
// discovers the authorization server (RFC 9728 + RFC 8414), registers the client (Dynamic Client
// Registration, or a Client ID Metadata Document with --cimd when the server advertises
// client_id_metadata_document_supported) and sends the user agent to the authorization endpoint.
// The user agent is emulated headlessly: redirects (301/302/303/307/308) are followed with a
// cookie jar per origin, and an HTML page with a `<form method="post">` (a consent page) is
// submitted with its hidden inputs plus decision=allow, until the redirect to the client's
// redirect_uri (http://127.0.0.1:<random port>/callback, nothing listens there). Its `code` goes to
// transport.finishAuth(), `state` is checked against the one the SDK sent, `iss` against the
// authorization server's issuer, and a new transport + client connects with the access token.
// Then it lists every tool (following nextCursor) and optionally calls one. It prints exactly one
// line of JSON on stdout (token values are never printed):
//
//   {"client_id":"...","registration":"dcr"|"cimd","visited":["<url without query>",...],
//    "forms_submitted":0,"iss":"..."|null,"iss_ok":true|false|null,"state_ok":true,
//    "authorization_server":"<issuer>","scope":"..."|null,"resource":"..."|null,
//    "tools":["..."],"call":{...CallToolResult...}|null,"token_type":"Bearer","expires_in":3600,
//    "refreshed":false,"rotated":null,"tools_after_refresh":null,"sdk_refreshes":0,
//    "reuse_error":null,"after_reuse_error":null,"access_after_reuse_status":null,
//    "revoke_status":null,"revoke_access_status":null,"access_after_revoke_status":null,
//    "refresh_after_revoke_error":null}
//
// or {"error":"...","visited":[...]} (and exit status 1) on failure. `visited` lists every URL the
// emulated user agent requested, ending with the redirect_uri it was sent to; `scope` and
// `resource` are what the SDK put in the authorization request; `sdk_refreshes` counts refreshes
// the SDK did on its own (after a 401 to a stored access token). Options:
//   --cimd URL    client_id = URL (a Client ID Metadata Document the test serves there). The SDK
//                 only accepts an https clientMetadataUrl; for a plain-http URL the provider hands
//                 the SDK {client_id: URL} itself, under the very condition the SDK uses
//                 (metadata says client_id_metadata_document_supported: true; otherwise DCR).
//   --call TOOL   call TOOL with --args (a JSON object, default {})
//   --refresh     refresh with the SDK's refreshAuthorization (resource = <mcp url>), then list
//                 the tools with a new transport + client on the new access token: "refreshed",
//                 "rotated" (the refresh token changed), "tools_after_refresh"
//   --reuse       (implies --refresh) then present the old, rotated refresh token again
//                 ("reuse_error": the error code, e.g. invalid_grant, or null if it worked), then
//                 the new one ("after_reuse_error"), then POST initialize with the latest access
//                 token ("access_after_reuse_status": the HTTP status)
//   --revoke      revoke the refresh token, then the access token, at the revocation_endpoint
//                 ("revoke_status", "revoke_access_status"), POST initialize with the access token
//                 ("access_after_revoke_status", 401 expected), refresh with the revoked refresh
//                 token ("refresh_after_revoke_error")
//   --timeout MS  timeout of each request (default 30000)

import { randomBytes, randomInt } from 'node:crypto';

import {
  refreshAuthorization,
  UnauthorizedError,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { OAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

// stdout carries exactly one line; anything the libraries print goes to stderr.
console.log = console.info = console.debug = console.error;

const USAGE = 'usage: node oauth-client.mjs <mcp url> [--cimd URL] [--call TOOL [--args JSON]] [--refresh] [--reuse] [--revoke] [--timeout MS]';
const PROTOCOL_VERSION = '2025-11-25';
const MAX_HOPS = 30; // requests the emulated user agent makes for one authorization

function usage(message) {
  process.stdout.write(`${JSON.stringify({ error: `${message}\n${USAGE}`, visited: [] })}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { url: undefined, cimd: undefined, call: undefined, args: {}, refresh: false, reuse: false, revoke: false, timeout: 30_000 };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--cimd': opts.cimd = value(); break;
      case '--call': opts.call = value(); break;
      case '--args': {
        const raw = value();
        try {
          opts.args = JSON.parse(raw);
        } catch {
          usage(`--args is not JSON: ${raw}`);
        }
        if (typeof opts.args !== 'object' || opts.args === null || Array.isArray(opts.args)) usage('--args must be a JSON object');
        break;
      }
      case '--refresh': opts.refresh = true; break;
      case '--reuse': opts.reuse = true; opts.refresh = true; break;
      case '--revoke': opts.revoke = true; break;
      case '--timeout': opts.timeout = Number(value()); break;
      default:
        if (a.startsWith('--') || opts.url !== undefined) usage(`unexpected argument: ${a}`);
        opts.url = a;
    }
  }
  if (!opts.url) usage('missing <mcp url>');
  if (!URL.canParse(opts.url)) usage(`not a URL: ${opts.url}`);
  if (opts.cimd !== undefined && !URL.canParse(opts.cimd)) usage(`--cimd is not a URL: ${opts.cimd}`);
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('--timeout must be a positive number');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const visited = [];
const out = {
  client_id: null,
  registration: null,
  visited,
  forms_submitted: 0,
  iss: null,
  iss_ok: null,
  state_ok: null,
  authorization_server: null,
  scope: null,
  resource: null,
  tools: [],
  call: null,
  token_type: null,
  expires_in: null,
  refreshed: false,
  rotated: null,
  tools_after_refresh: null,
  sdk_refreshes: 0,
  reuse_error: null,
  after_reuse_error: null,
  access_after_reuse_status: null,
  revoke_status: null,
  revoke_access_status: null,
  access_after_revoke_status: null,
  refresh_after_revoke_error: null,
};

/** A URL as recorded in `visited`: no query, no fragment. */
const bare = (url) => {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
};

/** The message of an error, with the OAuth error code in front for the SDK's OAuthErrors. */
function describe(err) {
  if (err instanceof OAuthError) return err.message ? `${err.errorCode}: ${err.message}` : err.errorCode;
  if (!(err instanceof Error)) return String(err);
  // undici's "fetch failed" keeps the reason (ECONNREFUSED, timeout...) in `cause`.
  if (err instanceof TypeError && err.cause instanceof Error) return `${err.message} (${err.cause.message || err.cause.code})`;
  return err.message;
}

/** What a failed token request is recorded as: the OAuth error code, else the message. */
const errorCode = (err) => (err instanceof OAuthError ? err.errorCode : describe(err));

/** Runs one step; a failure becomes an Error whose message names the step. */
async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    throw new Error(`${name}: ${describe(err)}`, { cause: err });
  }
}

/** fetch with a per-request timeout, except for the long-lived standalone SSE stream (GET). */
const timedFetch = (input, init = {}) => {
  const sse = (init.method ?? 'GET').toUpperCase() === 'GET' && /text\/event-stream/.test(new Headers(init.headers).get('accept') ?? '');
  if (sse) return fetch(input, init);
  const timeout = AbortSignal.timeout(opts.timeout);
  return fetch(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
};

// ---------------------------------------------------------------------------
// The emulated user agent
// ---------------------------------------------------------------------------

const NAMED_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
function unescapeHtml(text) {
  return text.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (entity, body) => {
    if (body[0] !== '#') return NAMED_ENTITIES[body.toLowerCase()] ?? entity;
    const code = body[1] === 'x' || body[1] === 'X' ? Number.parseInt(body.slice(2), 16) : Number.parseInt(body.slice(1), 10);
    try {
      return String.fromCodePoint(code);
    } catch {
      return entity;
    }
  });
}

/** The attributes of a start tag's inside (`name="v" name='v' name=v name`), names lower-cased. */
function attributes(text) {
  const attrs = {};
  for (const m of text.matchAll(/([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    const name = m[1].toLowerCase();
    if (!(name in attrs)) attrs[name] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/** The first `<form method="post">` of a page: its action (raw) and its hidden fields. */
function findPostForm(html) {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)(?:<\/form\s*>|$)/gi)) {
    const attrs = attributes(m[1]);
    if ((attrs.method ?? 'get').toLowerCase() !== 'post') continue;
    const fields = [];
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1]);
      if ((a.type ?? 'text').toLowerCase() === 'hidden' && a.name) fields.push([a.name, a.value ?? '']);
    }
    return { action: attrs.action ?? '', fields };
  }
  return undefined;
}

/** Cookies by origin: Set-Cookie name=value pairs (Path ignored; Max-Age<=0 or a past Expires deletes). */
const cookieJar = new Map();
function storeCookies(url, response) {
  const origin = new URL(url).origin;
  const jar = cookieJar.get(origin) ?? new Map();
  cookieJar.set(origin, jar);
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let maxAge;
    let expires;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : attr.slice(i + 1).trim();
      if (key === 'max-age') maxAge = Number(v);
      if (key === 'expires') expires = Date.parse(v);
    }
    const deleted = maxAge !== undefined && !Number.isNaN(maxAge) ? maxAge <= 0 : expires !== undefined && expires <= Date.now();
    if (deleted) jar.delete(name);
    else jar.set(name, value);
  }
}
function cookieHeader(url) {
  const jar = cookieJar.get(new URL(url).origin);
  return jar && jar.size ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
}

const isRedirectUri = (url, redirectUrl) => bare(url) === bare(redirectUrl);

/**
 * Plays the browser from the authorization URL to the redirect to `redirectUrl`, whose
 * code/state/iss/error parameters it returns.
 */
async function browse(start, redirectUrl) {
  let url = new URL(start);
  let method = 'GET';
  let body;
  const submitted = new Set(); // form actions already posted to (a form shown again = rejected)
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    visited.push(bare(url));
    if (isRedirectUri(url, redirectUrl)) {
      const p = url.searchParams;
      return { code: p.get('code'), state: p.get('state'), iss: p.get('iss'), error: p.get('error'), error_description: p.get('error_description') };
    }
    const headers = { accept: 'text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8', 'user-agent': 'switchboard-oauth-client (headless)' };
    const cookie = cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(opts.timeout) });
    storeCookies(url, response);

    if ([301, 302, 303, 307, 308].includes(response.status)) {
      await response.body?.cancel();
      const location = response.headers.get('location');
      if (!location) throw new Error(`HTTP ${response.status} without Location at ${bare(url)}`);
      const next = new URL(location, url);
      // 307/308 repeat the request as it was; the others turn a POST into a GET, as browsers do.
      if (response.status !== 307 && response.status !== 308 && method !== 'GET' && method !== 'HEAD') {
        method = 'GET';
        body = undefined;
      }
      url = next;
      continue;
    }

    const text = await response.text();
    const form = response.status === 200 ? findPostForm(text) : undefined;
    if (form) {
      const action = new URL(form.action, url);
      if (submitted.has(bare(action))) {
        throw new Error(`the form posting to ${bare(action)} came back after it was submitted (at ${bare(url)}): ${text.replace(/\s+/g, ' ').trim().slice(0, 500)}`);
      }
      submitted.add(bare(action));
      const fields = new URLSearchParams(form.fields);
      fields.append('decision', 'allow');
      out.forms_submitted += 1;
      url = action;
      method = 'POST';
      body = fields.toString();
      continue;
    }
    const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 500);
    throw new Error(`the authorization flow stopped at ${bare(url)}: HTTP ${response.status}${form === undefined && response.status === 200 ? ' (no <form method="post">)' : ''}: ${snippet}`);
  }
  throw new Error(`the authorization flow did not reach the redirect_uri after ${MAX_HOPS} requests`);
}

// ---------------------------------------------------------------------------
// The OAuthClientProvider (everything in memory)
// ---------------------------------------------------------------------------

const redirectUrl = `http://127.0.0.1:${randomInt(20_000, 60_000)}/callback`;
const httpsCimd = opts.cimd !== undefined && new URL(opts.cimd).protocol === 'https:';

class MemoryProvider {
  constructor() {
    // The SDK itself uses a Client ID Metadata Document only for an https URL with a path.
    if (httpsCimd) this.clientMetadataUrl = opts.cimd;
    this.interactive = true; // one authorization per run; a second would mean a rejected token
    this.exchanging = false; // set while transport.finishAuth() runs
    this.discovery = undefined; // the SDK's OAuthDiscoveryState, as last saved
    this.authorization = undefined; // {url, state} of the authorization request
    this.callback = undefined; // the parameters of the redirect to redirectUrl
    this.firstTokens = undefined;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._state = undefined;
  }

  get redirectUrl() { return redirectUrl; }

  get clientMetadata() {
    return {
      client_name: 'SDK test client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this._state = randomBytes(16).toString('base64url');
    return this._state;
  }

  clientInformation() {
    // A plain-http --cimd URL: what the SDK does for an https one (auth.js: `clientInformation =
    // { client_id: clientMetadataUrl }` when the metadata has client_id_metadata_document_supported),
    // which it refuses for http. The SDK calls this right after saveDiscoveryState().
    if (!this._client && opts.cimd !== undefined && !httpsCimd
      && this.discovery?.authorizationServerMetadata?.client_id_metadata_document_supported === true) {
      this._client = { client_id: opts.cimd };
    }
    return this._client;
  }

  saveClientInformation(info) { this._client = info; }

  tokens() { return this._tokens; }

  saveTokens(tokens) {
    if (this.exchanging) this.firstTokens ??= tokens;
    else out.sdk_refreshes += 1;
    this._tokens = tokens;
  }

  saveCodeVerifier(verifier) { this._verifier = verifier; }

  codeVerifier() {
    if (!this._verifier) throw new Error('no PKCE code verifier saved');
    return this._verifier;
  }

  saveDiscoveryState(state) { this.discovery = state; }

  async redirectToAuthorization(authorizationUrl) {
    if (!this.interactive) {
      throw new Error('the SDK started a second authorization: the server rejected the access token (and no refresh helped)');
    }
    this.interactive = false;
    this.authorization = { url: authorizationUrl, state: this._state };
    out.scope = authorizationUrl.searchParams.get('scope');
    out.resource = authorizationUrl.searchParams.get('resource');
    this.callback = await browse(authorizationUrl, redirectUrl);
  }
}

// ---------------------------------------------------------------------------
// Helpers for the token and resource requests made outside the transport
// ---------------------------------------------------------------------------

const provider = new MemoryProvider();

function newConnection() {
  const client = new Client({ name: 'switchboard-oauth-client', version: '1.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), { authProvider: provider, fetch: timedFetch });
  return { client, transport };
}

async function listTools(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: opts.timeout });
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return names;
}

/** The SDK's refreshAuthorization against the authorization server the SDK discovered. */
function refresh(refreshToken) {
  const { authorizationServerUrl, authorizationServerMetadata } = provider.discovery;
  return refreshAuthorization(authorizationServerUrl, {
    metadata: authorizationServerMetadata,
    clientInformation: provider.clientInformation(),
    refreshToken,
    resource: opts.url,
    fetchFn: timedFetch,
  });
}

/** Keeps refreshed tokens the way the SDK's auth() does: stamped with the authorization server. */
function keepTokens(tokens) {
  provider._tokens = { ...tokens, issuer: String(provider.discovery.authorizationServerUrl) };
}

/** HTTP status of a plain POST initialize with `accessToken` as bearer (a session it opens is ended). */
async function initializeStatus(accessToken) {
  const response = await timedFetch(opts.url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': PROTOCOL_VERSION,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'switchboard-oauth-client', version: '1.0.0' } },
    }),
  });
  await response.body?.cancel();
  const session = response.headers.get('mcp-session-id');
  if (response.ok && session) {
    await timedFetch(opts.url, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${accessToken}`, 'mcp-session-id': session, 'mcp-protocol-version': PROTOCOL_VERSION },
    }).then((r) => r.body?.cancel(), () => {});
  }
  return response.status;
}

/** RFC 7009 revocation of one token by the public client; returns the HTTP status. */
async function revoke(endpoint, token, hint) {
  const response = await timedFetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ token, token_type_hint: hint, client_id: provider.clientInformation().client_id }).toString(),
  });
  await response.body?.cancel();
  return response.status;
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const connections = [];
let failed = false;
try {
  // 1. Connect: 401 -> discovery, registration, authorization (the emulated browser) -> UnauthorizedError.
  let { client, transport } = newConnection();
  connections.push(client);
  let authorized = false;
  await step('connect', async () => {
    try {
      await client.connect(transport, { timeout: opts.timeout });
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      authorized = true;
    }
  });
  if (!authorized) throw new Error('connect: the server accepted the connection without asking for authorization (no 401)');
  const cb = provider.callback;
  if (!cb) throw new Error('connect: UnauthorizedError without a redirect to the authorization endpoint');

  const metadata = provider.discovery?.authorizationServerMetadata;
  out.authorization_server = metadata?.issuer ?? null;
  out.client_id = provider.clientInformation()?.client_id ?? null;
  out.registration = opts.cimd !== undefined && out.client_id === opts.cimd ? 'cimd' : 'dcr';
  out.iss = cb.iss;
  out.iss_ok = cb.iss === null ? null : cb.iss === out.authorization_server;
  out.state_ok = provider.authorization.state !== undefined
    && provider.authorization.url.searchParams.get('state') === provider.authorization.state
    && cb.state === provider.authorization.state;
  if (cb.error) throw new Error(`authorize: ${cb.error}${cb.error_description ? `: ${cb.error_description}` : ''}`);
  if (!cb.code) throw new Error('authorize: the redirect to the redirect_uri carried no code');

  // 2. Exchange the code, then connect again on a new transport + client.
  await step('token', async () => {
    provider.exchanging = true;
    try {
      await transport.finishAuth(cb.code);
    } finally {
      provider.exchanging = false;
    }
  });
  out.token_type = provider.firstTokens?.token_type ?? null;
  out.expires_in = provider.firstTokens?.expires_in ?? null;
  await client.close().catch(() => {});
  ({ client, transport } = newConnection());
  connections.push(client);
  await step('reconnect', () => client.connect(transport, { timeout: opts.timeout }));

  // 3. Tools.
  out.tools = await step('tools/list', () => listTools(client));
  if (opts.call) {
    out.call = await step(`tools/call ${opts.call}`, () => client.callTool({ name: opts.call, arguments: opts.args }, CallToolResultSchema, { timeout: opts.timeout }));
  }
  await client.close().catch(() => {});

  // 4. Refresh, and the tools again on the new access token.
  if (opts.refresh) {
    const old = provider.tokens();
    if (!old?.refresh_token) throw new Error('refresh: no refresh token was issued');
    const fresh = await step('refresh', () => refresh(old.refresh_token));
    keepTokens(fresh);
    out.refreshed = true;
    out.rotated = fresh.refresh_token !== old.refresh_token;
    ({ client, transport } = newConnection());
    connections.push(client);
    out.tools_after_refresh = await step('after refresh', async () => {
      await client.connect(transport, { timeout: opts.timeout });
      return listTools(client);
    });
    await client.close().catch(() => {});

    // 5. Reuse of the rotated refresh token, then the new one, then the latest access token.
    if (opts.reuse) {
      out.reuse_error = await refresh(old.refresh_token).then(() => null, errorCode);
      out.after_reuse_error = await refresh(fresh.refresh_token).then((tokens) => {
        keepTokens(tokens);
        return null;
      }, errorCode);
      out.access_after_reuse_status = await step('initialize after reuse', () => initializeStatus(provider.tokens().access_token));
    }
  }

  // 6. Revocation.
  if (opts.revoke) {
    const endpoint = metadata?.revocation_endpoint;
    if (!endpoint) throw new Error('revoke: the authorization server metadata has no revocation_endpoint');
    const tokens = provider.tokens();
    if (!tokens.refresh_token) throw new Error('revoke: no refresh token was issued');
    out.revoke_status = await step('revoke refresh token', () => revoke(endpoint, tokens.refresh_token, 'refresh_token'));
    out.revoke_access_status = await step('revoke access token', () => revoke(endpoint, tokens.access_token, 'access_token'));
    out.access_after_revoke_status = await step('initialize after revoke', () => initializeStatus(tokens.access_token));
    out.refresh_after_revoke_error = await refresh(tokens.refresh_token).then(() => null, errorCode);
  }
} catch (err) {
  failed = true;
  out.error = describe(err);
}

await Promise.allSettled(connections.map((c) => c.close()));
process.stdout.write(`${JSON.stringify(failed ? { error: out.error, visited } : out)}\n`);
process.exit(failed ? 1 : 0);
