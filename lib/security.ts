/**
 * The handshake's guards against hostile clients: the Origin check (cross-site WebSocket hijacking), the
 * per-session CSRF token, and the failed-handshake limit (limiter.ts), keyed by the client's address. The
 * first and the last are decided from the request alone, before the session store is read.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIPv6 } from "node:net";
import createDebug from "debug";
import { DeadlineError, within } from "./deadline.js";
import { ConfigError, RefusalError } from "./errors.js";
import { FailureLimit, type FailureLimiter } from "./limiter.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:security");

/** Where the CSRF token lives in the session. */
export const CSRF_KEY = "socketCsrfToken";
const NOTHING = () => undefined;

/** Which origins may open a connection: a list of exact origins, a function, or false for no check. */
export type OriginPolicy = readonly string[] | ((origin: string, req: IncomingMessage) => boolean | Promise<boolean>) | false;

/** Which proxies to believe: none (false), one (true), or this many hops in front of the server. */
export type TrustProxy = boolean | number;

export interface SecurityOptions {
  origins: OriginPolicy | undefined;
  requireOrigin: boolean;
  trustProxy: TrustProxy;
  csrf: boolean;
  /** How many refused handshakes an address may have per minute, counted by which limiter; undefined: no limit. */
  failureLimit: { perMinute: number; limiter: FailureLimiter } | undefined;
  /** How long the origins function and the limiter may take (the bridge's storeTimeoutMs). */
  timeoutMs: number;
}

export class Security {
  private readonly listed: Set<string> | undefined;
  private readonly limit: FailureLimit | undefined;

  constructor(private readonly options: SecurityOptions) {
    const { origins, failureLimit } = options;
    this.listed = Array.isArray(origins) ? new Set(origins.map(exactOrigin)) : undefined;
    this.limit = failureLimit && new FailureLimit(failureLimit.perMinute, failureLimit.limiter, options.timeoutMs);
  }

  /**
   * Refuses a handshake from an origin that may not connect, or from an address over its failure limit.
   * Returns the function to call once the handshake is decided.
   */
  async screen(req: IncomingMessage): Promise<() => void> {
    // In line at once: the connection's other namespaces, which come in the same tick, queue behind it.
    const limited = this.take(req);
    try {
      await this.checkOrigin(req);
    } catch (refusal) {
      limited.then((decided) => decided(), NOTHING);
      throw refusal;
    }
    return limited;
  }

  /**
   * screen(), without waiting when nothing needs to: with the default origin check or a list (or none), and
   * no failure limit, the decision is synchronous. Then it returns undefined once the request passed (there
   * is nothing to call once decided), or throws the refusal; otherwise it returns screen()'s promise.
   */
  screenNow(req: IncomingMessage): Promise<() => void> | undefined {
    if (this.limit || typeof this.options.origins === "function") return this.screen(req);
    this.checkListedOrigin(req);
    return undefined;
  }

  /**
   * Lets a client's attempt run once its address has room for it under the failure limit (limiter.ts); returns
   * the function to call once the attempt is decided.
   */
  take(req: IncomingMessage): Promise<() => void> {
    return this.limit ? this.limit.take(this.addressKey(req)) : Promise.resolve(NOTHING);
  }

  /**
   * Counts a refusal against the client's address. Not counted: refused origins (another site's page can make
   * a victim's browser send those), the limiter's own refusals, and the server's faults (`reconnect: true`).
   */
  refused(req: IncomingMessage, refusal: RefusalError): void {
    if (!this.limit || refusal.reconnect) return;
    if (refusal.code === "too_many_attempts" || refusal.code === "origin_not_allowed") return;
    this.limit.failed(this.addressKey(req));
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
    const { origins, requireOrigin } = this.options;
    if (typeof origins !== "function") return this.checkListedOrigin(req);
    const origin = req.headers.origin;
    if (origin === undefined) {
      if (requireOrigin) throw refuse(undefined, "no Origin header");
      return;
    }
    let allowed: unknown;
    try {
      allowed = await within<boolean>(this.options.timeoutMs, (done) =>
        Promise.resolve(origins(origin, req)).then((answer) => done(null, answer), done),
      );
    } catch (err) {
      debug(err instanceof DeadlineError ? "the origins function did not answer" : "the origins function threw: %O", err);
    }
    if (allowed === true) return;
    throw refuse(origin, "refused by the origins function");
  }

