/**
 * The options of `bridge()`: their types, their defaults (in one place), and the checks that turn a
 * wrong setup into a ConfigError at startup instead of a mystery at the first connection.
 */
import { createRequire } from "node:module";
import { MAX_TIMER_MS } from "./deadline.js";
import { ConfigError, type RefusalError } from "./errors.js";
import { userIdResolver, type UserIdOf } from "./identity.js";
import { memoryFailureLimiter, type FailureLimiter } from "./limiter.js";
import { exactOrigin, type OriginPolicy, type SecurityOptions } from "./security.js";
import { hasStrategy, passportKeyOf } from "./seams.js";
import type { AnySocket, PassportLike, SessionMiddleware } from "./types.js";

export interface BridgeOptions<TUser = Express.User> {
  /**
   * The express-session middleware instance your HTTP app uses. Required, except on a service that reads no
   * sessions and admits only tokens (`strategies`) or anonymous sockets (`allowAnonymous`).
   */
  session?: SessionMiddleware;
  /** The Passport Authenticator. Defaults to the `passport` singleton. */
  passport?: PassportLike;
  /**
   * The request property Passport puts the user on, as given to `passport.initialize({ userProperty })`.
   * Default `"user"`.
   */
  userProperty?: string;
  /**
   * Admit sockets as anonymous (their `socket.request.user` is undefined). `true`: when nobody is logged in
   * (`session_missing`, `unauthenticated`, `user_not_found`). A function decides for each refusal (all but
   * `too_many_attempts`), admitting when it returns `true`. Default `false`.
   */
  allowAnonymous?: boolean | AnonymousPolicy;
  /**
   * Runs for every socket (each namespace a client connects), after the user is known. Throwing (or
   * rejecting) refuses the socket: the client receives the error's `message` and `data` (a missing `data.code` becomes
   * `rejected`). Not called for anonymous sockets.
   */
  onAccept?: (socket: AnySocket, user: TUser) => unknown;
  /**
   * Runs for every refusal, with the error about to be sent; throwing replaces the error that is sent. Its
   * return value admits nothing (admit anonymously with `allowAnonymous`).
   */
  onReject?: (socket: AnySocket, error: RefusalError) => unknown;
  /**
   * How long a session-store read may take before the refusal `store_unavailable`, in ms. It also bounds
   * `deserializeUser` (refusal `deserialize_failed`). Default 5000.
   */
  storeTimeoutMs?: number;
  /**
   * Client events keep the session alive: they touch the store at most once per session per this many ms
   * (and at least twice per cookie.maxAge). Engine pings do not count. `false` turns it off. Default 60000.
   */
  keepAliveMs?: number | false;
  /**
   * Re-read every live session and re-run deserializeUser this often, per session (not per socket), so
   * changed users reach their sockets, and sessions removed where no bridge saw it (another service, an admin
   * script, a second store instance) end their sockets. One store read per session per interval per node.
   * `false` turns it off. Default 120000.
   */
  revalidateEveryMs?: number | false;
  /**
   * How long this node's copy of a session may serve new handshakes of it, in ms, counted from when it was
   * read from (or written to) the store. After that a new handshake reads the store again (one read per
   * session per window, shared by concurrent handshakes). Default 2000.
   */
  sessionCacheMs?: number;
  /**
   * The id that names a user's room (`user:<id>`), `socket.data.userId` and presence members, from the
   * deserialized user and Passport's serialized value. Default: the serialized value when it is a string or a
   * number; for an object, its `id`, else its `_id`.
   */
  userId?: (user: TUser, serialized: unknown) => string | number;
  /** How many channels one socket may be in at once; more are refused with `too_many_channels`. Default 100. */
  maxChannelsPerSocket?: number;
  /**
   * Which page origins may connect. Default: only the server's own origin (`Origin` equal to the request's
   * scheme://host[:port]). A list adds exact origins; a function `(origin, req) => boolean` decides alone;
   * `false` turns the check off. `Origin: null` is refused unless a function admits it.
   */
  origins?: OriginPolicy;
  /** Refuse handshakes without an `Origin` header (non-browser clients). Default `false`. */
  requireOrigin?: boolean;
  /**
   * Believe X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-For from the proxy in front (`true`), or from
   * this many proxies (a number). Each header's entry is taken counting from the right. Default `false`.
   */
  trustProxy?: boolean | number;
  /** Require `socket.handshake.auth.csrf` to equal the session's token from `auth.csrfToken(req)`. Default `false`. */
  csrf?: boolean;
  /**
   * After this many refused handshakes from one address in a minute, refuse it with `too_many_attempts`. A
   * number counts in memory; `{ perMinute, limiter }` counts where the limiter says (see `redisFailureLimiter`).
   * Off by default.
   */
  failureLimit?: number | { perMinute: number; limiter?: FailureLimiter };
  /**
   * Passport strategies (by the names registered on your Passport, e.g. `["jwt"]`) to authenticate handshakes
   * without a session cookie, with the token from `socket.handshake.auth.token` or the Authorization header.
   */
  strategies?: string[];
  /** The secret that signs channel tickets (`auth.signChannel`, `auth.channelAuthHandler()`). */
  channelSecret?: string;
  /**
   * The namespaces the bridge authenticates: a function `(name) => boolean`, or a list of names and RegExps
   * (`["/", /^\/room-\d+$/]`). Decided once per namespace, dynamic children by their own name. Default: every
   * namespace, present and future. A function leaves a namespace out only by returning `false` (a throw or
   * any other value keeps it authenticated).
   *
   * A namespace left out is the app's alone: no origin check, CSRF, failure limit, session read, hook or
   * refusal from the bridge. Its sockets never see the bridge's session or user (no `socket.request.user`,
   * even on a connection a bridged namespace shares), never join `user:`/`session:` rooms or channels, are
   * never ended by a logout or revocation, and don't count in presence or `onlineUsers()`.
   * The namespaces kept keep every check, on a connection that also carries a namespace left out too: a page
   * whose origin only the left-out namespace (or Socket.IO's `cors`) allows is still refused
   * `origin_not_allowed` in each of them. E.g. for Socket.IO's Admin UI, which authenticates `/admin` itself:
   * `namespaces: (name) => name !== "/admin"`.
   */
  namespaces?: NamespaceSelection;
}

