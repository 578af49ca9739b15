/**
 * The handshake's guards against hostile clients: the Origin check (cross-site WebSocket hijacking), the
 * per-session CSRF token, and the failed-handshake rate limit. The first and the last are decided from the
 * request alone, before the session store is read.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { ConfigError, RefusalError } from "./errors.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:security");

/** Where the CSRF token lives in the session. */
export const CSRF_KEY = "socketCsrfToken";
const WINDOW_MS = 60_000;

/** Which origins may open a connection: a list of exact origins, a function, or false for no check. */
export type OriginPolicy = readonly string[] | ((origin: string, req: IncomingMessage) => boolean | Promise<boolean>) | false;

/**
 * Counts refused handshakes per client address over a minute. The bridge asks `failures(key)` before reading
 * the store, and calls `fail(key)` after each refusal. Either may be async (a shared Redis counter).
 */
export interface FailureLimiter {
  failures(key: string): number | Promise<number>;
  fail(key: string): unknown;
}

export interface SecurityOptions {
  origins: OriginPolicy | undefined;
  requireOrigin: boolean;
  trustProxy: boolean;
  csrf: boolean;
  maxFailuresPerMinute: number | undefined;
  failureLimiter: FailureLimiter | undefined;
}

export class Security {
  private readonly listed: Set<string> | undefined;
  private readonly limiter: FailureLimiter | undefined;

  constructor(private readonly options: SecurityOptions) {
    const { origins } = options;
    this.listed = Array.isArray(origins) ? new Set(origins.map(exactOrigin)) : undefined;
    this.limiter = options.maxFailuresPerMinute ? (options.failureLimiter ?? memoryFailureLimiter()) : undefined;
  }

  /** Refuses a handshake from an origin that may not connect, or from an address over its failure limit. */
  async screen(req: IncomingMessage): Promise<void> {
    await this.checkOrigin(req);
    if (!this.limiter) return;
    let failures = 0;
    try {
      failures = await this.limiter.failures(clientAddress(req, this.options.trustProxy));
    } catch (err) {
      // A limiter that cannot count must not lock every client out.
      debug("failure limiter: %O", err);
    }
    if (failures >= (this.options.maxFailuresPerMinute ?? Infinity)) throw new RefusalError("too_many_attempts");
  }

  /** Counts a refusal against the client's address (not the limiter's own, nor the server's faults). */
  refused(req: IncomingMessage, refusal: RefusalError): void {
    if (!this.limiter || refusal.reconnect || refusal.code === "too_many_attempts") return;
    try {
      void Promise.resolve(this.limiter.fail(clientAddress(req, this.options.trustProxy))).catch((err: unknown) =>
        debug("failure limiter: %O", err),
      );
    } catch (err) {
      debug("failure limiter: %O", err);
    }
  }

  /** With `csrf: true`, refuses a socket whose `auth.csrf` is not its session's token. */
  checkCsrf(socket: AnySocket): void {
    if (!this.options.csrf) return;
    const expected = (socket.request.session as unknown as Record<string, unknown> | undefined)?.[CSRF_KEY];
    const presented = (socket.handshake.auth as Record<string, unknown> | undefined)?.csrf;
    if (typeof expected !== "string" || typeof presented !== "string" || !sameSecret(presented, expected)) {
      throw new RefusalError("csrf_mismatch");
    }
  }

  private async checkOrigin(req: IncomingMessage): Promise<void> {
    const { origins, requireOrigin, trustProxy } = this.options;
    if (origins === false) return;
    const origin = req.headers.origin;
    if (origin === undefined) {
      // Only browsers send Origin, and only browsers carry a victim's cookies.
      if (requireOrigin) throw refuse(undefined, "no Origin header");
      return;
    }
    if (origin === ownOrigin(req, trustProxy)) return;
    if (typeof origins === "function") {
      let allowed: unknown;
      try {
        allowed = await origins(origin, req);
      } catch (err) {
        debug("the origins function threw: %O", err);
      }
      if (allowed === true) return;
    } else if (origin !== "null" && this.listed?.has(origin)) {
      return;
    }
    throw refuse(origin, "not allowed");
  }
}

