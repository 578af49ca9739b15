/**
 * Every error the bridge produces, with stable codes. Refusals are the errors a client receives as
 * `connect_error` (`err.message`, `err.data = { code, reconnect }`); their codes and sentences live here
 * and nowhere else (the codes themselves are protocol.ts's: a code without a sentence does not compile).
 */
import { MAX_CHANNEL_LENGTH, type ChannelRefusalCode, type EndCode, type RefusalCode, type SessionMissingReason } from "./protocol.js";

export type { ChannelRefusalCode, EndCode, RefusalCode, SessionMissingReason } from "./protocol.js";

/** What each refusal code means to the client: a sentence that says how to fix it, and whether retrying can help. */
export const REFUSALS = {
  session_missing: {
    reconnect: false,
    message:
      "No session was found for this connection. Log in over HTTP first, and make sure the browser sends the " +
      "session cookie to the Socket.IO endpoint (same site, or `withCredentials: true` on the client with " +
      "`cors: { credentials: true }` on the server).",
  },
  unauthenticated: {
    reconnect: false,
    message: "The session exists but nobody is logged in. Log in over HTTP, then connect again.",
  },
  user_not_found: {
    reconnect: false,
    message: "The user of this session no longer exists. Log in again, then connect again.",
  },
  deserialize_failed: {
    reconnect: true,
    message:
      "The server could not load the user of this session (Passport's deserializeUser failed). Retry later; " +
      "the server logs the cause with DEBUG=passport-socketio-bridge:*.",
  },
  store_unavailable: {
    reconnect: true,
    message: "The session store is unavailable (it failed or did not answer in time). Retry in a moment.",
  },
  rejected: {
    reconnect: false,
    message: "The application refused this connection.",
  },
  origin_not_allowed: {
    reconnect: false,
    message:
      "This page's origin may not open a Socket.IO connection to this server. If it is your own front end, " +
      "add its origin to the bridge's `origins` option (behind a TLS proxy, also set `trustProxy: true`).",
  },
  csrf_mismatch: {
    reconnect: false,
    message:
      "The connection did not carry this session's CSRF token. Render it into the page with " +
      "`await auth.csrfToken(req)` and connect with `io({ auth: { csrf: token } })`.",
  },
  too_many_attempts: {
    reconnect: true,
    message:
      "Too many connections from this address were refused lately, or too many are being tried at once. Try " +
      "again after `err.data.retryAfterMs` milliseconds (withAuth waits that long by itself).",
  },
  token_invalid: {
    reconnect: false,
    message:
      "The token was not accepted (bad signature, unknown, or revoked). Get a new one and connect with " +
      "`io({ auth: { token } })`.",
  },
  token_expired: {
    reconnect: false,
    message: "The token expired. Get a fresh one and connect with `io({ auth: { token } })`.",
  },
  server_error: {
    reconnect: true,
    message: "The server could not register this connection. Retry in a moment.",
  },
} as const satisfies Record<RefusalCode, { reconnect: boolean; message: string }>;

/**
 * Why a handshake found no session (`err.data.reason` with `session_missing`), each with its own sentence.
 * None tells an attacker more than the code: a client knows whether it sent a cookie, and anyone who can log
 * in holds a validly signed cookie to test secrets against offline.
 */
