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
import { claimsSessionId } from "./cookies.js";
import { rejectionsTo, within } from "./deadline.js";
import { ConfigError, RefusalError, type RefusalCode } from "./errors.js";
import type { ResolvedOptions } from "./options.js";
import { sharedRead } from "./store-hooks.js";
import type { PassportLike, SessionMiddleware } from "./types.js";

const debug = createDebug("passport-socketio-bridge:handshake");

/** An identity that came from a session (not a token). */
export type SessionIdentity = Identity & { sessionId: string };

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

  constructor(private readonly options: ResolvedOptions<unknown>) {
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

    await runMiddleware(
      (req, res, next) => sharedRead(() => session(req, res, next)),
      request,
      storeTimeoutMs,
      "store_unavailable",
    );
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
    if (!loaded) throw new RefusalError("session_missing");
    // Passport's own test: a serialized user is anything truthy, or 0.
    if (!serialized && serialized !== 0) throw new RefusalError("unauthenticated");
    const user: unknown = request[userProperty];
    if (!user) throw new RefusalError("user_not_found");
    return { user, userId: userIdOf(this.options, user, serialized), sessionId: request.sessionID };
  }

  /**
   * Runs the session middleware once on a detached request at startup. This finds the store (later work
   * hooks it) and brings two silent misconfigurations to light now: a missing secret (an error), and a
   * cookie `path` that does not cover the Socket.IO path, which makes express-session skip every
   * handshake (a process warning: a store that is disconnected at startup looks the same).
   */
  probe(socketPath: string): { store: unknown } {
    const { session } = this.options;
    if (!session) return { store: undefined };
    const req = { url: `${socketPath}/`, method: "GET", headers: {} } as unknown as Request;
    let failure: unknown;
    try {
      session(req, detachedResponse(), (err?: unknown) => (failure = err));
    } catch (err) {
      failure = err;
    }
    if (failure instanceof Error && /secret/i.test(failure.message)) {
      throw new ConfigError(`The session middleware refuses every request: ${failure.message}.`);
    }
    if (!req.sessionStore) {
      process.emitWarning(
        `express-session skipped a request to the Socket.IO path "${socketPath}/". Its cookie \`path\` must ` +
          "cover that path (use the default \"/\"), or every handshake is refused as store_unavailable. (A store " +
          "that is disconnected at startup looks the same.)",
        { code: "PSB_SESSION_SKIPPED" },
      );
    }
    return { store: req.sessionStore as unknown };
  }
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
