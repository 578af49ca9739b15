// The example app: Express + express-session + passport-local over HTTP, and Socket.IO authenticated by
// passport-socketio-bridge with the very same session and user.
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import express from "express";
import session from "express-session";
import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { bridge } from "passport-socketio-bridge";
import { findUserById, findUserByUsername, verifyPassword } from "./users.js";

const PUBLIC = fileURLToPath(new URL("./public/", import.meta.url));
// The library's client half, as the page imports it: the installed package's `passport-socketio-bridge/client`
// (dist/client.js, a plain ES module that imports nothing), served as is at /vendor/passport-socketio-bridge/.
const CLIENT = clientModule();

/**
 * Builds the app (not listening yet). Options: `databaseUrl` (default DATABASE_URL) keeps sessions in PostgreSQL
 * and connects the nodes through it; else `redisUrl` (default REDIS_URL) does so with Redis, its sessions through
 * `redisClient` (default REDIS_CLIENT, else "ioredis": connect-redis 8 + ioredis; "node-redis": connect-redis 9 +
 * node-redis 5); `sessionMaxAgeMs` is the idle timeout (default 8 h); `log` receives its log lines.
 */
export async function createApp({
  databaseUrl = process.env.DATABASE_URL,
  redisUrl = process.env.REDIS_URL,
  redisClient = process.env.REDIS_CLIENT || "ioredis",
  secret = process.env.SESSION_SECRET ?? "example-app secret: set SESSION_SECRET in production",
  sessionMaxAgeMs = 8 * 60 * 60 * 1000,
  log = console.log,
} = {}) {
  const closers = [];

  // With REDIS_URL, sessions live in Redis (they survive restarts) and Socket.IO nodes share one Redis
  // adapter, so every node of the app sees every user's sockets.
  let store;
  let adapter;
  if (databaseUrl) {
    // With DATABASE_URL, sessions (connect-pg-simple) and the Socket.IO adapter (@socket.io/postgres-adapter) use
    // PostgreSQL, and no Redis is needed. postgres.js is docs/deployment.md's block: it creates the tables under a
    // lock (nodes starting together would race createTableIfMissing), and puts an "error" listener on the
    // adapter's LISTEN client, without which a PostgreSQL restart crashes the process.
    const { usePostgres } = await import("./postgres.js");
    const postgres = await usePostgres(databaseUrl, log);
    store = postgres.store;
    adapter = postgres.adapter;
    // After io.close() (close() below runs the closers last): the pools end, within 2 s.
    closers.push(() => postgres.close());
    log(`Sessions and the Socket.IO adapter use PostgreSQL at ${withoutPassword(databaseUrl)}.`);
  } else if (redisUrl) {
    const { Redis } = await import("ioredis");
    const { createAdapter } = await import("@socket.io/redis-adapter");
    // Both kinds of client reconnect by themselves. One line when a client loses Redis and one when it is back,
    // not one per retry.
    const watch = (name, c) => {
      let down = false;
      c.on("error", (err) => {
        if (!down) log(`Redis (${name}): ${err.message}; reconnecting`);
        down = true;
      });
      c.on("ready", () => {
        if (down) log(`Redis (${name}): reconnected`);
        down = false;
      });
    };
    const sessions = await redisSessionStore(redisUrl, redisClient);
    watch(`sessions, ${redisClient}`, sessions.client);
    closers.push(sessions.quit);
    // node-redis must be connected before its first command (ioredis connects by itself); connect() retries until
    // Redis answers. Awaited before the adapter's clients exist: an await between `new Redis` and createAdapter can
    // land the adapter's SUBSCRIBE inside ioredis's ready check (status "connect"), whose INFO subscriber mode
    // refuses ("Connection in subscriber mode"), and the subscriber reconnects.
    await sessions.connect();
    store = sessions.store;
    // The adapter: ioredis whatever REDIS_CLIENT says, with maxRetriesPerRequest null on both of its clients
    // (duplicate() copies the options). @socket.io/redis-adapter drops the promise of every PUBLISH (io.emit, the
    // bridge's cross-node commands), so with the default (20) an outage longer than about 10 s rejects them all
    // as MaxRetriesPerRequestError, unhandled, and Node exits. With null they wait in memory until Redis is back,
    // then go out (they may arrive late, or not at all: docs/deployment.md). Nothing rejects, so nothing is unhandled.
    const pub = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const sub = pub.duplicate();
    for (const [name, c] of [["adapter pub", pub], ["adapter sub", sub]]) {
      watch(name, c);
      closers.push(() => quit(c));
    }
    adapter = createAdapter(pub, sub);
    log(`Sessions (connect-redis over ${redisClient}) and the Socket.IO adapter use Redis at ${redisUrl}.`);
  } else {
    log("Sessions are kept in memory (express-session's MemoryStore); set DATABASE_URL (PostgreSQL) or REDIS_URL to share them.");
  }

  const sessionMiddleware = session({
    secret,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    cookie: { httpOnly: true, sameSite: "lax", maxAge: sessionMaxAgeMs },
  });

  const passport = new Passport();
  passport.use(new LocalStrategy((username, password, done) => done(null, verifyPassword(username, password) ?? false)));
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, findUserById(id) ?? false));

  const app = express();
  app.disable("x-powered-by");
  app.use(express.urlencoded({ extended: false }));
  app.use(sessionMiddleware);
  app.use(passport.session());
  app.use(express.static(PUBLIC));
  // No bundler: the page imports the client half from here (and the browser's devtools find its source map).
  for (const file of [CLIENT, `${CLIENT}.map`]) {
    app.get(`/vendor/passport-socketio-bridge/${basename(file)}`, (_req, res) => res.sendFile(file));
  }

  app.get("/api/me", (req, res) => res.json({ user: req.user ?? null }));
  app.post("/login", passport.authenticate("local", { successRedirect: "/", failureRedirect: "/?error=login" }));
  // Passport's logout regenerates the session; the bridge sees the old one go and ends its sockets (on
  // every node) with "auth:ended" { code: "logged_out" }. Nothing to do here.
  app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(err) : res.redirect("/"))));

  const server = createServer(app);
  const io = new Server(server, adapter ? { adapter } : {});
  const auth = bridge(io, { session: sessionMiddleware, passport });

  // Who is online, on every node, by name. Not once closing has begun: the disconnects of close() would publish
  // after Redis quit (the Redis adapter drops the promise of what it publishes, so that would be an unhandled
  // rejection), and other nodes' answers could not arrive anyway. A question under way when close() starts is not
  // waited for (another node closing at the same time would leave it waiting for the adapter's requestsTimeout, 5 s):
  // its answer is dropped.
  let closing = false;
  const presence = async () => {
    if (closing) return;
    try {
      const ids = await auth.onlineUsers();
      if (!closing) io.emit("online", ids.map((id) => findUserById(id)?.name ?? id));
    } catch (err) {
      if (!closing) log(`presence: ${err.message}`);
    }
  };

  io.on("connection", (socket) => {
    const user = socket.request.user;
    socket.emit("hello", { name: user.name });
    presence();
    socket.on("disconnect", presence);
    // "Log out" over the socket: the session goes from the store, and every socket of it (this one too, on every
    // node) ends with "auth:ended" { code: "logged_out" }. There is no login over a socket: see the docs.
    socket.on("logout", () => auth.logout(socket).catch((err) => log(`logout: ${err.message}`)));
    // Every message carries the server's time (`at`, ms since the epoch); the page shows it.
    socket.on("chat", (text, ack) => {
      const reply = typeof ack === "function" ? ack : () => undefined;
      if (!validText(text)) return reply({ ok: false, error: "invalid_message" });
      // The sender's name comes from the session's user, never from the client.
      io.emit("chat", { from: user.name, text: text.trim(), at: Date.now() });
      reply({ ok: true });
    });
    // A private message reaches every socket of the recipient, on every node: their user room. The sender's ack
    // confirms it (with the recipient's name and the time), or says there is no such user.
    socket.on("whisper", (message, ack) => {
      const reply = typeof ack === "function" ? ack : () => undefined;
      if (!validText(message?.text)) return reply({ ok: false, error: "invalid_message" });
      const to = findUserByUsername(message?.to);
      if (!to) return reply({ ok: false, error: "unknown_user" });
      const at = Date.now();
      io.to(auth.userRoom(to.id)).emit("whisper", { from: user.name, text: message.text.trim(), at });
      reply({ ok: true, to: to.name, at });
    });
  });

  return {
    server,
    io,
    auth,
    /** Stops accepting, ends every socket and HTTP connection, then quits Redis or ends the PostgreSQL pools. */
    async close() {
      closing = true;
      const httpClosed = new Promise((resolve) => server.close(() => resolve()));
      // Every socket gets Socket.IO's "server shutting down" (its client reconnects: to another node, or later).
      const ioClosed = io.close();
      server.closeAllConnections();
      await Promise.all([httpClosed, ioClosed]);
      for (const close of closers) await close();
    },
  };
}