export const SESSION_MISSING_REASONS = {
  no_cookie:
    "No session cookie came with this connection. Log in over HTTP first. A page on another origin must connect " +
    "with `withCredentials: true` (and the server allow it with `cors: { origin, credentials: true }`); a " +
    "cross-site page needs the cookie set with `SameSite=None; Secure`; the cookie's `domain` must cover this " +
    "host; and localhost and 127.0.0.1 are different sites to a browser.",
  cookie_requires_https:
    "No session cookie came with this connection, and the session cookie is `secure`: browsers neither store nor " +
    "send it over plain http, and this connection came over http. Serve the page and Socket.IO over https; behind a " +
    "TLS proxy, set `proxy: true` in the session options (or Express's `trust proxy`) and the bridge's " +
    "`trustProxy: true`, so both believe X-Forwarded-Proto. On http://localhost in development, set " +
    "`cookie.secure` to false (or \"auto\"), then log in again.",
  bad_signature:
    "The session cookie's signature did not verify: the server's session `secret` (cookie-session: `keys`) differs " +
    "from the one that signed it, or it was rotated out (keep old secrets at the end of the `secret` array while rotating). Log in again.",
  unknown_session: "The session cookie names a session the store does not have: it expired or was logged out. Log in again.",
  token_in_query:
    "A token came in the URL's query string (`token` or `access_token`, as socketio-jwt clients send it) and was not " +
    "read: URLs end up in server, proxy and browser logs. Send it as `io({ auth: { token } })` instead (or use the " +
    "client's `withAuth`), and leave it out of `query`.",
} as const satisfies Record<SessionMissingReason, string>;

/** `session_missing`, saying which of the reasons it was. */
export function sessionMissing(reason: SessionMissingReason): RefusalError {
  return new RefusalError("session_missing", { message: SESSION_MISSING_REASONS[reason], data: { reason } });
}

/**
 * `no_session`: a method that works on a socket's session (`withSession`, `logout`) was given one without: a token
 * or anonymous socket, or one no longer connected.
 */
export function noSession(method: "withSession" | "logout"): BridgeError {
  return new BridgeError(
    "no_session",
    `${method}() needs a connected socket that was admitted with a session (the session cookie); token and anonymous ` +
      "sockets have none. A token client logs out by dropping its token; `auth.disconnectUser(id)` ends its sockets.",
  );
}

/** Why the bridge ended a live socket; sent as `{ code }` with the `auth:ended` event before disconnecting. */
export const ENDINGS = {
  logged_out: "The session was logged out or destroyed.",
  session_expired: "The session expired.",
  user_removed: "The user no longer exists.",
  revoked: "The application disconnected this user or session.",
  token_expired: "The token expired and no fresh one came with auth:refresh.",
} as const satisfies Record<EndCode, string>;

/** What each code an `auth:join` or `auth:leave` can be refused with means, as a sentence that says what to do. */
export const CHANNEL_REFUSALS = {
  channel_unknown:
    `Send { channel } with the name of a declared channel (a non-empty string of at most ${MAX_CHANNEL_LENGTH} ` +
    "characters), or with a ticket for it.",
  channel_forbidden: "The app's authorize refused this channel to this user (or the socket left while it joined). Ask as a user who may join it.",
  channel_reserved:
    "This name is, or could be, a room the bridge or Socket.IO keeps (a socket id, a user: or session: room), " +
    'which no client may join. Name channels with a prefix of their own, as in "orders:42".',
  ticket_invalid: "The ticket does not verify for this socket id, channel and data. Get a new one for this socket from the app.",
  ticket_expired: "The ticket expired. Get a new one for this socket from the app.",
  too_many_channels: "This socket is in `maxChannelsPerSocket` channels already. Leave one with auth:leave first.",
  cluster_unavailable: "Other Socket.IO nodes did not answer (or Redis is down). Retry in a moment.",
  server_error: "The server failed to answer this request. Retry; DEBUG=passport-socketio-bridge:channels logs why.",
} as const satisfies Record<ChannelRefusalCode, string>;

/** The payload of a refusal as the client sees it in `err.data`. Hooks may add their own fields. */
export interface RefusalData {
  code: string;
  reconnect: boolean;
  [key: string]: unknown;
}

/** Base class of every error this library throws or sends. `code` is stable; `message` may be reworded. */
/**
 * Every code the bridge itself gives a BridgeError: refusals, endings, channel refusals, and the errors of its
 * API (`invalid_config`, `cookie_session_read_only`, `cluster_timeout`, `no_session`). Hooks may refuse with codes
 * of their own.
 */
export type BridgeErrorCode =
  | RefusalCode
  | EndCode
  | ChannelRefusalCode
  | "invalid_config"
  | "cookie_session_read_only"
  | "cluster_timeout"
  | "no_session";

