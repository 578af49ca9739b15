/**
 * Watching the session store that express-session writes through, on this node: a session destroyed
 * (`req.session.destroy()`, `regenerate()`, and so Passport's `req.login()`/`req.logout()`), and a session
 * renewed (`touch` and `set`, with the expiry they write). This is how live sockets learn about logouts and
 * renewals with no setup and no polling. The store's methods are wrapped once per store instance; every
 * bridge using the store subscribes.
 */
import createDebug from "debug";
import { rejectionsTo } from "./deadline.js";

const debug = createDebug("passport-socketio-bridge:store");

const HOOKS = Symbol.for("passport-socketio-bridge:store-hooks");

type Callback = (err?: unknown, ...rest: unknown[]) => void;

/** The part of an express-session Store the bridge uses. */
export interface SessionStore {
  get(sid: string, callback: (err: unknown, session?: SessionRecord | null) => void): void;
  destroy(sid: string, callback?: Callback): void;
  set(sid: string, session: SessionRecord, callback?: Callback): void;
  touch?(sid: string, session: SessionRecord, callback?: Callback): void;
  createSession?(req: unknown, session: SessionRecord): unknown;
}

/** A session as stores keep it. */
export interface SessionRecord {
  cookie?: { expires?: Date | string | null; originalMaxAge?: number | null } | null;
  [key: string]: unknown;
}

export interface StoreObserver {
  destroyed(sid: string): void;
  /** A session was renewed through this node: rewritten (`set`, `written`) or only touched. */
  renewed(sid: string, session: SessionRecord | undefined, written: boolean): void;
  /**
   * A fresh enough copy of a session this observer keeps alive (its sockets are connected), if it has one:
   * the record as JSON, and when it was read from (or written to) the store. Read only.
   */
  recordOf(sid: string): RecordCopy | undefined;
  /**
   * express-session (or the bridge) made `session` from a record it read through this node: the session object
   * a later `set` of it will write, so an observer can tell what a write changes.
   */
  loaded(session: SessionRecord): void;
  /** A handshake's store read that began at `startedAt` (ms since the epoch) found `session`. */
  read(sid: string, session: SessionRecord, startedAt: number): void;
  /** How long this observer's handshakes wait for a store read (no later handshake joins a read older than that). */
  readTimeoutMs: number;
}

/** A copy of a session record as JSON (each handshake parses its own), and when it was read or written. */
export interface RecordCopy {
  json: string;
  at: number;
}

/** When a session record expires, in ms since the epoch; undefined for browser-session cookies. */
export function expiresOf(session: SessionRecord | null | undefined): number | undefined {
  const expires = session?.cookie?.expires;
  if (expires === null || expires === undefined) return undefined;
  // (express-session's Cookie holds a Date already; a stored record, its JSON string.)
  const ms = expires instanceof Date ? expires.getTime() : new Date(expires).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

export function isSessionStore(value: unknown): value is SessionStore {
  const store = value as Partial<SessionStore> | null;
  return typeof store?.get === "function" && typeof store.destroy === "function" && typeof store.set === "function";
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
    wrap(store, "get");
    shareHandshakeReads(store, {
      copy(sid) {
        for (const o of set) {
          const copy = o.recordOf(sid);
          if (copy) return copy;
        }
        return undefined;
      },
      timeoutMs: () => Math.max(0, ...[...set].map((o) => o.readTimeoutMs)),
      read: (sid, session, startedAt) => notify((o) => o.read(sid, session, startedAt)),
    });
    wrap(store, "destroy", (sid) => {
      invalidateReads(store, sid);
      notify((o) => o.destroyed(sid));
    });
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
  /** The session id asked for: express-session asks only for a cookie whose signature verified. */
  sid?: string;
  /** When the record it got was read from (or written to) the store, in ms since the epoch. */
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

const READS = Symbol.for("passport-socketio-bridge:reads");

/** A handshake read of one session in flight, shared by the handshakes that come while it lasts. */
interface Read {
  callbacks: GetCallback[];
  tickets: ReadTicket[];
  started: number;
  /** The session ended (as this node learned) after the read began: its answer may predate the ending. */
  stale: boolean;
}

interface SharedReads {
  /** A fresh enough copy of a session whose sockets are connected here, and when it was read. */
  copy(sid: string): RecordCopy | undefined;
  /** How long a handshake waits for a read (no later handshake joins a read older than that). */
  timeoutMs(): number;
  /** A read answered with a session. */
  read(sid: string, session: SessionRecord, startedAt: number): void;
}

/**
 * Wraps `store.get` so that concurrent handshakes of a session share one read, and handshakes of a session
 * with sockets connected here take the live sockets' copy while it is fresh enough (`sessionCacheMs`). A
 * reconnect storm then costs one read per session per window, not one per socket. A read that began before
 * an ending of its session is never used: its handshakes read again.
 */
function shareHandshakeReads(store: SessionStore, shared: SharedReads): void {
  const get = store.get;
  // A read that never answers must not hold every later handshake of its session: once it is older than the
  // handshakes' deadline, the next handshake reads again.
  const inFlight = new Map<string, Read>();
  Object.defineProperty(store, READS, { value: inFlight });
  const read = (self: SessionStore, sid: string, callback: GetCallback, into: ReadTicket): unknown => {
    const waiting = inFlight.get(sid);
    if (waiting && !waiting.stale && Date.now() - waiting.started < shared.timeoutMs()) {
      waiting.callbacks.push(callback);
      waiting.tickets.push(into);
      return undefined;
    }
    const current: Read = { callbacks: [callback], tickets: [into], started: Date.now(), stale: false };
    inFlight.set(sid, current);
    return get.call(self, sid, (err: unknown, session?: SessionRecord | null) => {
      if (inFlight.get(sid) === current) inFlight.delete(sid);
      const { callbacks, tickets } = current;
      if (current.stale && !err) {
        debug("a read of a session that ended meanwhile: reading it again");
        callbacks.forEach((waiter, i) => read(self, sid, waiter, tickets[i]!));
        return;
      }
      if (!err && session) shared.read(sid, session, current.started);
      for (const t of tickets) t.readAt = current.started;
      // Each handshake gets its own copy, as express-session turns the record into its Session in place: the
      // last one the store's own (as on HTTP), the others structured clones (Dates stay Dates).
      const last = callbacks.length - 1;
      for (let i = 0; i < last; i++) callbacks[i]!(err, session ? structuredClone(session) : session);
      callbacks[last]!(err, session);
    });
  };
  const sharedGet = function (this: SessionStore, sid: string, callback: GetCallback) {
    const into = ticket;
    if (into === undefined || typeof sid !== "string" || typeof callback !== "function") {
      return get.call(this, sid, callback);
    }
    into.sid = sid;
    const copy = shared.copy(sid);
    if (copy) {
      into.readAt = copy.at;
      // Answered asynchronously, as a store would; a parse of its own for each handshake.
      return void process.nextTick(callback, null, JSON.parse(copy.json) as SessionRecord);
    }
    return read(this, sid, callback, into);
  };
  Object.defineProperty(store, "get", { value: sharedGet, writable: true, configurable: true });
}

/** Session `sid` ended: no handshake may use a read of it that is in flight now. */
export function invalidateReads(store: SessionStore, sid: string): void {
  const reads = (store as unknown as Record<symbol, Map<string, Read> | undefined>)[READS];
  const current = reads?.get(sid);
  if (!current) return;
  current.stale = true;
  reads!.delete(sid);
}
