/**
 * Token authentication on the handshake, for clients without the session cookie (mobile apps, services): the
 * app's own Passport strategies (passport-jwt, passport-http-bearer, ...) run on the handshake, unchanged, with
 * the token from `socket.handshake.auth.token` (or the Authorization header). Tokens with an `exp` end their
 * sockets when they expire, unless the client sends a fresh one with `auth:refresh` first.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { delayUntil, within } from "./deadline.js";
import { REFUSALS, RefusalError, sessionMissing, type RefusalCode } from "./errors.js";
import { userIdOf } from "./handshake.js";
import { detachedResponse, giveIsAuthenticated } from "./seams.js";
import type { Identity } from "./identity.js";
import type { ResolvedOptions } from "./options.js";
import { Events } from "./protocol.js";
import type { AnySocket, BridgeRequest } from "./types.js";

const debug = createDebug("passport-socketio-bridge:tokens");

/**
 * The answer to `auth:refresh`. Accepted: the expiry now enforced (`expiresAt`, ms since the epoch; absent for
 * a token without `exp`) and the server's clock (`now`), so a client with a wrong clock still renews in time.
 */
export type RefreshAnswer = { ok: true; expiresAt?: number; now: number } | { ok: false; code: string; message: string };

const MALFORMED_REFRESH = "auth:refresh takes `{ token }` with a non-empty token string, and an ack.";
const UNBOUNDED_REFRESH =
  "This connection's token has an expiry, so a refresh must bring a token with an `exp` too: issue one with an `exp`.";

function refusedRefresh(code: string, message?: string): RefreshAnswer {
  const known: { message: string } | undefined = REFUSALS[code as RefusalCode];
  return { ok: false, code, message: message ?? known?.message ?? REFUSALS.server_error.message };
}


/** The token a client presented: `auth.token` first (never in URLs or logs), else a Bearer Authorization header. */
export function presentedToken(req: IncomingMessage, auth: unknown): string | undefined {
  const fromAuth = (auth as { token?: unknown } | undefined)?.token;
  // (@thream/socketio-jwt's clients send `Bearer <token>` there: they connect unchanged.)
  if (typeof fromAuth === "string" && fromAuth !== "") return /^Bearer\s+(\S+)$/i.exec(fromAuth)?.[1] ?? fromAuth;
  const header = req.headers.authorization;
  const bearer = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
  return bearer || undefined;
}

/** Query parameters that socketio-jwt-style clients put their token in. Never read: URLs are logged. */
const QUERY_TOKEN_PARAMS = ["token", "access_token"];

/**
 * A handshake with no usable session that brought its token in the query string (socketio-jwt's `?token=`)
 * and not where the bridge reads one: refused as `token_in_query`, not with a sentence about cookies. Only the
 * parameters' presence is looked at; their value is neither used nor logged.
 */
export function queryTokenRefusal(socket: AnySocket, refusal: RefusalError): RefusalError {
  if (refusal.code !== "session_missing" && refusal.code !== "unauthenticated") return refusal;
  const query = socket.handshake.query as Record<string, unknown>;
  if (!QUERY_TOKEN_PARAMS.some((name) => Boolean(query[name]))) return refusal;
  if (presentedToken(socket.request, socket.handshake.auth)) return refusal;
  debug("session_missing (token_in_query): a token came in the query string, not read");
  return sessionMissing("token_in_query");
}

