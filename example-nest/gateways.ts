/**
 * Two gateways on one Socket.IO server. The main namespace is the chat page's: it greets the user by name (anonymous
 * sockets too), says who is online, and carries chat messages and whispers, which need a logged-in user. Every
 * handler of /admin needs one too. The adapter admits anonymous sockets, so without the guard they could call those
 * handlers: chat under no name, list who is online, or kick anyone.
 *
 * A refusal (the guard's, or "forbidden") answers the event's ack with `{ ok: false, code, message }`
 * (WsAckExceptionFilter), so a client's `await socket.emitWithAck(...)` gets it.
 */
import { UseFilters, UseGuards } from "@nestjs/common";
import {
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
  WsException,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
} from "@nestjs/websockets";
import { bridgeOf } from "passport-socketio-bridge";
import { SocketUser, WsAuthenticatedGuard } from "passport-socketio-bridge/nest";
import type { Namespace, Server, Socket } from "socket.io";
import { WsAckExceptionFilter } from "./ack-filter.js";
import { findByUsername, USERS, type User } from "./users.js";

const validText = (text: unknown): text is string => typeof text === "string" && text.trim() !== "" && text.length <= 500;

@WebSocketGateway()
@UseFilters(new WsAckExceptionFilter())
export class ChatGateway implements OnGatewayConnection, OnGatewayDisconnect {
  @WebSocketServer() server!: Server;

  handleConnection(socket: Socket): void {
    const user = bridgeOf<User>(this.server)?.user(socket);
    socket.emit("hello", { name: user ? user.name : null });
    void this.presence();
  }

  handleDisconnect(): void {
    void this.presence();
  }

  /** Who is online, by name, to every socket (as the Express example app does). */
  private async presence(): Promise<void> {
    try {
      const ids = (await bridgeOf(this.server)?.onlineUsers()) ?? [];
      this.server.emit("online", ids.map((id) => USERS.get(id)?.name ?? id));
    } catch (err) {
      console.warn(`presence: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  @SubscribeMessage("whoami")
  whoami(@SocketUser() user: User | undefined) {
    return { user: user ?? null };
  }

  @SubscribeMessage("online")
  async online(@ConnectedSocket() socket: Socket, @SocketUser() user: User | undefined) {
    return user ? bridgeOf(socket.nsp)?.isOnline(user.id) : false;
  }

  // The sender's name comes from the session's user, never from the client.
  @SubscribeMessage("chat")
  @UseGuards(WsAuthenticatedGuard)
  chat(@SocketUser() user: User, @MessageBody() text: unknown) {
    if (!validText(text)) return { ok: false, error: "invalid_message" };
    this.server.emit("chat", { from: user.name, text: text.trim(), at: Date.now() });
    return { ok: true };
  }

  // A private message reaches every socket of the recipient, on every node: their user room.
  @SubscribeMessage("whisper")
  @UseGuards(WsAuthenticatedGuard)
  whisper(@SocketUser() user: User, @MessageBody() message: { to?: unknown; text?: unknown } | undefined) {
    if (!validText(message?.text)) return { ok: false, error: "invalid_message" };
    const to = typeof message?.to === "string" ? findByUsername(message.to) : undefined;
    const auth = bridgeOf(this.server);
    if (!to || !auth) return { ok: false, error: "unknown_user" };
    const at = Date.now();
    this.server.to(auth.userRoom(to.id)).emit("whisper", { from: user.name, text: message.text.trim(), at });
    return { ok: true, to: to.name, at };
  }
}

@WebSocketGateway({ namespace: "/admin" })
@UseGuards(WsAuthenticatedGuard) // every handler here: anonymous sockets are refused with { code: "unauthenticated" }
@UseFilters(new WsAckExceptionFilter())
export class AdminGateway {
  @WebSocketServer() namespace!: Namespace;

  @SubscribeMessage("secret")
  secret(@SocketUser() user: User) {
    return { secret: `for ${user.name} only` };
  }

  @SubscribeMessage("users")
  async users() {
    return bridgeOf(this.namespace)?.onlineUsers();
  }

  @SubscribeMessage("kick")
  async kick(@SocketUser() user: User, @MessageBody() id: string) {
    // The guard says who is logged in; what that user may do is the app's own check.
    if (user.role !== "admin") throw new WsException({ code: "forbidden", message: "Only admins may kick users." });
    return bridgeOf(this.namespace)?.disconnectUser(id);
  }
}
