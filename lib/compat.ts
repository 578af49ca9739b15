/**
 * `passport-socketio-bridge/compat`: passport.socketio's API (3.7.0) on Socket.IO 4, for a one-line migration.
 * `authorize()` keeps its options, defaults, failure messages, `critical` flags and their order, and its
 * `success`/`fail` callbacks. Four behaviours change on purpose (see docs/migrating-from-passport.socketio.md):
 * `accept(null, false)` refuses, as its README always said; the unsigned `session_id` query parameter is
 * ignored, because it bypassed cookie signing; the Origin check against cross-site WebSocket hijacking is on;
 * and `filterSocketsByUser` works again on Socket.IO 4.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import type { RemoteSocket, Server } from "socket.io";
import { cookiePairs, unsign } from "./cookies.js";
import { within } from "./deadline.js";
import { ConfigError, RefusalError, type RefusalCode, type SessionMissingReason } from "./errors.js";
import { guardDeserializers, namespacesOf, passportKeyOf } from "./seams.js";
import { defaultPassport } from "./options.js";
import { userIdResolver } from "./identity.js";
import { Security, type OriginPolicy, type TrustProxy } from "./security.js";
import { isSessionStore, type SessionRecord, type SessionStore } from "./records.js";
import type { AnySocket, PassportLike } from "./types.js";

/** passport.socketio had no id option: the bridge's default names users. */
const defaultUserId = userIdResolver(undefined);
const debug = createDebug("passport-socketio-bridge:compat");

/** Where authorize() notes the userProperty it used, so filterSocketsByUser reads the same one. */
const USER_PROPERTY = Symbol.for("passport-socketio-bridge:compat-user-property");
/** Passport's serialized user of each authorized request, for `socket.data.userId`. */
const userIds = new WeakMap<IncomingMessage, string>();
/** Why "No session found", per request: the default `fail` sends it as `data.reason`. */
const missingReasons = new WeakMap<IncomingMessage, SessionMissingReason>();
/** The sockets authorize() admitted (so filterSocketsByUser skips namespaces without it). */
const admitted = new WeakSet<AnySocket>();

/** passport.socketio's `accept`: `accept()` or `accept(null, true)` admits, `accept(err)` and `accept(null, false)` refuse. */
export type Accept = (err?: Error | null, accepted?: boolean) => void;

/** The handshake request, as passport.socketio called it (`data`). */
export type HandshakeData = IncomingMessage & Record<string | symbol, any>;

export interface AuthorizeOptions {
  /** The session cookie's name. Default `"connect.sid"`. */
  key?: string;
  /** The session secret, or secrets (the first signs; all verify). Required: the cookie is signed. */
  secret: string | string[];
  /** The same store instance your session middleware uses. Required. */
  store: SessionStore | object;
  /** A cookie-parser factory, such as `require("cookie-parser")`. Optional: the bridge reads cookies itself. */
  cookieParser?: (secret?: string | string[]) => (req: any, res: any, next: (err?: unknown) => void) => void;
  /** The Passport Authenticator. Default: the `passport` singleton. */
  passport?: PassportLike;
  /** Where the user goes on the request. Default `"user"`. */
  userProperty?: string;
  /** Called when the user is known. Must call `accept`. Default: `accept()`. */
  success?: (data: HandshakeData, accept: Accept) => void;
  /** Called on every failure, with passport.socketio's message and `critical` flag. Default: refuse with the message. */
  fail?: (data: HandshakeData, message: string | Error, critical: boolean, accept: Accept) => void;
  /** How long the store read and deserializeUser may each take before failing as critical. Default 5000. (New.) */
  storeTimeoutMs?: number;
  /** Which page origins may connect, as bridge()'s `origins` (default: the server's own). (New.) */
  origins?: OriginPolicy;
  /** As bridge()'s `requireOrigin`. (New.) */
  requireOrigin?: boolean;
  /** As bridge()'s `trustProxy`. (New.) */
  trustProxy?: TrustProxy;
}