export class BridgeError extends Error {
  override name = "BridgeError";
  /** One of BridgeErrorCode, or a code a hook of the app chose. */
  readonly code: BridgeErrorCode | (string & {});

  constructor(code: BridgeErrorCode | (string & {}), message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A refused handshake. Socket.IO sends `message` and `data` to the client as `connect_error`. */
export class RefusalError extends BridgeError {
  override name = "RefusalError";
  readonly data: RefusalData;

  constructor(code: RefusalCode, options?: { cause?: unknown; message?: string; data?: Record<string, unknown> });
  constructor(code: string, options: { cause?: unknown; message: string; data?: Record<string, unknown> });
  constructor(code: string, options: { cause?: unknown; message?: string; data?: Record<string, unknown> } = {}) {
    const known: { reconnect: boolean; message: string } | undefined = REFUSALS[code as RefusalCode];
    super(code, options.message ?? known?.message ?? REFUSALS.rejected.message, { cause: options.cause });
    const reconnect = options.data?.reconnect;
    this.data = {
      ...options.data,
      code,
      reconnect: typeof reconnect === "boolean" ? reconnect : (known?.reconnect ?? false),
    };
  }

  get reconnect(): boolean {
    return this.data.reconnect;
  }

  /**
   * The refusal a hook meant by throwing `thrown`: its `message` and `data` reach the client, a missing
   * `data.code` becomes `rejected`. Anything that is not an Error gets the generic `rejected` sentence.
   */
  static from(thrown: unknown): RefusalError {
    if (thrown instanceof RefusalError) return thrown;
    if (!(thrown instanceof Error)) return new RefusalError("rejected", { cause: thrown });
    const fields = sendable((thrown as { data?: unknown }).data);
    const code = typeof fields.code === "string" && fields.code !== "" ? fields.code : "rejected";
    return new RefusalError(code, {
      cause: thrown,
      message: thrown.message || REFUSALS.rejected.message,
      data: fields,
    });
  }
}

/**
 * The options given to `bridge()` (or `authorize()`) cannot work: thrown at setup, never per connection. Its code is
 * `invalid_config`, or, for a call the app's setup cannot support, a code that names the limitation
 * (`cookie_session_read_only`: withSession() or logout() on cookie-session).
 */
export class ConfigError extends BridgeError {
  override name = "ConfigError";

  constructor(message: string, code: "invalid_config" | "cookie_session_read_only" = "invalid_config") {
    super(code, message);
  }
}

/** Some Socket.IO nodes did not answer a cluster-wide command within the adapter's `requestsTimeout`. */
export class ClusterError extends BridgeError {
  override name = "ClusterError";
  /** The answers of the nodes that did answer. */
  readonly answers: unknown[];

  /**
   * `adapterSilent`: the adapter itself never answered, not even with its own timeout (its Redis or database
   * connection is down, typically), so no node was reached; otherwise some nodes answered and others did not.
   */
  constructor(command: string, options: { cause?: unknown; answers?: unknown[]; adapterSilent?: boolean }) {
    super(
      "cluster_timeout",
      options.adapterSilent
        ? `The Socket.IO adapter gave no answer to "${command}", not even its own timeout: its connection (to Redis, ` +
            "say) is probably down, and no other node was reached; sockets there may be unaffected. Retry once the " +
            "adapter has reconnected."
        : `Not every Socket.IO node acknowledged "${command}" in time; sockets on the silent nodes may be unaffected. ` +
            "Check that every node runs bridge() with the same adapter, or raise the adapter's requestsTimeout.",
      { cause: options.cause },
    );
    this.answers = options.answers ?? [];
  }
}

/**
 * A hook's `data` as the client will receive it: Socket.IO JSON-encodes it on a later tick, where a circular
 * or BigInt value would throw out of the process. Anything that does not survive JSON is dropped here.
 */
function sendable(data: unknown): Record<string, unknown> {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return {};
  try {
    return JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
  } catch {
    return {};
  }
}
