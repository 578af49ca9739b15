/**
 * The handshake: run the app's own express-session middleware and `passport.session()` on the Engine.IO
 * handshake request (`socket.request`), once per connection, and say who the user is or why there is none.
 *
 * Both middlewares get a detached response object that is never ended. express-session therefore never
 * saves, touches or sets a cookie from a socket handshake: a refused or anonymous connection writes nothing,
 * and the cost is one store read. (On a real engine response, polling would get a Set-Cookie and a save,
 * and ending a WebSocket upgrade's response destroys the TCP socket.)
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import type { CookieSessions } from "./cookie-sessions.js";
import { claimsSessionId, cookiePairs, plainHeader, soleCookie } from "./cookies.js";
import { DeadlineError, DeadlineList, type Deadline } from "./deadline.js";
import { RefusalError, sessionMissing, type RefusalCode, type SessionMissingReason } from "./errors.js";
import type { SessionIdentity } from "./identity.js";
import type { Ledger } from "./ledger.js";
import type { ResolvedOptions } from "./options.js";
import { overHttps } from "./security.js";
import {
  detachedResponse,
  forgetParsedUrl,
  giveIsAuthenticated,
  guardDeserializers,
  hasDeserializer,
  setUserProperty,
  unwrapSession,
} from "./seams.js";
import type { SessionRecord, SessionStore } from "./records.js";
import { sharedRead, storeReady, type ReadTicket } from "./store-hooks.js";
import type { BridgeRequest, SessionMiddleware } from "./types.js";

const debug = createDebug("passport-socketio-bridge:handshake");


/** Told when an authentication settles (policy.ts's Handshaken). */
interface Settling {
  settled: boolean;
  readAt?: number | undefined;
}

/** An authentication's phases: reading the session, deserializing the user, done. */
const READING = 1;
const DESERIALIZING = 2;
const DONE = 3;
/** No answer yet (a middleware answers success with `undefined`). */
const NO_ANSWER = Symbol("no answer");

export class Handshake {
  /** Passport's session middleware. */
  readonly passportSession: SessionMiddleware;
  /** The deadlines of every handshake's session read and deserialization, `storeTimeoutMs` each: one timer. */
  readonly deadlines: DeadlineList;
  /** The name of express-session's cookie, once a handshake showed it unambiguously. */
  cookieName: string | undefined;
  private warnedNoDeserializer = false;

  constructor(
    readonly options: ResolvedOptions<unknown>,
    /** What the bridge believes about its sessions: reads in flight and copies are shared through it. */
    readonly ledger: Ledger,
    /** The session store the bridge watches, once known (so the session id express-session asked for is known). */
    readonly store: () => SessionStore | undefined,
    /** Set when the session middleware is cookie-session: how its sessions are loaded and named. */
    readonly cookieSessions?: CookieSessions,
  ) {
    this.passportSession = options.passport.session();
    this.deadlines = new DeadlineList(options.storeTimeoutMs);
    // Now, so that HTTP requests are covered before the first socket connects (and again per handshake,
    // for deserializers registered later).
    guardDeserializers(options.passport);
  }

  /**
   * Loads the session and the Passport user onto `req`. Resolves with the identity, or rejects with the
   * RefusalError that explains why there is none. Never rejects with anything else. `settling` learns the
   * moment it settles, either way (and the identity's readAt).
   */
  authenticate(req: IncomingMessage, settling?: Settling): Promise<SessionIdentity> {
    const request = req as BridgeRequest;
    const { session, userProperty } = this.options;
    return new Promise<SessionIdentity>((resolve, reject) => {
      // A service without sessions: tokens or anonymity (policy.ts) decide.
      if (!session) {
        giveIsAuthenticated(request, userProperty);
        if (settling) settling.settled = true;
        return reject(new RefusalError("session_missing"));
      }
      // A connection authenticated again starts clean: express-session skips requests that already carry a
      // session. A request of its own over the connection's (policy.ts) shadows what it would inherit.
      startClean(request, "session");
      startClean(request, "sessionID");
      startClean(request, userProperty);
      new Authentication(this, request, resolve, reject, settling).run(session);
    });
  }

