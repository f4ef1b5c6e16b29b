// Switchboard's own upstream MCP server, for the MCP gateway's integration tests and benchmarks.
//
// One Node process, bound to 127.0.0.1 only, serving one Streamable HTTP endpoint `/mcp` in both
// protocol eras at once (a "dual-era" server, 2026-07-28 basic/versioning.mdx):
//
//   * Legacy era (2025-06-18, 2025-11-25; `initialize` handshake): built on @modelcontextprotocol/sdk
//     1.x: one McpServer + StreamableHTTPServerTransport per session (Mcp-Session-Id), POST responses
//     as SSE streams, the GET SSE stream, DELETE, and resumability (Last-Event-ID) through a
//     per-session in-memory event store. Server→client requests (sampling, elicitation, roots) go
//     out on the POST SSE stream of the tool call that needs them.
//   * Modern era (2026-07-28; stateless): hand-written. A POST whose
//     params._meta["io.modelcontextprotocol/protocolVersion"] is a non-legacy version, or whose
//     MCP-Protocol-Version header is 2026-07-28 (and whose method is not `initialize`), is handled
//     here: server/discover, lists with ttlMs/cacheScope, tools/call, resources, prompts,
//     completion, subscriptions/listen (SSE), MRTR (`input_required` results with an HMAC'd
//     requestState), Mcp-Method/Mcp-Name/Mcp-Param-* header validation, and the modern error codes.
//
// Both eras serve the same catalogue (tools, resources, prompts below), with the exact fixture names
// the official conformance suite (@modelcontextprotocol/conformance 0.1.16 and 0.2.0-alpha) expects.
// A tool that needs input from the client asks for it through `ctx.ask()`: in the legacy era that
// sends the server→client request(s) and waits for the answers; in the modern era it returns an
// `input_required` result and the client retries with `inputResponses` (see "Tool context").
//
// Environment (all optional):
//   PORT           port to listen on (default 0 = random)
//   REQUIRE_TOKEN  every /mcp request must carry `Authorization: Bearer <value>`, else 401 with
//                  `WWW-Authenticate: Bearer error="invalid_token"`
//   PAGE_SIZE      page tools/list (both eras) in pages of this many tools (default 0 = one page)
//   FAST           "1": no per-request logging; the benchmark upstream (the hot path is a modern,
//                  stateless JSON tools/call of `echo`)
//
// Test hooks (not MCP): GET /__seen (what reached /mcp), DELETE /__seen (reset it),
// POST /__tools_changed (emit notifications/tools/list_changed to every legacy session's GET
// stream and every modern listen stream that asked for it).
//
// Protocol with the test harness: once listening, exactly one line of JSON on stdout,
//   {"mcp_url":"http://127.0.0.1:<port>/mcp","port":<port>}
// everything else on stderr; SIGTERM / SIGINT exit with status 0. See README.md next to this file.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  isInitializeRequest,
  ListRootsResultSchema,
  ListToolsRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

// stdout carries exactly one line (the ready JSON): route every console method to stderr.
console.log = console.info = console.debug = console.warn = console.error;

const HOST = '127.0.0.1';
const PORT = intFromEnv('PORT', 0, 0, 65535);
const REQUIRE_TOKEN = process.env.REQUIRE_TOKEN || undefined;
const PAGE_SIZE = intFromEnv('PAGE_SIZE', 0, 0, 1000);
const FAST = process.env.FAST === '1';

const SERVER_INFO = { name: 'switchboard-upstream', version: '1.0.0' };
const INSTRUCTIONS = 'Switchboard test upstream: the MCP conformance fixtures plus `echo` and `slow`.';
const MODERN_VERSION = '2026-07-28';
// Legacy versions are the ones the SDK negotiates in `initialize` (2025-11-25 down to 2024-10-07).
const LEGACY_VERSIONS = new Set(SUPPORTED_PROTOCOL_VERSIONS);
// What server/discover and UnsupportedProtocolVersionError advertise: the modern version (per-request
// _meta) and the two legacy versions this fixture is tested with (through `initialize`).
const SUPPORTED_VERSIONS = [MODERN_VERSION, '2025-11-25', '2025-06-18'];
const LIST_TTL_MS = 60_000; // ttlMs on every cacheable modern result; nothing here is per-user
const STATE_TTL_MS = 10 * 60_000; // lifetime of an MRTR requestState
const STATE_KEY = randomBytes(32); // HMAC key for requestState, fresh per process
const SSE_RETRY_MS = 250; // `retry:` in the legacy priming events (how soon clients reconnect)

// `_meta` keys of the 2026-07-28 wire.
const M_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
const M_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const M_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';
const M_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
const M_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
const RESULT_META = Object.freeze({ [M_SERVER_INFO]: SERVER_INFO });

// JSON-RPC error codes used here.
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;
const HEADER_MISMATCH = -32020;
const MISSING_CLIENT_CAPABILITY = -32021;
const UNSUPPORTED_PROTOCOL_VERSION = -32022;

const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

function intFromEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`invalid ${name}: ${raw}`);
  return n;
}

function logRequest(...parts) {
  if (!FAST) console.error('[upstream]', ...parts);
}

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

/** A JSON-RPC error with the HTTP status it is sent with on the modern wire. */
class RpcError extends Error {
  constructor(code, message, data, httpStatus = 200) {
    super(message);
    this.code = code;
    this.data = data;
    this.httpStatus = httpStatus;
  }
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const toolError = (t) => ({ content: [{ type: 'text', text: t }], isError: true });

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('cancelled'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(new Error('cancelled'));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function sendJson(res, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

const rpcErrorBody = (id, code, message, data) => ({
  jsonrpc: '2.0',
  id: id ?? null,
  error: data === undefined ? { code, message } : { code, message, data },
});

const MAX_BODY = 4 * 1024 * 1024;
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new RpcError(INVALID_REQUEST, 'request body too large', undefined, 413));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** JSON with object keys sorted, so equal values digest equally whatever their key order. */
function stableStringify(v) {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------------------------------------------
// What reached /mcp (GET /__seen)
// ---------------------------------------------------------------------------------------------------

let seen;
function resetSeen() {
  seen = { authorization: new Set(), requests: 0, rejected: 0, by_method: {}, by_http: {}, by_era: { legacy: 0, modern: 0 } };
}
resetSeen();
const count = (map, key) => { map[key] = (map[key] ?? 0) + 1; };
const seenJson = () => ({
  authorization: [...seen.authorization],
  requests: seen.requests,
  rejected: seen.rejected,
  by_method: seen.by_method,
  by_http: seen.by_http,
  by_era: seen.by_era,
});

// ---------------------------------------------------------------------------------------------------
// Fixture content
// ---------------------------------------------------------------------------------------------------

// A 1x1 red PNG.
const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';

// A 10 ms, 8 kHz, 8-bit mono WAV of silence.
const WAV_BASE64 = (() => {
  const samples = 80;
  const b = Buffer.alloc(44 + samples, 0x80);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(8000, 24); // sample rate
  b.writeUInt32LE(8000, 28); // byte rate
  b.writeUInt16LE(1, 32); // block align
  b.writeUInt16LE(8, 34); // bits per sample
  b.write('data', 36);
  b.writeUInt32LE(samples, 40);
  return b.toString('base64');
})();

const elicit = (message, properties, required) => ({
  method: 'elicitation/create',
  params: { message, requestedSchema: { type: 'object', properties, ...(required ? { required } : {}) } },
});
const sampling = (prompt, maxTokens = 100) => ({
  method: 'sampling/createMessage',
  params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens },
});
const LIST_ROOTS = { method: 'roots/list', params: {} };

// The JSON Schema 2020-12 keywords the json-schema-2020-12 scenario expects to survive tools/list.
const JSON_SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } },
  },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
};

