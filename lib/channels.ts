/**
 * Private channels: rooms a socket may join only after the app says so. `auth.channel("orders:{orderId}",
 * authorize)` declares them; clients ask with `auth:join` and get `{ ok, code? }`. Presence channels
 * (`presence:...`) tell their members who joins and leaves, across nodes. And the Pusher scheme for a realtime
 * service that cannot read the app's session: the app signs a ticket for one socket and one channel
 * (`signChannel`, `channelAuthHandler()`), and the socket presents it.
 *
 * Everything a client can trigger here answers its ack with a code and never rejects unhandled: the adapter
 * calls (join, leave, fetchSockets) fail when other nodes are silent or Redis is down.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import createDebug from "debug";
import type { Server } from "socket.io";
import { BridgeError, ConfigError } from "./errors.js";
import type { ResolvedOptions } from "./options.js";
import { isReservedRoom, leaveQuietly } from "./rooms.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:channels");

export const JOIN_EVENT = "auth:join";
export const LEAVE_EVENT = "auth:leave";
/** Sent to a socket that was taken out of a channel (access gone, or `auth.leave`): `{ channel }`. */
export const LEFT_EVENT = "auth:left";
export const PRESENCE_JOIN_EVENT = "presence:join";
export const PRESENCE_LEAVE_EVENT = "presence:leave";

/** The longest channel name anything here accepts: a client's join or leave, a ticket request, signChannel. */
export const MAX_CHANNEL_LENGTH = 200;
/** Signed into every ticket: tickets of another format (v1 signed `socketId:channel[:data]` unframed) never verify. */
const TICKET_VERSION = "psb-ticket-v2";
/** `<hexmac>`, or `<expiresAtMs>.<hexmac>` for a ticket with an expiry. Bounded, so it cannot backtrack. */
const TICKET_FORMAT = /^(?:([1-9]\d{0,15})\.)?([0-9a-f]{64})$/;

/**
 * Decides whether `user` may join the channel with these `params` (from the pattern's `{names}`). `socket` is
 * undefined when a ticket is being issued over HTTP. For a presence channel, return `{ info }` to say what
 * the other members see of this one.
 */
export type ChannelAuthorizer<TUser> = (
  user: TUser | undefined,
  params: Record<string, string>,
  socket: AnySocket | undefined,
) => boolean | { info?: unknown } | Promise<boolean | { info?: unknown }>;

export type ChannelAnswer = { ok: true; members?: Member[] } | { ok: false; code: string };
/** What presence members see of each other: the user's id (`socket.data.userId`) and the app's `info`, never more. */
export interface Member {
  userId: string | undefined;
  info?: unknown;
}

/** A compiled channel pattern: `names` of its `{params}`, and a matcher linear in the name's length. */
export interface ChannelPattern {
  readonly names: readonly string[];
  /** The params of `name`, or undefined if it does not match. `meter.steps` counts the name's positions visited. */
  match(name: string, meter?: { steps: number }): Record<string, string> | undefined;
}

/**
 * Compiles `"dm:{a}-{b}"`: literals, and `{params}` that are non-empty, hold no `:`, `{` or `}`, and never
 * hold the literal that follows them. So each param ends where its literal first appears, and matching is one
 * forward pass with no backtracking (a regex of `([^:]+)-([^:]+)` was quadratic on a long non-matching name).
 * Two params with nothing between them could split a name many ways: a ConfigError, as is a repeated name.
 */