  /**
   * A Passport without deserializers (the singleton, when the app made its own with `new Passport()` and did
   * not pass it) can never load a user: refused for good, with one warning, instead of "retry later".
   */
  checkDeserializer(): void {
    if (hasDeserializer(this.options.passport)) return;
    const message =
      "The Passport the bridge uses has no deserializeUser. If your app makes its own with `new Passport()`, " +
      "pass it to bridge() as the `passport` option; otherwise register one with passport.deserializeUser().";
    if (!this.warnedNoDeserializer) {
      this.warnedNoDeserializer = true;
      process.emitWarning(message, { code: "PSB_NO_DESERIALIZER" });
    }
    debug("no deserializer registered");
    throw new RefusalError("deserialize_failed", { message, data: { reconnect: false, reason: "no_deserializer" } });
  }
}

/**
 * One handshake's authentication: the session middleware, then `passport.session()`, each within
 * `storeTimeoutMs`. A plain state machine on callbacks (the middlewares' own style): one object, one response
 * and two callbacks per handshake, no promise per step and no timer of its own (the handshake's DeadlineList).
 * Late and repeated answers are ignored: only the first answer of the current step counts.
 */
class Authentication implements Deadline, ReadTicket {
  // What its store read asked for, and how fresh the answer is (ReadTicket, filled in by the store hooks).
  get ledger(): Ledger {
    return this.handshake.ledger;
  }
  sid?: string;
  readAt?: number;
  // Its place in the deadlines (Deadline).
  deadlineAt?: number;
  deadlinePrev?: Deadline;
  deadlineNext?: Deadline;

  private phase = READING;
  /** Set while the session middleware runs: an answer it gives before returning is taken once it has returned. */
  private inside = false;
  private early: unknown = NO_ANSWER;
  private loaded = false;
  private serialized: unknown;
  private readonly startedAt: number;
  private readonly response = detachedResponse();
  private readonly onSession = (err?: unknown): void => {
    if (!this.inside) return this.read(err);
    if (this.early === NO_ANSWER) this.early = err;
  };
  private readonly onPassport = (err?: unknown): void => this.deserialized(err);

  constructor(
    private readonly handshake: Handshake,
    private readonly request: BridgeRequest,
    private readonly resolve: (identity: SessionIdentity) => void,
    private readonly reject: (refusal: RefusalError) => void,
    private readonly settling: Settling | undefined,
  ) {
    this.startedAt = handshake.ledger.clock.now();
  }

  run(session: SessionMiddleware): void {
    if (this.fromCopy()) return this.read(undefined);
    this.handshake.deadlines.start(this);
    let thrown: unknown = NO_ANSWER;
    this.inside = true;
    try {
      sharedRead(this, session, this.request, this.response, this.onSession);
    } catch (err) {
      thrown = err ?? new Error("threw a falsy value");
    }
    this.inside = false;
    // The first answer counts: one given before the middleware returned, else its throw.
    if (this.early !== NO_ANSWER) this.read(this.early);
    else if (thrown !== NO_ANSWER) this.read(thrown);
  }

  /**
   * What express-session would do for a cookie it verified before, for a session whose fresh copy the ledger
   * holds: the same Session from the same record, without verifying the signature and hashing the record again
   * (about a tenth of a handshake). Only while the store is ready (else express-session skips the request).
   */
  private fromCopy(): boolean {
    const { cookieName, ledger } = this.handshake;
    const store = this.handshake.store();
    if (cookieName === undefined || !store?.createSession || !storeReady(store)) return false;
    const signed = soleCookie(this.request.headers.cookie, cookieName);
    if (signed === undefined || !signed.startsWith("s:")) return false;
    const sid = signed.slice(2, signed.lastIndexOf("."));
    const copy = ledger.copyForCookie(sid, signed);
    if (!copy) return false;
    const request = this.request;
    try {
      request.sessionStore = store;
      request.sessionID = sid;
      store.createSession(request, JSON.parse(copy.json) as SessionRecord);
    } catch (err) {
      // A store whose createSession fails on the copy: express-session decides, on a request left as it found it.
      debug("the session copy of %s did not load, reading it as usual: %O", sid, err);
      startClean(request, "session");
      startClean(request, "sessionID");
      startClean(request, "sessionStore");
      return false;
    }
    this.sid = sid;
    this.readAt = copy.readAt;
    this.loaded = true;
    return true;
  }