/** passport.socketio's messages, each with the bridge's refusal code that its default `fail` sends along. */
const MESSAGES = {
  store: ["Error in session store:\n", "store_unavailable"],
  noSession: ["No session found", "session_missing"],
  noPassport: ["Passport was not initialized", "unauthenticated"],
  noUser: ["User not authorized through passport. (User Property not found)", "unauthenticated"],
  deserializer: ["", "deserialize_failed"],
  userNotFound: ["User not found", "user_not_found"],
} as const satisfies Record<string, readonly [string, RefusalCode]>;

/**
 * A Socket.IO middleware (`io.use(authorize({...}))`, or on any namespace) that authenticates the
 * handshake from the signed session cookie, the store and Passport, as passport.socketio 3.7.0 did.
 */
export function authorize(options: AuthorizeOptions): (socket: AnySocket, next: (err?: Error) => void) => void {
  const auth = resolve(options);
  return (socket, next) => {
    const data = socket.request as HandshakeData;
    let answered = false;
    /** `accept` for one callback; `refusal` is what `accept(null, false)` sends from it. */
    const acceptWith =
      (refusal: () => RefusalError): Accept =>
      (err, accepted) => {
        if (answered) return;
        answered = true;
        if (err) return next(err instanceof Error ? err : new Error(String(err)));
        if (accepted === false) return next(refusal());
        remember(socket, data[auth.userProperty]);
        next();
      };
    // A throwing callback (passport.socketio's README throws on critical failures) refuses instead of crashing.
    const call = (callback: (accept: Accept) => void, refusal: () => RefusalError) => {
      const accept = acceptWith(refusal);
      try {
        callback(accept);
      } catch (err) {
        accept(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const fail = (message: string | Error, critical: boolean) =>
      call((accept) => auth.fail(data, message, critical, accept), () => refusalFor(message, data));
    const succeed = () => call((accept) => auth.success(data, accept), () => new RefusalError("rejected"));
    const decide = async () => {
      // The Origin check comes first and answers alone: passport.socketio had none, so no fail() of an old app
      // expects it (and one that admits everyone must not be able to switch it off).
      try {
        await auth.security.screen(data);
      } catch (refusal) {
        answered = true;
        return next(refusal as RefusalError);
      }
      let failure: Failure | undefined;
      try {
        failure = await check(auth, data);
      } catch (err) {
        debug("authorize failed unexpectedly: %O", err);
        failure = { message: `${MESSAGES.store[0]}${(err as Error)?.message ?? err}`, critical: true };
      }
      if (failure) fail(failure.message, failure.critical);
      else succeed();
    };
    decide().catch((err: unknown) => debug("authorize: %O", err));
  };
}

/** The connected sockets of this node, in every namespace, whose user `filter` accepts. */
export function filterSocketsByUser(io: Server, filter: (user: any) => boolean): AnySocket[] {
  const sockets: AnySocket[] = [];
  for (const nsp of namespacesOf(io)) {
    for (const socket of nsp.sockets.values()) {
      const req = socket.request as HandshakeData;
      // Only sockets authorize() admitted, in namespaces that use it, and their user where it put it.
      if (admitted.has(socket) && filter(req[req[USER_PROPERTY]])) sockets.push(socket);
    }
  }
  return sockets;
}

/**
 * The sockets of every node the adapter reaches, in every namespace this node knows, whose user `filter`
 * accepts. Remote sockets carry the user as authorize() stored it in `socket.data.user` (JSON).
 */
export async function fetchSocketsByUser(io: Server, filter: (user: any) => boolean): Promise<RemoteSocket<any, any>[]> {
  const found = await Promise.all([...namespacesOf(io)].map((nsp) => nsp.fetchSockets()));
  return found.flat().filter((socket) => filter((socket.data as { user?: unknown }).user));
}

interface Resolved {
  key: string;
  secrets: string[];
  store: SessionStore;
  readCookies: (header: string) => Record<string, string | false>;
  passport: PassportLike;
  passportKey: string;
  userProperty: string;
  success: NonNullable<AuthorizeOptions["success"]>;
  fail: NonNullable<AuthorizeOptions["fail"]>;
  storeTimeoutMs: number;
  security: Security;
}

function resolve(options: AuthorizeOptions): Resolved {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError("authorize(options) needs an options object with at least { secret, store }.");
  }
  const { store } = options;
  if (typeof store === "function") {
    throw new ConfigError("`store` must be a store instance (new RedisStore({ client })), not the store class.");
  }
  if (!isSessionStore(store)) {
    throw new ConfigError("`store` must be the session store instance your express-session middleware uses.");
  }
  const secrets = [options.secret].flat().filter((s): s is string => typeof s === "string" && s !== "");
  if (secrets.length === 0) {
    throw new ConfigError("`secret` is required: the same secret (or secrets) your express-session middleware signs with.");
  }
  const passport = options.passport ?? defaultPassport();
  const cookieParser = options.cookieParser;
  return {
    key: options.key ?? "connect.sid",
    secrets,
    store,
    readCookies: cookieParser
      ? (header) => viaCookieParser(cookieParser, options.secret, header)
      : (header) => signedCookies(header, secrets),
    passport,
    passportKey: passportKeyOf(passport),
    userProperty: options.userProperty ?? "user",
    success: options.success ?? ((_data, accept) => accept()),
    fail: options.fail ?? ((data, message, _critical, accept) => accept(refusalFor(message, data))),
    storeTimeoutMs: options.storeTimeoutMs ?? 5000,
    security: new Security({
      origins: options.origins,
      requireOrigin: options.requireOrigin === true,
      trustProxy: options.trustProxy ?? false,
      csrf: false,
      failureLimit: undefined,
      timeoutMs: options.storeTimeoutMs ?? 5000,
    }),
  };
}

interface Failure {
  message: string | Error;
  critical: boolean;
}

/**
 * Why "No session found", said under DEBUG with its likely cause: passport.socketio gave no more than that
 * sentence, and its most reported cause is a `key` that is not the session cookie's name.
 */
function noSessionReason(auth: Resolved, data: HandshakeData): SessionMissingReason {
  const cookies = data.cookie as Record<string, string | false>;
  if (data.sessionID) {
    debug(
      'No session found (unknown_session): the "%s" cookie verified, but the store has no such session (expired, ' +
        "logged out, or `store` is not the instance your session middleware uses)",
      auth.key,
    );
    return "unknown_session";
  }
  if (cookies[auth.key] === false) {
    debug('No session found (bad_signature): the "%s" cookie does not verify with `secret` (another secret, or rotated out)', auth.key);
    return "bad_signature";
  }
  // Another cookie signed with the session secret is the session cookie under another name.
  const others = Object.keys(cookies).filter((name) => name !== auth.key && cookies[name]);
  if (others.length > 0) {
    debug(
      'No session found (no_cookie): no "%s" cookie came, but %s is signed with `secret`: `key` is probably wrong. ' +
        "Set authorize({ key }) to your session middleware's `name`.",
      auth.key,
      others.map((name) => `"${name}"`).join(", "),
    );
  } else {
    debug(
      'No session found (no_cookie): no signed "%s" cookie came (not logged in, not sent cross-site, or `key` is not ' +
        "the session cookie's name)",
      auth.key,
    );
  }
  return "no_cookie";
}

/** Runs passport.socketio's checks, in its order. Resolves with the failure, or undefined on success. */
async function check(auth: Resolved, data: HandshakeData): Promise<Failure | undefined> {
  data[USER_PROPERTY] = auth.userProperty;
  data.cookie = auth.readCookies(typeof data.headers.cookie === "string" ? data.headers.cookie : "");
  data.sessionID = data.cookie[auth.key] || "";
  data[auth.userProperty] = { logged_in: false };

  // (Even for an empty id, as passport.socketio did: a store outage is reported before "No session found".)
  let session: SessionRecord | null | undefined;
  try {
    session = await within(auth.storeTimeoutMs, (done) => auth.store.get(data.sessionID, done));
  } catch (err) {
    return { message: `${MESSAGES.store[0]}${(err as Error)?.message ?? err}`, critical: true };
  }
  if (!session) {
    missingReasons.set(data, noSessionReason(auth, data));
    return { message: MESSAGES.noSession[0], critical: false };
  }
  const passportData = session[auth.passportKey] as { user?: unknown } | undefined;
  if (!passportData) return { message: MESSAGES.noPassport[0], critical: true };
  const userKey = passportData.user;
  if (typeof userKey === "undefined") return { message: MESSAGES.noUser[0], critical: false };

  guardDeserializers(auth.passport);
  let user: any;
  try {
    user = await within(auth.storeTimeoutMs, (done) => auth.passport.deserializeUser(userKey, data, done));
  } catch (err) {
    // The deserializer's error, as it gave it (passport.socketio passed it on untouched).
    return { message: err as string | Error, critical: true };
  }
  if (!user) return { message: MESSAGES.userNotFound[0], critical: false };
  data[auth.userProperty] = user;
  // A user that is a string, a number or frozen cannot take the flag; passport.socketio (sloppy mode) ignored that.
  if (typeof user === "object" && Object.isExtensible(user)) user.logged_in = true;
  userIds.set(data, defaultUserId(user, userKey));
  return undefined;
}

/**
 * cookie-parser's `signedCookies`: for each name, its first cookie (as cookie-parser and express-session take
 * it), if that one is signed: its value when a secret signed it, false when none did.
 */
function signedCookies(header: string, secrets: string[]): Record<string, string | false> {
  const cookies: Record<string, string | false> = Object.create(null);
  const seen = new Set<string>();
  for (const [name, value] of cookiePairs(header)) {
    if (seen.has(name)) continue;
    seen.add(name);
    if (value.startsWith("s:")) cookies[name] = unsign(value.slice(2), secrets);
  }
  return cookies;
}

function viaCookieParser(
  factory: NonNullable<AuthorizeOptions["cookieParser"]>,
  secret: string | string[],
  header: string,
): Record<string, string | false> {
  const req: { headers: { cookie: string }; signedCookies?: Record<string, string | false>; cookies?: Record<string, string> } = {
    headers: { cookie: header },
  };
  let failure: unknown;
  factory(secret)(req, {}, (err) => (failure = err));
  if (failure) throw failure;
  return req.signedCookies ?? req.cookies ?? {};
}

/**
 * What the default `fail` sends: passport.socketio's message, with the bridge's code alongside (and for
 * "No session found", bridge()'s `reason`).
 */
function refusalFor(message: string | Error, data: HandshakeData): RefusalError {
  const text = message instanceof Error ? message.message : String(message);
  const entry = Object.values(MESSAGES).find(([prefix]) => prefix !== "" && text.startsWith(prefix));
  const code: RefusalCode = message instanceof Error ? "deserialize_failed" : (entry?.[1] ?? "rejected");
  const reason = code === "session_missing" ? missingReasons.get(data) : undefined;
  return new RefusalError(code, { message: text, ...(reason ? { data: { reason } } : {}) });
}

/** What an admitted socket carries to other nodes: its user, as JSON, and its ids. */
function remember(socket: AnySocket, user: unknown): void {
  admitted.add(socket);
  const req = socket.request as HandshakeData;
  const data = socket.data as Record<string, unknown>;
  try {
    data.user = JSON.parse(JSON.stringify(user));
  } catch {
    data.user = undefined;
  }
  const userId = userIds.get(req);
  if (userId !== undefined) data.userId = userId;
  if (req.sessionID) data.sessionId = req.sessionID;
}
