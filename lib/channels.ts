/**
 * Private channels: rooms a socket may join only after the app says so. `auth.channel("orders:{orderId}",
 * authorize)` declares them; clients ask with `auth:join` and get `{ ok, code? }`. Presence channels
 * (`presence:...`) tell their members who joins and leaves, across nodes. And the Pusher scheme for a realtime
 * service that cannot read the app's session: the app signs a ticket for one socket and one channel
 * (`signChannel`, `channelAuthHandler()`), and the socket presents it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import createDebug from "debug";
import type { Server } from "socket.io";
import { ConfigError } from "./errors.js";
import { isReservedRoom } from "./rooms.js";
import type { AnySocket, BridgeSocketData } from "./types.js";

const debug = createDebug("passport-socketio-bridge:channels");

export const JOIN_EVENT = "auth:join";
export const LEAVE_EVENT = "auth:leave";
/** Sent to a socket that was taken out of a channel (access gone, or `auth.leave`): `{ channel }`. */
export const LEFT_EVENT = "auth:left";
export const PRESENCE_JOIN_EVENT = "presence:join";
export const PRESENCE_LEAVE_EVENT = "presence:leave";

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
export interface Member {
  userId: string | undefined;
  info?: unknown;
}

interface Channel<TUser> {
  pattern: string;
  regex: RegExp;
  names: string[];
  authorize: ChannelAuthorizer<TUser>;
}

const isPresence = (channel: string) => channel.startsWith("presence:");

/** What a socket's `data` carries about its channels (it travels with recovered connections and fetchSockets). */
type ChannelData = BridgeSocketData & {
  /** Presence channels: what the other members see of this socket. */
  presence?: Record<string, unknown>;
  /** Channels joined with `auth:join`, and the user (null: anonymous) they were joined as. */
  channels?: Record<string, string | null>;
};
const dataOf = (socket: { data: unknown }) => socket.data as ChannelData;

export class Channels<TUser> {
  private readonly channels: Array<Channel<TUser>> = [];
  /** Shared by every socket in a presence channel: called with the socket as `this`. */
  private readonly onDisconnecting: (this: AnySocket, reason: string) => void;

  constructor(
    private readonly io: Server,
    private readonly secret: string | undefined,
    private readonly userOf: (socket: AnySocket) => TUser | undefined,
    /** Where Passport put the user on an HTTP request (for tickets). */
    private readonly userProperty: string,
  ) {
    const departed = (socket: AnySocket, room: string) =>
      this.departed(socket, room, this.memberOf(socket, room), true).catch((err: unknown) => debug("presence leave: %O", err));
    this.onDisconnecting = function (this: AnySocket, reason: string) {
      // Not while the server shuts down: the app closes its adapter's Redis next, and the adapter would turn
      // the broadcast on a closed connection into an unhandled rejection. (A crashed node says nothing either.)
      if (reason === "server shutting down") return;
      for (const room of this.rooms) if (isPresence(room)) void departed(this, room);
    };
  }

  /** Whether sockets need the join/leave events: some channel is declared, or tickets can be checked. */
  get active(): boolean {
    return this.channels.length > 0 || this.secret !== undefined;
  }

  define(pattern: string, authorize: ChannelAuthorizer<TUser>): void {
    if (typeof pattern !== "string" || pattern === "" || typeof authorize !== "function") {
      throw new ConfigError('channel(pattern, authorize) needs a pattern such as "orders:{orderId}" and a function.');
    }
    const names: string[] = [];
    const source = pattern
      .split(/(\{\w+\})/)
      .map((part) => {
        const name = /^\{(\w+)\}$/.exec(part)?.[1];
        if (!name) return part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
        names.push(name);
        return "([^:{}]+)";
      })
      .join("");
    this.channels.push({ pattern, regex: new RegExp(`^${source}$`), names, authorize });
  }

  /** Listens for a socket's join and leave requests. */
  watch(socket: AnySocket): void {
    socket.on(JOIN_EVENT, (payload: unknown, ack?: (answer: ChannelAnswer) => void) => {
      this.join(socket, payload).then(
        (answer) => (typeof ack === "function" ? ack(answer) : undefined),
        (err: unknown) => {
          debug("join failed: %O", err);
          if (typeof ack === "function") ack({ ok: false, code: "channel_forbidden" });
        },
      );
    });
    socket.on(LEAVE_EVENT, (payload: unknown, ack?: (answer: ChannelAnswer) => void) => {
      const channel = (payload as { channel?: unknown } | undefined)?.channel;
      if (typeof channel === "string" && socket.rooms.has(channel) && this.isChannel(socket, channel)) void this.leave(socket, channel);
      if (typeof ack === "function") ack({ ok: true });
    });
  }

  /** A ticket for `socketId` to join `channel` (and, for presence, with `data`): HMAC-SHA256, hex. */
  sign(socketId: string, channel: string, data?: string): string {
    if (!this.secret) throw new ConfigError("Set the `channelSecret` option to sign channel tickets.");
    return createHmac("sha256", this.secret).update(signed(socketId, channel, data)).digest("hex");
  }

