/**
 * The NestJS example app: session login over HTTP (@nestjs/passport, express-session), Socket.IO gateways that
 * see the same user through BridgeIoAdapter, and logout that ends the sockets. server.ts starts it.
 */
import "reflect-metadata";
import { Module, type INestApplication } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { PassportModule } from "@nestjs/passport";
import session from "express-session";
import passport from "passport";
import type { BridgeOptions } from "passport-socketio-bridge";
import { BridgeIoAdapter } from "passport-socketio-bridge/nest";
import { AuthController, LocalStrategy, SessionSerializer } from "./auth.js";
import { AdminGateway, ChatGateway } from "./gateways.js";

@Module({
  imports: [PassportModule.register({ session: true })],
  controllers: [AuthController],
  providers: [LocalStrategy, SessionSerializer, ChatGateway, AdminGateway],
})
class AppModule {}

export interface ExampleOptions {
  /** bridge() options beyond session and passport (the example admits anonymous sockets by default). */
  bridge?: Partial<BridgeOptions>;
  store?: session.Store;
  /** More gateways to run beside the example's (the specs run the README's sample this way). */
  gateways?: Array<new (...args: never[]) => unknown>;
}

export async function createApp(options: ExampleOptions = {}): Promise<INestApplication> {
  const root = options.gateways ? { module: AppModule, providers: options.gateways } : AppModule;
  const app = await NestFactory.create(root, { logger: ["error", "warn"] });
  const sessionMiddleware = session({
    secret: process.env.SESSION_SECRET ?? "nest example secret",
    resave: false,
    saveUninitialized: false,
    ...(options.store ? { store: options.store } : {}),
  });
  app.use(sessionMiddleware);
  app.use(passport.session());
  app.useWebSocketAdapter(
    new BridgeIoAdapter(app, { session: sessionMiddleware, passport, allowAnonymous: true, ...options.bridge }),
  );
  app.enableShutdownHooks();
  return app;
}