  /** The session middleware answered (or the copy stood in for it: `loaded` already set, nothing to undo). */
  private read(err: unknown): void {
    if (this.phase !== READING) return;
    this.handshake.deadlines.stop(this);
    if (err !== undefined && err !== null) return this.fail("store_unavailable", err);
    const { request } = this;
    const { options } = this.handshake;
    try {
      if (!request.session) {
        // express-session skips requests while its store reports `disconnect`.
        throw new RefusalError("store_unavailable", { cause: new Error("express-session skipped the request") });
      }
      const cookie = this.handshake.cookieSessions;
      if (cookie) this.loaded = cookie.loaded(request);
      else if (!this.loaded) this.settleSession(request);
      // Read before Passport runs: it deletes the serialized user when deserializeUser finds nobody.
      const serialized: unknown = (request.session as Record<string, any>)[options.passportKey]?.user;
      this.serialized = serialized;
      if (this.loaded && (serialized || serialized === 0)) this.handshake.checkDeserializer();
      // Passport runs even when nobody is logged in: it gives every socket's request isAuthenticated().
      setUserProperty(request, options.userProperty);
      guardDeserializers(options.passport);
    } catch (refusal) {
      return this.settle(refusal as RefusalError);
    }
    this.phase = DESERIALIZING;
    this.handshake.deadlines.start(this);
    try {
      this.handshake.passportSession(request, this.response, this.onPassport);
    } catch (err) {
      this.deserialized(err ?? new Error("threw a falsy value"));
    }
  }

  /**
   * After express-session: did it load a stored session (rather than make a new one)? And the cookie it
   * verified, for later handshakes of a live session (fromCopy).
   */
  private settleSession(request: BridgeRequest): void {
    // express-session wraps reload() and save() in closures over the whole request scope, response included,
    // to save at the response's end; a socket's session has no response. Session.prototype's own methods
    // work alone, and the scope can go (a few KB per connection). Its parsed-URL cache can go too.
    unwrapSession(request.session!);
    forgetParsedUrl(request);
    const sid = request.sessionID;
    this.loaded = claimsSessionId(request.headers.cookie, sid);
    if (!this.loaded || this.sid !== sid) return;
    const handshake = this.handshake;
    handshake.cookieName ??= sessionCookieName(request.headers.cookie, sid);
    const signed = handshake.cookieName === undefined ? undefined : soleCookie(request.headers.cookie, handshake.cookieName);
    if (signed?.startsWith(`s:${sid}.`)) handshake.ledger.verified(sid, signed);
  }

  /** passport.session() answered. */
  private deserialized(err: unknown): void {
    if (this.phase !== DESERIALIZING) return;
    this.handshake.deadlines.stop(this);
    if (err !== undefined && err !== null) return this.deserializeFailed(err);
    let identity: SessionIdentity;
    try {
      identity = this.identity();
    } catch (refusal) {
      return this.settle(refusal as RefusalError);
    }
    this.phase = DONE;
    if (this.settling) {
      this.settling.settled = true;
      this.settling.readAt = identity.readAt;
    }
    this.resolve(identity);
  }

  private identity(): SessionIdentity {
    const { request } = this;
    const { options } = this.handshake;
    const cookie = this.handshake.cookieSessions;
    if (!this.loaded) {
      let reason = cookie ? cookie.missingReason(request) : missingReason(request.headers.cookie, this.sid, this.handshake.store() !== undefined);
      // No cookie, and a Secure one over http: the browser never stored it, or will not send it here.
      if (reason === "no_cookie" && request.session?.cookie?.secure === true && !overHttps(request, options.security.trustProxy)) {
        reason = "cookie_requires_https";
      }
      debug("session_missing (%s): %s", reason, REASON_LOGS[reason]);
      throw sessionMissing(reason);
    }
    const serialized = this.serialized;
    // Passport's own test: a serialized user is anything truthy, or 0.
    if (!serialized && serialized !== 0) throw new RefusalError("unauthenticated");
    const user: unknown = request[options.userProperty];
    if (!user) throw new RefusalError("user_not_found");
    if (cookie) return this.cookieIdentity(cookie, user, serialized);
    return {
      user,
      userId: userIdOf(options, user, serialized),
      sessionId: request.sessionID,
      // (A store the bridge does not watch answers outside the ticket: at best as fresh as the handshake.)
      readAt: this.readAt ?? this.startedAt,
    };
  }

