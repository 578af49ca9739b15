/**
 * Live sessions: the sessions that have admitted sockets on this node, kept honest after the handshake.
 * One entry per session (not per socket) holds one expiry timer, the keep-alive clock, the optional
 * revalidation timer and the queue of session work, so every cost here is per session.
 *
 * - Expiry: at the session's expiry, one store read decides. Renewals written through any node's store
 *   (express-session's touch, rolling saves, keep-alive, withSession) are remembered as hints; they explain
 *   a record that is still there, since connect-redis renews the key's TTL without rewriting the stored
 *   `cookie.expires`. A hint never keeps a socket alive on its own: a key that is gone is gone.
 * - Keep-alive: client events touch the store at most once per session per interval on this node.
 * - Refresh: re-read the session and re-run deserializeUser, once per session, for all its sockets.
 * - withSession: reload, run, touch and save, one at a time per session, never after the session ended.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { delayUntil, within } from "./deadline.js";
import type { EndCode } from "./errors.js";
import { roomsOf, type SessionIdentity } from "./identity.js";
import type { BridgeCluster } from "./commands.js";
import type { Ledger, SessionFacts } from "./ledger.js";
import type { ResolvedOptions } from "./options.js";
import { expiresOf, type SessionRecord, type SessionStore } from "./records.js";
import { eventHook, guardDeserializers } from "./seams.js";
import type { AnySocket, BridgeRequest } from "./types.js";

const debug = createDebug("passport-socketio-bridge:live");

/** setTimeout's ceiling (about 24.8 days); longer waits are chained. */
/** How long to wait before asking a failing store again about an expiry. */
const STORE_RETRY_MS = 5000;
/** connect-redis rounds TTLs up to whole seconds: a key may outlive its `cookie.expires` by up to this much. */
const TTL_ROUNDING_MS = 1000;
/** Expiry checks run this long after the expiry, past the store's own clock and write latency. */
const GRACE_MS = 50;
/** How long an expiry check waits for other nodes' renewal hints. */
const HINTS_WAIT_MS = 300;
/** How much of `revalidateEveryMs` a revalidation may come early, at random (so storms spread). */
const REVALIDATION_JITTER = 0.25;
/** When a session's lifetime is unknown, how long until the next look at it. */
const UNKNOWN_LIFETIME_MS = 60_000;

type Session = NonNullable<IncomingMessage["session"]>;

export interface LiveSession {
  id: string;
  userId: string;
  /** Its sockets' rooms (rooms.ts's roomsOf), named once for all of them. */
  rooms: readonly string[];
  sockets: Set<AnySocket>;
  /** Its expiry, lifetime, last renewal and whether it ended: the ledger's, read and set through it. */
  facts: SessionFacts;
  expiryTimer?: NodeJS.Timeout | undefined;
  revalidateTimer?: NodeJS.Timeout | undefined;
  /** The last expiry check found the record just past its expiry (TTL rounding, or an unseen renewal). */
  lingering: boolean;
  /** The tail of this session's queue (withSession and refreshes). */
  queue: Promise<unknown>;
}

export interface LiveSessionsDeps {
  options: ResolvedOptions<unknown>;
  /** What the bridge believes about its sessions. */
  ledger: Ledger;
  /** Endings (this node's or every node's) and other nodes' renewal hints go through the command table. */
  cluster: BridgeCluster;
  /** Re-checks a socket's channels once its user is fresh (after refresh or revalidation). */
  channels: { recheck(socket: AnySocket): Promise<unknown> };
  /**
   * The sessions are cookie-session's: no store to read. Revalidation re-runs deserializeUser on the socket's own
   * session, and an expiry is followed only as far as the cookie renewals that any node's shim saw.
   */
  cookieSessions?: boolean;
}

export class LiveSessions {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly ledger: Ledger;
  /** The session store, once the bridge knows it. */
  private store: SessionStore | undefined;

  /** Shared by every socket (no closure per socket). */
  private readonly watchEvents = eventHook((socket) => {
    const live = this.sessions.get((socket.data as { sessionId?: string }).sessionId ?? "");
    if (live?.sockets.has(socket)) this.activity(live);
  });
  private readonly onDisconnect: (this: AnySocket) => void;

  constructor(private readonly deps: LiveSessionsDeps) {
    this.ledger = deps.ledger;
    const remove = (socket: AnySocket) => this.remove(socket);
    this.onDisconnect = function (this: AnySocket) {
      remove(this);
    };
  }

  /** The session store the bridge found (at bridge(), or with the first handshake). */
  useStore(store: SessionStore): void {
    this.store = store;
  }

