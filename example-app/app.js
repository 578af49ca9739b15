// The example app: Express + express-session (or cookie-session) + passport-local over HTTP, and Socket.IO
// authenticated by passport-socketio-bridge with the very same session and user.
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
 * node-redis 5); `sessionMaxAgeMs` is the idle timeout (default 8 h); `log` receives its log lines. `sessions`
 * (default SESSIONS, else "express-session") may be "cookie-session": the session lives in a signed cookie, with no
 * store at all (with REDIS_URL or DATABASE_URL, the nodes still share the Socket.IO adapter, so a logout reaches
 * every node).
 */
export async function createApp({
  sessions = process.env.SESSIONS || "express-session",
  databaseUrl = process.env.DATABASE_URL,
  redisUrl = process.env.REDIS_URL,
  redisClient = process.env.REDIS_CLIENT || "ioredis",
  secret = process.env.SESSION_SECRET ?? "example-app secret: set SESSION_SECRET in production",
  sessionMaxAgeMs = 8 * 60 * 60 * 1000,
  log = console.log,
} = {}) {
  const closers = [];
  if (sessions !== "express-session" && sessions !== "cookie-session") {
    throw new Error(`SESSIONS=${sessions}: use express-session (the default) or cookie-session.`);
  }
  const cookieSessions = sessions === "cookie-session";
  // Loaded now: an await between the adapter's Redis clients and `new Server` below would land its SUBSCRIBE inside
  // ioredis's ready check (see below).
  const cookieSession = cookieSessions ? (await import("cookie-session")).default : undefined;

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
    // (cookie-session needs no store: only the adapter uses Redis.)
    if (!cookieSessions) {
      const sessions = await redisSessionStore(redisUrl, redisClient);
      watch(`sessions, ${redisClient}`, sessions.client);
      closers.push(sessions.quit);
      // Neither client queues commands before it is connected (see redisSessionStore); connect() waits until Redis
      // answers. Awaited before the adapter's clients exist: an await between `new Redis` and createAdapter can
      // land the adapter's SUBSCRIBE inside ioredis's ready check (status "connect"), whose INFO subscriber mode
      // refuses ("Connection in subscriber mode"), and the subscriber reconnects.
      await sessions.connect();
      store = sessions.store;
    }
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
    log(
      cookieSessions
        ? `The Socket.IO adapter uses Redis at ${redisUrl}.`
        : `Sessions (connect-redis over ${redisClient}) and the Socket.IO adapter use Redis at ${redisUrl}.`,
    );
  } else if (!cookieSessions) {
    log("Sessions are kept in memory (express-session's MemoryStore); set DATABASE_URL (PostgreSQL) or REDIS_URL to share them.");
  }

  let sessionMiddleware;
  if (cookieSessions) {
    // The whole session in a signed cookie (cookie-session keeps nothing on the server).
    sessionMiddleware = cookieSession({ name: "session", keys: [secret], httpOnly: true, sameSite: "lax", maxAge: sessionMaxAgeMs });
    log("Sessions live in a signed cookie (cookie-session): no session store.");
  } else {
    sessionMiddleware = session({
      secret,
      store,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { httpOnly: true, sameSite: "lax", maxAge: sessionMaxAgeMs },
    });
  }

  const passport = new Passport();
  passport.use(new LocalStrategy((username, password, done) => done(null, verifyPassword(username, password) ?? false)));
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, findUserById(id) ?? false));

  const app = express();
  const server = createServer(app);
  const io = new Server(server, adapter ? { adapter } : {});
  const auth = bridge(io, { session: sessionMiddleware, passport });

  app.disable("x-powered-by");
  // The page and its files come before the session: they need no login, and they load while the session store
  // is down (the page then says so, instead of the browser waiting for a store that does not answer).
  app.use(express.static(PUBLIC));
  // No bundler: the page imports the client half from here (and the browser's devtools find its source map).
  for (const file of [CLIENT, `${CLIENT}.map`]) {
    app.get(`/vendor/passport-socketio-bridge/${basename(file)}`, (_req, res) => res.sendFile(file));
  }
  app.use(express.urlencoded({ extended: false }));
  // A session the store cannot load is a 503 "store_unavailable" for the error handler below.
  app.use((req, res, next) => sessionMiddleware(req, res, (err) => next(err && storeError(err))));
  if (cookieSessions) {
    // express-session's `rolling: true`, for cookie-session: a logged-in session that changes each minute is written
    // back, so its cookie lives sessionMaxAgeMs from the last request (cookie-session's README recipe).
    app.use((req, _res, next) => {
      if (req.session?.passport?.user !== undefined) req.session.nowInMinutes = Math.floor(Date.now() / 60e3);
      next();
    });
    // Passport 0.6+ calls req.session.regenerate() and req.session.save(), which cookie-session does not have. The
    // usual shim gives it two that do nothing:
    //   app.use((req, res, next) => {
    //     if (req.session && !req.session.regenerate) req.session.regenerate = (cb) => cb();
    //     if (req.session && !req.session.save) req.session.save = (cb) => cb();
    //     next();
    //   });
    // The bridge's does that job, and also gives each login an id (req.sessionID) and, at logout, ends that login's
    // sockets on every node: nothing else on the server can see a cookie-session logout. Right after cookieSession().
    app.use(auth.cookieSessionShim());
  }
  app.use(passport.session());

  app.get("/api/me", (req, res) => res.json({ user: req.user ?? null }));
  // Logging in and out regenerate the session: their errors are the store's.
  const login = passport.authenticate("local", { successRedirect: "/", failureRedirect: "/?error=login" });
  app.post("/login", (req, res, next) => login(req, res, (err) => next(err && storeError(err))));
  // Passport's logout regenerates the session; the bridge sees the old one go (express-session: through the store;
  // cookie-session: through its shim) and ends its sockets (on every node) with "auth:ended" { code: "logged_out" }.
  // Nothing to do here.
  app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(storeError(err)) : res.redirect("/"))));

  app.use((req, res) => sendError(req, res, 404, "not_found", "There is nothing at this address."));
  // Every error ends here: one line in the server's log, and a sentence for the person (a page, or JSON for
  // the page's own fetch calls). Never a stack trace or a file path: Express's default handler shows both
  // unless NODE_ENV is "production".
  app.use((err, req, res, _next) => {
    const status = Number.isInteger(err.status) && err.status >= 400 && err.status < 600 ? err.status : 500;
    if (status >= 500) log(`${req.method} ${req.originalUrl}: ${err.code ?? err.name}: ${err.message}`);
    // Too late for a page (a save that failed as the response ended): the response ends as it was.
    if (res.headersSent) return;
    if (err.code === "store_unavailable") {
      return sendError(req, res, status, err.code, "The server cannot reach its session store right now. Try again in a moment.");
    }
    if (status < 500) return sendError(req, res, status, "bad_request", "The server could not understand that request.");
    sendError(req, res, status, "server_error", "Something went wrong on the server. Try again in a moment.");
  });

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

