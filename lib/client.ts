/**
 * The client half of the protocol, on top of the app's own socket.io-client socket: fresh CSRF and token
 * credentials on every (re)connect, retries for refusals a retry can fix (socket.io-client never retries a
 * middleware refusal) and none for the others, endings that stop for good, tokens renewed through
 * `auth:refresh` before they expire, and channels that are joined again after a reconnect.
 *
 * It imports no server code and nothing at run time: socket.io-client is the app's.
 */
import type { Socket } from "socket.io-client";

export type AuthState = "idle" | "connecting" | "connected" | "refused" | "ended";

/** A refused handshake, as the server explained it (`err.message` and `err.data`). */
export interface RefusalInfo {
  code: string;
  /** Which mistake it was, for some codes (`session_missing`: no_cookie, bad_signature, unknown_session). */
  reason?: string;
  message: string;
  /** Whether retrying can help. When false the socket stays stopped until `auth.connect()`. */
  reconnect: boolean;
}

/** Why the server ended a connected socket. */
export interface EndedInfo {
  code: "logged_out" | "session_expired" | "user_removed" | "revoked" | "token_expired" | (string & {});
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
    readonly code: string,
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
  csrf?: () => string | Promise<string>;
  /** Fetches an access token; sent as `auth.token` on every (re)connect, and renewed before its `exp`. */
  token?: () => string | Promise<string>;
  /** The server's `endedEvent` option. Default `"auth:ended"`. */
  endedEvent?: string;
  /** The event the app pushes a refreshed user with (see the README). Default `"auth:user"`. */
  userEvent?: string;
  /** Backoff for refusals a retry can fix: from `minDelayMs` (1000), doubling up to `maxDelayMs` (30000), jittered. */
  retry?: { minDelayMs?: number; maxDelayMs?: number };
  /** How long a join, leave or refresh waits for the server's answer. Default 10000 ms. */
  ackTimeoutMs?: number;
}

type Listener = (...args: any[]) => void;

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
const RETRYABLE_REFRESH = new Set(["deserialize_failed", "store_unavailable", "cluster_unavailable", "server_error", "timeout"]);

type Answer = { ok: true; members?: PresenceMember[] } | { ok: false; code: string };

