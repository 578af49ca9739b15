/**
 * Watching the session store that express-session writes through, on this node: a session destroyed
 * (`req.session.destroy()`, `regenerate()`, and so Passport's `req.login()`/`req.logout()`), and a session
 * renewed (`touch` and `set`, with the expiry they write). This is how live sockets learn about logouts and
 * renewals with no setup and no polling. The store's methods are wrapped once per store instance; every
 * bridge using the store subscribes.
 */
import createDebug from "debug";
import { rejectionsTo } from "./deadline.js";
import type { Ledger, Read } from "./ledger.js";
import type { SessionRecord, SessionStore } from "./records.js";

const debug = createDebug("passport-socketio-bridge:store");

const HOOKS = Symbol.for("passport-socketio-bridge:store-hooks");

type Callback = (err?: unknown, ...rest: unknown[]) => void;

export interface StoreObserver {
  destroyed(sid: string): void;
  /** A session was renewed through this node: rewritten (`set`, `written`) or only touched. */
  renewed(sid: string, session: SessionRecord | undefined, written: boolean): void;
  /**
   * express-session (or the bridge) made `session` from a record it read through this node: the session object
   * a later `set` of it will write, so an observer can tell what a write changes.
   */
  loaded(session: SessionRecord): void;
}

/** Subscribes `observer` to `store`'s destroys and renewals. Returns the unsubscribe function. */
export function observeStore(store: SessionStore, observer: StoreObserver): () => void {
  const host = store as unknown as Record<symbol, Set<StoreObserver> | undefined>;
  let observers = host[HOOKS];
  if (!observers) {
    const set = new Set<StoreObserver>();
    observers = set;
    Object.defineProperty(store, HOOKS, { value: set });
    const notify = (event: (o: StoreObserver) => void) => {
      for (const o of set) {
        try {
          event(o);
        } catch (err) {
          debug("observer failed: %O", err);
        }
      }
    };
    followReadiness(store);
    wrap(store, "get");
    shareHandshakeReads(store);
    wrap(store, "destroy", (sid) => notify((o) => o.destroyed(sid)));
    wrap(store, "set", (sid, session) => notify((o) => o.renewed(sid, session, true)));
    watchLoads(store, (session) => notify((o) => o.loaded(session)));
    if (typeof store.touch === "function") {
      wrap(store, "touch", (sid, session) => notify((o) => o.renewed(sid, session, false)));
    }
    debug("watching the session store");
  }
  observers.add(observer);
  return () => observers.delete(observer);
}

const READY = Symbol.for("passport-socketio-bridge:store-ready");
type Readiness = { [READY]?: boolean };

/**
 * Follows the store's `disconnect` and `connect` events as express-session does: while it is disconnected,
 * express-session skips every request, so a handshake must not take a shortcut around it.
 */
function followReadiness(store: SessionStore): void {
  const emitter = store as SessionStore & Readiness & { on?: (event: string, fn: () => void) => unknown };
  if (typeof emitter.on !== "function") return;
  Object.defineProperty(store, READY, { value: true, writable: true });
  emitter.on("disconnect", () => (emitter[READY] = false));
  emitter.on("connect", () => (emitter[READY] = true));
}

/** Whether express-session would use `store` now (not disconnected), as far as the bridge has followed it. */
export function storeReady(store: SessionStore): boolean {
  return (store as Readiness)[READY] !== false;
}

/**
 * Replaces `store[method]` on the instance by one that answers exactly once, turns a rejected promise (stores
 * written as async functions) into a callback error instead of an unhandled rejection, and reports each
 * success to `report`.
 */
function wrap(
  store: SessionStore,
  method: "get" | "destroy" | "set" | "touch",
  report?: (sid: string, session: SessionRecord | undefined) => void,
): void {
  const original = store[method] as (this: SessionStore, sid: string, ...args: unknown[]) => unknown;
  const wrapped = function (this: SessionStore, sid: string, ...args: unknown[]) {
    const callback = typeof args[args.length - 1] === "function" ? (args.pop() as Callback) : undefined;
    const session = method === "get" ? undefined : (args[0] as SessionRecord | undefined);
    let answered = false;
    const answer = (err?: unknown, ...rest: unknown[]) => {
      if (answered) return;
      answered = true;
      if (!err && typeof sid === "string") report?.(sid, session);
      callback?.(err, ...rest);
    };
    const result = original.call(this, sid, ...args, answer);
    rejectionsTo(result, answer);
    return result;
  };
  Object.defineProperty(store, method, { value: wrapped, writable: true, configurable: true });
}