/** The session store failed (or timed out): the page can say so, and try again later. */
function storeError(err) {
  return Object.assign(err instanceof Error ? err : new Error(String(err)), { status: 503, code: "store_unavailable" });
}

/**
 * An error as the person will read it: JSON for the page's own requests (fetch asks for anything, or the URL is
 * under /api/), else a small HTML page that uses only static files (they load while the store is down).
 */
function sendError(req, res, status, code, message) {
  res.status(status);
  if (status === 503) res.set("Retry-After", "5");
  if (req.path.startsWith("/api/") || req.accepts(["json", "html"]) === "json") return res.json({ error: code, message });
  res.type("html").send(`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${status === 404 ? "Not found" : "Unavailable"} · passport-socketio-bridge example</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
    <link rel="stylesheet" href="/style.css" />
  </head>
  <body>
    <main>
      <h1>passport-socketio-bridge example</h1>
      <p class="notice" role="alert">${escapeHtml(message)}</p>
      <p><a href="/">Back to the chat</a></p>
    </main>
  </body>
</html>
`);
}

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

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
    // Sessions: node-redis queues a command while Redis is down and never gives up on it by default. Without the
    // offline queue it fails at once (as with ioredis below): a page load gets the error page (503), and the
    // bridge refuses the handshake as store_unavailable (reconnect: true). The timeout covers a Redis that hangs.
    const client = createClient({ url: redisUrl, disableOfflineQueue: true, commandOptions: { timeout: 10_000 } });
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
  // Sessions: no offline queue. While Redis is down a store command fails at once, instead of waiting in
  // ioredis's queue for its 20 reconnection attempts (about 10 s): a page load gets the error page (503) at once,
  // and the bridge refuses a handshake as store_unavailable (reconnect: true) without waiting out storeTimeoutMs.
  // Without the queue, nothing may be sent before the connection is ready: connect() waits for it, as node-redis's does.
  const client = new Redis(redisUrl, { enableOfflineQueue: false });
  const connect = async () => {
    // (Not events.once: it would reject on the "error" of a failed attempt; ioredis tries again by itself.)
    if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  };
  return { store: new RedisStore({ client, prefix: "example:sess:" }), client, connect, quit: () => quit(client) };
}

/** QUIT when Redis is there to answer (at most 2 s), then drop the connection (and stop reconnecting). */
async function quit(client) {
  // Closed right after it started: let a connecting client finish first (at most 2 s). Dropped now, it would
  // reject the adapter's SUBSCRIBEs still queued, promises @socket.io/redis-adapter leaves unhandled.
  if (client.status === "connecting" || client.status === "connect") {
    // (A failed attempt's "error" must not make close() fail: events.once would reject on it.)
    await Promise.race([new Promise((resolve) => client.once("ready", resolve)), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }
  if (client.status === "ready") {
    await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }
  client.disconnect();
}