// ---------------------------------------------------------------------------------------------------
// Tool context
//
// Every tool and prompt handler receives a `ctx`, one implementation per era:
//   ctx.era                 'legacy' | 'modern'
//   ctx.signal              AbortSignal: legacy notifications/cancelled, or the modern stream closing
//   ctx.clientCapabilities  the session's (legacy) or this request's (modern) client capabilities
//   ctx.state               modern only: the verified payload of the request's requestState
//   ctx.progress(p, total)  notifications/progress, only if the request carried a progressToken
//   ctx.log(level, data)    notifications/message, subject to logging/setLevel (legacy) or the
//                           request's _meta logLevel (modern: none unless the client asked)
//   ctx.ask(requests, opts) input from the client, `requests` = {key: {method, params}}; resolves to
//                           {key: result}. Legacy: sends each request to the client (on the tool
//                           call's SSE stream) and awaits it. Modern: returns the request's
//                           `inputResponses` if they answer every key (and, with
//                           opts.requireState, a valid requestState came along), else throws
//                           InputRequired so the call answers `input_required` with
//                           requestState = HMAC'd opts.state. A modern handler is therefore
//                           re-run from the start on every retry, and carries what it learnt in
//                           earlier rounds in ctx.state (see test_input_required_result_multi_round).
//   ctx.stream()            modern: answer on an SSE stream even if nothing is streamed
//   ctx.closeStream         legacy: close the POST SSE stream mid-call (SEP-1699 polling), if the
//                           client can resume (2025-11-25)
// ---------------------------------------------------------------------------------------------------

/** Thrown by the modern ctx.ask(): the call answers with an InputRequiredResult. */
class InputRequired {
  constructor(inputRequests, requestState) {
    this.inputRequests = inputRequests;
    this.requestState = requestState;
  }
}

// The client capability each input request needs.
function requiredCapability(request) {
  switch (request.method) {
    case 'sampling/createMessage': return { sampling: {} };
    case 'roots/list': return { roots: {} };
    case 'elicitation/create':
      return request.params?.mode === 'url' ? { elicitation: { url: {} } } : { elicitation: {} };
    default: return {};
  }
}

function hasCapability(caps, request) {
  switch (request.method) {
    case 'sampling/createMessage': return isObject(caps?.sampling);
    case 'roots/list': return isObject(caps?.roots);
    case 'elicitation/create': {
      if (!isObject(caps?.elicitation)) return false;
      // An empty `elicitation: {}` means form mode only.
      if (request.params?.mode === 'url') return isObject(caps.elicitation.url);
      return Object.keys(caps.elicitation).length === 0 || isObject(caps.elicitation.form);
    }
    default: return true;
  }
}

// The shape a client's answer to each kind of input request must have (modern inputResponses).
function validInputResponse(method, value) {
  if (!isObject(value)) return false;
  switch (method) {
    case 'elicitation/create': return ['accept', 'decline', 'cancel'].includes(value.action);
    case 'sampling/createMessage': return isObject(value.content) || Array.isArray(value.content);
    case 'roots/list': return Array.isArray(value.roots);
    default: return true;
  }
}

function levelEnabled(minimum, level) {
  if (!minimum) return true;
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(minimum);
}

// ---------------------------------------------------------------------------------------------------
// Tools
//
// One catalogue for both eras. `inputSchema` is what tools/list shows (raw JSON Schema, so the
// 2020-12 keywords survive); `eras` says where a tool is listed and callable. Arguments are
// checked against the top level of the schema (required keys, primitive types); a failure is a
// tool error (isError: true, 2025-11-25 SEP-1303). An unknown tool is a protocol error -32602.
// ---------------------------------------------------------------------------------------------------

const NO_ARGS = { type: 'object', properties: {} };