export class SocketAuth<TUser = unknown> extends Emitter<AuthEvents<TUser>> {
  private current: AuthState = "idle";
  private readonly channels = new Map<string, ChannelHandle<any>>();
  /** Channels to join again after a reconnect, with how. */
  private readonly joined = new Map<string, JoinOptions>();
  private readonly credentials: { csrf?: string; token?: string } = {};
  private readonly baseAuth: Record<string, unknown>;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
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
      this.fetchCredentials().then(
        () => send({ ...this.baseAuth, ...this.credentials }),
        () => send({ ...this.baseAuth, ...this.credentials }),
      );
    };
    socket.on("connect", () => this.connected());
    socket.on("connect_error", (err: Error & { data?: Partial<RefusalInfo> }) => this.connectError(err));
    socket.on("disconnect", () => this.disconnected());
    socket.on(options.endedEvent ?? "auth:ended", (ending: EndedInfo) => this.end(ending));
    socket.on(options.userEvent ?? "auth:user", (user: TUser) => this.emit("user", user));
    socket.on("auth:left", ({ channel }: { channel: string }) => {
      this.joined.delete(channel);
      this.channels.get(channel)?.dispatch("left");
    });
    for (const [event, kind] of [["presence:join", "join"], ["presence:leave", "leave"]] as const) {
      socket.on(event, ({ channel, member }: { channel: string; member: PresenceMember }) =>
        this.channels.get(channel)?.dispatch(kind, member),
      );
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
    const answer = await this.ask("auth:join", await this.joinPayload(channel, options), channel);
    this.joined.set(channel, options);
    return answer.members ? { members: answer.members as PresenceMember<TInfo>[] } : {};
  }

  /** Leaves a channel (and stops joining it again). Rejects with a ChannelError. */
  async leave(channel: string): Promise<void> {
    this.joined.delete(channel);
    await this.ask("auth:leave", { channel }, channel);
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

  private async fetchCredentials(): Promise<void> {
    const { csrf, token } = this.options;
    const [csrfValue, tokenValue] = await Promise.all([csrf?.(), token?.()]);
    if (typeof csrfValue === "string") this.credentials.csrf = csrfValue;
    if (typeof tokenValue === "string") this.credentials.token = tokenValue;
  }

  private connected(): void {
    this.stopTimers();
    this.attempt = 0;
    this.setState("connected");
    this.scheduleRefresh();
    if (this.connectedOnce) this.rejoin();
    this.connectedOnce = true;
  }

  private connectError(err: Error & { data?: Partial<RefusalInfo> }): void {
    // A transport error (the server unreachable): socket.io-client retries by itself.
    if (this.socket.active) return this.setState("connecting");
    // A middleware refused: the bridge says why; another middleware's plain Error counts as `rejected`.
    const data = err.data ?? {};
    const code = typeof data.code === "string" ? data.code : "rejected";
    const refusal: RefusalInfo = { code, message: err.message, reconnect: data.reconnect === true };
    if (typeof data.reason === "string") refusal.reason = data.reason;
    this.emit("refused", refusal);
    if (refusal.reconnect) return this.retry();
    // Stops the Engine.IO layer too (the manager closes once no socket of it is active).
    this.socket.disconnect();
    this.stopTimers();
    this.setState("refused");
  }

  private retry(): void {
    const { minDelayMs = 1000, maxDelayMs = 30_000 } = this.options.retry ?? {};
    const delay = Math.min(maxDelayMs, minDelayMs * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.setState("connecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.socket.connect(), delay);
  }

  private disconnected(): void {
    clearTimeout(this.refreshTimer);
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
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
  }

  /** Renews the token at a random point of the last 10–20% of its lifetime, so a fleet does not refresh at once. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const claims = this.options.token && this.credentials.token ? jwtClaims(this.credentials.token) : undefined;
    if (!claims?.exp) return;
    const exp = claims.exp * 1000;
    const lifetime = exp - (claims.iat ? claims.iat * 1000 : Date.now());
    const at = exp - lifetime * (0.1 + Math.random() * 0.1);
    this.refreshTimer = setTimeout(() => this.refresh(exp).catch(() => undefined), Math.max(0, at - Date.now()));
  }

  private async refresh(exp: number): Promise<void> {
    let code: string;
    try {
      const token = await this.options.token!();
      const answer = await this.socket.timeout(this.ackTimeout()).emitWithAck("auth:refresh", { token });
      if ((answer as Answer).ok) {
        this.credentials.token = token;
        return this.scheduleRefresh();
      }
      code = (answer as { code: string }).code;
    } catch {
      code = "timeout";
    }
    if (this.current !== "connected") return;
    // Worth another try while the token lasts; past that, the server ends the socket with token_expired.
    if (RETRYABLE_REFRESH.has(code) && Date.now() < exp) {
      this.refreshTimer = setTimeout(() => this.refresh(exp).catch(() => undefined), Math.min(5000, Math.max(0, (exp - Date.now()) / 2)));
      return;
    }
    this.socket.disconnect();
    this.end({ code: "token_expired" });
  }

  private rejoin(): void {
    for (const [channel, options] of this.joined) {
      this.joinPayload(channel, options)
        .then((payload) => this.ask("auth:join", payload, channel))
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

  private async ask(event: string, payload: Record<string, unknown>, channel: string): Promise<Answer & { ok: true }> {
    let answer: Answer;
    try {
      answer = (await this.socket.timeout(this.ackTimeout()).emitWithAck(event, payload)) as Answer;
    } catch {
      throw new ChannelError("timeout", channel);
    }
    if (!answer?.ok) throw new ChannelError((answer as { code?: string })?.code ?? "server_error", channel);
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
