/**
 * The handshake's guards against hostile clients: the Origin check (cross-site WebSocket hijacking), the
 * per-session CSRF token, and the failed-handshake limit. The first and the last are decided from the
 * request alone, before the session store is read.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIPv6 } from "node:net";
import createDebug from "debug";
import { DeadlineError, within } from "./deadline.js";
import { ConfigError, RefusalError } from "./errors.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:security");

/** Where the CSRF token lives in the session. */
export const CSRF_KEY = "socketCsrfToken";
const WINDOW_MS = 60_000;
const MEMORY_LIMITER_KEYS = 100_000;
/** Attempts of one address that may wait for their turn at once; more are refused at once. */
const MAX_WAITING_PER_ADDRESS = 1_000;
const NOTHING = () => undefined;

/** Which origins may open a connection: a list of exact origins, a function, or false for no check. */
export type OriginPolicy = readonly string[] | ((origin: string, req: IncomingMessage) => boolean | Promise<boolean>) | false;

/**
 * Counts refused handshakes per client address over a minute. The bridge asks `failures(key)` before reading
 * the store, and calls `fail(key)` after each counted refusal. Either may be async (a shared Redis counter).
 */
export interface FailureLimiter {
  failures(key: string): number | Promise<number>;
  fail(key: string): unknown;
  /** Optional: in how many ms the address's window ends (sent as `retryAfterMs`); a whole minute without it. */
  retryAfterMs?(key: string): number | undefined | Promise<number | undefined>;
}

/** An attempt's place in its address's line; `wake` is set while it waits. */
interface Place {
  wake?: (() => void) | undefined;
}