const TOOLS = [
  {
    name: 'test_simple_text',
    description: 'Returns a simple text response.',
    inputSchema: NO_ARGS,
    run: () => text('This is a simple text response for testing.'),
  },
  {
    name: 'test_image_content',
    description: 'Returns a 1x1 PNG image.',
    inputSchema: NO_ARGS,
    run: () => ({ content: [{ type: 'image', data: PNG_BASE64, mimeType: 'image/png' }] }),
  },
  {
    name: 'test_audio_content',
    description: 'Returns a short WAV clip.',
    inputSchema: NO_ARGS,
    run: () => ({ content: [{ type: 'audio', data: WAV_BASE64, mimeType: 'audio/wav' }] }),
  },
  {
    name: 'test_embedded_resource',
    description: 'Returns an embedded text resource.',
    inputSchema: NO_ARGS,
    run: () => ({
      content: [{
        type: 'resource',
        resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' },
      }],
    }),
  },
  {
    name: 'test_multiple_content_types',
    description: 'Returns text, an image and an embedded resource.',
    inputSchema: NO_ARGS,
    run: () => ({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG_BASE64, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' },
        },
      ],
    }),
  },
  {
    name: 'test_tool_with_logging',
    description: 'Sends three info log messages, 50 ms apart, while it runs.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      ctx.log('info', 'Tool execution started');
      await sleep(50, ctx.signal);
      ctx.log('info', 'Tool processing data');
      await sleep(50, ctx.signal);
      ctx.log('info', 'Tool execution completed');
      return text('Tool with logging executed successfully');
    },
  },
  {
    name: 'test_tool_with_progress',
    description: 'Reports progress 0, 50 and 100 of 100, 50 ms apart (when given a progressToken).',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      ctx.progress(0, 100);
      await sleep(50, ctx.signal);
      ctx.progress(50, 100);
      await sleep(50, ctx.signal);
      ctx.progress(100, 100);
      return text('Tool with progress executed successfully');
    },
  },
  {
    name: 'test_error_handling',
    description: 'Always fails with a tool error (isError: true).',
    inputSchema: NO_ARGS,
    run: () => toolError('This tool intentionally returns an error for testing'),
  },
  {
    name: 'test_sampling',
    description: 'Asks the client for an LLM completion of `prompt` (sampling/createMessage).',
    inputSchema: { type: 'object', properties: { prompt: { type: 'string', description: 'The prompt to send to the LLM' } }, required: ['prompt'] },
    run: async ({ prompt }, ctx) => {
      const { completion } = await ctx.ask({ completion: sampling(prompt) });
      const c = Array.isArray(completion.content) ? completion.content[0] : completion.content;
      return text(`LLM response: ${c?.type === 'text' ? c.text : JSON.stringify(c)}`);
    },
  },
  {
    name: 'test_elicitation',
    description: 'Asks the user (elicitation/create) for a username and an email address.',
    inputSchema: { type: 'object', properties: { message: { type: 'string', description: 'The message to show the user' } }, required: ['message'] },
    run: async ({ message }, ctx) => {
      const { user } = await ctx.ask({
        user: elicit(message, {
          username: { type: 'string', description: "User's response" },
          email: { type: 'string', description: "User's email address" },
        }, ['username', 'email']),
      });
      return text(`User response: action=${user.action}, content=${JSON.stringify(user.content ?? {})}`);
    },
  },
  {
    name: 'test_elicitation_sep1034_defaults',
    description: 'Elicitation whose schema has a default for every primitive type (SEP-1034).',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { user } = await ctx.ask({
        user: elicit('Please review and update the form fields with defaults', {
          name: { type: 'string', description: 'User name', default: 'John Doe' },
          age: { type: 'integer', description: 'User age', default: 30 },
          score: { type: 'number', description: 'User score', default: 95.5 },
          status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
          verified: { type: 'boolean', description: 'Verification status', default: true },
        }),
      });
      return text(`Elicitation completed: action=${user.action}, content=${JSON.stringify(user.content ?? {})}`);
    },
  },
  {
    name: 'test_elicitation_sep1330_enums',
    description: 'Elicitation with the five enum schema variants of SEP-1330.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { user } = await ctx.ask({
        user: elicit('Please select options from the enum fields', {
          untitledSingle: { type: 'string', description: 'Untitled single-select', enum: ['option1', 'option2', 'option3'] },
          titledSingle: {
            type: 'string',
            description: 'Titled single-select',
            oneOf: [
              { const: 'value1', title: 'First Option' },
              { const: 'value2', title: 'Second Option' },
              { const: 'value3', title: 'Third Option' },
            ],
          },
          legacyEnum: {
            type: 'string',
            description: 'Legacy titled enum (enumNames, deprecated)',
            enum: ['opt1', 'opt2', 'opt3'],
            enumNames: ['Option One', 'Option Two', 'Option Three'],
          },
          untitledMulti: {
            type: 'array',
            description: 'Untitled multi-select',
            items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
          },
          titledMulti: {
            type: 'array',
            description: 'Titled multi-select',
            items: {
              anyOf: [
                { const: 'value1', title: 'First Choice' },
                { const: 'value2', title: 'Second Choice' },
                { const: 'value3', title: 'Third Choice' },
              ],
            },
          },
        }),
      });
      return text(`Elicitation completed: action=${user.action}, content=${JSON.stringify(user.content ?? {})}`);
    },
  },
  {
    name: 'test_reconnection',
    description: 'Closes its SSE response stream mid-call; the result arrives after the client resumes (GET + Last-Event-ID).',
    inputSchema: NO_ARGS,
    eras: 'legacy', // the modern era has no resumable streams
    run: async (_args, ctx) => {
      await sleep(100, ctx.signal);
      ctx.closeStream?.(); // undefined for clients that cannot resume (< 2025-11-25)
      await sleep(200, ctx.signal);
      return text('Reconnection test completed successfully');
    },
  },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: JSON_SCHEMA_2020_12,
    run: (args) => text(`Received: ${JSON.stringify(args)}`),
  },
  {
    name: 'test_missing_capability',
    description: 'Needs the sampling capability (2026-07-28: -32021 when the request does not declare it).',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { probe } = await ctx.ask({ probe: sampling('Say OK', 10) });
      return text(`sampling answered by ${probe.model ?? 'the client'}`);
    },
  },
  {
    name: 'test_logging_tool',
    description: 'Logs one info message (2026-07-28: only when the request sets _meta logLevel).',
    inputSchema: NO_ARGS,
    run: (_args, ctx) => {
      ctx.log('info', 'test_logging_tool ran');
      return text('logged');
    },
  },
  {
    name: 'test_streaming_elicitation',
    description: 'Asks for a confirmation; 2026-07-28: the input_required result comes on an SSE stream.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      ctx.stream();
      const { confirm } = await ctx.ask({ confirm: elicit('Continue?', { ok: { type: 'boolean' } }, ['ok']) });
      return text(`streaming elicitation: action=${confirm.action}`);
    },
  },
  {
    name: 'test_trigger_tool_change',
    description: 'Emits notifications/tools/list_changed (legacy GET streams, modern listen streams).',
    inputSchema: NO_ARGS,
    run: () => text(`tools/list_changed sent to ${describeListChanged(notifyListChanged('tools'))}`),
  },
  {
    name: 'test_trigger_prompt_change',
    description: 'Emits notifications/prompts/list_changed (legacy GET streams, modern listen streams).',
    inputSchema: NO_ARGS,
    run: () => text(`prompts/list_changed sent to ${describeListChanged(notifyListChanged('prompts'))}`),
  },
  {
    name: 'test_input_required_result_elicitation',
    description: 'MRTR: asks for a name (input key "user_name"), then greets.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { user_name } = await ctx.ask({
        user_name: elicit('What is your name?', { name: { type: 'string' } }, ['name']),
      });
      return text(`Hello, ${user_name.content?.name ?? 'stranger'}!`);
    },
  },
  {
    name: 'test_input_required_result_sampling',
    description: 'MRTR: asks the client LLM a question (input key "capital_question").',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { capital_question: r } = await ctx.ask({ capital_question: sampling('What is the capital of France?') });
      return text(`The model said: ${r.content?.text ?? JSON.stringify(r.content)}`);
    },
  },
  {
    name: 'test_input_required_result_list_roots',
    description: 'MRTR: asks for the client roots (input key "client_roots").',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { client_roots } = await ctx.ask({ client_roots: LIST_ROOTS });
      return text(`Roots: ${client_roots.roots.map((r) => r.uri).join(', ') || '(none)'}`);
    },
  },
  {
    name: 'test_input_required_result_request_state',
    description: 'MRTR: a confirmation whose retry must echo the requestState; answers "state-ok".',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { confirm } = await ctx.ask(
        { confirm: elicit('Please confirm', { ok: { type: 'boolean' } }, ['ok']) },
        { state: { step: 'confirm' }, requireState: true },
      );
      return text(`state-ok: confirmed=${confirm.content?.ok === true}`);
    },
  },
  {
    name: 'test_input_required_result_multiple_inputs',
    description: 'MRTR: one round asking for an elicitation, a sampling and the roots at once.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const r = await ctx.ask({
        user_name: elicit('What is your name?', { name: { type: 'string' } }, ['name']),
        greeting: sampling('Generate a greeting', 50),
        client_roots: LIST_ROOTS,
      }, { state: { step: 'all' } });
      return text(`${r.greeting.content?.text ?? 'Hello'} ${r.user_name.content?.name ?? ''} (${r.client_roots.roots.length} roots)`);
    },
  },
  {
    name: 'test_input_required_result_multi_round',
    description: 'MRTR: two rounds (name, then colour); the second requestState carries the name.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      // Modern: re-run from the start on each retry; round 3 finds the name in ctx.state.
      let name = ctx.state?.name;
      if (name === undefined) {
        const { step1 } = await ctx.ask(
          { step1: elicit('Step 1: What is your name?', { name: { type: 'string' } }, ['name']) },
          { state: { round: 1 } },
        );
        name = String(step1.content?.name ?? '');
      }
      const { step2 } = await ctx.ask(
        { step2: elicit('Step 2: What is your favorite color?', { color: { type: 'string' } }, ['color']) },
        { state: { round: 2, name }, requireState: ctx.era === 'modern' },
      );
      return text(`${name} likes ${step2.content?.color ?? 'no colour'}`);
    },
  },
  {
    name: 'test_input_required_result_tampered_state',
    description: 'MRTR: its requestState is HMAC-signed; a tampered one is rejected with -32602.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const { confirm } = await ctx.ask(
        { confirm: elicit('Please confirm', { ok: { type: 'boolean' } }, ['ok']) },
        { state: { step: 'confirm' }, requireState: true },
      );
      return text(`state verified: action=${confirm.action}`);
    },
  },
  {
    name: 'test_input_required_result_capabilities',
    description: 'MRTR: asks only for the inputs the client declared capabilities for.',
    inputSchema: NO_ARGS,
    run: async (_args, ctx) => {
      const wanted = {
        user_name: elicit('What is your name?', { name: { type: 'string' } }, ['name']),
        greeting: sampling('Generate a greeting', 50),
        client_roots: LIST_ROOTS,
      };
      const requests = Object.fromEntries(Object.entries(wanted).filter(([, r]) => hasCapability(ctx.clientCapabilities, r)));
      if (Object.keys(requests).length === 0) return text('no input capabilities declared; nothing to ask');
      const answers = await ctx.ask(requests, { state: { step: 'capabilities' } });
      return text(`answered: ${Object.keys(answers).sort().join(', ')}`);
    },
  },
  {
    name: 'test_custom_header',
    description: 'Echoes `region`, which 2026-07-28 clients mirror into the Mcp-Param-Region header (x-mcp-header).',
    inputSchema: {
      type: 'object',
      properties: { region: { type: 'string', description: 'A region name', 'x-mcp-header': 'Region' } },
      required: ['region'],
    },
    eras: 'modern', // x-mcp-header is a 2026-07-28 feature
    run: ({ region }) => text(`region: ${region}`),
  },
  {
    name: 'echo',
    description: 'Returns the given text unchanged.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    run: ({ text: t }) => text(t),
  },
  {
    name: 'slow',
    description: 'Waits `ms` milliseconds, reporting progress every 100 ms when given a progressToken.',
    inputSchema: { type: 'object', properties: { ms: { type: 'integer', minimum: 0, maximum: 600000 } }, required: ['ms'] },
    run: async ({ ms }, ctx) => {
      const total = Math.max(0, Math.min(600_000, ms));
      const started = Date.now();
      for (let elapsed = 0; elapsed < total; elapsed = Date.now() - started) {
        await sleep(Math.min(100, total - elapsed), ctx.signal);
        ctx.progress(Math.min(total, Date.now() - started), total);
      }
      return text(`waited ${total} ms`);
    },
  },
];

