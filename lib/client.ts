/**
 * The client half of the protocol, on top of the app's own socket.io-client socket: fresh CSRF and token
 * credentials on every (re)connect, retries for refusals a retry can fix (socket.io-client never retries a
 * middleware refusal) and none for the others, endings that stop for good, tokens renewed through
 * `auth:refresh` before they expire, and channels that are joined again after a reconnect.
 *
 * It imports no server code and nothing at run time but protocol.ts's names (inlined): socket.io-client is the app's.
 */
import type { Socket } from "socket.io-client";
import { Events, type ChannelRefusalCode, type ClientCode, type EndCode, type RefusalCode } from "./protocol.js";

export type AuthState = "idle" | "connecting" | "connected" | "refused" | "ended";

/** A refused handshake, as the server explained it (`err.message` and `err.data`). */
export interface RefusalInfo {
  /** The bridge's code, or a hook's own. */
  code: RefusalCode | (string & {});
  /** Which mistake it was, for some codes (`session_missing`: no_cookie, cookie_requires_https, bad_signature, unknown_session, token_in_query). */
  reason?: string;
  message: string;
  /** Whether retrying can help. When false the socket stays stopped until `auth.connect()`. */
  reconnect: boolean;
  /** How long the server asks to wait before retrying (`too_many_attempts`), in ms; the retry waits at least that. */
  retryAfterMs?: number;
}

/** Why the server ended a connected socket. */
export interface EndedInfo {
  code: EndCode | (string & {});
}

/** A presence channel member: the user's id and what the app's authorize gave as `info`. */
export interface PresenceMember<TInfo = unknown> {
  userId: string | undefined;
  info?: TInfo;
}

/** A channel join or leave the server refused, with the server's code (`channel_forbidden`, `ticket_invalid`...). */
export class ChannelError extends Error {
  override name = "ChannelError";
  constructor(
    readonly code: ChannelRefusalCode | ClientCode | (string & {}),
    readonly channel: string,
  ) {
    super(`auth:join of "${channel}" was refused: ${code}`);
  }
}

export interface JoinOptions {
  /**
   * A signed ticket from the app. Tickets are bound to one socket id, which changes on reconnect: give a
   * function to get a fresh one for each (re)join.
   */
  ticket?: string | ((socketId: string, channel: string) => string | Promise<string>);
  /** The presence data the ticket was signed with. */
  data?: string;
}

export interface WithAuthOptions {
  /** Fetches the session's CSRF token; sent as the handshake's `auth.csrf` on every (re)connect. */
  csrf?: () => Credential | Promise<Credential>;
  /**
   * Fetches an access token; sent as `auth.token` on every (re)connect, and renewed before its `exp`. Nothing
   * (`null`, `undefined`, "") or a throw means no token: the last one is never sent again.
   */
  token?: () => Credential | Promise<Credential>;
  /** The event the app pushes a refreshed user with (see the README). Default `"auth:user"`. */
  userEvent?: string;
  /** Backoff for refusals a retry can fix: from `minDelayMs` (1000), doubling up to `maxDelayMs` (30000), jittered. */
  retry?: { minDelayMs?: number; maxDelayMs?: number };
  /** How long a join, leave or refresh waits for the server's answer. Default 10000 ms. */
  ackTimeoutMs?: number;
}

/** What `csrf()` or `token()` may give: nothing (`null`, `undefined`) means none. */
export type Credential = string | null | undefined;

type Listener = (...args: any[]) => void;

/** setTimeout's longest delay (2^31-1 ms, about 24.8 days): a longer one fires at once, so it is waited in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * The least time between two token renewals (and from a connect to the first), whatever the token or the
 * clocks say: a token that looks expired already, or a server answering with a near expiry, costs at most one
 * `auth:refresh` a second.
 */
const MIN_RENEWAL_MS = 1000;

/** One pending call after a delay of any length (waited in steps setTimeout can take); setting it again replaces it. */
class Timer {
  private handle: ReturnType<typeof setTimeout> | undefined;

  set(ms: number, fn: () => void): void {
    this.clear();
    const step = ms > MAX_DELAY_MS ? MAX_DELAY_MS : ms > 0 ? ms : 0;
    this.handle = setTimeout(() => (ms > step ? this.set(ms - step, fn) : fn()), step);
  }

