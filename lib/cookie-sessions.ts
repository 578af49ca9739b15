/**
 * cookie-session: the whole session lives in a signed cookie. There is no store, no session id, and nothing on the
 * server sees a logout. What makes such a session one the bridge can keep honest:
 *
 * - An id. The shim (`auth.cookieSessionShim()`) puts a random one into the session when a user logs in, under
 *   COOKIE_SESSION_ID. It stays the same for the login's whole life, however often the cookie is rewritten, and two
 *   logins of one user never share one (their cookies would otherwise be byte for byte the same). A logged-in session
 *   without one (logged in before the shim was installed, or without it) goes by a hash of its signature cookie, which
 *   changes whenever the cookie is rewritten; the shim gives it an id at its next HTTP request, and keeps that hash
 *   beside it (COOKIE_SESSION_HASH_ID), so a logout also ends the sockets that connected with the cookie before.
 * - Logout. The shim gives the session the `regenerate` and `save` that Passport 0.6+ calls; when they (or the end of
 *   the response) show the user gone or replaced, the login's sockets end on every node.
 * - Expiry. The cookie's `expires`, or its `maxAge` counted from when it was last written: the shim stamps a logged-in
 *   session that cookie-session is about to write (COOKIE_SESSION_WRITTEN_AT), and reports each such Set-Cookie as a
 *   renewal that every node's expiry check asks for. Without a stamp, `maxAge` counts from the handshake (the browser
 *   sent the cookie, so it was alive then).
 *
 * Only cookie-session's documented members are read: `req.sessionOptions`, `req.session.isNew`.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { cookiePairs, soleCookie } from "./cookies.js";
import { ConfigError, type SessionMissingReason } from "./errors.js";
import { detachedResponse } from "./seams.js";
import type { BridgeRequest, SessionMiddleware } from "./types.js";

/** Where the shim keeps a login's id in a cookie session (as the session's own data: signed with it). */
export const COOKIE_SESSION_ID = "psbSessionId";
/** Where it keeps the hash id a login went by before it had an id (its sockets may still go by it). */
export const COOKIE_SESSION_HASH_ID = "psbHashId";
/** When cookie-session last wrote a logged-in session's cookie (ms since the epoch), which its `maxAge` counts from. */
export const COOKIE_SESSION_WRITTEN_AT = "psbWrittenAt";

/** The part of cookie-session's per-request options (`req.sessionOptions`) the bridge reads. */
interface CookieSessionOptions {
  name?: string;
  signed?: boolean;
  maxAge?: number;
  expires?: Date;
  path?: string;
}

type CookieSession = Record<string, unknown> & { isNew?: unknown; isChanged?: unknown };
type CookieRequest = BridgeRequest & { sessionOptions?: CookieSessionOptions };

/**
 * Whether `session` is cookie-session's middleware, found by running it once on a detached request: it gives the
 * request `sessionOptions` and a session that knows whether it `isNew`. Throws a ConfigError for an unsigned one (any
 * client could write itself any user) and for a cookie path that does not cover the Socket.IO path.
 */
export function probeCookieSession(session: SessionMiddleware, socketPath: string): boolean {
  const req = { url: `${socketPath}/`, method: "GET", headers: {} } as unknown as CookieRequest;
  let created: unknown;
  try {
    session(req, detachedResponse(), () => undefined);
    if (typeof req.sessionOptions !== "object" || req.sessionOptions === null) return false;
    created = req.session;
  } catch {
    return false;
  }
  if (typeof (created as CookieSession | null)?.isNew !== "boolean") return false;
  const { signed, path } = req.sessionOptions;
  if (signed === false) {
    throw new ConfigError(
      "The cookie-session middleware is unsigned (`signed: false`): any client can write itself a session with any " +
        "user in it, so no socket can be authenticated with it. Sign it: cookieSession({ keys: [secret] }).",
    );
  }
  if (typeof path === "string" && !`${socketPath}/`.startsWith(path)) {
    throw new ConfigError(
      `The session cookie's path "${path}" does not cover the Socket.IO path "${socketPath}", so browsers never ` +
        "send the cookie there. Set cookie-session's `path` to \"/\" (the default).",
    );
  }
  return true;
}

/** What the bridge tells the cluster when the shim sees a login end or its cookie renewed. */
export interface CookieSessionEvents {
  /** The login `sessionId` ended (logout, or another user logged in): its sockets end on every node. */
  loggedOut(sessionId: string): void;
  /** The cookie of `sessionId` was set again: it lives until `expiresAt`. */
  renewed(sessionId: string, expiresAt: number): void;
}

