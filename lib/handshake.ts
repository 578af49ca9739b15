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
import { claimsSessionId, cookiePairs } from "./cookies.js";
import { rejectionsTo, within } from "./deadline.js";
import { RefusalError, sessionMissing, type RefusalCode, type SessionMissingReason } from "./errors.js";
import type { ResolvedOptions } from "./options.js";
import { hasDeserializer } from "./setup-checks.js";
import { sharedRead, type ReadTicket } from "./store-hooks.js";
import type { PassportLike, SessionMiddleware } from "./types.js";

const debug = createDebug("passport-socketio-bridge:handshake");

/** An identity that came from a session (not a token). */
export type SessionIdentity = Identity & {
  sessionId: string;
  /** When the store read behind it began (the copy's own time, for a handshake served from a copy). */
  readAt: number;
};

/** Who an admitted socket belongs to. */
export interface Identity {
  /** What Passport's deserializeUser produced: the object now at `socket.request[userProperty]`. */
  user: unknown;
  /** The user's id (the `userId` option; by default Passport's serialized user): `user:<userId>` is its room. */
  userId: string;
  /** The express-session id (`session:<sessionId>` is the session's room); undefined for token connections. */
  sessionId: string | undefined;
  /** When a token connection's token expires (ms since the epoch). */
  expires?: number | undefined;
}

type Request = IncomingMessage & Record<string | symbol, any>;

export class Handshake {
  private readonly passportSession: SessionMiddleware;
  private warnedNoDeserializer = false;

  constructor(
    private readonly options: ResolvedOptions<unknown>,
    /** Whether the bridge watches the session store (so the session id express-session asked for is known). */
    private readonly watched: () => boolean,
  ) {
    this.passportSession = options.passport.session();
    // Now, so that HTTP requests are covered before the first socket connects (and again per handshake,
    // for deserializers registered later).
    guardDeserializers(options.passport);
  }

  /**
   * Loads the session and the Passport user onto `req`. Resolves with the identity, or rejects with the
   * RefusalError that explains why there is none. Never rejects with anything else.
   */
  async authenticate(req: IncomingMessage): Promise<SessionIdentity> {
    const request = req as Request;
    const { session, storeTimeoutMs, userProperty, passportKey } = this.options;
    // A service without sessions: tokens or anonymity (policy.ts) decide.
    if (!session) {
      giveIsAuthenticated(request, userProperty);
      throw new RefusalError("session_missing");
    }
    // A connection authenticated again starts clean: express-session skips requests that already carry a
    // session. A request of its own over the connection's (policy.ts) shadows what it would inherit.
    // (Only when there is something to clear: a delete turns the request into a slower, larger dictionary.)
    for (const key of ["session", "sessionID", userProperty]) {
      if (Object.hasOwn(request, key)) delete (request as Record<string, unknown>)[key];
      if (key in request) Object.defineProperty(request, key, { value: undefined, writable: true, configurable: true, enumerable: true });
    }

    const read: ReadTicket = {};
    const startedAt = Date.now();
    await runMiddleware((req, res, next) => sharedRead(() => session(req, res, next), read), request, storeTimeoutMs, "store_unavailable");
    if (!request.session) {
      // express-session skips requests while its store reports `disconnect`.
      throw new RefusalError("store_unavailable", { cause: new Error("express-session skipped the request") });
    }
    // express-session wraps reload() and save() in closures over the whole request scope, response included,
    // to save at the response's end; a socket's session has no response. Session.prototype's own methods
    // work alone, and the scope can go (a few KB per connection). Its parsed-URL cache can go too.
    unwrapSession(request.session);
    request._parsedOriginalUrl = request._parsedUrl = undefined;
    const loaded = claimsSessionId(request.headers.cookie, request.sessionID);
    // Read before Passport runs: it deletes the serialized user when deserializeUser finds nobody.
    const serialized: unknown = (request.session as Record<string, any>)[passportKey]?.user;
    if (loaded && (serialized || serialized === 0)) this.checkDeserializer();
    // Passport runs even when nobody is logged in: it gives every socket's request isAuthenticated().
    request._userProperty = userProperty;
    guardDeserializers(this.options.passport);
    try {
      await runMiddleware(this.passportSession, request, storeTimeoutMs, "deserialize_failed");
    } catch (refusal) {
      // A deserializer that answers after the deadline must not put a user on this request any more.
      Object.defineProperty(request, userProperty, { configurable: true, get: () => undefined, set: () => {} });
      throw refusal;
    }
    if (!loaded) {
      const reason = missingReason(request.headers.cookie, read.sid, this.watched());
      debug("session_missing (%s): %s", reason, REASON_LOGS[reason]);
      throw sessionMissing(reason);
    }
    // Passport's own test: a serialized user is anything truthy, or 0.
    if (!serialized && serialized !== 0) throw new RefusalError("unauthenticated");
    const user: unknown = request[userProperty];
    if (!user) throw new RefusalError("user_not_found");
    return {
      user,
      userId: userIdOf(this.options, user, serialized),
      sessionId: request.sessionID,
      // (A store the bridge does not watch answers outside the ticket: at best as fresh as the handshake.)
      readAt: read.readAt ?? startedAt,
    };
  }

