/**
 * The HTTP listener for `/metrics` and `/health` (docs/operations.md, Readiness and Health and metrics;
 * docs/decisions.md, Metrics).
 *
 * Unlike upstream's single-read prefix matcher this is a real HTTP/1.1 server: exact paths (query
 * ignored), HEAD, 405 with `Allow` for other methods, keep-alive. `/health` stays up when metrics
 * are disabled, because load balancers and orchestrators probe it independently of Prometheus.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/logging';
import type { CoordinatorMetrics } from '../observability/metrics';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Undefined when `[metrics] enabled = false`: `/metrics` is then 404, `/health` still served. */
  metrics?: CoordinatorMetrics;
  /** `/health` answers 200 only while `ready`; otherwise 503 with the state as the body. */
  readiness: () => { ready: boolean; state: string };
  logger: Logger;
}

export interface HttpServerHandle {
  server: http.Server;
  address: { host: string; port: number };
  /**
   * Stops listening, closes idle keep-alive connections at once and gives in-flight responses
   * `graceMs` (default 2 s) before cutting every connection left.
   */
  close(graceMs?: number): Promise<void>;
}

const ALLOW = 'GET, HEAD';
/** What prom-client's Registry reports for the Prometheus text format 0.0.4. */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Scrapes and probes are tiny; anything slower is a stuck or hostile client. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How long close() lets an in-flight response finish before cutting its connection. */
const CLOSE_GRACE_MS = 2_000;

/** Resolves once listening; rejects with the listener's own error (e.g. EADDRINUSE) otherwise. */
export function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const { metrics, readiness, logger } = opts;
  let closing = false;

  const server = http.createServer(
    { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    (req, res) => {
      if (closing) res.setHeader('Connection', 'close');
      handle(req, res).catch((err: unknown) => {
        logger.error({ err, path: req.url }, 'http request failed');
        if (!res.headersSent) send(req, res, 500, 'internal error\n');
        else res.destroy();
      });
    },
  );

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = pathOf(req.url ?? '/');
    if (route === '/health') {
      if (!allowed(req, res)) return;
      const r = safeReadiness(readiness, logger);
      send(req, res, r.ready ? 200 : 503, r.ready ? 'OK' : r.state);
      return;
    }
    if (route === '/metrics' && metrics) {
      if (!allowed(req, res)) return;
      if (req.method === 'HEAD') {
        // Rendering resets the per-scrape loop figures; a probe's HEAD must not eat Prometheus's
        // interval, so it gets the headers without a Content-Length instead.
        res.statusCode = 200;
        res.setHeader('Content-Type', METRICS_CONTENT_TYPE);
        res.setHeader('Cache-Control', 'no-store');
        res.end();
        return;
      }
      const { contentType, body } = await metrics.render();
      send(req, res, 200, body, contentType);
      return;
    }
    send(req, res, 404, 'not found\n');
  }

  return new Promise<HttpServerHandle>((resolve, reject) => {
    const onListenError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onListenError);
      server.on('error', (err) => logger.error({ err }, 'metrics http server error'));
      const addr = server.address() as AddressInfo;
      resolve({
        server,
        address: { host: addr.address, port: addr.port },
        close: (graceMs = CLOSE_GRACE_MS) => {
          closing = true;
          return closeServer(server, graceMs);
        },
      });
    };
    server.once('error', onListenError);
    server.once('listening', onListening);
    server.listen({ host: opts.host, port: opts.port });
  });
}

function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      server.closeAllConnections();
      resolve();
      return;
    }
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Answers 405 and returns false for anything but GET/HEAD. */
function allowed(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.setHeader('Allow', ALLOW);
  send(req, res, 405, 'method not allowed\n');
  return false;
}

function send(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  // A request body (a POST to a probe path) is never read; drain it so keep-alive stays usable.
  req.resume();
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** Path without query; absolute-form request targets (`GET http://h/metrics`) are accepted too. */
function pathOf(target: string): string {
  let path = target;
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      return '';
    }
  }
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** A throwing readiness callback is a bug elsewhere; report not ready rather than 500 a probe. */
function safeReadiness(readiness: HttpServerOptions['readiness'], logger: Logger): { ready: boolean; state: string } {
  try {
    return readiness();
  } catch (err) {
    logger.error({ err }, 'readiness callback threw');
    return { ready: false, state: 'unknown' };
  }
}
