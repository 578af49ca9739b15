/**
 * The options of `bridge()`: their types, their defaults (in one place), and the checks that turn a
 * wrong setup into a ConfigError at startup instead of a mystery at the first connection.
 */
import { createRequire } from "node:module";
import { ConfigError, type RefusalError } from "./errors.js";
import type { AnySocket, PassportLike, SessionMiddleware } from "./types.js";

export interface BridgeOptions<TUser = Express.User> {
  /** The express-session middleware instance your HTTP app uses. Required. */
  session: SessionMiddleware;
  /** The Passport Authenticator. Defaults to the `passport` singleton. */
  passport?: PassportLike;
  /**
   * The request property Passport puts the user on, as given to `passport.initialize({ userProperty })`.
   * Default `"user"`.
   */
  userProperty?: string;
  /** Admit sockets that have no logged-in user; their `socket.request.user` is undefined. Default `false`. */
  allowAnonymous?: boolean;
  /**
   * Runs once per client connection, after the user is known. Throwing (or rejecting) refuses the
   * connection: the client receives the error's `message` and `data` (a missing `data.code` becomes
   * `rejected`). Not called for anonymous sockets.
   */
  onAccept?: (socket: AnySocket, user: TUser) => unknown;
  /**
   * Runs for every refusal, with the error about to be sent. Returning `true` admits the socket as
   * anonymous instead; throwing replaces the error that is sent.
   */
  onReject?: (socket: AnySocket, error: RefusalError) => unknown;
  /**
   * How long a session-store read may take before the refusal `store_unavailable`, in ms. It also bounds
   * `deserializeUser` (refusal `deserialize_failed`). Default 5000.
   */
  storeTimeoutMs?: number;
}

/** The options with every default applied: what the rest of the library reads. */
export interface ResolvedOptions<TUser> {
  session: SessionMiddleware;
  passport: PassportLike;
  passportKey: string;
  userProperty: string;
  allowAnonymous: boolean;
  onAccept: ((socket: AnySocket, user: TUser) => unknown) | undefined;
  onReject: ((socket: AnySocket, error: RefusalError) => unknown) | undefined;
  storeTimeoutMs: number;
}

const DEFAULTS = {
  userProperty: "user",
  allowAnonymous: false,
  storeTimeoutMs: 5000,
} as const;

const KNOWN = new Set<string>([
  "session",
  "passport",
  "userProperty",
  "allowAnonymous",
  "onAccept",
  "onReject",
  "storeTimeoutMs",
]);

export function resolveOptions<TUser>(options: BridgeOptions<TUser>): ResolvedOptions<TUser> {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError("bridge(io, options) needs an options object, at least { session }.");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      throw new ConfigError(`Unknown option "${key}". Known options: ${[...KNOWN].join(", ")}.`);
    }
  }
  if (typeof options.session !== "function" || options.session.length < 3) {
    throw new ConfigError(
      "The `session` option must be your express-session middleware, the value of `session({ ... })` that " +
        "your HTTP app uses (not the `session` function itself, nor its options).",
    );
  }
  const passport = options.passport ?? defaultPassport();
  if (typeof passport?.session !== "function" || typeof passport.deserializeUser !== "function") {
    throw new ConfigError(
      "The `passport` option must be a Passport Authenticator (the `passport` module or `new passport.Passport()`).",
    );
  }
  const storeTimeoutMs = options.storeTimeoutMs ?? DEFAULTS.storeTimeoutMs;
  if (!Number.isFinite(storeTimeoutMs) || storeTimeoutMs <= 0) {
    throw new ConfigError("`storeTimeoutMs` must be a positive number of milliseconds.");
  }
  const userProperty = options.userProperty ?? DEFAULTS.userProperty;
  if (typeof userProperty !== "string" || userProperty === "") {
    throw new ConfigError("`userProperty` must be a non-empty string, as given to passport.initialize().");
  }
  for (const hook of ["onAccept", "onReject"] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new ConfigError(`\`${hook}\` must be a function.`);
    }
  }
  return {
    session: options.session,
    passport,
    passportKey: passportKeyOf(passport),
    userProperty,
    allowAnonymous: options.allowAnonymous ?? DEFAULTS.allowAnonymous,
    onAccept: options.onAccept,
    onReject: options.onReject,
    storeTimeoutMs,
  };
}

/** Where Passport keeps its data in the session (`req.session.passport` unless the Authenticator says otherwise). */
function passportKeyOf(passport: PassportLike): string {
  const key: unknown = (passport as { _key?: unknown })._key;
  return typeof key === "string" && key !== "" ? key : "passport";
}

/** The `passport` singleton, loaded only when no Authenticator was given (so passport stays a peer). */
function defaultPassport(): PassportLike {
  try {
    return createRequire(import.meta.url)("passport") as PassportLike;
  } catch (cause) {
    throw new ConfigError(
      "No `passport` option was given and the `passport` package could not be loaded. Install passport, " +
        `or pass your Authenticator as { passport }. (${(cause as Error).message})`,
    );
  }
}