export function compileChannelPattern(pattern: string): ChannelPattern {
  // Even indexes are literals (maybe empty), odd ones `{param}`s.
  const parts = pattern.split(/(\{\w+\})/);
  const head = parts[0]!;
  const params: Array<{ name: string; next: string }> = [];
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i]!.slice(1, -1);
    if (i > 1 && parts[i - 1] === "") {
      throw new ConfigError(`Channel pattern "${pattern}" puts two parameters side by side; separate them with a literal, as in "{a}-{b}".`);
    }
    if (params.some((param) => param.name === name)) throw new ConfigError(`Channel pattern "${pattern}" names {${name}} twice.`);
    params.push({ name, next: parts[i + 1]! });
  }
  const names = params.map((param) => param.name);
  return {
    names,
    match(channel, meter = { steps: 0 }) {
      if (!channel.startsWith(head)) return undefined;
      let pos = head.length;
      const values: string[] = [];
      for (const { next } of params) {
        const start = pos;
        // Checking the literal first lets it begin with a character a param may not hold (":").
        while (pos < channel.length && !(next !== "" && channel.startsWith(next, pos))) {
          meter.steps++;
          if (PARAM_FORBIDS.has(channel.charCodeAt(pos))) return undefined;
          pos++;
        }
        if (pos === start || (next !== "" && pos === channel.length)) return undefined;
        values.push(channel.slice(start, pos));
        pos += next.length;
      }
      if (pos !== channel.length) return undefined;
      return Object.fromEntries(names.map((name, i) => [name, values[i]!]));
    },
  };
}
const PARAM_FORBIDS = new Set([":", "{", "}"].map((c) => c.charCodeAt(0)));

interface Channel<TUser> {
  pattern: ChannelPattern;
  authorize: ChannelAuthorizer<TUser>;
}

const isPresence = (channel: string) => channel.startsWith("presence:");
const isChannelName = (name: unknown): name is string => typeof name === "string" && name !== "" && name.length <= MAX_CHANNEL_LENGTH;
const refused = (code: string): ChannelAnswer => ({ ok: false, code });

/** What a socket's `data` carries about its channels (it travels with recovered connections and fetchSockets). */
type ChannelData = BridgeSocketData & {
  /** Presence channels: what the other members see of this socket. */
  presence?: Record<string, unknown>;
  /** Channels joined with `auth:join`, and the user (null: anonymous) they were joined as. */
  channels?: Record<string, string | null>;
};
const dataOf = (socket: { data: unknown }) => socket.data as ChannelData;

/** What the members see of a socket in `channel`: only its user's id and the app's info. */
function memberOf(data: ChannelData, channel: string): Member {
  return { userId: typeof data.userId === "string" ? data.userId : undefined, info: data.presence?.[channel] };
}

/**
 * A socket's channels on this node, kept so that a join costs the same however many it is in: how many
 * entries its `data.channels` has (counted, never recounted), and the joins under way (they count too).
 */
interface Membership {
  count: number;
  pending: Map<string, Promise<ChannelAnswer>>;
  /** `socket.rooms.size` when stale entries were last dropped (see `hasRoom`). */
  prunedAt: number;
}

export class Channels<TUser> {
  private readonly channels: Array<Channel<TUser>> = [];
  private readonly memberships = new WeakMap<AnySocket, Membership>();
  /** Shared by every socket in a presence channel: called with the socket as `this`. */
  private readonly onDisconnecting: (this: AnySocket, reason: string) => void;

  constructor(
    private readonly io: Server,
    private readonly options: Pick<ResolvedOptions<TUser>, "channelSecret" | "userProperty" | "maxChannelsPerSocket">,
    private readonly userOf: (socket: AnySocket) => TUser | undefined,
  ) {
    const departed = (socket: AnySocket, room: string) =>
      this.departed(socket, room, this.presenceOf(socket, room), true).catch((err: unknown) => debug("presence leave: %O", err));
    this.onDisconnecting = function (this: AnySocket, reason: string) {
      // Not while the server shuts down: the app closes its adapter's Redis next, and the adapter would turn
      // the broadcast on a closed connection into an unhandled rejection. (A crashed node says nothing either.)
      if (reason === "server shutting down") return;
      for (const room of this.rooms) if (isPresence(room)) void departed(this, room);
    };
  }

  /** Whether sockets need the join/leave events: some channel is declared, or tickets can be checked. */
  get active(): boolean {
    return this.channels.length > 0 || this.options.channelSecret !== undefined;
  }

  define(pattern: string, authorize: ChannelAuthorizer<TUser>): void {
    if (typeof pattern !== "string" || pattern === "" || typeof authorize !== "function") {
      throw new ConfigError('channel(pattern, authorize) needs a pattern such as "orders:{orderId}" and a function.');
    }
    this.channels.push({ pattern: compileChannelPattern(pattern), authorize });
  }

