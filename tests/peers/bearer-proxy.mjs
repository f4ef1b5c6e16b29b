// A loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request and otherwise
// passes it on as it came: it stands in for an MCP client configured with a bearer token, in front
// of a client that cannot send one (the official conformance suite's server mode, put in front of
// the Switchboard gateway with a session ticket). Node built-ins only.
//
//   TARGET_URL=http://127.0.0.1:8080/mcp/t/a/s BEARER_TOKEN=… node bearer-proxy.mjs
//   # stdout, exactly one line once it listens:
//   # {"url":"http://127.0.0.1:40126/mcp/t/a/s","port":40126,"target":"http://127.0.0.1:8080/mcp/t/a/s"}
//
// `url` is the proxy's own origin with the target's path and query: point the client there.
// Every request — whatever its method and path — goes to the target's host and port with the
// request's own path, and every header exactly as received (names, order, duplicates; `Host` and
// `Origin` included, so the server behind still sees what the client sent), except that a client
// `Authorization` is replaced by the token's. Bodies stream both ways as they arrive (SSE stays
// unbuffered); a client that goes away closes the upstream request, and an upstream that breaks
// off a response breaks off the client's. An upstream that cannot be reached is `502`.
//
// PORT (default 0: random) is the port to listen on; it binds 127.0.0.1 only. SIGTERM or SIGINT
// stops it with exit status 0. Errors go to stderr.
import http from 'node:http';

let target = null;
try {
  target = new URL(process.env.TARGET_URL ?? '');
} catch {}
const token = process.env.BEARER_TOKEN ?? '';
if (target?.protocol !== 'http:' || !token) {
  process.stderr.write('usage: TARGET_URL=http://host:port/path BEARER_TOKEN=token node bearer-proxy.mjs\n');
  process.exit(2);
}
const targetPort = Number(target.port || 80);
const targetHost = target.hostname.replace(/^\[|\]$/g, '');

const server = http.createServer((req, res) => {
  // rawHeaders keeps names, order and duplicates as the client sent them.
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === 'authorization') continue;
    headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  headers.push('Authorization', `Bearer ${token}`);
  // An array of headers is sent as it is: Node adds no Host of its own.
  const upstream = http.request({
    host: targetHost,
    port: targetPort,
    method: req.method,
    path: req.url,
    headers,
    agent: false,
  });
  upstream.on('response', (up) => {
    res.writeHead(up.statusCode, up.statusMessage, up.rawHeaders);
    res.flushHeaders();
    // pipe writes each chunk as it arrives (with backpressure) and ends with the upstream.
    up.pipe(res);
    // The upstream broke off (or was closed because the client went away).
    up.on('aborted', () => res.destroy());
    up.on('error', () => res.destroy());
  });
  upstream.on('error', (err) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`bearer-proxy: ${err.message}\n`);
    } else {
      res.destroy();
    }
    if (err.code !== 'ECONNRESET') process.stderr.write(`bearer-proxy: ${req.method} ${req.url}: ${err.message}\n`);
  });
  req.pipe(upstream);
  req.on('error', () => upstream.destroy());
  // The client went away before the response was complete: so does the upstream request.
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
});
server.on('connection', (socket) => socket.setNoDelay(true));
server.on('clientError', (err, socket) => socket.destroy(err));

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}${target.pathname}${target.search}`;
  process.stdout.write(`${JSON.stringify({ url, port, target: target.href })}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
