/**
 * Live sessions: the sessions that have admitted sockets on this node, kept honest after the handshake.
 * One entry per session (not per socket) holds one expiry timer, the keep-alive throttle, the optional
 * revalidation timer and the withSession queue, so every cost here is per session.
 *
 * - Expiry: a timer at the session's `cookie.expires`. Renewals seen by any node's store hooks move it
 *   without a store read; only when nobody renewed does it read the store, once, to confirm.
 * - Keep-alive: client events touch the store at most once per session per interval.
 * - Refresh: re-read the session and re-run deserializeUser, once per session, for all its sockets.
 * - withSession: reload, run, touch and save, one call at a time per session.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { DeadlineError, within } from "./deadline.js";
import { BridgeError, type EndCode } from "./errors.js";
import { guardDeserializers, type Identity } from "./handshake.js";
import type { ResolvedOptions } from "./options.js";
import { toUserId } from "./rooms.js";
import { expiresOf, type SessionRecord, type SessionStore } from "./store-hooks.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:live");

/** setTimeout's ceiling (about 24.8 days); longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long to wait before asking a failing store again about an expiry. */
const STORE_RETRY_MS = 5000;
/** How many renewals this node remembers for other nodes' expiry questions. */
const RENEWALS_KEPT = 50_000;

type Request = IncomingMessage & Record<string, any>;

interface LiveSession {
  id: string;
  userId: string;
  sockets: Set<AnySocket>;
  /** When the session expires (ms since the epoch), as last known; undefined for browser-session cookies. */
  expires: number | undefined;
  /** The cookie's maxAge, which a keep-alive touch renews. */
  maxAge: number | undefined;
  expiryTimer?: NodeJS.Timeout | undefined;
  revalidateTimer?: NodeJS.Timeout | undefined;
  /** When the session was last renewed, as far as this node knows (the keep-alive clock). */
  renewedAt: number;
  /** The tail of this session's withSession queue. */
  queue: Promise<unknown>;
}

export interface LiveSessionsDeps {
  options: ResolvedOptions<unknown>;
  /** The session store, once known. */
  store(): SessionStore | undefined;
  /** Ends the session's sockets: `everywhere` on every node, else on this one. */
  end(sessionId: string, code: EndCode, everywhere: boolean): Promise<unknown>;
  /** The latest expiry any node has seen written for the session. */
  renewalsElsewhere(sessionId: string): Promise<number | undefined>;
}

export class LiveSessions {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly renewals = new Map<string, number>();

  constructor(private readonly deps: LiveSessionsDeps) {}

  /** Tracks an admitted socket under its session. */
  add(socket: AnySocket, identity: Identity): void {
    const req = socket.request as Request;
    const cookie = req.session?.cookie as { expires?: Date | null; originalMaxAge?: number | null } | undefined;
    let live = this.sessions.get(identity.sessionId);
    if (!live) {
      live = {
        id: identity.sessionId,
        userId: identity.userId,
        sockets: new Set(),
        expires: undefined,
        maxAge: undefined,
        renewedAt: Date.now(),
        queue: Promise.resolve(),
      };
      this.sessions.set(live.id, live);
      this.scheduleRevalidation(live);
    }
    live.sockets.add(socket);
    live.maxAge = cookie?.originalMaxAge ?? live.maxAge;
    const expires = expiresOf({ cookie });
    if (expires !== undefined && (live.expires === undefined || expires > live.expires)) {
      live.expires = expires;
      // An HTTP request renewed it maxAge before it expires: the keep-alive clock starts there.
      if (live.maxAge) live.renewedAt = expires - live.maxAge;
      this.scheduleExpiry(live);
    }
    if (this.deps.options.keepAliveMs) socket.use((_packet, next) => (this.activity(live), next()));
    socket.once("disconnect", () => this.remove(socket, live));
  }

  private remove(socket: AnySocket, live: LiveSession): void {
    live.sockets.delete(socket);
    if (live.sockets.size > 0 || this.sessions.get(live.id) !== live) return;
    clearTimeout(live.expiryTimer);
    clearTimeout(live.revalidateTimer);
    this.sessions.delete(live.id);
  }

  /** Called by the store hooks when this node writes a session: remember its new expiry. */
  renewed(sessionId: string, expires: number | undefined): void {
    const live = this.sessions.get(sessionId);
    if (live) live.renewedAt = Date.now();
    if (expires === undefined) return;
    this.renewals.delete(sessionId);
    this.renewals.set(sessionId, expires);
    if (this.renewals.size > RENEWALS_KEPT) this.renewals.delete(this.renewals.keys().next().value!);
  }

  /** This node's answer to "when does this session expire, as far as you wrote it?". */
  renewalOf(sessionId: string): number | undefined {
    return this.renewals.get(sessionId);
  }

  /** User ids with at least one socket on this node. */
  users(): string[] {
    return [...new Set([...this.sessions.values()].map((live) => live.userId))];
  }

  hasUser(userId: string): boolean {
    for (const live of this.sessions.values()) if (live.userId === userId) return true;
    return false;
  }

  /** Re-reads each local session of `userId` and re-runs deserializeUser. Resolves with how many. */
  async refreshUser(userId: string): Promise<number> {
    const mine = [...this.sessions.values()].filter((live) => live.userId === userId);
    const results = await Promise.all(mine.map((live) => this.revalidate(live)));
    return results.filter(Boolean).length;
  }