/** When a JWT expires (ms since the epoch), from its `exp`; undefined for other tokens or no `exp`. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class Tokens {
  constructor(private readonly options: ResolvedOptions<unknown>) {}

  get enabled(): boolean {
    return this.options.strategies.length > 0;
  }

  /**
   * Authenticates `token` with the configured strategies. Resolves with the identity; rejects with
   * `token_expired`, `token_invalid`, or `deserialize_failed` when a strategy itself fails.
   */
  async authenticate(req: IncomingMessage, token: string): Promise<Identity> {
    const { passport, strategies, storeTimeoutMs } = this.options;
    const probe = tokenRequest(req, token);
    let outcome: { user: unknown; info: unknown };
    try {
      outcome = await within<{ user: unknown; info: unknown }>(storeTimeoutMs, (done) =>
        passport.authenticate(strategies, { session: false }, (err: unknown, user: unknown, info: unknown) =>
          err ? done(err) : done(null, { user, info }),
        )(probe, detachedResponse(), done),
      );
    } catch (cause) {
      debug("token strategy failed: %O", cause);
      throw new RefusalError("deserialize_failed", { cause });
    }
    const { user, info } = outcome;
    if (!user) throw new RefusalError(expired(info) ? "token_expired" : "token_invalid", { cause: info });
    giveIsAuthenticated(req, this.options.userProperty);
    const serialized = await within<unknown>(storeTimeoutMs, (done) => passport.serializeUser(user, req, done)).catch(
      (cause: unknown) => {
        // Without a serializer for this kind of user, its `id` names its room.
        const id = (user as { id?: unknown }).id;
        if (id === undefined || id === null) throw new RefusalError("deserialize_failed", { cause });
        return id;
      },
    );
    return { user, userId: userIdOf(this.options, user, serialized), sessionId: undefined, expires: tokenExpiry(token) };
  }

  /**
   * Keeps a token connection honest: ends its sockets (`end` each) at the token's expiry, and accepts
   * `auth:refresh` with a fresh token for the same user on any of them. One timer per connection.
   */
  watch(socket: AnySocket, identity: Identity, end: (socket: AnySocket) => void): void {
    const req = socket.request as BridgeRequest;
    let watched = this.connections.get(req);
    if (!watched) {
      watched = { identity, sockets: new Set(), timer: undefined };
      this.connections.set(req, watched);
      this.schedule(watched, identity.expires, end);
    }
    const connection = watched;
    connection.sockets.add(socket);
    socket.on("disconnect", () => {
      connection.sockets.delete(socket);
      if (connection.sockets.size > 0) return;
      // The connection's next namespace authenticates again, with the token it presents then.
      clearTimeout(connection.timer);
      if (this.connections.get(req) === connection) this.connections.delete(req);
    });
    socket.on(Events.Refresh, (...args: unknown[]) => {
      // Every request is answered if it carries an ack, even one sent with no payload (the ack comes first then).
      const last = args[args.length - 1];
      const ack = typeof last === "function" ? (last as (answer: RefreshAnswer) => void) : () => undefined;
      this.refresh(req, connection, args[0], end)
        .catch((err: unknown) => {
          debug("auth:refresh failed: %O", err);
          return refusedRefresh("server_error");
        })
        .then(ack)
        .catch((err: unknown) => debug("answering auth:refresh failed: %O", err));
    });
  }

  /**
   * One `auth:refresh`: a fresh token for the same user replaces the connection's user and expiry. A refresh
   * never loosens the expiry: a token without `exp` on a connection that has one is refused (taken, the
   * connection would never end; answered `ok` with the old expiry kept, the client would think it renewed).
   * The answer carries the expiry now enforced and the server's clock, so a client renews on the server's
   * time, not its own.
   */
  private async refresh(
    req: BridgeRequest,
    connection: WatchedConnection,
    payload: unknown,
    end: (socket: AnySocket) => void,
  ): Promise<RefreshAnswer> {
    const token = typeof payload === "object" && payload !== null ? (payload as { token?: unknown }).token : undefined;
    if (typeof token !== "string" || token === "") return refusedRefresh("token_invalid", MALFORMED_REFRESH);
    let fresh: Identity;
    try {
      fresh = await this.authenticate(req, token);
    } catch (refusal) {
      return refusedRefresh(refusal instanceof RefusalError ? refusal.code : "server_error");
    }
    // A token for someone else cannot take over this connection.
    if (fresh.userId !== connection.identity.userId) return refusedRefresh("token_invalid");
    if (fresh.expires === undefined && connection.identity.expires !== undefined) {
      return refusedRefresh("token_invalid", UNBOUNDED_REFRESH);
    }
    req[this.options.userProperty] = fresh.user;
    connection.identity.expires = fresh.expires;
    this.schedule(connection, fresh.expires, end);
    return { ok: true, now: Date.now(), ...(fresh.expires === undefined ? {} : { expiresAt: fresh.expires }) };
  }

  private readonly connections = new WeakMap<IncomingMessage, WatchedConnection>();

  private schedule(connection: WatchedConnection, expires: number | undefined, end: (socket: AnySocket) => void): void {
    clearTimeout(connection.timer);
    if (expires === undefined) return;
    connection.timer = setTimeout(() => {
      if (expires > Date.now()) return this.schedule(connection, expires, end);
      debug("token of %s expired", connection.identity.userId);
      for (const socket of [...connection.sockets]) end(socket);
    }, delayUntil(expires)).unref();
  }
}

interface WatchedConnection {
  identity: Identity;
  sockets: Set<AnySocket>;
  timer: NodeJS.Timeout | undefined;
}

/** Whether a strategy's failure says the token expired (jsonwebtoken, jose, or a message saying so). */
function expired(info: unknown): boolean {
  for (const item of [info].flat()) {
    const { name, code, message } = (item ?? {}) as { name?: unknown; code?: unknown; message?: unknown };
    if (name === "TokenExpiredError" || code === "ERR_JWT_EXPIRED" || (typeof message === "string" && /expired/i.test(message))) {
      return true;
    }
  }
  return false;
}

/**
 * The handshake request as a strategy should see it: the token as a Bearer Authorization header (where
 * passport-jwt and passport-http-bearer look), and no query string, so a token in the URL never counts.
 */
function tokenRequest(req: IncomingMessage, token: string): IncomingMessage {
  const probe = Object.create(req) as BridgeRequest;
  probe.headers = { ...req.headers, authorization: `Bearer ${token}` };
  probe.url = (req.url ?? "/").split("?")[0];
  probe.query = {};
  probe.body = undefined;
  return probe;
}