/** One HTTP request through the shim: the login it came with, and the id it goes by. */
interface Visit {
  /** Passport's serialized user as the request found it (JSON for an object); undefined for nobody. */
  user: string | undefined;
  /** The id of the login the request carries now (undefined once it ended). */
  id: string | undefined;
  /** The hash id the login went by before it had an id of its own. */
  hashId: string | undefined;
}

export class CookieSessions {
  constructor(private readonly passportKey: string) {}

  /** Whether the handshake's session came from a cookie that verified (not one made up for a missing or forged one). */
  loaded(req: IncomingMessage): boolean {
    // (And with an id to go by: a signature cookie read the way cookie-session reads it, or the shim's own id.)
    return (req.session as unknown as CookieSession | null)?.isNew === false && this.idOrNone(req) !== undefined;
  }

  /** The id a loaded session goes by: the shim's, else a hash of its signature cookie. */
  idOf(req: IncomingMessage): string {
    return this.idOrNone(req)!;
  }

  private idOrNone(req: IncomingMessage): string | undefined {
    return ownId(req.session as unknown as CookieSession) ?? hashIdOf(req);
  }

  /** Why no session was loaded: no session cookie came, or one came whose signature (or content) did not verify. */
  missingReason(req: IncomingMessage): SessionMissingReason {
    const name = nameOf(req);
    return cookiePairs(req.headers.cookie).some(([key]) => key === name) ? "bad_signature" : "no_cookie";
  }

  /**
   * The cookie's expiry as a handshake at `now` sees it: its `expires`, or `maxAge` from when it was written. A cookie
   * without a stamp, or presented past the expiry its stamp gives (a copy kept beyond the browser's: HTTP accepts it
   * all the same), gets `maxAge` from now. Undefined for a browser-session cookie.
   */
  expiryOf(req: IncomingMessage, now: number): { expires: number | undefined; lifetimeMs: number | undefined } {
    const options = (req as CookieRequest).sessionOptions;
    const maxAge = options?.maxAge;
    if (typeof maxAge === "number" && maxAge > 0) {
      const written = (req.session as unknown as CookieSession | null)?.[COOKIE_SESSION_WRITTEN_AT];
      const fromWrite = typeof written === "number" && written <= now ? written + maxAge : undefined;
      return { expires: fromWrite !== undefined && fromWrite > now ? fromWrite : now + maxAge, lifetimeMs: maxAge };
    }
    const expires = options?.expires instanceof Date ? options.expires.getTime() : undefined;
    return { expires: Number.isFinite(expires) ? expires : undefined, lifetimeMs: undefined };
  }

