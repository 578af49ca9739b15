/**
 * The NestJS example app: the Express example app's chat page, session login over HTTP (@nestjs/passport,
 * express-session), Socket.IO gateways that see the same user through BridgeIoAdapter, and logout that ends the
 * sockets. server.ts starts it.
 */
import "reflect-metadata";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Module, type INestApplication } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { PassportModule } from "@nestjs/passport";
import express from "express";
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

// The page, its script and styles: the Express example app's own (example-app/public/), served as they are.
const PUBLIC = fileURLToPath(new URL("../example-app/public/", import.meta.url));

export async function createApp(options: ExampleOptions = {}): Promise<INestApplication> {
  const root = options.gateways ? { module: AppModule, providers: options.gateways } : AppModule;
  const app = await NestFactory.create(root, { logger: ["error", "warn"] });
  // Before the session middleware: the page and its files need no session (nor a store that answers).
  app.use(express.static(PUBLIC));
  // The page imports the library's client half (withAuth) from here: the package's own file, no bundler.
  const client = clientModule();
  for (const file of [client, `${client}.map`]) {
    app.use(`/vendor/passport-socketio-bridge/${basename(file)}`, (_req: express.Request, res: express.Response) => res.sendFile(file));
  }
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

/** The file of `passport-socketio-bridge/client` for `import` (the package's exports map says which). */
function clientModule(): string {
  const packageJson = createRequire(import.meta.url).resolve("passport-socketio-bridge/package.json");
  const manifest: { exports: Record<string, { import: { default: string } }> } = JSON.parse(readFileSync(packageJson, "utf8"));
  return join(dirname(packageJson), manifest.exports["./client"]!.import.default);
}