  /** A cookie session's identity: its id (also `socket.request.sessionID`, as on HTTP) and the cookie's expiry. */
  private cookieIdentity(cookie: CookieSessions, user: unknown, serialized: unknown): SessionIdentity {
    const { request } = this;
    const sessionId = cookie.idOf(request);
    request.sessionID = sessionId;
    const { expires, lifetimeMs } = cookie.expiryOf(request, this.startedAt);
    return {
      user,
      userId: userIdOf(this.handshake.options, user, serialized),
      sessionId,
      readAt: this.startedAt,
      expires,
      lifetimeMs,
    };
  }

  /** The current step took longer than storeTimeoutMs. */
  expired(): void {
    const cause = new DeadlineError(`no answer within ${this.handshake.deadlines.ms} ms`);
    if (this.phase === READING) this.fail("store_unavailable", cause);
    else if (this.phase === DESERIALIZING) this.deserializeFailed(cause);
  }

  private deserializeFailed(cause: unknown): void {
    // A deserializer that answers after the deadline must not put a user on this request any more.
    Object.defineProperty(this.request, this.handshake.options.userProperty, {
      configurable: true,
      get: () => undefined,
      set: () => {},
    });
    this.fail("deserialize_failed", cause);
  }

  private fail(code: RefusalCode, cause: unknown): void {
    debug("%s: %O", code, cause);
    this.settle(new RefusalError(code, { cause }));
  }

  private settle(refusal: RefusalError): void {
    this.phase = DONE;
    if (this.settling) this.settling.settled = true;
    this.reject(refusal);
  }
}

/** What the server log says of each reason (DEBUG=passport-socketio-bridge:handshake). */
const REASON_LOGS: Record<SessionMissingReason, string> = {
  no_cookie: "the handshake carried no signed cookie (not sent cross-site, wrong domain or path, or not logged in)",
  cookie_requires_https:
    "no signed cookie, and the session cookie is secure while this handshake came over http (no TLS, no trusted " +
    "X-Forwarded-Proto: https): browsers keep Secure cookies off http. Serve over https, or with trustProxy behind a TLS proxy",
  bad_signature: "a signed cookie failed verification with the session secret (another secret, or rotated out)",
  unknown_session: "the cookie verified but the store has no such session (expired or logged out)",
  token_in_query: "no usable session, and a token in the query string, which is never read (see tokens.ts)",
};

/**
 * Why express-session found no session: no signed cookie at all; one whose signature it rejected (it asked
 * the store for nothing); or one it verified and asked the store for, which had nothing.
 */
function missingReason(header: string | undefined, asked: string | undefined, watched: boolean): SessionMissingReason {
  if (asked !== undefined) return "unknown_session";
  if (!cookiePairs(header).some(([, value]) => value.startsWith("s:"))) return "no_cookie";
  // Without the store watched, whether express-session asked it is unknown.
  return watched ? "bad_signature" : "unknown_session";
}

/** The name of the one cookie in `header` that claims session `sid`; undefined when none or several do. */
function sessionCookieName(header: string | undefined, sid: string): string | undefined {
  if (!plainHeader(header)) return undefined;
  const names = new Set<string>();
  for (const [name, value] of cookiePairs(header)) if (value.startsWith(`s:${sid}.`)) names.add(name);
  return names.size === 1 ? names.values().next().value : undefined;
}

/** The user's id by the app's `userId` option; an option that fails refuses the handshake as deserialize_failed. */
export function userIdOf(options: ResolvedOptions<unknown>, user: unknown, serialized: unknown): string {
  try {
    return options.userId(user, serialized);
  } catch (cause) {
    debug("userId: %O", cause);
    throw new RefusalError("deserialize_failed", { cause });
  }
}

/**
 * Clears what `request` would carry into a new authentication: its own `key`, and one it inherits (a request
 * of its own over the connection's) shadowed by undefined. Only when there is something to clear: a delete
 * turns the request into a slower, larger dictionary.
 */
function startClean(request: BridgeRequest, key: string): void {
  if (Object.hasOwn(request, key)) delete request[key];
  if (key in request) Object.defineProperty(request, key, { value: undefined, writable: true, configurable: true, enumerable: true });
}
