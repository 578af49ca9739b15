/**
 * Wrong setups caught at `bridge()`, before any client meets them: a ConfigError that names the fix for
 * what can never work, and one process warning per cause for what works badly (a half-finished migration).
 * Each mistake here used to look like a store outage, so clients retried forever.
 */
import type { Namespace, Server } from "socket.io";
import { ConfigError } from "./errors.js";
import { cookiePathOf, detachedResponse, engineMiddlewares, namespacesOf } from "./seams.js";
import type { SessionMiddleware } from "./types.js";

/**
 * Runs the session middleware once on a detached request to the Socket.IO path. Returns the store it
 * exposes (the bridge watches it). Throws a ConfigError for Passport's middleware in place of the session's,
 * a missing secret, and a cookie `path` that does not cover the Socket.IO path; warns about a cookie browsers
 * reject. The request looks like https (a TLS socket), so `secure` and `sameSite` "auto" resolve as in production.
 */
export function probeSession(session: SessionMiddleware, socketPath: string): unknown {
  const req = { url: `${socketPath}/`, method: "GET", headers: {}, connection: { encrypted: true } } as Record<string, unknown>;
  let failure: unknown;
  try {
    session(req, detachedResponse(), (err?: unknown) => (failure = err));
  } catch (err) {
    failure = err;
  }
  const message = failure instanceof Error ? failure.message : "";
  if (/Login sessions require session support/.test(message)) {
    throw new ConfigError(
      "The `session` option is Passport's middleware (`passport.session()`). Give bridge() your express-session " +
        "middleware, the value of `session({ ... })` that your HTTP app uses, and Passport as the `passport` option.",
    );
  }
  if (/secret/i.test(message)) throw new ConfigError(`The session middleware refuses every request: ${message}.`);
  if (req.sessionStore) {
    checkSameSite(req.session);
    return req.sessionStore;
  }
  const cookiePath = cookiePathOf(session);
  if (cookiePath !== undefined && !`${socketPath}/`.startsWith(cookiePath)) {
    throw new ConfigError(
      `The session cookie's path "${cookiePath}" does not cover the Socket.IO path "${socketPath}", so browsers ` +
        `never send the cookie there. Set the session's \`cookie.path\` to "/" (the default), or serve Socket.IO ` +
        `under it: new Server(http, { path: "${cookiePath.replace(/\/$/, "")}/socket.io" }).`,
    );
  }
  process.emitWarning(
    `The session middleware skipped a request to the Socket.IO path "${socketPath}/" at startup: its store ` +
      "reported itself disconnected (until it reconnects, every handshake is refused as store_unavailable), or " +
      "`session` is not express-session's middleware.",
    { code: "PSB_SESSION_SKIPPED" },
  );
  return undefined;
}

/**
 * `sameSite: "none"` without `secure`: browsers reject a SameSite=None cookie that is not Secure, so the login
 * never sticks and every handshake is refused as session_missing (no_cookie), which reads like a client bug.
 */
function checkSameSite(session: unknown): void {
  const cookie = (session as { cookie?: { sameSite?: unknown; secure?: unknown } } | undefined)?.cookie;
  if (typeof cookie?.sameSite !== "string" || cookie.sameSite.toLowerCase() !== "none" || cookie.secure === true) return;
  process.emitWarning(
    'The session cookie is `sameSite: "none"` but not `secure`: browsers reject a SameSite=None cookie that is not ' +
      "Secure, so logins never stick and every handshake is refused as session_missing (no_cookie). Set " +
      '`cookie: { sameSite: "none", secure: true }` and serve the app over https (behind a TLS proxy also ' +
      '`proxy: true` in the session options), or use `sameSite: "lax"` when the page and Socket.IO are on the same site.',
    { code: "PSB_SAMESITE_NONE_INSECURE" },
  );
}

/**
 * bridge() must come before any client connects: sockets already connected would stay unauthenticated. (Only
 * in the namespaces it authenticates: the others are the app's.)
 */
export function checkNoSocketsYet(io: Server, owns: (nsp: Namespace) => boolean): void {
  let connected = 0;
  for (const nsp of namespacesOf(io)) if (owns(nsp)) connected += nsp.sockets.size;
  if (connected === 0) return;
  throw new ConfigError(
    `bridge() was called after ${connected} socket(s) had connected, and they would stay unauthenticated and ` +
      "out of reach of logout. Call bridge(io, options) right after creating the Socket.IO server, before it " +
      "listens.",
  );
}

/**
 * Session and Passport middlewares still on `io.engine` from the Socket.IO recipe: the bridge already does
 * their work once per connection, and they read the store on every Engine.IO request (and the recipe's 401
 * makes clients retry forever). One warning per cause, for a bridge: seen on `io.engine.middlewares` at
 * bridge() and again at the first handshake (for those added later), or, for the recipe's own
 * `onlyForHandshake(...)` wrapper, which hides the middleware, by its work: a connection's first handshake
 * arriving with a session (or a user) already on its request.
 */
export class EngineLeftovers {
  private readonly warned = new Set<string>();

  constructor(
    private readonly io: Server,
    private readonly session: SessionMiddleware | undefined,
    private readonly userProperty: string,
  ) {}

  /** The middlewares installed on `io.engine` now. */
  checkInstalled(): void {
    for (const middleware of engineMiddlewares(this.io)) {
      if (middleware === this.session || middleware.name === "session") this.warn(SESSION);
      else if (middleware.name === "authenticate") this.warn(PASSPORT);
    }
  }

  /** A connection's request, before the bridge's first handshake on it. */
  check(req: object): void {
    if (this.warned.size === 2) return;
    if (Object.hasOwn(req, "session")) this.warn(SESSION);
    if (Object.hasOwn(req, this.userProperty)) this.warn(PASSPORT);
  }

  private warn({ code, what, does }: Leftover): void {
    if (this.warned.has(code)) return;
    this.warned.add(code);
    process.emitWarning(
      `${what} is still installed on io.engine (the Socket.IO recipe's io.engine.use(...), or its ` +
        "onlyForHandshake(...) wrapper): the bridge already loads the session and the user once per connection, " +
        `and this middleware ${does} Remove it (see docs/migrating-from-the-socket.io-recipe.md).`,
      { code },
    );
  }
}

interface Leftover {
  code: string;
  what: string;
  /** What it costs, as passport.session() and express-session really behave on Engine.IO requests. */
  does: string;
}

const SESSION: Leftover = {
  code: "PSB_ENGINE_SESSION",
  what: "A session middleware",
  does: "reads the store again on the Engine.IO requests it runs on and sends Set-Cookie on handshakes.",
};
// passport.session() neither reads the store nor sets a cookie: it deserializes the user from the session that
// the session middleware loaded (and fails the request when there is none).
const PASSPORT: Leftover = {
  code: "PSB_ENGINE_PASSPORT",
  what: "passport.session()",
  does:
    "calls your deserializeUser again on the Engine.IO requests it runs on (with io.engine.use, every long-polling " +
    'request), and fails each of them ("Login sessions require session support") once no session middleware ' +
    "runs before it there, which clients retry forever as a network error.",
};