const TOOLS_BY_NAME = new Map(TOOLS.map((t) => [t.name, t]));
const inEra = (item, era) => (item.eras ?? 'both') === 'both' || item.eras === era;
const toolDefinition = (t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema });
// tools/list per era, in catalogue order (deterministic; test_simple_text first, since the
// header-validation scenario calls the first listed tool with empty arguments).
const TOOL_LISTS = {
  legacy: TOOLS.filter((t) => inEra(t, 'legacy')).map(toolDefinition),
  modern: TOOLS.filter((t) => inEra(t, 'modern')).map(toolDefinition),
};

/** One page of tools/list (PAGE_SIZE > 0), with an opaque cursor; -32602 for a bad cursor. */
function toolsPage(era, cursor) {
  const all = TOOL_LISTS[era];
  if (!PAGE_SIZE) {
    if (cursor !== undefined) throw new RpcError(INVALID_PARAMS, 'Invalid cursor');
    return { tools: all };
  }
  let offset = 0;
  if (cursor !== undefined) {
    const m = /^p(\d+)$/.exec(Buffer.from(String(cursor), 'base64url').toString('utf8'));
    offset = m ? Number(m[1]) : NaN;
    if (!Number.isInteger(offset) || offset <= 0 || offset >= all.length) throw new RpcError(INVALID_PARAMS, 'Invalid cursor');
  }
  const page = { tools: all.slice(offset, offset + PAGE_SIZE) };
  if (offset + PAGE_SIZE < all.length) page.nextCursor = b64url(`p${offset + PAGE_SIZE}`);
  return page;
}

/** Top-level argument check against a tool's JSON Schema; returns an error message or undefined. */
function checkArguments(schema, args) {
  if (!isObject(args)) return 'arguments must be an object';
  for (const key of schema.required ?? []) {
    if (!(key in args)) return `missing required argument "${key}"`;
  }
  const props = schema.properties ?? {};
  for (const [key, value] of Object.entries(args)) {
    const prop = props[key];
    if (!prop) {
      if (schema.additionalProperties === false) return `unexpected argument "${key}"`;
      continue;
    }
    const type = prop.type;
    const ok = type === undefined
      || (type === 'string' && typeof value === 'string')
      || (type === 'number' && typeof value === 'number')
      || (type === 'integer' && Number.isInteger(value))
      || (type === 'boolean' && typeof value === 'boolean')
      || (type === 'array' && Array.isArray(value))
      || (type === 'object' && isObject(value));
    if (!ok) return `argument "${key}" must be of type ${type}`;
  }
  return undefined;
}

/** Runs a tool; both eras. Throws RpcError (protocol error), InputRequired (modern) or Error. */
function runTool(tool, args, ctx) {
  const problem = checkArguments(tool.inputSchema, args);
  if (problem) return toolError(`Invalid arguments for tool ${tool.name}: ${problem}`);
  return tool.run(args, ctx);
}

// ---------------------------------------------------------------------------------------------------
// Resources, prompts, completion
// ---------------------------------------------------------------------------------------------------

let watchedVersion = 1; // bumped whenever a notifications/resources/updated goes out for it
const WATCHED_URI = 'test://watched-resource';

const RESOURCES = [
  {
    uri: 'test://static-text', name: 'static-text', title: 'Static text', mimeType: 'text/plain',
    description: 'A static text resource',
    read: () => [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
  },
  {
    uri: 'test://static-binary', name: 'static-binary', title: 'Static binary', mimeType: 'image/png',
    description: 'A static binary resource (a PNG image)',
    read: () => [{ uri: 'test://static-binary', mimeType: 'image/png', blob: PNG_BASE64 }],
  },
  {
    uri: WATCHED_URI, name: 'watched-resource', title: 'Watched resource', mimeType: 'text/plain',
    description: 'A resource that changes; subscribing to it yields one notifications/resources/updated 100 ms later',
    read: () => [{ uri: WATCHED_URI, mimeType: 'text/plain', text: `Watched resource content, version ${watchedVersion}` }],
  },
];
const RESOURCES_BY_URI = new Map(RESOURCES.map((r) => [r.uri, r]));
const ID_COMPLETIONS = ['123', '456', '789'];
const TEMPLATE = {
  uriTemplate: 'test://template/{id}/data', name: 'template', title: 'Template', mimeType: 'application/json',
  description: 'A resource template with an {id} parameter',
  match: /^test:\/\/template\/([^/]+)\/data$/,
  read: (uri, id) => [{
    uri, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
  }],
  complete: { id: (value) => ID_COMPLETIONS.filter((v) => v.startsWith(value ?? '')) },
};

const ARG1_COMPLETIONS = ['paris', 'park', 'party', 'test', 'tested', 'testing'];
const PROMPTS = [
  {
    name: 'test_simple_prompt', title: 'Simple prompt', description: 'A simple prompt without arguments',
    arguments: [],
    get: () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }] }),
  },
  {
    name: 'test_prompt_with_arguments', title: 'Prompt with arguments', description: 'A prompt with two required arguments',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true, complete: (v) => ARG1_COMPLETIONS.filter((c) => c.startsWith(v ?? '')) },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
    get: ({ arg1, arg2 }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }],
    }),
  },
  {
    name: 'test_prompt_with_embedded_resource', title: 'Prompt with embedded resource', description: 'A prompt embedding the resource it is given',
    arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
    get: ({ resourceUri }) => ({
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ],
    }),
  },
  {
    name: 'test_prompt_with_image', title: 'Prompt with image', description: 'A prompt containing an image',
    arguments: [],
    get: () => ({
      messages: [
        { role: 'user', content: { type: 'image', data: PNG_BASE64, mimeType: 'image/png' } },
        { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
      ],
    }),
  },
  {
    name: 'test_input_required_result_prompt', title: 'Prompt needing input', description: 'Asks for a context (MRTR on prompts/get) before answering',
    arguments: [],
    get: async (_args, ctx) => {
      const { user_context } = await ctx.ask({
        user_context: elicit('What context should the prompt use?', { context: { type: 'string' } }, ['context']),
      });
      return { messages: [{ role: 'user', content: { type: 'text', text: `Use this context: ${user_context.content?.context ?? ''}` } }] };
    },
  },
];
const PROMPTS_BY_NAME = new Map(PROMPTS.map((p) => [p.name, p]));

// ---------------------------------------------------------------------------------------------------
// MRTR requestState: "v1.<payload>.<hmac>", base64url. The payload binds the state to the method
// and tool/prompt name, a digest of the arguments, and an expiry; the client can read but not
// forge it, and a tampered or expired one is rejected with -32602.
// ---------------------------------------------------------------------------------------------------

const argsDigest = (args) => createHash('sha256').update(stableStringify(args ?? {})).digest('base64url').slice(0, 22);

function signState(binding, args, state) {
  const payload = b64url(JSON.stringify({ b: binding, a: argsDigest(args), exp: Date.now() + STATE_TTL_MS, n: randomUUID(), s: state }));
  const mac = createHmac('sha256', STATE_KEY).update(`v1.${payload}`).digest('base64url');
  return `v1.${payload}.${mac}`;
}