/**
 * Reports each session express-session makes from a stored record (its `inflate` calls `store.createSession`,
 * on HTTP requests and handshakes alike).
 */
function watchLoads(store: SessionStore, report: (session: SessionRecord) => void): void {
  const createSession = store.createSession;
  if (typeof createSession !== "function") return;
  const wrapped = function (this: SessionStore, req: unknown, record: SessionRecord) {
    const session = createSession.call(this, req, record);
    if (session && typeof session === "object") report(session as SessionRecord);
    return session;
  };
  Object.defineProperty(store, "createSession", { value: wrapped, writable: true, configurable: true });
}

/** What a handshake's read asked a watched store for, and how fresh the answer it got is. */
export interface ReadTicket {
  /** The ledger of the bridge whose handshake reads: it shares reads in flight and serves copies. */
  readonly ledger: Ledger;
  /** The session id asked for: express-session asks only for a cookie whose signature verified. */
  sid?: string;
  /** When the record it got was read from (or written to) the store, on the ledger's clock. */
  readAt?: number;
}

/** The ticket of the handshake running the session middleware, if one is: its store reads may be shared. */
let ticket: ReadTicket | undefined;

/**
 * Runs `middleware(req, res, next)` (the session middleware, which calls `store.get` synchronously) as a
 * handshake's read, which may be shared: see shareHandshakeReads. HTTP requests are not affected. `into`
 * learns what it asked and, once answered, how fresh the answer is.
 */
export function sharedRead<Req, Res, Next>(
  into: ReadTicket,
  middleware: (req: Req, res: Res, next: Next) => unknown,
  req: Req,
  res: Res,
  next: Next,
): void {
  const outer = ticket;
  ticket = into;
  try {
    middleware(req, res, next);
  } finally {
    ticket = outer;
  }
}

type GetCallback = (err: unknown, session?: SessionRecord | null) => void;

/** A handshake waiting for a shared read. */
interface Waiter {
  callback: GetCallback;
  ticket: ReadTicket;
}

/**
 * Wraps `store.get` so that concurrent handshakes of a session share one read, and handshakes of a session
 * with sockets connected here take the ledger's copy while it is fresh. A reconnect storm then costs one read
 * per session per `sessionCacheMs`, not one per socket. A read that began before an ending of its session is
 * never used: its handshakes read again. HTTP requests read as before.
 */
function shareHandshakeReads(store: SessionStore): void {
  const get = store.get;
  const read = (self: SessionStore, sid: string, waiter: Waiter): unknown => {
    const { ledger } = waiter.ticket;
    const waiting = ledger.readInFlight<Waiter>(sid);
    if (waiting) {
      waiting.waiters.push(waiter);
      return undefined;
    }
    const current = ledger.beginRead(sid, waiter);
    return get.call(self, sid, (err: unknown, session?: SessionRecord | null) => {
      ledger.endRead(sid, current as Read<unknown>);
      const { waiters } = current;
      if (current.stale && !err) {
        debug("a read of a session that ended meanwhile: reading it again");
        for (const again of waiters) read(self, sid, again);
        return;
      }
      if (!err && session) ledger.keep(sid, session, current.readAt);
      for (const w of waiters) w.ticket.readAt = current.readAt;
      // Each handshake gets its own copy, as express-session turns the record into its Session in place: the
      // last one the store's own (as on HTTP), the others structured clones (Dates stay Dates).
      const last = waiters.length - 1;
      for (let i = 0; i < last; i++) waiters[i]!.callback(err, session ? structuredClone(session) : session);
      waiters[last]!.callback(err, session);
    });
  };
  const sharedGet = function (this: SessionStore, sid: string, callback: GetCallback) {
    const into = ticket;
    if (into === undefined || typeof sid !== "string" || typeof callback !== "function") {
      return get.call(this, sid, callback);
    }
    into.sid = sid;
    const copy = into.ledger.copyFor(sid);
    if (copy) {
      into.readAt = copy.readAt;
      // Answered asynchronously, as a store would; a parse of its own for each handshake.
      return void process.nextTick(callback, null, JSON.parse(copy.json) as SessionRecord);
    }
    return read(this, sid, { callback, ticket: into });
  };
  Object.defineProperty(store, "get", { value: sharedGet, writable: true, configurable: true });
}