  /**
   * The middleware an app puts right after cookie-session (and before `passport.session()`): the `regenerate` and
   * `save` Passport 0.6+ calls on a session, a login id, `req.sessionID`, and the logouts and renewals it sees.
   */
  shim(events: CookieSessionEvents): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return (req, res, next) => {
      let session: CookieSession | null | undefined;
      try {
        session = req.session as unknown as CookieSession | null | undefined;
      } catch (err) {
        return next(err);
      }
      if (typeof session?.isNew !== "boolean") {
        return next(
          new ConfigError(
            "auth.cookieSessionShim() found no cookie-session on the request: install it right after your " +
              "cookieSession({ ... }) middleware, and before passport.session().",
          ),
        );
      }
      const visit: Visit = { user: this.userOf(session), id: ownId(session), hashId: undefined };
      if (visit.user !== undefined && visit.id === undefined) {
        // Logged in without an id (before the shim was installed): its sockets went by the cookie's hash until now.
        session[COOKIE_SESSION_ID] = visit.id = newId();
        const hashId = hashIdOf(req);
        if (hashId !== undefined) session[COOKIE_SESSION_HASH_ID] = hashId;
      }
      if (visit.id !== undefined) visit.hashId = stringAt(session, COOKIE_SESSION_HASH_ID);
      if (visit.id !== undefined) req.sessionID = visit.id;
      this.give(req, session, visit, events);
      // Just before the headers go out (and cookie-session, which hooked them earlier, writes the cookie).
      const writeHead = res.writeHead;
      res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
        stampWrite(req);
        return Reflect.apply(writeHead, this, args) as ServerResponse;
      } as ServerResponse["writeHead"];
      res.once("finish", () => this.finished(req, res, visit, events));
      next();
    };
  }

  /** Passport's `regenerate` and `save` on `session`, kept out of its data (not enumerable). */
  private give(req: IncomingMessage, session: CookieSession, visit: Visit, events: CookieSessionEvents): void {
    const methods = {
      // A login or logout begins: the login the request carried ends. Its other data stays, as with the usual shim
      // (a cookie session has nothing on the server to fixate, and a new empty one would never be written back).
      regenerate: (callback?: (err?: unknown) => void) => {
        this.end(visit, events);
        visit.user = undefined;
        const current = req.session as unknown as CookieSession | null;
        if (current) forgetIds(current);
        callback?.();
      },
      // Passport saves after a login (a new user: a new id) and after a logout (the user gone: the login ends).
      save: (callback?: (err?: unknown) => void) => {
        const current = req.session as unknown as CookieSession | null;
        if (current) this.changed(req, current, visit, events);
        callback?.();
      },
    };
    for (const [name, value] of Object.entries(methods)) {
      Object.defineProperty(session, name, { value, writable: true, configurable: true, enumerable: false });
    }
  }

  /** The session's user may have changed: the old login ends; a new one gets its id. */
  private changed(req: IncomingMessage, session: CookieSession, visit: Visit, events: CookieSessionEvents): void {
    const user = this.userOf(session);
    if (user === visit.user) return;
    this.end(visit, events);
    visit.user = user;
    forgetIds(session);
    if (user === undefined) return;
    session[COOKIE_SESSION_ID] = visit.id = newId();
    req.sessionID = visit.id;
  }

  /** The response went out: a user taken away without `save` (`req.session = null`) ends the login; a Set-Cookie renews it. */
  private finished(req: IncomingMessage, res: ServerResponse, visit: Visit, events: CookieSessionEvents): void {
    const session = req.session as unknown as CookieSession | null | undefined;
    const user = session ? this.userOf(session) : undefined;
    if (user !== visit.user) {
      this.end(visit, events);
      return;
    }
    const id = session ? ownId(session) : undefined;
    if (id === undefined || !setsCookie(res, nameOf(req))) return;
    const { expires } = this.expiryOf(req, Date.now());
    if (expires !== undefined) events.renewed(id, expires);
  }

  private end(visit: Visit, events: CookieSessionEvents): void {
    if (visit.id !== undefined) events.loggedOut(visit.id);
    if (visit.hashId !== undefined) events.loggedOut(visit.hashId);
    visit.id = visit.hashId = undefined;
  }

  /** Passport's serialized user in a session: undefined for nobody (Passport's test: truthy, or 0). */
  private userOf(session: CookieSession): string | undefined {
    const user = (session[this.passportKey] as { user?: unknown } | undefined)?.user;
    if (!user && user !== 0) return undefined;
    if (typeof user === "string") return user;
    try {
      return JSON.stringify(user);
    } catch {
      return String(user);
    }
  }
}

/** A logged-in session cookie-session will write (it changed): stamped with the time, which maxAge counts from. */
function stampWrite(req: IncomingMessage): void {
  const session = req.session as unknown as CookieSession | null | undefined;
  if (session && ownId(session) !== undefined && session.isChanged === true) session[COOKIE_SESSION_WRITTEN_AT] = Date.now();
}

function ownId(session: CookieSession): string | undefined {
  return stringAt(session, COOKIE_SESSION_ID);
}

function stringAt(session: CookieSession, key: string): string | undefined {
  const value = session[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function forgetIds(session: CookieSession): void {
  delete session[COOKIE_SESSION_ID];
  delete session[COOKIE_SESSION_HASH_ID];
  delete session[COOKIE_SESSION_WRITTEN_AT];
}

/** 18 random bytes, as express-session's ids are made. */
function newId(): string {
  return randomBytes(18).toString("base64url");
}

/** The session cookie's name (cookie-session's default: "session"). */
function nameOf(req: IncomingMessage): string {
  return (req as CookieRequest).sessionOptions?.name || "session";
}

/**
 * A loaded session's id without one of its own: a SHA-256 of its signature cookie (an HMAC by the app's keys, so no
 * client can choose it), never the signature itself, which with a guessed content would forge the cookie.
 */
function hashIdOf(req: IncomingMessage): string | undefined {
  const sigName = `${nameOf(req)}.sig`;
  // Only a header every parser reads alike, naming the signature cookie once: the value cookie-session checked.
  const sig = soleCookie(req.headers.cookie, sigName);
  return sig ? `sig-${createHash("sha256").update(sig).digest("base64url").slice(0, 32)}` : undefined;
}

/** Whether the response sets the session cookie (a write, not its removal). */
function setsCookie(res: ServerResponse, name: string): boolean {
  const header = res.getHeader("set-cookie");
  const lines = Array.isArray(header) ? header : typeof header === "string" ? [header] : [];
  return lines.some((line) => line.startsWith(`${name}=`) && !line.startsWith(`${name}=;`));
}