  /** The Origin check without an origins function: the request's own origin, a listed one, or none. */
  private checkListedOrigin(req: IncomingMessage): void {
    const { origins, requireOrigin, trustProxy } = this.options;
    if (origins === false) return;
    const origin = req.headers.origin;
    if (origin === undefined) {
      // Browsers send Origin with every WebSocket handshake and every cross-origin request whose answer a page
      // may read; without one, no cross-site page can read the connection (unless requireOrigin says so).
      if (requireOrigin) throw refuse(undefined, "no Origin header");
      return;
    }
    if (origin !== "null" && (isOwnOrigin(req, origin, trustProxy) || this.listed?.has(origin))) return;
    throw refuse(origin, "not allowed");
  }

  private addressKey(req: IncomingMessage): string {
    return addressKey(clientAddress(req, this.options.trustProxy));
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

/**
 * The client's address: the socket's peer, or with trustProxy the X-Forwarded-For entry that the nearest
 * trusted proxy added (counted from the right: entries further left come from the client and can be forged).
 */
export function clientAddress(req: IncomingMessage, trustProxy: TrustProxy): string {
  const forwarded = fromProxy(req.headers["x-forwarded-for"], trustProxy);
  const address = forwarded || req.socket?.remoteAddress || "unknown";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** One limiter key per IPv4 address, and per /64 for IPv6 (where one client holds a whole /64). */
function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "").toLowerCase()).join(":")}::/64`;
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

/**
 * Whether `origin` is the origin this request was made to. Browsers send Origin serialized (lower case, no
 * default port), so a browser's Origin that spells the request's own scheme and Host exactly is its origin,
 * with no URL to parse; anything else is compared with the parsed, normalized origin.
 */
function isOwnOrigin(req: IncomingMessage, origin: string, trustProxy: TrustProxy): boolean {
  if (!trustProxy) {
    const host = req.headers.host;
    const proto = (req.socket as { encrypted?: boolean } | undefined)?.encrypted ? "https://" : "http://";
    if (host && origin.length === proto.length + host.length && origin.startsWith(proto) && origin.endsWith(host)) return true;
  }
  return origin === ownOrigin(req, trustProxy);
}

/** The origin this request was made to: what a same-origin page sends as Origin. */
function ownOrigin(req: IncomingMessage, trustProxy: TrustProxy): string | undefined {
  const forwardedProto = fromProxy(req.headers["x-forwarded-proto"], trustProxy)?.toLowerCase();
  const proto = forwardedProto ?? ((req.socket as { encrypted?: boolean } | undefined)?.encrypted ? "https" : "http");
  if (proto !== "http" && proto !== "https") return undefined;
  const host = fromProxy(req.headers["x-forwarded-host"], trustProxy) ?? req.headers.host;
  if (!host) return undefined;
  try {
    const { origin } = new URL(`${proto}://${host}`);
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * Whether the browser reached this request over https, by express-session's rule for a Secure cookie: a TLS
 * socket, or X-Forwarded-Proto from a trusted proxy. (With no trust, a forwarded header counts for nothing.)
 */
export function overHttps(req: IncomingMessage, trustProxy: TrustProxy): boolean {
  if ((req.socket as { encrypted?: boolean } | undefined)?.encrypted) return true;
  return fromProxy(req.headers["x-forwarded-proto"], trustProxy)?.toLowerCase() === "https";
}

/** The value a trusted proxy put in a forwarding header: the entry `hops` from the right. */
function fromProxy(header: string | string[] | undefined, trustProxy: TrustProxy): string | undefined {
  const hops = trustProxy === true ? 1 : typeof trustProxy === "number" ? trustProxy : 0;
  if (hops < 1 || header === undefined) return undefined;
  const entries = [header]
    .flat()
    .join(",")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  return entries[entries.length - hops] || undefined;
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