/** Which namespaces the bridge authenticates: a function `(name) => boolean`, or namespace names and RegExps. */
export type NamespaceSelection = ((name: string) => boolean) | ReadonlyArray<string | RegExp>;

/** `allowAnonymous` as a function: whether to admit, as anonymous, a socket about to be refused with `error`. */
export type AnonymousPolicy = (socket: AnySocket, error: RefusalError) => boolean | Promise<boolean>;

/** The options with every default applied: what the rest of the library reads. */
export interface ResolvedOptions<TUser> {
  /** Undefined on a service without sessions. */
  session: SessionMiddleware | undefined;
  passport: PassportLike;
  passportKey: string;
  userProperty: string;
  allowAnonymous: boolean | AnonymousPolicy;
  onAccept: ((socket: AnySocket, user: TUser) => unknown) | undefined;
  onReject: ((socket: AnySocket, error: RefusalError) => unknown) | undefined;
  storeTimeoutMs: number;
  keepAliveMs: number | false;
  revalidateEveryMs: number | false;
  sessionCacheMs: number;
  /** The user id resolver: the `userId` option, or the default. */
  userId: UserIdOf;
  maxChannelsPerSocket: number;
  security: SecurityOptions;
  strategies: string[];
  channelSecret: string | undefined;
  /** Whether the bridge authenticates the namespace of this name; undefined: every namespace. */
  namespaces: ((name: string) => boolean) | undefined;
}