/** The attempts of one address (see Security.limit). */
interface Turns {
  /** Attempts between limit() and their decision, waiting or not. */
  attempts: number;
  /** Attempts let through and not decided yet. */
  running: number;
  /** Attempts waiting for their turn, oldest first; only the first may take room that frees. */
  line: Place[];
  /** Failures given to an async limiter that it has not confirmed yet. */
  unconfirmed: number;
  /** Failures reported while this entry lived (to count those a limiter's answer may predate). */
  reported: number;
}

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
  private readonly limiter: FailureLimiter | undefined;
  /** The attempts under way per address: an entry lives only while one is (so as many as connections). */
  private readonly turns = new Map<string, Turns>();

  constructor(private readonly options: SecurityOptions) {
    const { origins } = options;
    this.listed = Array.isArray(origins) ? new Set(origins.map(exactOrigin)) : undefined;
    this.limiter = options.failureLimit?.limiter;
  }

  /**
   * Refuses a handshake from an origin that may not connect, or from an address over its failure limit.
   * Returns the function to call once the handshake is decided.
   */
  async screen(req: IncomingMessage): Promise<() => void> {
    // In line at once: the connection's other namespaces, which come in the same tick, queue behind it.
    const limited = this.limit(req);
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
    if (this.limiter || typeof this.options.origins === "function") return this.screen(req);
    this.checkListedOrigin(req);
    return undefined;
  }

  /**
   * Lets a client's attempt run once its address has room for it, counted per address across its connections
   * and namespaces; returns the function to call once the attempt is decided. Only failures count: an address
   * may have `failureLimit - failures` attempts under way, and the others wait (up to `timeoutMs`) for
   * earlier ones to be decided. So a burst of honest attempts is admitted, a little later, while a burst of
   * parallel guesses cannot have more failures counted than the limit. Refuses with `too_many_attempts` (and
   * `retryAfterMs`) an address at its limit, or one whose attempts waited `timeoutMs` for their turn.
   */
  async limit(req: IncomingMessage): Promise<() => void> {
    const limiter = this.limiter;
    if (!limiter) return NOTHING;
    const max = this.options.failureLimit?.perMinute ?? Infinity;
    const key = this.addressKey(req);
    const turns = this.turnsOf(key);
    turns.attempts++;
    const deadline = Date.now() + this.options.timeoutMs;
    const place: Place = {};
    try {
      if (turns.line.length >= MAX_WAITING_PER_ADDRESS) throw await this.tooMany(key, false, deadline);
      // In the order the attempts came: a connection's handshake goes before its other namespaces, which wait
      // for it (taken out of order, they could fill the room and wait for it forever).
      turns.line.push(place);
      while (turns.line[0] !== place) if (!(await waitTurn(place, deadline))) throw await this.tooMany(key, false, deadline);
      for (;;) {
        const failures = await this.failuresOf(key, turns, deadline);
        if (failures >= max) throw await this.tooMany(key, true, deadline);
        if (turns.running < max - failures) {
          turns.running++;
          return once(() => {
            turns.running--;
            this.leave(key, turns);
            // Later, so that a refusal decided in the same turn is counted before the next in line reads the count.
            setImmediate(wakeFirst, turns);
          });
        }
        if (!(await waitTurn(place, deadline))) throw await this.tooMany(key, false, deadline);
      }
    } catch (refusal) {
      this.leave(key, turns);
      throw refusal;
    } finally {
      // Out of the line; the next one goes on at once (it learns the same refusal now, not at its deadline).
      const at = turns.line.indexOf(place);
      if (at >= 0) turns.line.splice(at, 1);
      if (at === 0) wakeFirst(turns);
    }
  }

  /**
   * Counts a refusal against the client's address. Not counted: refused origins (another site's page can make
   * a victim's browser send those), the limiter's own refusals, and the server's faults (`reconnect: true`).
   */
  refused(req: IncomingMessage, refusal: RefusalError): void {
    if (!this.limiter || refusal.reconnect) return;
    if (refusal.code === "too_many_attempts" || refusal.code === "origin_not_allowed") return;
    const key = this.addressKey(req);
    const turns = this.turns.get(key);
    if (turns) turns.reported++;
    let counting: unknown;
    try {
      counting = this.limiter.fail(key);
    } catch (err) {
      debug("failure limiter: %O", err);
      return;
    }
    if (typeof (counting as PromiseLike<unknown> | null)?.then !== "function") return;
    // Until a shared limiter has counted it, this node counts it itself (see failuresOf).
    const pending = turns ?? this.turnsOf(key);
    pending.unconfirmed++;
    within(this.options.timeoutMs, (done) => Promise.resolve(counting).then(() => done(), done))
      .catch((err: unknown) => debug("failure limiter: %O", err))
      .finally(() => {
        pending.unconfirmed--;
        this.leave(key, pending, false);
      });
  }

  /**
   * The address's failures in the window: the limiter's count, plus the failures it may not have seen yet
   * (still being counted, or reported while it answered). A limiter that cannot answer counts none: it must
   * not lock every client out.
   */
  private async failuresOf(key: string, turns: Turns, deadline: number): Promise<number> {
    const unconfirmed = turns.unconfirmed;
    const reported = turns.reported;
    let counted = 0;
    try {
      counted = await within<number>(Math.max(1, deadline - Date.now()), (done) =>
        Promise.resolve(this.limiter!.failures(key)).then((n) => done(null, n), done),
      );
    } catch (err) {
      debug("failure limiter: %O", err);
    }
    counted = Number(counted);
    if (!Number.isFinite(counted)) counted = 0;
    return counted + unconfirmed + (turns.reported - reported);
  }

  /** `too_many_attempts`, saying when the address may try again: when its window ends, or after one deadline. */
  private async tooMany(key: string, overLimit: boolean, deadline: number): Promise<RefusalError> {
    let retryAfterMs: number | undefined = overLimit ? undefined : this.options.timeoutMs;
    const { retryAfterMs: resetIn } = this.limiter!;
    if (overLimit && resetIn) {
      try {
        retryAfterMs = await within<number | undefined>(Math.max(1, deadline - Date.now()), (done) =>
          Promise.resolve(resetIn.call(this.limiter, key)).then((ms) => done(null, ms), done),
        );
      } catch (err) {
        debug("failure limiter: %O", err);
      }
    }
    // Unknown (a limiter that cannot say): a whole window.
    if (typeof retryAfterMs !== "number" || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) retryAfterMs = WINDOW_MS;
    return new RefusalError("too_many_attempts", { data: { retryAfterMs: Math.ceil(retryAfterMs) } });
  }

  private turnsOf(key: string): Turns {
    let turns = this.turns.get(key);
    if (!turns) this.turns.set(key, (turns = { attempts: 0, running: 0, line: [], unconfirmed: 0, reported: 0 }));
    return turns;
  }

  /** One attempt (or one count) of the address is over; its entry goes once nothing of it is left. */
  private leave(key: string, turns: Turns, attempt = true): void {
    if (attempt) turns.attempts--;
    if (turns.attempts === 0 && turns.unconfirmed === 0 && this.turns.get(key) === turns) this.turns.delete(key);
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

/** Waits until `place` is woken (true: it may be its turn), or until `deadline` (false). */
function waitTurn(place: Place, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      place.wake = undefined;
      resolve(false);
    }, Math.max(0, deadline - Date.now()));
    place.wake = () => {
      clearTimeout(timer);
      place.wake = undefined;
      resolve(true);
    };
  });
}

