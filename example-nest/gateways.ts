/**
 * Two gateways on one Socket.IO server: the main namespace greets the user by name (anonymous sockets too), and
 * every handler of /admin needs a logged-in user. The adapter admits anonymous sockets, so without the guard
 * they could call those handlers: list who is online, or kick anyone.
 */
import { UseGuards } from "@nestjs/common";
import {
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
  WsException,
  type OnGatewayConnection,
} from "@nestjs/websockets";
import { bridgeOf } from "passport-socketio-bridge";
import { SocketUser, WsAuthenticatedGuard } from "passport-socketio-bridge/nest";
import type { Namespace, Server, Socket } from "socket.io";
import type { User } from "./users.js";

@WebSocketGateway()
export class ChatGateway implements OnGatewayConnection {
  @WebSocketServer() server!: Server;

  handleConnection(socket: Socket): void {
    const user = bridgeOf<User>(this.server)?.user(socket);
    socket.emit("hello", user ? `Hi ${user.name}` : "Hi stranger");
  }

  @SubscribeMessage("whoami")
  whoami(@SocketUser() user: User | undefined) {
    return { user: user ?? null };
  }

  @SubscribeMessage("online")
  async online(@ConnectedSocket() socket: Socket, @SocketUser() user: User | undefined) {
    return user ? bridgeOf(socket.nsp)?.isOnline(user.id) : false;
  }
}

@WebSocketGateway({ namespace: "/admin" })
@UseGuards(WsAuthenticatedGuard) // every handler here: anonymous sockets get a WsException { code: "unauthenticated" }
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