  /** Ends the session's sockets, on every node or on this one, through the command table. */
  private end(sessionId: string, code: EndCode, everywhere: boolean): Promise<unknown> {
    const { cluster } = this.deps;
    return everywhere ? cluster.tell("endSession", { sessionId, code }) : cluster.here("endSession", { sessionId, code });
  }

  /**
   * Tracks an admitted, connected socket under its session. `readAt` is when the store read its handshake
   * used began (for a handshake served from the copy, the copy's own time), so the copy only ever gets
   * fresher through real reads and writes.
   */
  add(socket: AnySocket, identity: SessionIdentity): void {
    const { readAt } = identity;
    const session = (socket.request as BridgeRequest).session as Session | undefined;
    const now = this.ledger.clock.now();
    let live = this.sessions.get(identity.sessionId);
    if (!live) {
      live = {
        id: identity.sessionId,
        userId: identity.userId,
        rooms: roomsOf(identity),
        sockets: new Set(),
        facts: this.ledger.track(identity.sessionId),
        lingering: false,
        queue: Promise.resolve(),
      };
      this.sessions.set(live.id, live);
      this.scheduleRevalidation(live);
    }
    live.sockets.add(socket);
    // A cookie session has no store to read again: no copy of it serves anything.
    if (!this.deps.cookieSessions) this.ledger.keep(live.id, session, readAt);
    const { facts } = live;
    facts.lifetimeMs = session?.cookie?.originalMaxAge ?? this.storeTtl() ?? identity.lifetimeMs ?? facts.lifetimeMs;
    // (A cookie session's expiry comes with its identity: the cookie holds none.)
    const cookieExpires = expiresOf(session as unknown as SessionRecord) ?? identity.expires;
    // Browser-session cookies expire with the store's TTL, counted from the last renewal (this page load, at best).
    const expires = cookieExpires ?? (facts.lifetimeMs ? now + facts.lifetimeMs : undefined);
    if (expires !== undefined && (facts.expiresAt === undefined || expires > facts.expiresAt)) {
      facts.expiresAt = expires;
      if (cookieExpires !== undefined && facts.lifetimeMs) facts.renewedAt = cookieExpires - facts.lifetimeMs;
      this.scheduleExpiry(live);
    }
    // Client events, not engine pings or acknowledgements.
    if (this.deps.options.keepAliveMs) this.watchEvents(socket);
    socket.on("disconnect", this.onDisconnect);
  }

  private remove(socket: AnySocket): void {
    const live = this.sessions.get((socket.data as { sessionId?: string }).sessionId ?? "");
    if (!live?.sockets.delete(socket)) return;
    if (live.sockets.size > 0) return;
    clearTimeout(live.expiryTimer);
    clearTimeout(live.revalidateTimer);
    this.sessions.delete(live.id);
    this.ledger.forget(live.id);
  }

  /** The rooms of a session identity that has sockets here: the names its other sockets joined. */
  roomsOf(identity: SessionIdentity): readonly string[] | undefined {
    const live = this.sessions.get(identity.sessionId);
    return live && live.userId === identity.userId ? live.rooms : undefined;
  }

  /**
   * Called by the store hooks when this node writes (`written`) or touches a session: remember it, and its
   * new expiry. A touch writes no data, so the copy is kept as it was.
   */
  renewed(sessionId: string, session: SessionRecord | undefined, written: boolean): void {
    const now = this.ledger.clock.now();
    const ttl = this.storeTtl();
    const cookieExpires = expiresOf(session);
    const expires = cookieExpires ?? (ttl ? now + ttl : undefined);
    if (written) this.ledger.keep(sessionId, session, now);
    // A write with an expiry already past (a store deleting on save) renews nothing.
    if (expires === undefined || expires <= now) return;
    this.ledger.renewed(sessionId, expires);
    const live = this.sessions.get(sessionId);
    if (!live) return;
    live.facts.renewedAt = now;
    // A shorter lifetime (a new maxAge) must not wait for the old expiry.
    if (live.facts.expiresAt === undefined || expires < live.facts.expiresAt) {
      live.facts.expiresAt = expires;
      this.scheduleExpiry(live);
    }
  }

  /** Re-reads each local session of `userId` and re-runs deserializeUser. Resolves with how many. */
  async refreshUser(userId: string): Promise<number> {
    const mine = [...this.sessions.values()].filter((live) => live.userId === userId);
    const results = await Promise.all(mine.map((live) => this.queued(live, () => this.revalidate(live))));
    return results.filter(Boolean).length;
  }