  async join(socket: AnySocket, payload: unknown): Promise<ChannelAnswer> {
    const { channel, auth: ticket, data } = (payload ?? {}) as { channel?: unknown; auth?: unknown; data?: unknown };
    if (typeof channel !== "string" || channel === "" || channel.length > 200) return { ok: false, code: "channel_unknown" };
    if (isReservedRoom(socket, channel)) return { ok: false, code: "channel_forbidden" };
    let info: unknown;
    if (ticket !== undefined) {
      // A presented ticket is always checked, whatever the channel's authorize would say.
      if (typeof ticket !== "string" || (data !== undefined && typeof data !== "string") || !this.ticketValid(ticket, socket.id, channel, data)) {
        return { ok: false, code: "ticket_invalid" };
      }
      info = data === undefined ? undefined : parseInfo(data);
    } else {
      const match = this.match(channel);
      if (!match) return { ok: false, code: "channel_unknown" };
      const verdict = await match.channel.authorize(this.userOf(socket), match.params, socket);
      if (!verdict) return { ok: false, code: "channel_forbidden" };
      info = typeof verdict === "object" ? verdict.info : undefined;
    }
    if (!socket.connected) return { ok: false, code: "channel_forbidden" };
    await socket.join(channel);
    const joined = dataOf(socket);
    joined.channels = { ...joined.channels, [channel]: joined.userId ?? null };
    if (!isPresence(channel)) return { ok: true };
    return { ok: true, members: await this.enter(socket, channel, info) };
  }

  /** Takes a socket out of a channel (telling it with `auth:left`), and tells the presence members if it was the user's last. */
  async leave(socket: AnySocket, channel: string): Promise<void> {
    await socket.leave(channel);
    const { channels } = dataOf(socket);
    if (channels) delete channels[channel];
    socket.emit(LEFT_EVENT, { channel });
    if (isPresence(channel)) await this.departed(socket, channel, this.memberOf(socket, channel));
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
      if (!allowed && socket.connected) await this.leave(socket, room);
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
      void socket.leave(channel);
      delete data.channels![channel];
      gone.push({ channel, member: { ...this.memberOf(socket, channel), userId: joinedAs ?? undefined } });
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
    if (!this.secret) throw new ConfigError("Set the `channelSecret` option to issue channel tickets.");
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
    const user = (req as unknown as Record<string, TUser | undefined>)[this.userProperty];
    if (!user) return [401, { error: "unauthenticated" }];
    if (typeof socketId !== "string" || !/^[\w-]{1,64}$/.test(socketId) || typeof channel !== "string") {
      return [400, { error: "Send socket_id and channel_name." }];
    }
    const match = this.match(channel);
    if (!match) return [404, { error: "channel_unknown" }];
    const verdict = await match.channel.authorize(user, match.params, undefined);
    if (!verdict) return [403, { error: "channel_forbidden" }];
    if (!isPresence(channel)) return [200, { auth: this.sign(socketId, channel) }];
    const channelData = JSON.stringify({ info: typeof verdict === "object" ? verdict.info : undefined });
    return [200, { auth: this.sign(socketId, channel, channelData), channel_data: channelData }];
  }

  private match(channel: string): { channel: Channel<TUser>; params: Record<string, string> } | undefined {
    for (const declared of this.channels) {
      const found = declared.regex.exec(channel);
      if (found) return { channel: declared, params: Object.fromEntries(declared.names.map((name, i) => [name, found[i + 1]!])) };
    }
    return undefined;
  }

  /** Whether a client may leave `room` with `auth:leave`: a channel it joined, or a declared one; never a reserved room. */
  private isChannel(socket: AnySocket, room: string): boolean {
    if (isReservedRoom(socket, room)) return false;
    return Object.hasOwn(dataOf(socket).channels ?? {}, room) || this.match(room) !== undefined || isPresence(room);
  }

  private ticketValid(ticket: string, socketId: string, channel: string, data: string | undefined): boolean {
    if (!this.secret || !/^[0-9a-f]{64}$/.test(ticket)) return false;
    return timingSafeEqual(Buffer.from(this.sign(socketId, channel, data), "hex"), Buffer.from(ticket, "hex"));
  }

  /** Joins a presence channel: who is in it (on every node), and news of this member for the others. */
  private async enter(socket: AnySocket, channel: string, info: unknown): Promise<Member[]> {
    const data = dataOf(socket);
    data.presence = { ...data.presence, [channel]: info };
    const members = await this.members(socket, channel);
    const me: Member = { userId: data.userId, info };
    const others = members.filter((m) => m.socketId !== socket.id);
    if (me.userId === undefined || !others.some((m) => m.userId === me.userId)) {
      socket.to(channel).emit(PRESENCE_JOIN_EVENT, { channel, member: me });
    }
    if (!socket.listeners("disconnecting").includes(this.onDisconnecting)) socket.on("disconnecting", this.onDisconnecting);
    return unique(members);
  }

  /** Who the socket was in a presence channel it is leaving (and it is no longer). */
  private memberOf(socket: AnySocket, channel: string): Member {
    const data = dataOf(socket);
    const me: Member = { userId: data.userId, info: data.presence?.[channel] };
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
    const sockets = await this.io.of(socket.nsp.name).in(channel).fetchSockets();
    return sockets.map((s) => {
      const data = dataOf(s);
      return { socketId: s.id, userId: data.userId, info: data.presence?.[channel] };
    });
  }
}

function signed(socketId: string, channel: string, data: string | undefined): string {
  return data === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${data}`;
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
