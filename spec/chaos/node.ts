/**
 * One app node of the chaos run (spec/chaos/run.ts forks 2-3 of them): Express 5, express-session on
 * connect-redis 8 + ioredis, passport-local, Socket.IO on @socket.io/redis-adapter, and bridge() from lib/
 * through its public API only. It tells the runner over IPC when it is ready, every socket it admits (as whom,
 * with which session data), and every unhandled rejection or uncaught exception.
 *
 *   node --import tsx spec/chaos/node.ts <redisUrl> <prefix> <name> <sessionCacheMs> <revalidateEveryMs> <seed> <slowMs>
 *
 * Its deserializeUser takes 0 to slowMs ms (a user database), which widens the window in which an ending
 * meets an admission in flight.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createAdapter } from "@socket.io/redis-adapter";
import { RedisStore } from "connect-redis";
import express from "express";
import session from "express-session";
import { Redis } from "ioredis";
import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { bridge } from "../../lib/index.js";
import { prng } from "../helpers/fuzz.js";

declare module "express-session" {
  interface SessionData {
    /** The chaos run's session write: a number that only grows, per session. */
    mark: number;
  }
}

export interface ChaosUser {
  id: string;
  name: string;
}

/** What a node tells the runner. */
export type NodeMessage =
  | { type: "ready"; url: string }
  | { type: "admitted"; node: string; nsp: string; id: string; sessionID: string | undefined; userId: string | undefined; mark: number | undefined }
  | { type: "fatal"; node: string; kind: string; detail: string };

export const SECRET = "chaos secret";
/** The Redis set of banned user ids, shared by every node. */
export const bannedKey = (prefix: string) => `${prefix}banned`;

const [redisUrl = "", prefix = "", name = "", cacheMs = "", revalidateMs = "", seed = "0", slowMs = "0"] = process.argv.slice(2);
const random = prng(Number(seed));
const tell = (message: NodeMessage) => process.send?.(message);

// The runner fails the run on any of these; the node keeps serving so the rest of the history stays comparable.
process.on("unhandledRejection", (reason) => tell({ type: "fatal", node: name, kind: "unhandledRejection", detail: describe(reason) }));
process.on("uncaughtException", (err) => {
  tell({ type: "fatal", node: name, kind: "uncaughtException", detail: describe(err) });
  setTimeout(() => process.exit(1), 100);
});
process.on("disconnect", () => process.exit(0));

function describe(value: unknown): string {
  return value instanceof Error ? (value.stack ?? value.message) : String(value);
}

const redis = (): Redis => {
  const client = new Redis(redisUrl);
  // Paused Redis only delays commands; an error event unheard would crash the node for the wrong reason.
  client.on("error", () => undefined);
  return client;
};
const storeClient = redis();
const appClient = redis();

const sessionMiddleware = session({
  secret: SECRET,
  resave: false,
  saveUninitialized: false,
  store: new RedisStore({ client: storeClient, prefix }),
  cookie: { maxAge: 60 * 60 * 1000 },
});

const isBanned = async (id: string) => (await appClient.sismember(bannedKey(prefix), id)) === 1;
const passport = new Passport();
passport.use(
  new LocalStrategy((username, password, done) => {
    if (password !== username) return done(null, false);
    isBanned(username).then(
      (banned) => done(null, banned ? false : { id: username, name: username }),
      (err: unknown) => done(err),
    );
  }),
);
passport.serializeUser((user, done) => done(null, (user as ChaosUser).id));
// A banned user is refused here, so that after disconnectUser they cannot come back (README, "bans").
passport.deserializeUser((id: string, done) => {
  sleep(random.int(Number(slowMs) + 1))
    .then(() => isBanned(id))
    .then(
      (banned) => done(null, banned ? false : { id, name: id }),
      (err: unknown) => done(err),
    );
});

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(sessionMiddleware);
app.use(passport.session());
app.post("/login", passport.authenticate("local"), (req, res) => res.json({ sessionID: req.sessionID }));
app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(err) : res.sendStatus(204))));
app.post("/destroy", (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.sendStatus(204))));
app.post("/regenerate", (req, res, next) => req.session.regenerate((err) => (err ? next(err) : res.sendStatus(204))));
app.post("/write", (req, res) => {
  req.session.mark = Number(req.query.mark);
  res.json({ sessionID: req.sessionID });
});
app.post("/ban", async (req, res) => {
  const id = String(req.query.user);
  await appClient.sadd(bannedKey(prefix), id);
  res.json({ disconnected: await auth.disconnectUser(id) });
});
app.post("/kick", async (req, res) => {
  res.json({ disconnected: await auth.disconnectUser(String(req.query.user)) });
});

const http = createServer(app);
const io = new Server(http);
io.adapter(createAdapter(redis(), redis(), { requestsTimeout: 3000, key: `socket.io:${prefix}` }));
const auth = bridge<ChaosUser>(io, {
  session: sessionMiddleware,
  passport,
  sessionCacheMs: Number(cacheMs),
  revalidateEveryMs: Number(revalidateMs),
});

for (const nsp of [io.of("/"), io.of("/b")]) {
  nsp.on("connection", (socket) => {
    tell({
      type: "admitted",
      node: name,
      nsp: nsp.name,
      id: socket.id,
      sessionID: socket.request.sessionID,
      userId: auth.user(socket)?.id,
      mark: socket.request.session?.mark,
    });
  });
}

http.listen(0, "127.0.0.1", () => tell({ type: "ready", url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` }));