  /**
   * Revalidates every session live here, `concurrency` at a time (after this node missed other nodes' messages:
   * see adapter-watch.ts). Resolves with how many are still valid.
   */
  async revalidateAll(concurrency = 8): Promise<number> {
    const all = [...this.sessions.values()];
    let next = 0;
    let valid = 0;
    const worker = async () => {
      for (let live = all[next++]; live; live = all[next++]) {
        if (await this.queued(live, () => this.revalidate(live))) valid++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, all.length) }, worker));
    return valid;
  }

  /** The live session a connected socket was admitted with, if it still has one here. */
  liveOf(socket: AnySocket): LiveSession | undefined {
    const sessionId = (socket.data as { sessionId?: string }).sessionId;
    const live = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    return live?.sockets.has(socket) ? live : undefined;
  }

  /** Runs `task` after the session's earlier work, so reloads, writes and refreshes never interleave. */
  queued<T>(live: LiveSession, task: () => Promise<T>): Promise<T> {
    const result = live.queue.then(task, task);
    live.queue = result.catch(() => undefined);
    return result;
  }

  /** Ends the session's sockets on every node once the caller has seen its rejection (and acknowledged, say). */
  endSoon(live: LiveSession, code: EndCode): void {
    this.ledger.end(live.id);
    setImmediate(() => void this.end(live.id, code, true).catch((err: unknown) => debug("%O", err)));
  }

  private activity(live: LiveSession): void {
    const store = this.store;
    const { facts } = live;
    const now = this.ledger.clock.now();
    const interval = Math.min(this.deps.options.keepAliveMs || Infinity, (facts.lifetimeMs ?? Infinity) / 2);
    if (!store?.touch || facts.ended || now - facts.renewedAt < interval) return;
    facts.renewedAt = now;
    const [socket] = live.sockets;
    const session = (socket?.request as BridgeRequest | undefined)?.session as Session | undefined;
    if (!session?.cookie) return;
    // Renew the cookie's expiry the way express-session does on a request, then write only the TTL.
    // (A client's event runs this: a store that throws must not take the event, or the process, with it.)
    try {
      session.touch();
      store.touch(live.id, session as unknown as SessionRecord, (err?: unknown) => {
        if (err) debug("keep-alive touch of %s failed: %O", live.id, err);
      });
    } catch (err) {
      debug("keep-alive touch of %s threw: %O", live.id, err);
    }
  }

  /** Checks the session just after `at` (its known expiry, by default). */
  private scheduleExpiry(live: LiveSession, at = live.facts.expiresAt): void {
    clearTimeout(live.expiryTimer);
    if (at === undefined) return;
    live.expiryTimer = setTimeout(() => this.checkExpiry(live).catch((err: unknown) => debug("expiry check: %O", err)), delayUntil(at + GRACE_MS, this.ledger.clock.now())).unref();
  }

  /**
   * Just after the known expiry, one store read decides. No record: expired. A record with a later expiry
   * (written, or hinted by a node that renewed it): follow it. A record past every expiry we know of is
   * either in connect-redis's TTL rounding tail (gone within a second) or was renewed where no hook saw it:
   * one more read after the rounding window tells which.
   */
  private async checkExpiry(live: LiveSession): Promise<void> {
    if (this.sessions.get(live.id) !== live) return;
    if ((live.facts.expiresAt ?? Infinity) > this.ledger.clock.now()) return this.scheduleExpiry(live);
    if (this.deps.cookieSessions) return this.checkCookieExpiry(live);
    let record: SessionRecord | null | undefined;
    try {
      record = await this.read(live.id);
    } catch (err) {
      debug("expiry check of %s failed, retrying in %d ms: %O", live.id, STORE_RETRY_MS, err);
      return this.scheduleExpiry(live, this.ledger.clock.now() + STORE_RETRY_MS);
    }
    if (this.sessions.get(live.id) !== live) return;
    if (!record) {
      debug("session %s expired", live.id);
      await this.endLive(live, "session_expired");
      return;
    }
    const now = this.ledger.clock.now();
    let known = Math.max(expiresOf(record) ?? 0, this.ledger.renewalOf(live.id) ?? 0);
    if (known <= now) known = Math.max(known, (await this.hintsElsewhere(live.id)) ?? 0);
    if (known > now) {
      live.lingering = false;
      live.facts.expiresAt = known;
    } else if (!live.lingering && known > 0 && now - known < TTL_ROUNDING_MS) {
      live.lingering = true;
      return this.scheduleExpiry(live, known + TTL_ROUNDING_MS);
    } else {
      // Renewed where no hook saw it (a process without the bridge, or before a restart): look again later.
      live.lingering = false;
      live.facts.expiresAt = now + (live.facts.lifetimeMs ?? UNKNOWN_LIFETIME_MS);
    }
    this.scheduleExpiry(live);
  }

  /**
   * A cookie session at its known expiry: alive only if some node's shim saw its cookie set again since (a renewal
   * here, or another node's answer); else the browser no longer holds it.
   */
  private async checkCookieExpiry(live: LiveSession): Promise<void> {
    let known = this.ledger.renewalOf(live.id) ?? 0;
    if (known <= this.ledger.clock.now()) known = Math.max(known, (await this.hintsElsewhere(live.id)) ?? 0);
    if (this.sessions.get(live.id) !== live) return;
    if (known > this.ledger.clock.now()) {
      live.facts.expiresAt = known;
      return this.scheduleExpiry(live);
    }
    debug("cookie session %s expired", live.id);
    await this.endLive(live, "session_expired");
  }

  private async hintsElsewhere(sessionId: string): Promise<number | undefined> {
    try {
      const answers = await this.deps.cluster.run("renewal", sessionId, { timeoutMs: HINTS_WAIT_MS });
      return Math.max(0, ...answers.map((expires) => expires ?? 0)) || undefined;
    } catch (err) {
      debug("no renewal hints from other nodes for %s: %O", sessionId, err);
      return undefined;
    }
  }

  /**
   * The next revalidation, after a random 75-100% of `revalidateEveryMs`: sessions that connected in one storm
   * would otherwise be read together at every interval, for ever. Never later than the interval.
   */
  private scheduleRevalidation(live: LiveSession): void {
    const every = this.deps.options.revalidateEveryMs;
    if (!every) return;
    const delay = every * (1 - REVALIDATION_JITTER * Math.random());
    live.revalidateTimer = setTimeout(async () => {
      await this.queued(live, () => this.revalidate(live));
      if (this.sessions.get(live.id) === live) this.scheduleRevalidation(live);
    }, delay).unref();
  }

  /**
   * Re-reads the session and re-runs deserializeUser, then gives every socket of the session the fresh
   * session and user. Ends the sockets when the session or its user is gone. Resolves true when refreshed.
   */
  private async revalidate(live: LiveSession): Promise<boolean> {
    const { options } = this.deps;
    const [first] = live.sockets;
    if (!first || live.facts.ended) return false;
    try {
      const readAt = this.ledger.clock.now();
      const record = await this.read(live.id);
      const serialized = (record?.[options.passportKey] as { user?: unknown } | undefined)?.user;
      // Logouts arrive through the store hooks at once; a record that simply vanished has expired.
      if (!record) return await this.endLive(live, "session_expired");
      // Logged out in place: the identity the sockets were admitted with is over.
      if (!serialized && serialized !== 0) return await this.endLive(live, "logged_out");
      guardDeserializers(options.passport);
      const user = await within<unknown>(options.storeTimeoutMs, (done) =>
        options.passport.deserializeUser(serialized, first.request, done),
      );
      if (this.sessions.get(live.id) !== live) return false;
      if (!user) {
        await this.end(live.id, "user_removed", false);
        return false;
      }
      // Now someone else's: the same.
      if (options.userId(user, serialized) !== live.userId) return await this.endLive(live, "logged_out");
      const store = this.store;
      this.ledger.keep(live.id, record, readAt);
      for (const req of new Set([...live.sockets].map((socket) => socket.request as BridgeRequest))) {
        if (store?.createSession) store.createSession(req, structuredClone(record));
        req[options.userProperty] = user;
      }
      await Promise.all([...live.sockets].map((socket) => this.deps.channels.recheck(socket)));
      return true;
    } catch (err) {
      debug("revalidating session %s failed: %O", live.id, err);
      return false;
    }
  }

  /** The session is over: nothing may write it again, and its sockets on this node end. Resolves false. */
  private async endLive(live: LiveSession, code: EndCode): Promise<false> {
    this.ledger.end(live.id);
    await this.end(live.id, code, false);
    return false;
  }

  /** The store's TTL in ms, for sessions whose cookie has no expiry (connect-redis and others expose `ttl`). */
  private storeTtl(): number | undefined {
    const ttl = (this.store as { ttl?: unknown } | undefined)?.ttl;
    return typeof ttl === "number" && ttl > 0 ? ttl * 1000 : undefined;
  }

  private read(sessionId: string): Promise<SessionRecord | null | undefined> {
    // A cookie session is what its sockets' cookie held: there is nothing else to read.
    if (this.deps.cookieSessions) {
      const [first] = this.sessions.get(sessionId)?.sockets ?? [];
      return Promise.resolve((first?.request as BridgeRequest | undefined)?.session as SessionRecord | undefined);
    }
    const store = this.store;
    if (!store) return Promise.reject(new Error("the session store is not known yet"));
    return within(this.deps.options.storeTimeoutMs, (done) => store.get(sessionId, done));
  }
}