  /**
   * Reloads the socket's session, runs `fn` on it, then touches and saves it. Calls for one session run
   * one at a time on this node.
   */
  withSession<T>(socket: AnySocket, fn: (session: any) => T | Promise<T>): Promise<T> {
    const sessionId = (socket.data as { sessionId?: string }).sessionId;
    const live = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    if (!live || !live.sockets.has(socket)) {
      return Promise.reject(
        new BridgeError("no_session", "withSession() needs a connected socket that was admitted with a session."),
      );
    }
    const run = async () => {
      const req = socket.request as Request;
      const ms = this.deps.options.storeTimeoutMs;
      try {
        await within(ms, (done) => req.session.reload(done));
      } catch (cause) {
        if (cause instanceof DeadlineError || !/failed to load session/.test(String((cause as Error)?.message))) {
          throw new BridgeError("store_unavailable", "The session store did not answer; nothing was changed.", { cause });
        }
        // End the sockets once the caller has seen the rejection (and, say, acknowledged the client's event).
        setImmediate(() => void this.deps.end(live.id, "logged_out", true).catch((err) => debug("%O", err)));
        throw new BridgeError("logged_out", "The session no longer exists: it was logged out or it expired.", { cause });
      }
      const result = await fn(req.session);
      req.session.touch();
      await within(ms, (done) => req.session.save(done));
      return result;
    };
    const result = live.queue.then(run, run);
    live.queue = result.catch(() => undefined);
    return result;
  }

  private activity(live: LiveSession): void {
    const store = this.deps.store();
    const now = Date.now();
    const interval = Math.min(this.deps.options.keepAliveMs || Infinity, (live.maxAge ?? Infinity) / 2);
    if (!store?.touch || now - live.renewedAt < interval) return;
    live.renewedAt = now;
    const [socket] = live.sockets;
    const session = (socket?.request as Request | undefined)?.session;
    if (!session?.cookie) return;
    // Renew the cookie's expiry the way express-session does on a request, then write only the TTL.
    session.touch();
    store.touch(live.id, session as unknown as SessionRecord, (err?: unknown) => {
      if (err) debug("keep-alive touch of %s failed: %O", live.id, err);
    });
  }

  private scheduleExpiry(live: LiveSession): void {
    clearTimeout(live.expiryTimer);
    if (live.expires === undefined) return;
    const delay = Math.min(Math.max(0, live.expires - Date.now()), MAX_TIMER_MS);
    live.expiryTimer = setTimeout(() => void this.checkExpiry(live), delay).unref();
  }

  /** At the known expiry: follow a renewal if any node saw one, else confirm with one store read. */
  private async checkExpiry(live: LiveSession): Promise<void> {
    try {
      const now = Date.now();
      if ((live.expires ?? Infinity) > now) return this.scheduleExpiry(live);
      let expires = Math.max(live.expires ?? 0, this.renewals.get(live.id) ?? 0);
      if (expires <= now) expires = Math.max(expires, (await this.deps.renewalsElsewhere(live.id)) ?? 0);
      if (expires <= now) expires = Math.max(expires, expiresOf(await this.read(live.id)) ?? 0);
      if (this.sessions.get(live.id) !== live) return;
      if (expires > Date.now()) {
        live.expires = expires;
        return this.scheduleExpiry(live);
      }
      debug("session %s expired", live.id);
      await this.deps.end(live.id, "session_expired", false);
    } catch (err) {
      debug("expiry check of %s failed, retrying in %d ms: %O", live.id, STORE_RETRY_MS, err);
      clearTimeout(live.expiryTimer);
      live.expiryTimer = setTimeout(() => void this.checkExpiry(live), STORE_RETRY_MS).unref();
    }
  }

  private scheduleRevalidation(live: LiveSession): void {
    const every = this.deps.options.revalidateEveryMs;
    if (!every) return;
    live.revalidateTimer = setTimeout(async () => {
      await this.revalidate(live);
      if (this.sessions.get(live.id) === live) this.scheduleRevalidation(live);
    }, every).unref();
  }

  /**
   * Re-reads the session and re-runs deserializeUser, then gives every socket of the session the fresh
   * session and user. Ends the sockets when the session or its user is gone. Resolves true when refreshed.
   */
  private async revalidate(live: LiveSession): Promise<boolean> {
    const { options } = this.deps;
    const [first] = live.sockets;
    if (!first) return false;
    try {
      const record = await this.read(live.id);
      const serialized = (record?.[options.passportKey] as { user?: unknown } | undefined)?.user;
      // Gone, logged out in place, or now someone else's: the identity the sockets were admitted with is over.
      if (!record || (!serialized && serialized !== 0) || toUserId(serialized) !== live.userId) {
        const code = (live.expires ?? Infinity) <= Date.now() ? "session_expired" : "logged_out";
        await this.deps.end(live.id, code, false);
        return false;
      }
      guardDeserializers(options.passport);
      const user = await within<unknown>(options.storeTimeoutMs, (done) =>
        options.passport.deserializeUser(serialized, first.request, done),
      );
      if (this.sessions.get(live.id) !== live) return false;
      if (!user) {
        await this.deps.end(live.id, "user_removed", false);
        return false;
      }
      const store = this.deps.store();
      for (const req of new Set([...live.sockets].map((socket) => socket.request as Request))) {
        if (store?.createSession) store.createSession(req, structuredClone(record));
        req[options.userProperty] = user;
      }
      const expires = expiresOf(record);
      if (expires !== undefined) {
        live.expires = expires;
        this.scheduleExpiry(live);
      }
      return true;
    } catch (err) {
      debug("revalidating session %s failed: %O", live.id, err);
      return false;
    }
  }

  private read(sessionId: string): Promise<SessionRecord | null | undefined> {
    const store = this.deps.store();
    if (!store) return Promise.reject(new Error("the session store is not known yet"));
    return within(this.deps.options.storeTimeoutMs, (done) => store.get(sessionId, done));
  }
}