const DEFAULTS = {
  userProperty: "user",
  allowAnonymous: false,
  storeTimeoutMs: 5000,
  keepAliveMs: 60_000,
  revalidateEveryMs: 120_000,
  sessionCacheMs: 2000,
  maxChannelsPerSocket: 100,
} as const;

const KNOWN = new Set<string>([
  "session",
  "passport",
  "userProperty",
  "allowAnonymous",
  "onAccept",
  "onReject",
  "storeTimeoutMs",
  "keepAliveMs",
  "revalidateEveryMs",
  "sessionCacheMs",
  "userId",
  "maxChannelsPerSocket",
  "origins",
  "requireOrigin",
  "trustProxy",
  "csrf",
  "failureLimit",
  "strategies",
  "channelSecret",
  "namespaces",
]);

export function resolveOptions<TUser>(options: BridgeOptions<TUser>): ResolvedOptions<TUser> {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError("bridge(io, options) needs an options object, at least { session }.");
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(REMOVED, key)) throw new ConfigError(REMOVED[key as keyof typeof REMOVED]);
    if (!KNOWN.has(key)) {
      throw new ConfigError(`Unknown option "${key}". Known options: ${[...KNOWN].join(", ")}.`);
    }
  }
  const sessionless =
    options.session === undefined &&
    (Boolean(options.allowAnonymous) || (Array.isArray(options.strategies) && options.strategies.length > 0));
  if (!sessionless) {
    const mistake = notExpressMiddleware(options.session);
    if (mistake) {
      throw new ConfigError(
        "The `session` option must be your express-session middleware, the value of `session({ ... })` that your " +
          "HTTP app uses, or cookie-session's, the value of `cookieSession({ ... })` (not the `session` function " +
          `itself, nor its options). It is ${mistake}. Fastify and Koa are not supported. Only a service that takes ` +
          "tokens alone (`strategies`) or admits anonymous sockets (`allowAnonymous`) may leave it out.",
      );
    }
  }
  const passport = options.passport ?? defaultPassport();
  if (typeof passport?.session !== "function" || typeof passport.deserializeUser !== "function") {
    throw new ConfigError(
      "The `passport` option must be a Passport Authenticator (the `passport` module or `new passport.Passport()`).",
    );
  }
  const storeTimeoutMs = duration("storeTimeoutMs", options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs, false);
  const keepAliveMs = duration("keepAliveMs", options.keepAliveMs ?? DEFAULTS.keepAliveMs, true);
  const revalidateEveryMs = duration("revalidateEveryMs", options.revalidateEveryMs ?? DEFAULTS.revalidateEveryMs, true);
  const sessionCacheMs = duration("sessionCacheMs", options.sessionCacheMs ?? DEFAULTS.sessionCacheMs, false);
  const maxChannelsPerSocket = options.maxChannelsPerSocket ?? DEFAULTS.maxChannelsPerSocket;
  if (!(Number.isInteger(maxChannelsPerSocket) && maxChannelsPerSocket > 0)) {
    throw new ConfigError("`maxChannelsPerSocket` must be a positive whole number.");
  }
  const userProperty = options.userProperty ?? DEFAULTS.userProperty;
  if (typeof userProperty !== "string" || userProperty === "") {
    throw new ConfigError("`userProperty` must be a non-empty string, as given to passport.initialize().");
  }
  for (const hook of ["onAccept", "onReject", "userId"] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new ConfigError(`\`${hook}\` must be a function.`);
    }
  }
  const allowAnonymous = options.allowAnonymous ?? DEFAULTS.allowAnonymous;
  if (typeof allowAnonymous !== "boolean" && typeof allowAnonymous !== "function") {
    throw new ConfigError("`allowAnonymous` must be true, false, or a function (socket, error) => boolean.");
  }
  const { origins } = options;
  if (origins !== undefined && origins !== false && typeof origins !== "function" && !Array.isArray(origins)) {
    throw new ConfigError("`origins` must be a list of origins, a function (origin, req) => boolean, or false.");
  }
  const { strategies = [], channelSecret } = options;
  if (!Array.isArray(strategies) || strategies.some((name) => typeof name !== "string" || name === "")) {
    throw new ConfigError("`strategies` must be a list of Passport strategy names, e.g. [\"jwt\"].");
  }
  for (const name of strategies) {
    if (hasStrategy(passport, name) === false) {
      throw new ConfigError(`No Passport strategy is registered as "${name}": passport.use("${name}", new Strategy(...)) first.`);
    }
  }
  if (channelSecret !== undefined && (typeof channelSecret !== "string" || channelSecret.length < 16)) {
    throw new ConfigError("`channelSecret` must be a string of at least 16 characters (32 random bytes are better).");
  }
  const { trustProxy } = options;
  if (trustProxy !== undefined && typeof trustProxy !== "boolean" && !(Number.isInteger(trustProxy) && trustProxy >= 0)) {
    throw new ConfigError("`trustProxy` must be true, false, or the number of proxies in front of the server.");
  }
  return {
    session: options.session,
    passport,
    passportKey: passportKeyOf(passport),
    userProperty,
    allowAnonymous,
    onAccept: options.onAccept,
    onReject: options.onReject,
    storeTimeoutMs,
    keepAliveMs,
    revalidateEveryMs,
    sessionCacheMs,
    userId: userIdResolver(options.userId as ((user: unknown, serialized: unknown) => string | number) | undefined),
    maxChannelsPerSocket,
    security: {
      origins: Array.isArray(origins) ? origins.map(exactOrigin) : origins,
      requireOrigin: options.requireOrigin === true,
      trustProxy: options.trustProxy ?? false,
      csrf: options.csrf === true,
      failureLimit: failureLimitOf(options.failureLimit),
      timeoutMs: storeTimeoutMs,
    },
    strategies,
    channelSecret,
    namespaces: namespaceFilterOf(options.namespaces),
  };
}

