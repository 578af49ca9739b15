/**
 * NestJS: the Socket.IO server that Nest's IoAdapter creates gets the bridge, so every gateway and namespace
 * sees the HTTP session's user. Importing this entry loads Nest (10 to 12); the main entry never does.
 *
 *   app.useWebSocketAdapter(new BridgeIoAdapter(app, { session: sessionMiddleware, passport }));
 */
import { createParamDecorator, Injectable, type CanActivate, type ExecutionContext, type INestApplicationContext } from "@nestjs/common";
import { IoAdapter } from "@nestjs/platform-socket.io";
import { WsException } from "@nestjs/websockets";
import type { Server } from "socket.io";
import { bridge, bridgeOf, type SocketBridge } from "./bridge.js";
import type { BridgeOptions } from "./options.js";
import type { AnySocket } from "./types.js";

/** Nest's IoAdapter, with `bridge()` on each Socket.IO server it creates. */
export class BridgeIoAdapter<TUser = Express.User> extends IoAdapter {
  /** The bridges of the servers this adapter created (usually one). */
  readonly bridges: SocketBridge<TUser>[] = [];

  constructor(
    appOrHttpServer: INestApplicationContext | object,
    private readonly bridgeOptions: BridgeOptions<TUser>,
  ) {
    super(appOrHttpServer as INestApplicationContext);
  }

  // (Typed loosely: @nestjs/platform-socket.io brings its own copy of socket.io, whose types differ from the app's.)
  override createIOServer(port: number, options?: any): any {
    const server = super.createIOServer(port, options) as unknown as Server;
    this.bridges.push(bridge<TUser>(server, this.bridgeOptions));
    return server;
  }
}

/** The socket of a WebSocket handler's context. */
const socketOf = (context: ExecutionContext) => context.switchToWs().getClient<AnySocket>();

/** The admitted user of the socket, as HTTP's `req.user`; undefined for anonymous sockets. */
function userOf(socket: AnySocket): unknown {
  return bridgeOf(socket.nsp)?.user(socket);
}

/**
 * A parameter decorator for `@SubscribeMessage` handlers: the socket's user (`socket.request.user`, the
 * same deserialized user HTTP routes see), or undefined for an anonymous socket.
 */
export const SocketUser = createParamDecorator((_data: unknown, context: ExecutionContext) => userOf(socketOf(context)));

/**
 * A guard for handlers that need a user, when the adapter admits anonymous sockets (`allowAnonymous`):
 * refuses the others with a WsException `{ code: "unauthenticated", message }`.
 */
export class WsAuthenticatedGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    if (userOf(socketOf(context))) return true;
    throw new WsException({ code: "unauthenticated", message: "This needs a logged-in user: log in over HTTP, then connect again." });
  }
}
Injectable()(WsAuthenticatedGuard);