function verifyState(token, binding, args) {
  if (token === undefined) return undefined;
  const invalid = (why) => new RpcError(INVALID_PARAMS, `Invalid requestState: ${why}`);
  if (typeof token !== 'string') throw invalid('not a string');
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'v1') throw invalid('malformed');
  const expected = createHmac('sha256', STATE_KEY).update(`v1.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected) || b64url(given) !== parts[2]) {
    throw invalid('integrity check failed');
  }
  const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (payload.b !== binding) throw invalid('issued for another request');
  if (payload.a !== argsDigest(args)) throw invalid('issued for other arguments');
  if (payload.exp < Date.now()) throw invalid('expired');
  return payload.s ?? {};
}

// ---------------------------------------------------------------------------------------------------
// Modern era (2026-07-28)
// ---------------------------------------------------------------------------------------------------

const MODERN_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true },
  completions: {},
  logging: {},
};

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

/**
 * The answer to one modern request: a JSON body, or (once something is streamed) an SSE stream
 * whose last event is the response. The client closing the stream cancels the request
 * (2026-07-28 §Cancellation): `signal` aborts and nothing more is written.
 */
class ModernReply {
  constructor(res, id) {
    this.res = res;
    this.id = id;
    this.sse = false;
    this.done = false;
    this.controller = undefined; // created on first use of `signal` (not on the hot path)
  }

  get signal() {
    if (!this.controller) {
      this.controller = new AbortController();
      this.res.on('close', () => {
        if (!this.res.writableFinished) {
          this.done = true;
          this.controller.abort();
        }
      });
    }
    return this.controller.signal;
  }

  get closed() {
    return this.done || this.res.destroyed;
  }

  startSse() {
    if (this.sse || this.closed) return;
    this.sse = true;
    this.res.writeHead(200, SSE_HEADERS);
    this.res.flushHeaders();
  }

  write(message) {
    if (this.closed) return;
    this.startSse();
    this.res.write(`data: ${JSON.stringify(message)}\n\n`);
  }

  notify(method, params) {
    this.write({ jsonrpc: '2.0', method, params });
  }

  finish(message, status = 200) {
    if (this.closed) return;
    this.done = true;
    if (this.sse) {
      this.res.end(`data: ${JSON.stringify(message)}\n\n`);
    } else {
      sendJson(this.res, status, message);
    }
  }

  result(result) {
    this.finish({ jsonrpc: '2.0', id: this.id, result });
  }

  error(err) {
    if (this.closed) return; // cancelled by the client (or already answered): nothing to send
    if (err instanceof RpcError) {
      this.finish(rpcErrorBody(this.id, err.code, err.message, err.data), err.httpStatus);
    } else {
      console.error('[upstream] modern handler error:', err);
      this.finish(rpcErrorBody(this.id, INTERNAL_ERROR, 'Internal error'), 500);
    }
  }
}

/** ctx for tool and prompt handlers on the modern wire (see "Tool context"). */
class ModernCtx {
  constructor(reply, params, meta, state) {
    this.era = 'modern';
    this.reply = reply;
    this.meta = meta;
    this.state = state;
    this.inputResponses = params.inputResponses;
    this.progressToken = meta.progressToken;
    this.clientCapabilities = meta[M_CLIENT_CAPABILITIES];
    this.binding = undefined; // set by the caller: what a requestState is signed for
    this.args = undefined;
  }

  get signal() { return this.reply.signal; }

  stream() { this.reply.startSse(); }

  progress(progress, total) {
    if (this.progressToken === undefined) return;
    this.reply.notify('notifications/progress', { progressToken: this.progressToken, progress, total });
  }

  log(level, data) {
    const minimum = this.meta[M_LOG_LEVEL];
    if (!minimum || !levelEnabled(minimum, level)) return; // no logLevel: no notifications/message
    this.reply.notify('notifications/message', { level, logger: 'upstream', data });
  }

  async ask(requests, { state, requireState = false } = {}) {
    // Never ask for input the client cannot give: -32021 names what is missing.
    const missing = Object.values(requests).filter((r) => !hasCapability(this.clientCapabilities, r));
    if (missing.length > 0) {
      const requiredCapabilities = Object.assign({}, ...missing.map(requiredCapability));
      throw new RpcError(MISSING_CLIENT_CAPABILITY, 'Missing required client capability', { requiredCapabilities }, 400);
    }
    const responses = this.inputResponses;
    if (isObject(responses) && (!requireState || this.state !== undefined)) {
      const answers = {};
      for (const [key, request] of Object.entries(requests)) {
        if (!(key in responses)) return this.inputRequired(requests, state);
        if (!validInputResponse(request.method, responses[key])) {
          throw new RpcError(INVALID_PARAMS, `Invalid inputResponses["${key}"] for ${request.method}`);
        }
        answers[key] = responses[key];
      }
      return answers; // extra, unknown keys in inputResponses are ignored
    }
    return this.inputRequired(requests, state);
  }

  inputRequired(requests, state) {
    throw new InputRequired(requests, state === undefined ? undefined : signState(this.binding, this.args, state));
  }
}

function inputRequiredResult(e) {
  const result = { resultType: 'input_required', inputRequests: e.inputRequests, _meta: RESULT_META };
  if (e.requestState !== undefined) result.requestState = e.requestState;
  return result;
}

const complete = (result) => {
  result.resultType = 'complete';
  result._meta = RESULT_META;
  return result;
};
const cacheable = (result) => {
  result.ttlMs = LIST_TTL_MS;
  result.cacheScope = 'public';
  return complete(result);
};

/** Decodes a header value that may be `=?base64?...?=` (2026-07-28 §Value Encoding); strict. */
function decodeHeaderValue(value) {
  const m = /^=\?base64\?(.*)\?=$/.exec(value);
  if (!m) return value;
  const b64 = m[1];
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return undefined;
  return Buffer.from(b64, 'base64').toString('utf8');
}

const headerMismatch = (message) => new RpcError(HEADER_MISMATCH, message, undefined, 400);

// params.name / params.uri, mirrored in the Mcp-Name header (SEP-2243).
const MCP_NAME_FIELD = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

/**
 * Validates the per-request metadata of a modern request, in the order that keeps the errors
 * distinguishable: _meta fields (-32602), header vs _meta version (-32020), supported version
 * (-32022), then the Mcp-Method / Mcp-Name routing headers (-32020). Returns params._meta.
 */
function validateModernRequest(req, body) {
  const params = body.params;
  const meta = isObject(params) ? params._meta : undefined;
  if (!isObject(meta)) throw new RpcError(INVALID_PARAMS, 'Missing params._meta', undefined, 400);
  const version = meta[M_PROTOCOL_VERSION];
  if (typeof version !== 'string') throw new RpcError(INVALID_PARAMS, `Missing _meta["${M_PROTOCOL_VERSION}"]`, undefined, 400);
  if (!isObject(meta[M_CLIENT_CAPABILITIES])) {
    throw new RpcError(INVALID_PARAMS, `Missing _meta["${M_CLIENT_CAPABILITIES}"]`, undefined, 400);
  }
  const headerVersion = req.headers['mcp-protocol-version']?.trim();
  if (headerVersion !== version) {
    throw headerMismatch(`MCP-Protocol-Version header (${headerVersion ?? 'missing'}) does not match _meta protocolVersion (${version})`);
  }
  if (version !== MODERN_VERSION) {
    throw new RpcError(UNSUPPORTED_PROTOCOL_VERSION, `Unsupported protocol version: ${version}`, { supported: SUPPORTED_VERSIONS, requested: version }, 400);
  }
  const methodHeader = req.headers['mcp-method']?.trim();
  if (methodHeader !== body.method) {
    throw headerMismatch(`Mcp-Method header (${methodHeader ?? 'missing'}) does not match the body method (${body.method})`);
  }
  const nameField = MCP_NAME_FIELD[body.method];
  if (nameField && params[nameField] !== undefined) {
    const raw = req.headers['mcp-name']?.trim();
    const decoded = raw === undefined ? undefined : decodeHeaderValue(raw);
    if (decoded !== String(params[nameField])) {
      throw headerMismatch(`Mcp-Name header (${raw ?? 'missing'}) does not match params.${nameField}`);
    }
  }
  return meta;
}

/** Mcp-Param-{Name} headers for the tool's x-mcp-header arguments (SEP-2243 custom headers). */
function validateParamHeaders(req, tool, args) {
  for (const [key, prop] of Object.entries(tool.inputSchema.properties ?? {})) {
    const headerName = prop['x-mcp-header'];
    if (!headerName) continue;
    const raw = req.headers[`mcp-param-${headerName.toLowerCase()}`]?.trim();
    const inBody = isObject(args) && args[key] !== undefined && args[key] !== null;
    if (raw === undefined) {
      if (inBody) throw headerMismatch(`Missing Mcp-Param-${headerName} header for argument "${key}"`);
      continue;
    }
    const decoded = decodeHeaderValue(raw);
    if (decoded === undefined) throw headerMismatch(`Mcp-Param-${headerName} header is not valid Base64`);
    if (!inBody || decoded !== String(args[key])) {
      throw headerMismatch(`Mcp-Param-${headerName} header does not match argument "${key}"`);
    }
  }
}

// Open subscriptions/listen streams: {id, filter, reply, timers}.
const listenStreams = new Set();

function subscribe(reply, params, id) {
  const filter = params.notifications;
  if (!isObject(filter)) throw new RpcError(INVALID_PARAMS, 'subscriptions/listen requires params.notifications', undefined, 400);
  // What this server agrees to deliver (acknowledged back to the client).
  const agreed = {};
  if (filter.toolsListChanged === true) agreed.toolsListChanged = true;
  if (filter.promptsListChanged === true) agreed.promptsListChanged = true;
  if (Array.isArray(filter.resourceSubscriptions)) {
    agreed.resourceSubscriptions = filter.resourceSubscriptions.filter((u) => typeof u === 'string');
  }
  const sub = { id, filter: agreed, reply, timers: [] };
  reply.startSse();
  reply.notify('notifications/subscriptions/acknowledged', { notifications: agreed, _meta: { [M_SUBSCRIPTION_ID]: id } });
  listenStreams.add(sub);
  // Keep-alive comments, so idle intermediaries do not time the stream out.
  const keepAlive = setInterval(() => { if (!reply.closed) reply.res.write(': keep-alive\n\n'); }, 15_000);
  sub.timers.push(keepAlive);
  if (agreed.resourceSubscriptions?.includes(WATCHED_URI)) {
    sub.timers.push(setTimeout(() => {
      watchedVersion += 1;
      reply.notify('notifications/resources/updated', { uri: WATCHED_URI, _meta: { [M_SUBSCRIPTION_ID]: id } });
    }, 100));
  }
  const stop = () => {
    listenStreams.delete(sub);
    for (const t of sub.timers) { clearInterval(t); clearTimeout(t); }
  };
  reply.signal.addEventListener('abort', stop, { once: true });
  reply.res.on('close', stop);
}

function endListenStreams() {
  for (const sub of listenStreams) sub.reply.result(complete({ _meta: { [M_SUBSCRIPTION_ID]: sub.id, [M_SERVER_INFO]: SERVER_INFO } }));
}

/** Modern request methods. Each returns a result (resultType is added here) or throws. */
const MODERN_METHODS = {
  'server/discover': () => cacheable({
    supportedVersions: SUPPORTED_VERSIONS,
    capabilities: MODERN_CAPABILITIES,
    instructions: INSTRUCTIONS,
  }),

  'tools/list': (params) => cacheable(toolsPage('modern', params.cursor)),

  'tools/call': async (params, meta, reply, req) => {
    const { name } = params;
    const args = params.arguments ?? {};
    const tool = typeof name === 'string' ? TOOLS_BY_NAME.get(name) : undefined;
    if (!tool || !inEra(tool, 'modern')) throw new RpcError(INVALID_PARAMS, `Unknown tool: ${name}`);
    validateParamHeaders(req, tool, args);
    if (name === 'echo' && typeof args.text === 'string') {
      // The benchmark hot path: no context, no state, no streaming.
      return { content: [{ type: 'text', text: args.text }], resultType: 'complete', _meta: RESULT_META };
    }
    if ('inputResponses' in params && !isObject(params.inputResponses)) throw new RpcError(INVALID_PARAMS, 'inputResponses must be an object');
    const binding = `tools/call:${name}`;
    const ctx = new ModernCtx(reply, params, meta, verifyState(params.requestState, binding, args));
    ctx.binding = binding;
    ctx.args = args;
    try {
      return complete({ ...(await runTool(tool, args, ctx)) });
    } catch (e) {
      if (e instanceof InputRequired) return inputRequiredResult(e);
      if (e instanceof RpcError) throw e;
      if (reply.closed) throw e; // cancelled: nothing is sent anyway
      return complete(toolError(`Tool ${name} failed: ${e.message}`));
    }
  },

  'resources/list': () => cacheable({
    resources: RESOURCES.map(({ uri, name, title, description, mimeType }) => ({ uri, name, title, description, mimeType })),
  }),

  'resources/templates/list': () => cacheable({
    resourceTemplates: [{ uriTemplate: TEMPLATE.uriTemplate, name: TEMPLATE.name, title: TEMPLATE.title, description: TEMPLATE.description, mimeType: TEMPLATE.mimeType }],
  }),

  'resources/read': (params) => {
    const { uri } = params;
    if (typeof uri !== 'string') throw new RpcError(INVALID_PARAMS, 'params.uri must be a string');
    const resource = RESOURCES_BY_URI.get(uri);
    if (resource) return cacheable({ contents: resource.read() });
    const m = TEMPLATE.match.exec(uri);
    if (m) return cacheable({ contents: TEMPLATE.read(uri, decodeURIComponent(m[1])) });
    // 2026-07-28 (SEP-2164): -32602 with the uri, never an empty contents array.
    throw new RpcError(INVALID_PARAMS, 'Resource not found', { uri });
  },

  'prompts/list': () => cacheable({
    prompts: PROMPTS.map((p) => ({
      name: p.name, title: p.title, description: p.description,
      arguments: p.arguments.map(({ name, description, required }) => ({ name, description, required })),
    })),
  }),

  'prompts/get': async (params, meta, reply) => {
    const prompt = PROMPTS_BY_NAME.get(params.name);
    if (!prompt) throw new RpcError(INVALID_PARAMS, `Unknown prompt: ${params.name}`);
    const args = params.arguments ?? {};
    if (!isObject(args)) throw new RpcError(INVALID_PARAMS, 'arguments must be an object');
    for (const a of prompt.arguments) {
      if (a.required && typeof args[a.name] !== 'string') throw new RpcError(INVALID_PARAMS, `Missing required argument: ${a.name}`);
    }
    if ('inputResponses' in params && !isObject(params.inputResponses)) throw new RpcError(INVALID_PARAMS, 'inputResponses must be an object');
    const binding = `prompts/get:${prompt.name}`;
    const ctx = new ModernCtx(reply, params, meta, verifyState(params.requestState, binding, args));
    ctx.binding = binding;
    ctx.args = args;
    try {
      return complete({ description: prompt.description, ...(await prompt.get(args, ctx)) });
    } catch (e) {
      if (e instanceof InputRequired) return inputRequiredResult(e);
      throw e;
    }
  },

  'completion/complete': (params) => complete({ completion: completeArgument(params.ref, params.argument) }),

  'subscriptions/listen': (params, meta, reply, req, id) => {
    subscribe(reply, params, id);
    return undefined; // the stream stays open; it ends with a result at shutdown
  },
};

/** completion/complete for both eras' catalogues. */
function completeArgument(ref, argument) {
  const value = typeof argument?.value === 'string' ? argument.value : '';
  let values = [];
  if (ref?.type === 'ref/prompt') {
    const prompt = PROMPTS_BY_NAME.get(ref.name);
    if (!prompt) throw new RpcError(INVALID_PARAMS, `Unknown prompt: ${ref.name}`);
    values = prompt.arguments.find((a) => a.name === argument?.name)?.complete?.(value) ?? [];
  } else if (ref?.type === 'ref/resource') {
    if (ref.uri !== TEMPLATE.uriTemplate) throw new RpcError(INVALID_PARAMS, `Unknown resource template: ${ref.uri}`);
    values = TEMPLATE.complete[argument?.name]?.(value) ?? [];
  } else {
    throw new RpcError(INVALID_PARAMS, 'Invalid completion reference');
  }
  return { values, total: values.length, hasMore: false };
}

/** Handles one modern POST (body already parsed). */
async function handleModern(req, res, body) {
  seen.by_era.modern += 1;
  if (!isObject(body) || body.jsonrpc !== '2.0') {
    sendJson(res, 400, rpcErrorBody(null, INVALID_REQUEST, 'Invalid Request: expected a single JSON-RPC message'));
    return;
  }
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
    sendJson(res, 406, rpcErrorBody(body.id, INVALID_REQUEST, 'Not Acceptable: Accept must list application/json and text/event-stream'));
    return;
  }
  if (typeof body.method !== 'string') {
    // 2026-07-28: clients MUST NOT send JSON-RPC responses (there are no server→client requests).
    sendJson(res, 400, rpcErrorBody(body.id, INVALID_REQUEST, 'Invalid Request: no server-to-client requests exist on this wire'));
    return;
  }
  if (body.id === undefined) {
    // No client→server notifications are defined for 2026-07-28 over HTTP; accept and ignore.
    res.writeHead(202).end();
    return;
  }
  const reply = new ModernReply(res, body.id);
  if (typeof body.id !== 'string' && typeof body.id !== 'number') {
    reply.error(new RpcError(INVALID_REQUEST, 'Invalid Request: id must be a string or a number', undefined, 400));
    return;
  }
  try {
    const meta = validateModernRequest(req, body);
    const handler = Object.hasOwn(MODERN_METHODS, body.method) ? MODERN_METHODS[body.method] : undefined;
    // Unknown methods, including the removed initialize / ping / logging/setLevel /
    // resources/(un)subscribe: 404 + -32601 (2026-07-28 §Protocol Version Header).
    if (!handler) throw new RpcError(METHOD_NOT_FOUND, `Method not found: ${body.method}`, undefined, 404);
    const result = await handler(body.params, meta, reply, req, body.id);
    if (result !== undefined) reply.result(result);
    if (!FAST) logRequest('modern', body.method, body.params?.name ?? body.params?.uri ?? '', reply.sse ? 'sse' : 'json');
  } catch (err) {
    if (!FAST) logRequest('modern', body.method, 'error', err?.code ?? err?.message);
    reply.error(err);
  }
}

// ---------------------------------------------------------------------------------------------------
// Legacy era (2025-06-18 / 2025-11-25): the SDK's McpServer and StreamableHTTPServerTransport
// ---------------------------------------------------------------------------------------------------

/**
 * Per-session in-memory event store, so a client can resume a POST or GET SSE stream with
 * GET + Last-Event-ID. Event ids are "<streamId>_<seq>" (they name their stream, as 2025-11-25
 * recommends); a replay sends only the later events of that same stream.
 */
class SessionEventStore {
  constructor(limit = 2000) {
    this.events = []; // [{id, streamId, message}], oldest first
    this.seq = 0;
    this.limit = limit;
  }

  async storeEvent(streamId, message) {
    const id = `${streamId}_${++this.seq}`;
    this.events.push({ id, streamId, message });
    if (this.events.length > this.limit) this.events.splice(0, this.events.length - this.limit);
    return id;
  }

  async getStreamIdForEventId(eventId) {
    return this.events.find((e) => e.id === eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId, { send }) {
    const index = this.events.findIndex((e) => e.id === lastEventId);
    if (index < 0) return undefined;
    const { streamId } = this.events[index];
    for (const e of this.events.slice(index + 1)) {
      // Skip other streams and priming events (stored as an empty message).
      if (e.streamId === streamId && Object.keys(e.message).length > 0) await send(e.id, e.message);
    }
    return streamId;
  }
}

const LEGACY_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  completions: {},
  logging: {},
};

const legacySessions = new Map(); // Mcp-Session-Id -> session

const RESULT_SCHEMAS = {
  'sampling/createMessage': CreateMessageResultSchema,
  'elicitation/create': ElicitResultSchema,
  'roots/list': ListRootsResultSchema,
};

/** ctx for tool and prompt handlers in a legacy session (see "Tool context"). */
function legacyCtx(session, extra) {
  const progressToken = extra._meta?.progressToken;
  const clientCapabilities = session.mcp.server.getClientCapabilities() ?? {};
  return {
    era: 'legacy',
    signal: extra.signal,
    clientCapabilities,
    state: undefined,
    progress(progress, total) {
      if (progressToken === undefined) return;
      extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total } }).catch(() => {});
    },
    log(level, data) {
      if (!levelEnabled(session.logLevel, level)) return;
      extra.sendNotification({ method: 'notifications/message', params: { level, logger: 'upstream', data } }).catch(() => {});
    },
    async ask(requests) {
      const answers = {};
      for (const [key, request] of Object.entries(requests)) {
        if (!hasCapability(clientCapabilities, request)) {
          throw new Error(`the client did not declare the capability ${JSON.stringify(requiredCapability(request))} needed for ${request.method}`);
        }
        // Goes out on this tool call's SSE stream (relatedRequestId is set by extra.sendRequest).
        answers[key] = await extra.sendRequest(request, RESULT_SCHEMAS[request.method], { signal: extra.signal });
      }
      return answers;
    },
    stream() {},
    closeStream: extra.closeSSEStream,
  };
}

function createLegacySession() {
  const mcp = new McpServer(SERVER_INFO, { capabilities: LEGACY_CAPABILITIES, instructions: INSTRUCTIONS });
  const session = { mcp, transport: undefined, logLevel: undefined, subscriptions: new Set() };

  // Tools: the shared catalogue on the low-level Server (McpServer.registerTool wants zod schemas
  // and turns unknown tools into isError results; here unknown tools are -32602, as the spec says).
  // A thrown RpcError becomes the JSON-RPC error as is (the SDK sends its code, message, data;
  // McpError would prefix the message with "MCP error <code>: ").
  mcp.server.setRequestHandler(ListToolsRequestSchema, (request) => toolsPage('legacy', request.params?.cursor));
  mcp.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { name, arguments: args = {} } = request.params;
    const tool = TOOLS_BY_NAME.get(name);
    if (!tool || !inEra(tool, 'legacy')) throw new RpcError(INVALID_PARAMS, `Unknown tool: ${name}`);
    try {
      return await runTool(tool, args, legacyCtx(session, extra));
    } catch (e) {
      if (e instanceof RpcError) throw e;
      return toolError(`Tool ${name} failed: ${e.message}`);
    }
  });

  // Resources and the template (with completion of {id}), through McpServer.
  for (const r of RESOURCES) {
    mcp.registerResource(r.name, r.uri, { title: r.title, description: r.description, mimeType: r.mimeType }, async () => ({ contents: r.read() }));
  }
  mcp.registerResource(
    TEMPLATE.name,
    new ResourceTemplate(TEMPLATE.uriTemplate, { list: undefined, complete: TEMPLATE.complete }),
    { title: TEMPLATE.title, description: TEMPLATE.description, mimeType: TEMPLATE.mimeType },
    async (uri, { id }) => ({ contents: TEMPLATE.read(uri.href, String(id)) }),
  );

  // Prompts (arguments as zod strings; completable ones complete through McpServer).
  for (const p of PROMPTS) {
    const config = { title: p.title, description: p.description };
    if (p.arguments.length > 0) {
      config.argsSchema = Object.fromEntries(p.arguments.map((a) => {
        let schema = z.string().describe(a.description);
        if (a.complete) schema = completable(schema, (value) => a.complete(value));
        return [a.name, a.required ? schema : schema.optional()];
      }));
      mcp.registerPrompt(p.name, config, (args, extra) => p.get(args, legacyCtx(session, extra)));
    } else {
      mcp.registerPrompt(p.name, config, (extra) => p.get({}, legacyCtx(session, extra)));
    }
  }

  // logging/setLevel: remembered per session, applied by ctx.log.
  mcp.server.setRequestHandler(SetLevelRequestSchema, async (request) => {
    session.logLevel = request.params.level;
    return {};
  });

  // resources/subscribe: the watched resource "changes" once, 100 ms later
  // (notifications/resources/updated on the session's GET stream).
  mcp.server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    const { uri } = request.params;
    session.subscriptions.add(uri);
    if (uri === WATCHED_URI) {
      setTimeout(() => {
        if (!session.subscriptions.has(uri)) return;
        watchedVersion += 1;
        mcp.server.sendResourceUpdated({ uri }).catch(() => {});
      }, 100);
    }
    return {};
  });
  mcp.server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    session.subscriptions.delete(request.params.uri);
    return {};
  });

  session.transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new SessionEventStore(),
    retryInterval: SSE_RETRY_MS,
    onsessioninitialized: (id) => { legacySessions.set(id, session); },
  });
  session.transport.onclose = () => {
    if (session.transport.sessionId) legacySessions.delete(session.transport.sessionId);
  };
  return session;
}

async function handleLegacy(req, res, body) {
  seen.by_era.legacy += 1;
  const sessionId = req.headers['mcp-session-id'];
  if (sessionId !== undefined) {
    const session = legacySessions.get(sessionId);
    if (!session) {
      sendJson(res, 404, rpcErrorBody(null, -32001, 'Session not found'));
      return;
    }
    await session.transport.handleRequest(req, res, body);
    return;
  }
  if (req.method === 'POST' && isInitializeRequest(body)) {
    const session = createLegacySession();
    await session.mcp.connect(session.transport);
    await session.transport.handleRequest(req, res, body);
    logRequest('legacy initialize', session.transport.sessionId ?? '(no session)');
    return;
  }
  if (req.method !== 'POST' && req.headers['mcp-protocol-version'] === MODERN_VERSION) {
    // A 2026-07-28 client has no GET stream and no session to DELETE.
    sendJson(res, 405, rpcErrorBody(null, INVALID_REQUEST, 'Method Not Allowed'), { allow: 'POST' });
    return;
  }
  sendJson(res, 400, rpcErrorBody(null, -32000, 'Bad Request: No valid session ID provided'));
}

// ---------------------------------------------------------------------------------------------------
// list_changed, to both eras (test_trigger_* tools and POST /__tools_changed)
// ---------------------------------------------------------------------------------------------------

function notifyListChanged(kind) {
  let legacy = 0;
  for (const session of legacySessions.values()) {
    // Unrelated to any request, so the SDK sends it on the session's GET stream (stored in the
    // event store when no GET stream is open).
    const sent = kind === 'tools' ? session.mcp.sendToolListChanged() : session.mcp.sendPromptListChanged();
    Promise.resolve(sent).catch(() => {});
    legacy += 1;
  }
  let modern = 0;
  const wanted = kind === 'tools' ? 'toolsListChanged' : 'promptsListChanged';
  for (const sub of listenStreams) {
    if (sub.filter[wanted] !== true) continue; // never send a type the client did not ask for
    sub.reply.notify(`notifications/${kind}/list_changed`, { _meta: { [M_SUBSCRIPTION_ID]: sub.id } });
    modern += 1;
  }
  return { legacy_sessions: legacy, listen_streams: modern };
}

const describeListChanged = ({ legacy_sessions, listen_streams }) =>
  `${legacy_sessions} legacy session(s) and ${listen_streams} listen stream(s)`;

// ---------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------

// DNS rebinding protection (2025-06-18 §Security Warning): Host must be a loopback name, and an
// Origin, if present, too. Otherwise 403.
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
function loopbackHost(host) {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return LOOPBACK.has(name.toLowerCase());
}
function loopbackOrigin(origin) {
  if (origin === undefined) return true;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK.has(url.hostname.toLowerCase());
  } catch {
    return false;
  }
}

async function handleMcp(req, res) {
  seen.requests += 1;
  count(seen.by_http, req.method);
  const authorization = req.headers.authorization;
  if (authorization !== undefined) seen.authorization.add(authorization);

  if (!loopbackHost(req.headers.host) || !loopbackOrigin(req.headers.origin)) {
    seen.rejected += 1;
    sendJson(res, 403, rpcErrorBody(null, INVALID_REQUEST, 'Forbidden: Host and Origin must be loopback'));
    return;
  }
  if (REQUIRE_TOKEN !== undefined && authorization !== `Bearer ${REQUIRE_TOKEN}`) {
    seen.rejected += 1;
    sendJson(res, 401, { error: 'invalid_token', error_description: 'a valid bearer token is required' }, {
      'www-authenticate': 'Bearer error="invalid_token"',
    });
    return;
  }

  if (req.method === 'GET' || req.method === 'DELETE') {
    await handleLegacy(req, res, undefined);
    return;
  }
  if (req.method !== 'POST') {
    sendJson(res, 405, rpcErrorBody(null, INVALID_REQUEST, 'Method Not Allowed'), { allow: 'GET, POST, DELETE' });
    return;
  }

  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch (err) {
    const status = err instanceof RpcError ? err.httpStatus : 400;
    sendJson(res, status, rpcErrorBody(null, err instanceof RpcError ? err.code : PARSE_ERROR, err instanceof RpcError ? err.message : 'Parse error'));
    return;
  }
  for (const message of Array.isArray(body) ? body : [body]) count(seen.by_method, message?.method ?? '(response)');

  if (isModern(req, body)) await handleModern(req, res, body);
  else await handleLegacy(req, res, body);
}

/**
 * The era of a POST: modern when params._meta carries a non-legacy protocolVersion, or when the
 * MCP-Protocol-Version header is 2026-07-28 and the method is not `initialize`; legacy otherwise.
 */
function isModern(req, body) {
  const header = req.headers['mcp-protocol-version'];
  if (!isObject(body)) return header === MODERN_VERSION;
  const version = isObject(body.params) && isObject(body.params._meta) ? body.params._meta[M_PROTOCOL_VERSION] : undefined;
  if (version !== undefined) return !LEGACY_VERSIONS.has(version);
  return header === MODERN_VERSION && body.method !== 'initialize';
}

const server = http.createServer(async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    if (path === '/mcp') {
      await handleMcp(req, res);
    } else if (path === '/__seen' && req.method === 'GET') {
      sendJson(res, 200, seenJson());
    } else if (path === '/__seen' && req.method === 'DELETE') {
      resetSeen();
      sendJson(res, 200, seenJson());
    } else if (path === '/__tools_changed' && req.method === 'POST') {
      sendJson(res, 200, notifyListChanged('tools'));
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    console.error('[upstream] request error:', err);
    if (!res.headersSent) sendJson(res, 500, rpcErrorBody(null, INTERNAL_ERROR, 'Internal error'));
    else res.destroy();
  }
});
// Long-lived SSE streams (GET, subscriptions/listen, slow tools) must not be cut by Node's timers.
server.requestTimeout = 0;
server.keepAliveTimeout = 30_000;

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`[upstream] ${signal}: shutting down`);
  endListenStreams();
  await Promise.allSettled([...legacySessions.values()].map((s) => s.transport.close()));
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  process.stdout.write(`${JSON.stringify({ mcp_url: `http://${HOST}:${port}/mcp`, port })}\n`);
  console.error(`[upstream] listening on http://${HOST}:${port}/mcp${REQUIRE_TOKEN ? ' (bearer token required)' : ''}${FAST ? ' (FAST)' : ''}`);
});