/**
 * What `session` is, when it is not an Express-style `(req, res, next)` middleware (one that forwards its arguments
 * counts too); undefined when it may be one.
 */
function notExpressMiddleware(session: unknown): string | undefined {
  if (session === undefined || session === null) return "missing";
  if (typeof session === "object") {
    const keys = Object.keys(session);
    return keys.length ? `an object (${keys.slice(0, 4).join(", ")}): options, not a middleware` : "an empty object";
  }
  if (typeof session !== "function") return `a ${typeof session}`;
  // fastify-plugin marks the plugins it wraps (@fastify/session, @fastify/secure-session, @fastify/passport).
  const plugin = session as unknown as Record<symbol, unknown>;
  if (plugin[Symbol.for("skip-override")] !== undefined || plugin[Symbol.for("fastify.display-name")] !== undefined) {
    const name = plugin[Symbol.for("fastify.display-name")];
    return `a Fastify plugin${typeof name === "string" ? ` (${name})` : ""}, not an Express middleware`;
  }
  const name = session.name ? ` (${session.name})` : "";
  if (session.length === 1) {
    return session.name === "session" || session.name === "cookieSession"
      ? `the \`${session.name}\` function itself, which makes the middleware: call it with your options`
      : `a function of one parameter${name}, such as a middleware factory, not a middleware`;
  }
  if (session.length === 2) return `a function of two parameters${name}, such as a Koa middleware (ctx, next) from koa-session, not an Express middleware`;
  return undefined;
}

/** Options that were removed, each with what to write instead. */
const REMOVED = {
  endedEvent:
    "The `endedEvent` option was removed: the bridge always sends `auth:ended` ({ code }) before it disconnects a " +
    "socket. Drop the option and listen to `auth:ended` (withAuth() does; drop its `endedEvent` too).",
  maxFailuresPerMinute:
    "`maxFailuresPerMinute` was renamed: write `failureLimit: n` (or `failureLimit: { perMinute: n, limiter }` " +
    "with a shared limiter).",
  failureLimiter:
    "`failureLimiter` moved into `failureLimit`: write `failureLimit: { perMinute: n, limiter: yourLimiter }`.",
} as const;