const validText = (text) => typeof text === "string" && text.trim() !== "" && text.length <= 500;

/**
 * The file of `passport-socketio-bridge/client` for `import` (the package's exports map says which), where this app
 * would import it from. import.meta.resolve needs Node 20.6; before that, the same entry is read from the package.json.
 */
function clientModule() {
  if (typeof import.meta.resolve === "function") return fileURLToPath(import.meta.resolve("passport-socketio-bridge/client"));
  const packageJson = createRequire(import.meta.url).resolve("passport-socketio-bridge/package.json");
  return join(dirname(packageJson), JSON.parse(readFileSync(packageJson, "utf8")).exports["./client"].import.default);
}

/** The URL to log: its password, if any, masked. */
function withoutPassword(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(DATABASE_URL)";
  }
}

/**
 * The Redis session store over the client REDIS_CLIENT names. connect-redis 8 takes ioredis (or node-redis 4);
 * connect-redis 9 and later take only node-redis 5+ (10 needs Node 22).
 */
async function redisSessionStore(redisUrl, redisClient) {
  if (redisClient === "node-redis") {
    // This repository installs connect-redis 9 under the alias connect-redis-9; an app installs connect-redis@9.
    const { RedisStore } = await import("connect-redis-9");
    const { createClient } = await import("redis");
    // Sessions: node-redis queues a command while Redis is down and never gives up on it by default; a 10 s
    // timeout fails it as ioredis's defaults do. The bridge gives up sooner (storeTimeoutMs, 5 s) and refuses the
    // handshake as store_unavailable (reconnect: true). HTTP requests get an error.
    const client = createClient({ url: redisUrl, commandOptions: { timeout: 10_000 } });
    const quit = async () => {
      if (client.isReady) {
        await Promise.race([client.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      }
      if (client.isOpen) client.destroy();
    };
    return { store: new RedisStore({ client, prefix: "example:sess:" }), client, connect: () => client.connect(), quit };
  }
  if (redisClient !== "ioredis") throw new Error(`REDIS_CLIENT=${redisClient}: use ioredis (the default) or node-redis.`);
  const { Redis } = await import("ioredis");
  const { RedisStore } = await import("connect-redis");
  // Sessions: ioredis's defaults. While Redis is down a store command waits in ioredis's offline queue and
  // fails after its 20 reconnection attempts (about 10 s); the bridge gives up sooner (storeTimeoutMs, 5 s)
  // and refuses the handshake as store_unavailable (reconnect: true). HTTP requests get an error.
  const client = new Redis(redisUrl);
  return { store: new RedisStore({ client, prefix: "example:sess:" }), client, connect: async () => undefined, quit: () => quit(client) };
}

/** QUIT when Redis is there to answer (at most 2 s), then drop the connection (and stop reconnecting). */
async function quit(client) {
  // Closed right after it started: let a connecting client finish first (at most 2 s). Dropped now, it would
  // reject the adapter's SUBSCRIBEs still queued, promises @socket.io/redis-adapter leaves unhandled.
  if (client.status === "connecting" || client.status === "connect") {
    await Promise.race([once(client, "ready"), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }
  if (client.status === "ready") {
    await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }
  client.disconnect();
}