  clear(): void {
    clearTimeout(this.handle);
  }
}

/** Incoming payloads are checked before use: a malformed one is ignored, never thrown on inside socket.io-client. */
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;
const stringIn = (value: unknown, key: string): string | undefined =>
  isObject(value) && typeof value[key] === "string" ? (value[key] as string) : undefined;

/** A presence member as the server describes one, or undefined for anything else. */
function memberOf(value: unknown): PresenceMember | undefined {
  if (!isObject(value)) return undefined;
  return { userId: stringIn(value, "userId"), ...("info" in value ? { info: value.info } : {}) };
}

/** What a credential function gives now: a non-empty string, nothing, or FAILED when it threw. */
const FAILED = Symbol();
async function fetchCredential(fn: (() => Credential | Promise<Credential>) | undefined): Promise<string | undefined | typeof FAILED> {
  try {
    const value = await fn?.();
    return typeof value === "string" && value !== "" ? value : undefined;
  } catch {
    return FAILED;
  }
}

/**
 * An acknowledged emit that gives up after `ms`: `timeout().emitWithAck()` on socket.io-client 4.6+, and the same
 * through `timeout().emit()` with a callback on 4.5 (which has no emitWithAck).
 */
function emitWithDeadline(socket: Socket, ms: number, event: string, payload: unknown): Promise<unknown> {
  const timed = socket.timeout(ms) as Socket & { emitWithAck?: unknown };
  if (typeof timed.emitWithAck === "function") return timed.emitWithAck(event, payload);
  return new Promise((resolve, reject) => {
    timed.emit(event, payload, (err: Error | null, answer: unknown) => (err ? reject(err) : resolve(answer)));
  });
}

/** A small typed emitter (no Node or browser dependency). A listener that throws does not stop the others. */
class Emitter<Events extends Record<string, Listener>> {
  private readonly listeners: { [K in keyof Events]?: Events[K][] } = {};