  /** Listens for a socket's join and leave requests; each answers its ack, whatever fails. */
  watch(socket: AnySocket): void {
    socket.on(JOIN_EVENT, (payload: unknown, ack?: (answer: ChannelAnswer) => void) => {
      answer("join", this.join(socket, payload), ack);
    });
    socket.on(LEAVE_EVENT, (payload: unknown, ack?: (answer: ChannelAnswer) => void) => {
      answer("leave", this.requestLeave(socket, payload), ack);
    });
  }

  /**
   * A ticket for `socketId` to join `channel` (and, for presence, with `data`): HMAC-SHA256 with
   * `channelSecret` over every field, framed and versioned, as hex; `<expiresAtMs>.<hex>` with `expiresInMs`.
   */
  sign(socketId: string, channel: string, data?: string, options?: { expiresInMs?: number }): string {
    if (!this.options.channelSecret) throw new ConfigError("Set the `channelSecret` option to sign channel tickets.");
    if (!isChannelName(channel)) {
      throw new ConfigError(`A channel name is a non-empty string of at most ${MAX_CHANNEL_LENGTH} characters; no client could join this one.`);
    }
    const expiresInMs = options?.expiresInMs;
    let expiresAt: number | undefined;
    if (expiresInMs !== undefined) {
      expiresAt = typeof expiresInMs === "number" && expiresInMs > 0 ? Date.now() + Math.ceil(expiresInMs) : Number.NaN;
      if (!Number.isSafeInteger(expiresAt)) throw new ConfigError("`expiresInMs` must be a positive, finite number of milliseconds.");
    }
    const mac = this.mac(socketId, channel, data, expiresAt);
    return expiresAt === undefined ? mac : `${expiresAt}.${mac}`;
  }

  async join(socket: AnySocket, payload: unknown): Promise<ChannelAnswer> {
    const { channel, auth: ticket, data } = (payload ?? {}) as { channel?: unknown; auth?: unknown; data?: unknown };
    if (!isChannelName(channel)) return refused("channel_unknown");
    if (isReservedRoom(socket, channel)) return refused("channel_forbidden");
    const membership = this.membership(socket);
    // The same channel asked again while its first join runs: one authorize, one announcement, one answer.
    const pending = membership.pending.get(channel);
    if (pending) return pending;
    if (this.isJoined(socket, channel)) return isPresence(channel) ? { ok: true, members: unique(await this.members(socket, channel)) } : { ok: true };
    if (!this.hasRoom(socket, membership)) return refused("too_many_channels");
    const joining = this.admit(socket, channel, ticket, data).finally(() => membership.pending.delete(channel));
    membership.pending.set(channel, joining);
    return joining;
  }

  /** Takes a socket out of a channel (telling it with `auth:left`), and tells the presence members if it was the user's last. */
  async leave(socket: AnySocket, channel: string): Promise<void> {
    await this.viaAdapter("leave", () => socket.leave(channel));
    this.forget(socket, channel);
    socket.emit(LEFT_EVENT, { channel });
    if (isPresence(channel)) await this.departed(socket, channel, this.presenceOf(socket, channel));
  }

  /** Re-runs `authorize` for each declared channel the socket is in; leaves those it may no longer join. */
  async recheck(socket: AnySocket): Promise<void> {
    for (const room of [...socket.rooms]) {
      // However broad a pattern, the rooms revocation relies on are never taken away.
      if (isReservedRoom(socket, room)) continue;
      const match = this.match(room);
      if (!match) continue;
      let allowed: unknown;
      try {
        allowed = await match.channel.authorize(this.userOf(socket), match.params, socket);
      } catch (err) {
        debug("recheck of %s failed: %O", room, err);
      }
      // One channel the adapter could not leave (or announce) does not keep the socket in the others.
      if (!allowed && socket.connected) await this.leave(socket, room).catch((err: unknown) => debug("leaving %s: %O", room, err));
    }
  }

  /**
   * A recovered connection keeps its rooms, but it was authenticated again and may be someone else now (or
   * anonymous). Before it is connected (so it gets none of their broadcasts), it leaves the channels it joined
   * as another user; `recovered()` tells it and the presence members once it is.
   */
  forsake(socket: AnySocket, userId: string | undefined): void {
    const data = dataOf(socket);
    const gone: Array<{ channel: string; member: Member }> = [];
    for (const [channel, joinedAs] of Object.entries(data.channels ?? {})) {
      if (joinedAs === (userId ?? null)) continue;
      leaveQuietly(socket, channel);
      this.forget(socket, channel);
      gone.push({ channel, member: { ...this.presenceOf(socket, channel), userId: joinedAs ?? undefined } });
    }
    if (gone.length) this.forsaken.set(socket, gone);
  }