/** The CSRF token of the request's session, created on first use. */
export function csrfTokenOf(req: IncomingMessage): string {
  const session = req.session as unknown as Record<string, unknown> | undefined;
  if (!session) {
    throw new ConfigError("csrfToken(req) needs a request that went through your session middleware.");
  }
  if (typeof session[CSRF_KEY] !== "string") session[CSRF_KEY] = randomBytes(32).toString("base64url");
  return session[CSRF_KEY] as string;
}

/** The client's address: the socket's peer, or with trustProxy the first X-Forwarded-For entry. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? firstValue(req.headers["x-forwarded-for"]) : undefined;
  const address = forwarded || req.socket?.remoteAddress || "unknown";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** An in-memory FailureLimiter: a count per address per minute. The default. */
export function memoryFailureLimiter(): FailureLimiter {
  const counts = new Map<string, { count: number; until: number }>();
  const current = (key: string) => {
    const entry = counts.get(key);
    return entry && entry.until > Date.now() ? entry : undefined;
  };
  return {
    failures: (key) => current(key)?.count ?? 0,
    fail(key) {
      const now = Date.now();
      const entry = current(key) ?? { count: 0, until: now + WINDOW_MS };
      entry.count++;
      counts.set(key, entry);
      if (counts.size > 100_000) for (const [k, e] of counts) if (e.until <= now) counts.delete(k);
    },
  };
}

/** The commands of a Redis client that redisFailureLimiter uses (ioredis has them as they are). */
export interface RedisCounterClient {
  get(key: string): Promise<string | null>;
  incr(key: string): Promise<number>;
  pexpire(key: string, ms: number): Promise<unknown>;
}

/** A FailureLimiter shared by every node through Redis: one counter per address, expiring after a minute. */
export function redisFailureLimiter(
  client: RedisCounterClient,
  { prefix = "psb:failures:" }: { prefix?: string } = {},
): FailureLimiter {
  return {
    async failures(key) {
      return Number((await client.get(prefix + key)) ?? 0);
    },
    async fail(key) {
      if ((await client.incr(prefix + key)) === 1) await client.pexpire(prefix + key, WINDOW_MS);
    },
  };
}

/** Checks and normalizes an `origins` entry: scheme://host[:port], nothing else. */
export function exactOrigin(origin: string): string {
  let url: URL | undefined;
  try {
    url = new URL(origin);
  } catch {
    url = undefined;
  }
  const bare = url && url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
  if (!url || !bare || url.origin === "null" || !origin.includes("://")) {
    throw new ConfigError(
      `"${origin}" is not an origin. List origins as scheme://host[:port], e.g. "https://app.example.com".`,
    );
  }
  return url.origin;
}

/** The origin this request was made to: what a same-origin page sends as Origin. */
function ownOrigin(req: IncomingMessage, trustProxy: boolean): string | undefined {
  const proto =
    (trustProxy ? firstValue(req.headers["x-forwarded-proto"]) : undefined) ??
    ((req.socket as { encrypted?: boolean } | undefined)?.encrypted ? "https" : "http");
  const host = (trustProxy ? firstValue(req.headers["x-forwarded-host"]) : undefined) ?? req.headers.host;
  if (!host) return undefined;
  try {
    return new URL(`${proto}://${host}`).origin;
  } catch {
    return undefined;
  }
}

function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const first = value?.split(",")[0]?.trim();
  return first || undefined;
}

/** Equal strings, compared in constant time (hashing first makes the lengths equal). */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function refuse(origin: string | undefined, why: string): RefusalError {
  debug("origin %s: %s", origin, why);
  return new RefusalError("origin_not_allowed");
}