  on<K extends keyof Events>(event: K, listener: Events[K]): this {
    (this.listeners[event] ??= []).push(listener);
    return this;
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): this {
    this.listeners[event] = this.listeners[event]?.filter((l) => l !== listener);
    return this;
  }

  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    for (const listener of this.listeners[event]?.slice() ?? []) {
      try {
        listener(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

export type AuthEvents<TUser> = {
  refused: (refusal: RefusalInfo) => void;
  ended: (ending: EndedInfo) => void;
  user: (user: TUser) => void;
  state: (state: AuthState) => void;
};

export type ChannelEvents<TInfo> = {
  /** A member joined (presence channels). */
  join: (member: PresenceMember<TInfo>) => void;
  /** A member left (presence channels). */
  leave: (member: PresenceMember<TInfo>) => void;
  /** Joining again after a reconnect was refused. */
  refused: (error: ChannelError) => void;
  /** The server took this socket out of the channel (access gone, or `auth.leave` on the server). */
  left: () => void;
};

/** One channel's events. */
export class ChannelHandle<TInfo = unknown> extends Emitter<ChannelEvents<TInfo>> {
  constructor(readonly name: string) {
    super();
  }

  /** @internal */
  dispatch<K extends keyof ChannelEvents<TInfo>>(event: K, ...args: Parameters<ChannelEvents<TInfo>[K]>): void {
    this.emit(event, ...args);
  }
}

/** Answers that the helper retries after a backoff; any other refusal stops. */
const RETRYABLE_REFRESH = new Set<string>([
  "deserialize_failed",
  "store_unavailable",
  "cluster_unavailable",
  "server_error",
  "timeout",
] satisfies Array<RefusalCode | ChannelRefusalCode | ClientCode>);


export class SocketAuth<TUser = unknown> extends Emitter<AuthEvents<TUser>> {
  private current: AuthState = "idle";
  private readonly channels = new Map<string, ChannelHandle<any>>();
  /** Channels to join again after a reconnect, with how. */
  private readonly joined = new Map<string, JoinOptions>();
  private readonly credentials: { csrf?: string | undefined; token?: string | undefined } = {};
  private readonly baseAuth: Record<string, unknown>;
  private readonly retryTimer = new Timer();
  private readonly refreshTimer = new Timer();
  private attempt = 0;
  private connectedOnce = false;

  constructor(
    readonly socket: Socket,
    private readonly options: WithAuthOptions = {},
  ) {
    super();
    const auth = (socket as { auth?: unknown }).auth;
    this.baseAuth = typeof auth === "object" && auth !== null ? { ...(auth as Record<string, unknown>) } : {};
    // socket.io-client calls this before every CONNECT it sends, reconnects included.
    (socket as { auth?: unknown }).auth = (send: (data: object) => void) => {
      this.fetchCredentials().then(() => send(this.handshakeAuth()));
    };
    socket.on("connect", () => this.connected());
    socket.on("connect_error", (err: Error & { data?: unknown }) => this.connectError(err));
    socket.on("disconnect", () => this.disconnected());
    socket.on(Events.Ended, (ending: unknown) => {
      const code = stringIn(ending, "code");
      if (code !== undefined) this.end({ code });
    });
    // (The user is the app's own payload: passed on as it came.)
    socket.on(options.userEvent ?? Events.User, (user: TUser) => this.emit("user", user));
    socket.on(Events.Left, (payload: unknown) => {
      const channel = stringIn(payload, "channel");
      if (channel === undefined) return;
      this.joined.delete(channel);
      this.channels.get(channel)?.dispatch("left");
    });
    for (const [event, kind] of [[Events.PresenceJoin, "join"], [Events.PresenceLeave, "leave"]] as const) {
      socket.on(event, (payload: unknown) => {
        const channel = stringIn(payload, "channel");
        const member = memberOf(isObject(payload) ? payload.member : undefined);
        if (channel !== undefined && member) this.channels.get(channel)?.dispatch(kind, member);
      });
    }
    if (socket.connected) this.setState("connected");
  }

  get state(): AuthState {
    return this.current;
  }

  /** Connects, or connects again after a refusal or an ending; `csrf()` and `token()` run first. */
  connect(): this {
    this.stopTimers();
    this.attempt = 0;
    this.setState("connecting");
    this.socket.connect();
    return this;
  }

  /** Disconnects, with no retry. */
  disconnect(): this {
    this.stopTimers();
    this.socket.disconnect();
    this.setState("idle");
    return this;
  }

  /** Joins a channel; joined again by itself after each reconnect. Rejects with a ChannelError. */
  async join<TInfo = unknown>(channel: string, options: JoinOptions = {}): Promise<{ members?: PresenceMember<TInfo>[] }> {
    const answer = await this.ask(Events.Join, await this.joinPayload(channel, options), channel);
    this.joined.set(channel, options);
    if (!Array.isArray(answer.members)) return {};
    return { members: answer.members.map(memberOf).filter((m) => m !== undefined) as PresenceMember<TInfo>[] };
  }

  /** Leaves a channel (and stops joining it again). Rejects with a ChannelError. */
  async leave(channel: string): Promise<void> {
    this.joined.delete(channel);
    await this.ask(Events.Leave, { channel }, channel);
  }

  /** A channel's events: `refused` (a rejoin refused) and `left`. */
  channel<TInfo = unknown>(name: string): ChannelHandle<TInfo> {
    let handle = this.channels.get(name);
    if (!handle) this.channels.set(name, (handle = new ChannelHandle<TInfo>(name)));
    return handle;
  }

  /** A presence channel's events: `join` and `leave` of members, as well as `refused` and `left`. */
  presence<TInfo = unknown>(name: string): ChannelHandle<TInfo> {
    return this.channel<TInfo>(name);
  }

  private setState(state: AuthState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }

  /** Never rejects. */
  private async fetchCredentials(): Promise<void> {
    const { csrf, token } = this.options;
    const [csrfValue, tokenValue] = await Promise.all([fetchCredential(csrf), fetchCredential(token)]);
    // A CSRF token is worth nothing without the session cookie: when csrf() throws, the last one is sent again.
    if (csrfValue !== FAILED) this.credentials.csrf = csrfValue;
    // A token is a credential by itself: one that is not there now (a logout, a failed fetch) is never re-sent.
    this.credentials.token = tokenValue === FAILED ? undefined : tokenValue;
  }

  /** The handshake's `auth`: the app's own object, and the credentials the functions gave, or none. */
  private handshakeAuth(): Record<string, unknown> {
    const auth = { ...this.baseAuth };
    for (const key of ["csrf", "token"] as const) {
      if (this.credentials[key] !== undefined) auth[key] = this.credentials[key];
      // A function that gave nothing means no value, not the one in `io({ auth })`.
      else if (this.options[key]) delete auth[key];
    }
    return auth;
  }

  private connected(): void {
    this.stopTimers();
    this.attempt = 0;
    this.setState("connected");
    this.scheduleRefresh();
    if (this.connectedOnce) this.rejoin();
    this.connectedOnce = true;
  }

  private connectError(err: Error & { data?: unknown }): void {
    // A transport error (the server unreachable): socket.io-client retries by itself.
    if (this.socket.active) return this.setState("connecting");
    // A middleware refused: the bridge says why; another middleware's plain Error counts as `rejected`.
    const data: unknown = err?.data;
    const refusal: RefusalInfo = {
      code: stringIn(data, "code") ?? "rejected",
      message: String(err?.message),
      reconnect: isObject(data) && data.reconnect === true,
    };
    const reason = stringIn(data, "reason");
    if (reason !== undefined) refusal.reason = reason;
    const retryAfterMs = isObject(data) ? data.retryAfterMs : undefined;
    if (typeof retryAfterMs === "number" && retryAfterMs >= 0 && retryAfterMs < Infinity) refusal.retryAfterMs = retryAfterMs;
    this.emit("refused", refusal);
    if (refusal.reconnect) return this.retry(refusal.retryAfterMs);
    // Stops the Engine.IO layer too (the manager closes once no socket of it is active).
    this.socket.disconnect();
    this.stopTimers();
    this.setState("refused");
  }

  /** Connects again after a jittered backoff; at least `retryAfterMs` (plus up to `minDelayMs` more) when the server asked. */
  private retry(retryAfterMs?: number): void {
    const { minDelayMs = 1000, maxDelayMs = 30_000 } = this.options.retry ?? {};
    let delay = Math.min(maxDelayMs, minDelayMs * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    // Jittered too, so that the clients a limit refused together do not come back together.
    if (retryAfterMs !== undefined) delay = Math.max(delay, retryAfterMs + Math.random() * minDelayMs);
    this.setState("connecting");
    this.retryTimer.set(delay, () => this.socket.connect());
  }

  private disconnected(): void {
    this.refreshTimer.clear();
    if (this.current === "ended" || this.current === "refused") return;
    // socket.io-client reconnects by itself unless the server or the app disconnected the socket.
    this.setState(this.socket.active ? "connecting" : "idle");
  }

  private end(ending: EndedInfo): void {
    this.stopTimers();
    this.setState("ended");
    this.emit("ended", ending);
  }

  private stopTimers(): void {
    this.retryTimer.clear();
    this.refreshTimer.clear();
  }

  /**
   * Renews the token at a random point of the last 10–20% of its lifetime, so a fleet does not renew at once,
   * and never sooner than MIN_RENEWAL_MS. The server's answer to a renewal says how long the token has left
   * on its own clock (a wrong clock here changes nothing); before one, the token's claims on this clock.
   */
  private scheduleRefresh(answer?: Record<string, unknown>): void {
    this.refreshTimer.clear();
    const token = this.options.token && this.credentials.token;
    if (!token || this.current !== "connected") return;
    const now = Date.now();
    let left: number;
    let lifetime: number;
    let delay: number | undefined;
    if (typeof answer?.now === "number") {
      // No expiresAt from a server that sends its clock: it enforces no expiry, so there is nothing to renew.
      if (typeof answer.expiresAt !== "number") return;
      left = lifetime = answer.expiresAt - answer.now;
    } else {
      const claims = jwtClaims(token);
      if (!claims?.exp) return;
      const exp = claims.exp * 1000;
      lifetime = exp - (claims.iat ? claims.iat * 1000 : now);
      left = exp - now;
      // A token that looks expired, or issued in the future, says this clock is off: renew soon (at the
      // floor) to learn the server's clock; till then, count on the token's lifetime.
      if (left <= 0 || lifetime < left - 5000) left = delay = lifetime;
    }
    delay = delay === undefined ? left - lifetime * (0.1 + Math.random() * 0.1) : 0;
    const until = now + left;
    this.refreshTimer.set(Math.max(MIN_RENEWAL_MS, delay), () => this.refresh(until).catch(() => undefined));
  }

  /** Sends a fresh token; `until` is when the current one runs out (on this clock, as far as known). */
  private async refresh(until: number): Promise<void> {
    // No answer in time, or a token() that throws: tried again.
    let code = "timeout";
    try {
      const token = await fetchCredential(this.options.token);
      if (token === undefined) {
        // No token any more (a logout): this socket's user is gone with it.
        code = "token_invalid";
      } else if (token !== FAILED) {
        const answer: unknown = await emitWithDeadline(this.socket, this.ackTimeout(), Events.Refresh, { token });
        if (isObject(answer) && answer.ok === true) {
          this.credentials.token = token;
          return this.scheduleRefresh(answer);
        }
        code = stringIn(answer, "code") ?? "server_error";
      }
    } catch {
      // (No answer within ackTimeoutMs.)
    }
    if (this.current !== "connected") return;
    // Worth another try while the token lasts; past that, the server ends the socket with token_expired.
    if (RETRYABLE_REFRESH.has(code) && Date.now() < until) {
      const delay = Math.max(MIN_RENEWAL_MS, Math.min(5000, (until - Date.now()) / 2));
      this.refreshTimer.set(delay, () => this.refresh(until).catch(() => undefined));
      return;
    }
    this.credentials.token = undefined;
    this.socket.disconnect();
    this.end({ code: "token_expired" });
  }

  private rejoin(): void {
    for (const [channel, options] of this.joined) {
      this.joinPayload(channel, options)
        .then((payload) => this.ask(Events.Join, payload, channel))
        .catch((err: unknown) => {
          this.joined.delete(channel);
          this.channel(channel).dispatch("refused", err instanceof ChannelError ? err : new ChannelError("server_error", channel));
        });
    }
  }

  private async joinPayload(channel: string, { ticket, data }: JoinOptions): Promise<Record<string, unknown>> {
    const auth = typeof ticket === "function" ? await ticket(this.socket.id ?? "", channel) : ticket;
    return { channel, ...(auth === undefined ? {} : { auth }), ...(data === undefined ? {} : { data }) };
  }

  /** The server's answer to a join or leave, when it is `ok`; rejects with a ChannelError otherwise. */
  private async ask(event: string, payload: Record<string, unknown>, channel: string): Promise<Record<string, unknown>> {
    let answer: unknown;
    try {
      answer = await emitWithDeadline(this.socket, this.ackTimeout(), event, payload);
    } catch {
      throw new ChannelError("timeout", channel);
    }
    if (!isObject(answer) || answer.ok !== true) throw new ChannelError(stringIn(answer, "code") ?? "server_error", channel);
    return answer;
  }

  private ackTimeout(): number {
    return this.options.ackTimeoutMs ?? 10_000;
  }
}

/** Adds the bridge's client protocol to a socket.io-client socket (create it with `autoConnect: false`). */
export function withAuth<TUser = unknown>(socket: Socket, options: WithAuthOptions = {}): SocketAuth<TUser> {
  return new SocketAuth<TUser>(socket, options);
}

/** A JWT's `exp` and `iat` (seconds), read without verifying; undefined for other tokens. */
function jwtClaims(token: string): { exp?: number; iat?: number } | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const json = base64(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const { exp, iat } = JSON.parse(json) as { exp?: unknown; iat?: unknown };
    return { exp: typeof exp === "number" ? exp : undefined, iat: typeof iat === "number" ? iat : undefined } as {
      exp?: number;
      iat?: number;
    };
  } catch {
    return undefined;
  }
}

/** Base64 to a (Latin-1) string: `atob`, or a small decoder where there is none (older React Native). */
function base64(text: string): string {
  if (typeof atob === "function") return atob(text);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const char of text.replace(/=+$/, "")) {
    value = (value << 6) | alphabet.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}