  private readonly forsaken = new WeakMap<AnySocket, Array<{ channel: string; member: Member }>>();

  /** A recovered socket, now connected: the news of what `forsake` took, and its declared channels checked again. */
  async recovered(socket: AnySocket): Promise<void> {
    const gone = this.forsaken.get(socket) ?? [];
    this.forsaken.delete(socket);
    await Promise.all(
      gone.map(async ({ channel, member }) => {
        socket.emit(LEFT_EVENT, { channel });
        if (isPresence(channel)) {
          await this.departed(socket, channel, member).catch((err: unknown) => debug("presence leave of %s: %O", channel, err));
        }
      }),
    );
    await this.recheck(socket);
  }

  /** The Express handler that issues tickets for the logged-in user, shaped like Pusher's `{ auth }`. */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    if (!this.options.channelSecret) throw new ConfigError("Set the `channelSecret` option to issue channel tickets.");
    return (req, res) => {
      this.issue(req).then(
        ([status, body]) => send(res, status, body),
        (err: unknown) => {
          debug("ticket failed: %O", err);
          send(res, 500, { error: "server_error" });
        },
      );
    };
  }

  private async issue(req: IncomingMessage): Promise<[number, Record<string, unknown>]> {
    const fields = { ...(req as { query?: object }).query, ...(req as { body?: object }).body } as Record<string, unknown>;
    const socketId = fields.socket_id;
    const channel = fields.channel_name;
    const user = (req as unknown as Record<string, TUser | undefined>)[this.options.userProperty];
    if (!user) return [401, { error: "unauthenticated" }];
    // Checked before any matching: no client could join a longer name anyway.
    if (typeof socketId !== "string" || !/^[\w-]{1,64}$/.test(socketId) || !isChannelName(channel)) {
      return [400, { error: `Send socket_id and channel_name (at most ${MAX_CHANNEL_LENGTH} characters).` }];
    }
    const match = this.match(channel);
    if (!match) return [404, { error: "channel_unknown" }];
    const verdict = await match.channel.authorize(user, match.params, undefined);
    if (!verdict) return [403, { error: "channel_forbidden" }];
    if (!isPresence(channel)) return [200, { auth: this.sign(socketId, channel) }];
    const channelData = JSON.stringify({ info: typeof verdict === "object" ? verdict.info : undefined });
    return [200, { auth: this.sign(socketId, channel, channelData), channel_data: channelData }];
  }

  /** A client's `auth:leave`: out of a channel it is in, never out of a reserved room. */
  private async requestLeave(socket: AnySocket, payload: unknown): Promise<ChannelAnswer> {
    const channel = (payload as { channel?: unknown } | undefined)?.channel;
    if (!isChannelName(channel)) return refused("channel_unknown");
    if (socket.rooms.has(channel) && this.isChannel(socket, channel)) await this.leave(socket, channel);
    return { ok: true };
  }

  /** A join the socket may make: checked (ticket or authorize), then into the room, and for presence, announced. */
  private async admit(socket: AnySocket, channel: string, ticket: unknown, data: unknown): Promise<ChannelAnswer> {
    let info: unknown;
    if (ticket !== undefined) {
      // A presented ticket is always checked, whatever the channel's authorize would say.
      if (typeof ticket !== "string" || (data !== undefined && typeof data !== "string")) return refused("ticket_invalid");
      const refusal = this.ticketRefusal(ticket, socket.id, channel, data);
      if (refusal) return refused(refusal);
      info = data === undefined ? undefined : parseInfo(data);
    } else {
      const match = this.match(channel);
      if (!match) return refused("channel_unknown");
      let verdict: Awaited<ReturnType<ChannelAuthorizer<TUser>>>;
      try {
        verdict = await match.channel.authorize(this.userOf(socket), match.params, socket);
      } catch (err) {
        debug("authorize of %s threw: %O", channel, err);
        return refused("channel_forbidden");
      }
      if (!verdict) return refused("channel_forbidden");
      info = typeof verdict === "object" ? verdict.info : undefined;
    }
    if (!socket.connected) return refused("channel_forbidden");
    try {
      await this.viaAdapter("join", () => socket.join(channel));
      if (!isPresence(channel)) {
        this.record(socket, channel);
        return { ok: true };
      }
      return await this.arrive(socket, channel, info);
    } catch (err) {
      // Not half in: out of the room again, and nothing for the members to see.
      this.forget(socket, channel);
      if (dataOf(socket).presence) delete dataOf(socket).presence![channel];
      leaveQuietly(socket, channel);
      throw err;
    }
  }

  /** Into a presence channel (already in its room): who is in it, on every node, and news of this member for the others. */
  private async arrive(socket: AnySocket, channel: string, info: unknown): Promise<ChannelAnswer> {
    const data = dataOf(socket);
    (data.presence ??= {})[channel] = info;
    // Before the members are fetched: if it disconnects meanwhile, those who saw it hear that it left.
    if (!socket.listeners("disconnecting").includes(this.onDisconnecting)) socket.on("disconnecting", this.onDisconnecting);
    const members = await this.members(socket, channel);
    // Disconnected or taken out meanwhile: it is not in, and must not be announced.
    if (!socket.connected || !socket.rooms.has(channel)) return refused("channel_forbidden");
    this.record(socket, channel);
    const me = memberOf(data, channel);
    if (me.userId === undefined || !members.some((m) => m.userId === me.userId && m.socketId !== socket.id)) {
      socket.to(channel).emit(PRESENCE_JOIN_EVENT, { channel, member: me });
    }
    return { ok: true, members: unique(members) };
  }

  private match(channel: string): { channel: Channel<TUser>; params: Record<string, string> } | undefined {
    for (const declared of this.channels) {
      const params = declared.pattern.match(channel);
      if (params) return { channel: declared, params };
    }
    return undefined;
  }

  /** Whether a client may leave `room` with `auth:leave`: a channel it joined, or a declared one; never a reserved room. */
  private isChannel(socket: AnySocket, room: string): boolean {
    if (isReservedRoom(socket, room)) return false;
    return Object.hasOwn(dataOf(socket).channels ?? {}, room) || this.match(room) !== undefined || isPresence(room);
  }

  private membership(socket: AnySocket): Membership {
    let membership = this.memberships.get(socket);
    if (!membership) {
      // Counted once per socket: a recovered connection comes back with its channels.
      membership = { count: Object.keys(dataOf(socket).channels ?? {}).length, pending: new Map(), prunedAt: -1 };
      this.memberships.set(socket, membership);
    }
    return membership;
  }

  /** Whether the socket joined `channel` with `auth:join` and is still in it (an entry it is not in is dropped). */
  private isJoined(socket: AnySocket, channel: string): boolean {
    if (!Object.hasOwn(dataOf(socket).channels ?? {}, channel)) return false;
    if (socket.rooms.has(channel)) return true;
    this.forget(socket, channel);
    return false;
  }

  /**
   * Whether the socket may join one more channel under `maxChannelsPerSocket`. At the limit, entries of
   * channels the app took it out of by hand (`socket.leave`, `socketsLeave`) are dropped first; that walk is
   * repeated only once its rooms changed, so a client asking again and again at the limit costs nothing more.
   */
  private hasRoom(socket: AnySocket, membership: Membership): boolean {
    const max = this.options.maxChannelsPerSocket;
    if (membership.count + membership.pending.size < max) return true;
    const rooms = socket.rooms;
    if (rooms.size !== membership.prunedAt) {
      for (const channel of Object.keys(dataOf(socket).channels ?? {})) if (!rooms.has(channel)) this.forget(socket, channel);
      membership.prunedAt = rooms.size;
    }
    return membership.count + membership.pending.size < max;
  }

  /** Notes a joined channel in the socket's data, in place (a copy per join made joins slower with each channel). */
  private record(socket: AnySocket, channel: string): void {
    const data = dataOf(socket);
    const channels = (data.channels ??= {});
    if (!Object.hasOwn(channels, channel)) this.membership(socket).count++;
    channels[channel] = data.userId ?? null;
  }

  private forget(socket: AnySocket, channel: string): void {
    const { channels } = dataOf(socket);
    if (!channels || !Object.hasOwn(channels, channel)) return;
    delete channels[channel];
    const membership = this.memberships.get(socket);
    if (membership) membership.count--;
  }

  /** `<hexmac>` over the JSON array of every field: no field can run into the next, whatever it holds. */
  private mac(socketId: string, channel: string, data: string | undefined, expiresAt: number | undefined): string {
    return createHmac("sha256", this.options.channelSecret!)
      .update(JSON.stringify([TICKET_VERSION, socketId, channel, data ?? null, expiresAt ?? null]))
      .digest("hex");
  }

  /** Why a presented ticket does not admit `socketId` to `channel` with `data`; undefined when it does. */
  private ticketRefusal(ticket: string, socketId: string, channel: string, data: string | undefined): string | undefined {
    const parts = TICKET_FORMAT.exec(ticket);
    if (!this.options.channelSecret || !parts) return "ticket_invalid";
    const expiresAt = parts[1] === undefined ? undefined : Number(parts[1]);
    const expected = Buffer.from(this.mac(socketId, channel, data, expiresAt), "hex");
    if (!timingSafeEqual(expected, Buffer.from(parts[2]!, "hex"))) return "ticket_invalid";
    // Only a genuine ticket is told it expired.
    return expiresAt !== undefined && expiresAt <= Date.now() ? "ticket_expired" : undefined;
  }

  /** Who the socket was in a presence channel it is leaving (and it is no longer). */
  private presenceOf(socket: AnySocket, channel: string): Member {
    const data = dataOf(socket);
    const me = memberOf(data, channel);
    if (data.presence) delete data.presence[channel];
    return me;
  }

  /** After a socket left a presence channel as `me`: if that user has no other socket there, the members hear of it. */
  private async departed(socket: AnySocket, channel: string, me: Member, leaving = false): Promise<void> {
    // While disconnecting, the socket is still in the room: wait until it is gone.
    if (leaving) await new Promise((resolve) => setImmediate(resolve));
    const remaining = await this.members(socket, channel);
    if (me.userId !== undefined && remaining.some((m) => m.userId === me.userId && m.socketId !== socket.id)) return;
    this.io.of(socket.nsp.name).to(channel).emit(PRESENCE_LEAVE_EVENT, { channel, member: me });
  }

  private async members(socket: AnySocket, channel: string): Promise<Array<Member & { socketId: string }>> {
    const sockets = await this.viaAdapter("fetchSockets", () => this.io.of(socket.nsp.name).in(channel).fetchSockets());
    return sockets.map((s) => ({ socketId: s.id, ...memberOf(dataOf(s), channel) }));
  }

  /**
   * An adapter call, whose failure (another node silent past `requestsTimeout`, Redis down; a synchronous
   * throw too) becomes `cluster_unavailable`.
   */
  private async viaAdapter<T>(what: string, call: () => T | Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (cause) {
      throw new BridgeError("cluster_unavailable", `The Socket.IO adapter failed (${what}): other nodes did not answer.`, { cause });
    }
  }
}

/** Answers a client's request through its ack (if it sent one); a failure becomes a code and a debug line, never a rejection. */
function answer(what: string, answering: Promise<ChannelAnswer>, ack: ((answer: ChannelAnswer) => void) | undefined): void {
  answering
    .catch((err: unknown): ChannelAnswer => {
      debug("%s failed: %O", what, err);
      return refused(err instanceof BridgeError ? err.code : "server_error");
    })
    .then((result) => (typeof ack === "function" ? ack(result) : undefined))
    .catch((err: unknown) => debug("answering %s failed: %O", what, err));
}

function parseInfo(data: string): unknown {
  try {
    return (JSON.parse(data) as { info?: unknown }).info;
  } catch {
    return undefined;
  }
}

/** One entry per user (anonymous members each count). */
function unique(members: Array<Member & { socketId: string }>): Member[] {
  const seen = new Set<string>();
  const result: Member[] = [];
  for (const { socketId, ...member } of members) {
    const key = member.userId ?? `socket:${socketId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    result.push(member);
  }
  return result;
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("cache-control", "no-store");
  res.end(JSON.stringify(body));
}