/** Wakes the first in line, if it waits (one that is reading the count sees the room when it is back). */
function wakeFirst(turns: Turns): void {
  turns.line[0]?.wake?.();
}

/** `fn`, callable once; later calls do nothing. */
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
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

/** An in-memory FailureLimiter: a count per address per minute. The default. */
export function memoryFailureLimiter(): FailureLimiter {
  const counts = new Map<string, { count: number; until: number }>();
  const current = (key: string) => {
    const entry = counts.get(key);
    return entry && entry.until > Date.now() ? entry : undefined;
  };
  return {
    failures: (key) => current(key)?.count ?? 0,
    retryAfterMs(key) {
      const entry = current(key);
      return entry && entry.until - Date.now();
    },
    fail(key) {
      const now = Date.now();
      const entry = current(key) ?? { count: 0, until: now + WINDOW_MS };
      entry.count++;
      counts.delete(key);
      counts.set(key, entry);
      // Bounded: drop expired entries, then the oldest, down to 90% of the cap (so this runs rarely).
      if (counts.size > MEMORY_LIMITER_KEYS) {
        for (const [k, e] of counts) if (e.until <= now) counts.delete(k);
        for (const k of counts.keys()) {
          if (counts.size <= MEMORY_LIMITER_KEYS * 0.9) break;
          counts.delete(k);
        }
      }
    },
  };
}

/** The commands of a Redis client that redisFailureLimiter uses, as ioredis spells them. */
export interface RedisCounterClient {
  get(key: string): Promise<string | null>;
  incr(key: string): Promise<number>;
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<unknown>;
  /** Optional: lets a refusal say when the window ends (`retryAfterMs`); without it, a whole minute. */
  pttl?(key: string): Promise<number>;
}

/**
 * A FailureLimiter shared by every node through Redis: one counter per address. The key is created with its
 * one-minute expiry before it is incremented, so no failure can leave a counter that never expires.
 */
export function redisFailureLimiter(
  client: RedisCounterClient,
  { prefix = "psb:failures:" }: { prefix?: string } = {},
): FailureLimiter {
  return {
    async failures(key) {
      return Number((await client.get(prefix + key)) ?? 0);
    },
    async fail(key) {
      await client.set(prefix + key, "0", "PX", WINDOW_MS, "NX");
      await client.incr(prefix + key);
    },
    async retryAfterMs(key) {
      // (PTTL is -2 for no key and -1 for no expiry: neither says when the window ends.)
      const ms = client.pttl ? await client.pttl(prefix + key) : -1;
      return ms >= 0 ? ms : undefined;
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