/** `failureLimit`: how many failures per minute, counted by which limiter; undefined when off. */
function failureLimitOf(option: BridgeOptions["failureLimit"]): SecurityOptions["failureLimit"] {
  if (option === undefined) return undefined;
  const { perMinute, limiter }: { perMinute?: unknown; limiter?: FailureLimiter | undefined } =
    typeof option === "object" && option !== null ? option : { perMinute: option };
  if (!(typeof perMinute === "number" && Number.isInteger(perMinute) && perMinute > 0)) {
    throw new ConfigError("`failureLimit` must be a positive whole number, or { perMinute: n, limiter? } with one.");
  }
  if (limiter !== undefined && (typeof limiter?.failures !== "function" || typeof limiter.fail !== "function")) {
    throw new ConfigError("`failureLimit.limiter` must have failures(key) and fail(key) methods (see redisFailureLimiter).");
  }
  return { perMinute, limiter: limiter ?? memoryFailureLimiter() };
}

/** `namespaces` as one test of a namespace's name; undefined (every namespace) when the option is left out. */
function namespaceFilterOf(option: BridgeOptions["namespaces"]): ResolvedOptions<unknown>["namespaces"] {
  if (option === undefined) return undefined;
  if (typeof option === "function") return option;
  if (!Array.isArray(option)) {
    throw new ConfigError(
      '`namespaces` must be a function (name) => boolean, or a list of namespace names and RegExps, e.g. ' +
        '["/", /^\\/room-\\d+$/]. Leave it out to authenticate every namespace.',
    );
  }
  if (option.length === 0) {
    throw new ConfigError(
      "`namespaces` is an empty list, so the bridge would authenticate no namespace. List the namespaces to " +
        "authenticate, or leave the option out to authenticate every namespace.",
    );
  }
  const names = new Set<string>();
  const patterns: RegExp[] = [];
  for (const entry of option as unknown[]) {
    if (typeof entry === "string") {
      if (!entry.startsWith("/")) {
        throw new ConfigError(`"${entry}" in \`namespaces\` is not a namespace name: write it with its leading slash, "/${entry}".`);
      }
      names.add(entry);
    } else if (entry instanceof RegExp) {
      // (test() on a global or sticky RegExp depends on its last match; Socket.IO refuses those too.)
      if (entry.global || entry.sticky) {
        throw new ConfigError(`The RegExp ${String(entry)} in \`namespaces\` has the g or y flag, which makes it answer differently each time: drop the flag.`);
      }
      patterns.push(entry);
    } else {
      throw new ConfigError(`\`namespaces\` lists namespace names (strings starting with "/") and RegExps, not ${entry === null ? "null" : typeof entry}.`);
    }
  }
  return (name) => names.has(name) || patterns.some((pattern) => pattern.test(name));
}

/** A duration option: a positive number of ms, or (where `canDisable`) false to turn it off. */
function duration(key: string, value: unknown, canDisable: true): number | false;
function duration(key: string, value: unknown, canDisable: false): number;
function duration(key: string, value: unknown, canDisable: boolean): number | false {
  if (canDisable && value === false) return false;
  // setTimeout fires at once past MAX_TIMER_MS.
  if (typeof value !== "number" || !(value > 0 && value <= MAX_TIMER_MS)) {
    throw new ConfigError(
      `\`${key}\` must be a number of milliseconds between 1 and ${MAX_TIMER_MS}${canDisable ? ", or false" : ""}.`,
    );
  }
  return value;
}

/** The `passport` singleton, loaded only when no Authenticator was given (so passport stays a peer). */
export function defaultPassport(): PassportLike {
  try {
    return createRequire(import.meta.url)("passport") as PassportLike;
  } catch (cause) {
    throw new ConfigError(
      "No `passport` option was given and the `passport` package could not be loaded. Install passport, " +
        `or pass your Authenticator as { passport }. (${(cause as Error).message})`,
    );
  }
}
