// A small MCP client CLI on the real SDK (Client + StreamableHTTPClientTransport), for driving
// Switchboard's MCP gateway (or the upstream fixture, upstream.mjs) from tests and by hand:
//
//   node gateway-client.mjs <url> [--bearer T] [--call TOOL [--args JSON]] [--progress]
//                                 [--resume-test] [--delete] [--timeout MS]
//
// It connects (initialize, so the legacy era: 2025-11-25 or whatever the server negotiates), lists
// every tool (following nextCursor), optionally calls one tool, optionally ends the session with
// DELETE, and prints exactly one line of JSON on stdout:
//
//   {"server_info":{...},"protocol_version":"2025-11-25","session_id":"...","tools":["..."],
//    "call":{...CallToolResult...}|null,"progress":[...],"server_requests":[...],
//    "resume":{...}|null,"deleted":false}
//
// plus "error": "..." (and exit status 1) on failure. Options:
//   --bearer T      send `Authorization: Bearer T` on every request
//   --call TOOL     call TOOL with --args (a JSON object, default {})
//   --progress      ask for progress (a progressToken); notifications land in "progress"
//   --resume-test   call test_reconnection (or --call TOOL), which closes its SSE stream mid-call;
//                   passes only if the client resumed with GET + Last-Event-ID and got the result
//   --delete        terminate the session (HTTP DELETE) at the end; "deleted": true on success
//   --timeout MS    request timeout (default 30000)
//
// The client declares sampling, elicitation (form) and roots, and answers the server's requests
// with canned results (recorded in "server_requests"), so tools such as test_sampling and
// test_elicitation work through a gateway that relays server→client requests.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

function usage(message) {
  const error = `${message}\nusage: node gateway-client.mjs <url> [--bearer T] [--call TOOL [--args JSON]] [--progress] [--resume-test] [--delete] [--timeout MS]`;
  process.stdout.write(`${JSON.stringify({ error })}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { url: undefined, bearer: undefined, call: undefined, args: {}, progress: false, resumeTest: false, delete: false, timeout: 30_000 };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--bearer': opts.bearer = value(); break;
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
      case '--progress': opts.progress = true; break;
      case '--resume-test': opts.resumeTest = true; break;
      case '--delete': opts.delete = true; break;
      case '--timeout': opts.timeout = Number(value()); break;
      default:
        if (a.startsWith('--') || opts.url !== undefined) usage(`unexpected argument: ${a}`);
        opts.url = a;
    }
  }
  if (!opts.url) usage('missing <url>');
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('--timeout must be a positive number');
  if (opts.resumeTest && !opts.call) opts.call = 'test_reconnection';
  return opts;
}

/** A plausible answer for an elicitation form: defaults, else the first enum value, else a dummy. */
function fillForm(schema) {
  const content = {};
  for (const [key, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop.default !== undefined) content[key] = prop.default;
    else if (prop.type === 'array') {
      const first = prop.items?.enum?.[0] ?? prop.items?.anyOf?.[0]?.const;
      content[key] = first === undefined ? [] : [first];
    } else if (prop.enum) content[key] = prop.enum[0];
    else if (prop.oneOf) content[key] = prop.oneOf[0]?.const;
    else if (prop.type === 'boolean') content[key] = true;
    else if (prop.type === 'integer' || prop.type === 'number') content[key] = prop.minimum ?? 1;
    else if (prop.format === 'email') content[key] = 'test@example.com';
    else content[key] = 'test';
  }
  return content;
}

const opts = parseArgs(process.argv.slice(2));
const out = {
  server_info: null,
  protocol_version: null,
  session_id: null,
  tools: [],
  call: null,
  progress: [],
  server_requests: [],
  resume: null,
  deleted: false,
};

// Count resumptions (GET with Last-Event-ID) by wrapping fetch.
let lastEventIdGets = 0;
const countingFetch = (input, init) => {
  if ((init?.method ?? 'GET') === 'GET' && new Headers(init?.headers).has('last-event-id')) lastEventIdGets += 1;
  return fetch(input, init);
};

const client = new Client(
  { name: 'switchboard-gateway-client', version: '1.0.0' },
  { capabilities: { sampling: {}, elicitation: {}, roots: {} } },
);
client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
  out.server_requests.push(request.method);
  return { role: 'assistant', content: { type: 'text', text: 'This is a canned response from gateway-client' }, model: 'gateway-client', stopReason: 'endTurn' };
});
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  out.server_requests.push(request.method);
  if (request.params.mode === 'url') return { action: 'decline' };
  return { action: 'accept', content: fillForm(request.params.requestedSchema) };
});
client.setRequestHandler(ListRootsRequestSchema, async (request) => {
  out.server_requests.push(request.method);
  return { roots: [{ uri: 'file:///tmp/gateway-client', name: 'gateway-client root' }] };
});

const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
  fetch: countingFetch,
  requestInit: opts.bearer ? { headers: { Authorization: `Bearer ${opts.bearer}` } } : undefined,
});

let failed = false;
try {
  await client.connect(transport, { timeout: opts.timeout });
  out.server_info = client.getServerVersion() ?? null;
  out.protocol_version = transport.protocolVersion ?? null;
  out.session_id = transport.sessionId ?? null;

  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: opts.timeout });
    out.tools.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);

  if (opts.call) {
    const requestOptions = { timeout: opts.timeout };
    if (opts.progress) requestOptions.onprogress = (p) => out.progress.push(p);
    out.call = await client.callTool({ name: opts.call, arguments: opts.args }, CallToolResultSchema, requestOptions);
    if (opts.resumeTest) {
      out.resume = { last_event_id_requests: lastEventIdGets, resumed: lastEventIdGets > 0 };
      if (!out.resume.resumed) throw new Error(`${opts.call} returned without the client resuming its SSE stream (no GET with Last-Event-ID)`);
    }
  }

  if (opts.delete) {
    await transport.terminateSession();
    out.deleted = transport.sessionId === undefined;
  }
} catch (err) {
  failed = true;
  out.error = err instanceof Error ? err.message : String(err);
}

await client.close().catch(() => {});
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(failed ? 1 : 0);
