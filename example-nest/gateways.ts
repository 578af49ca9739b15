/**
 * Two gateways on one Socket.IO server: the main namespace greets the user by name, and /admin answers
 * `secret` only to logged-in users (the adapter admits anonymous sockets, so the guard decides per handler).
 */
import { UseGuards } from "@nestjs/common";
import { ConnectedSocket, SubscribeMessage, WebSocketGateway, WebSocketServer, type OnGatewayConnection } from "@nestjs/websockets";
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
export class AdminGateway {
  @WebSocketServer() namespace!: Namespace;

  @UseGuards(WsAuthenticatedGuard)
  @SubscribeMessage("secret")
  secret(@SocketUser() user: User) {
    return { secret: `for ${user.name} only` };
  }

  @SubscribeMessage("users")
  async users() {
    return bridgeOf(this.namespace)?.onlineUsers();
  }
}