  /**
   * A Passport without deserializers (the singleton, when the app made its own with `new Passport()` and did
   * not pass it) can never load a user: refused for good, with one warning, instead of "retry later".
   */
  private checkDeserializer(): void {
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

/** What the server log says of each reason (DEBUG=passport-socketio-bridge:handshake). */
const REASON_LOGS: Record<SessionMissingReason, string> = {
  no_cookie: "the handshake carried no signed cookie (not sent cross-site, wrong domain or path, or not logged in)",
  bad_signature: "a signed cookie failed verification with the session secret (another secret, or rotated out)",
  unknown_session: "the cookie verified but the store has no such session (expired or logged out)",
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
 * Passport's `isAuthenticated()` and `isUnauthenticated()`, for a request that passport.session() did not
 * run on (a service without sessions): the same test, a user at `req[userProperty]`.
 */
export function giveIsAuthenticated(request: IncomingMessage, userProperty: string): void {
  const req = request as unknown as Record<string, unknown>;
  req._userProperty = userProperty;
  if (typeof req.isAuthenticated !== "function") {
    req.isAuthenticated = function (this: Request): boolean {
      return Boolean(this[this._userProperty ?? "user"]);
    };
  }
  if (typeof req.isUnauthenticated !== "function") {
    req.isUnauthenticated = function (this: Request): boolean {
      return !this.isAuthenticated();
    };
  }
}

/** Puts Session.prototype's reload and save back in place of express-session's per-request wrappers. */
function unwrapSession(session: object): void {
  const proto = Object.getPrototypeOf(session) as Record<"reload" | "save", unknown>;
  for (const method of ["reload", "save"] as const) {
    // Assigned over (not deleted), which keeps the object's fast shape.
    if (Object.hasOwn(session, method)) Object.defineProperty(session, method, { value: proto[method] });
  }
}

const GUARDED = Symbol.for("passport-socketio-bridge:guarded");

/**
 * Passport calls deserializers as callbacks and drops what they return, so an `async` deserializer that
 * throws becomes an unhandled rejection (a crash on Node 15+), over HTTP as well as here. Each registered
 * deserializer is wrapped, once, keeping its arity (Passport passes `req` to three-parameter ones), so that a
 * rejection reaches Passport's callback as an error instead.
 */
export function guardDeserializers(passport: PassportLike): void {
  const stack = (passport as { _deserializers?: unknown })._deserializers;
  if (!Array.isArray(stack)) return;
  stack.forEach((fn: ((...args: any[]) => unknown) & { [GUARDED]?: true }, i) => {
    if (typeof fn !== "function" || fn[GUARDED]) return;
    const guarded: typeof fn =
      fn.length === 3
        ? function (this: unknown, req: unknown, id: unknown, done: (err: unknown) => void) {
            rejectionsTo(fn.call(this, req, id, done), done);
          }
        : function (this: unknown, id: unknown, done: (err: unknown) => void) {
            rejectionsTo(fn.call(this, id, done), done);
          };
    guarded[GUARDED] = true;
    stack[i] = guarded;
  });
}

/**
 * Runs a Connect-style middleware on `req` with a detached response, within `ms`. Resolves when it calls
 * `next()`; rejects with a RefusalError of `code` when it calls `next(err)`, throws, or takes too long.
 */
export async function runMiddleware(
  middleware: SessionMiddleware,
  req: IncomingMessage,
  ms: number,
  code: RefusalCode,
): Promise<void> {
  try {
    await within(ms, (done) => middleware(req, detachedResponse(), done));
  } catch (cause) {
    debug("%s: %O", code, cause);
    throw new RefusalError(code, { cause });
  }
}

/**
 * A response that is never sent. express-session wraps its `writeHead` and `end` to save the session and set
 * the cookie; since nobody calls them, it does neither. A fresh one per call, as those wrappers hold `req`.
 */
export function detachedResponse() {
  return {
    statusCode: 200,
    headersSent: false,
    writeHead() {
      return this;
    },
    setHeader() {},
    getHeader() {
      return undefined;
    },
    removeHeader() {},
    write() {
      return true;
    },
    end() {
      return this;
    },
  };
}
