/**
 * A real app for the integration tests: Express 5, express-session (connect-redis 8 + ioredis, connect-redis 9 +
 * node-redis, or MemoryStore), passport-local, Socket.IO with the bridge, listening on a free loopback port; and
 * real socket.io-client connections to it.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { RedisStore } from "connect-redis";
import { RedisStore as ConnectRedis9 } from "connect-redis-9";
import express from "express";
import session, { type SessionOptions, type Store } from "express-session";
import { Redis } from "ioredis";
import passportSingleton, { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { createClient } from "redis";
import { Server, type ServerOptions, type Socket as ServerSocket } from "socket.io";
import { io as ioClient, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";
import { afterEach, expect, inject, type TestContext } from "vitest";
import { bridge, ConfigError, type BridgeOptions, type SocketBridge } from "../../lib/index.js";

export const SECRET = "keyboard cat";

export interface User {
  id: string;
  username: string;
  name: string;
  role: string;
}

/** The client behind a Redis session store: ioredis 5 under connect-redis 8, or node-redis 5 under connect-redis 9. */
export type RedisClientKind = "ioredis" | "node-redis";
export const REDIS_CLIENTS: RedisClientKind[] = ["ioredis", "node-redis"];

/**
 * The Redis client of the stores a harness opens unless told otherwise: PSB_REDIS_CLIENT (which the vitest
 * project "node-redis" sets, to run whole spec files over connect-redis 9 + node-redis), else ioredis.
 */
export const REDIS_CLIENT: RedisClientKind = (() => {
  const value = process.env.PSB_REDIS_CLIENT || "ioredis";
  if (!(REDIS_CLIENTS as string[]).includes(value)) {
    throw new Error(`PSB_REDIS_CLIENT=${value}: expected one of ${REDIS_CLIENTS.join(", ")}`);
  }
  return value as RedisClientKind;
})();

export type NodeRedisClient = ReturnType<typeof createClient>;

/**
 * The connect-redis of node-redis stores: 9, or the copy of connect-redis 10 that PSB_CONNECT_REDIS names (a
 * package folder: `npm run test:node` installs one outside package.json for Node 22+, which 10 requires).
 */
export const CONNECT_REDIS_NODE_REDIS: { version: string; RedisStore: typeof ConnectRedis9 } = await (async () => {
  const dir = process.env.PSB_CONNECT_REDIS;
  if (!dir) return { version: "9", RedisStore: ConnectRedis9 };
  const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string };
  const loaded = (await import(pathToFileURL(join(dir, "dist", "connect-redis.js")).href)) as { RedisStore: typeof ConnectRedis9 };
  return { version, RedisStore: loaded.RedisStore };
})();
const RedisStore9 = CONNECT_REDIS_NODE_REDIS.RedisStore;

export interface RedisSessionStore {
  store: Store;
  client: RedisClientKind;
  /** The store's own client: ioredis (connect-redis 8) or node-redis (connect-redis 9). */
  ioredis?: Redis;
  nodeRedis?: NodeRedisClient;
  close(): Promise<void>;
}

/** A connect-redis store on its own connection: connect-redis 8 over ioredis, or connect-redis 9 over node-redis. */
export async function openRedisStore(options: {
  prefix: string;
  url?: string;
  client?: RedisClientKind;
  disableTouch?: boolean;
}): Promise<RedisSessionStore> {
  const url = options.url ?? inject("redisUrl");
  const kind = options.client ?? REDIS_CLIENT;
  const storeOptions = { prefix: options.prefix, ...(options.disableTouch ? { disableTouch: true } : {}) };
  if (kind === "node-redis") {
    const client = createClient({ url });
    // As with ioredis below: connection errors during outage tests are expected (and, unheard, would crash).
    client.on("error", () => undefined);
    await client.connect();
    return {
      store: new RedisStore9({ client, ...storeOptions }),
      client: kind,
      nodeRedis: client,
      async close() {
        if (client.isOpen) client.destroy();
      },
    };
  }
  const client = new Redis(url, { lazyConnect: false });
  // Connection errors during outage tests are expected; an app would log them.
  client.on("error", () => undefined);
  return {
    store: new RedisStore({ client, ...storeOptions }),
    client: kind,
    ioredis: client,
    async close() {
      client.disconnect();
    },
  };
}

/** The Redis-backed Socket.IO adapters a harness can connect its nodes with. */
export type RedisAdapterKind = "redis" | "streams" | "sharded";

export type Transport = "websocket" | "polling" | "upgrade";
export const TRANSPORTS: Transport[] = ["websocket", "polling", "upgrade"];

export interface HarnessOptions {
  /**
   * "redis" (default): connect-redis 8 over ioredis, or connect-redis 9 over node-redis (see `redisClient`),
   * with a key prefix of this harness's own.
   */
  store?: "redis" | "memory" | Store;
  /** The client of the "redis" store. Default: PSB_REDIS_CLIENT, else ioredis. */
  redisClient?: RedisClientKind;
  /** Another Redis than the run's shared one (for outage tests). */
  redisUrl?: string;
  /** Share the store's Redis key prefix with another harness (two nodes of one app). */
  prefix?: string;
  session?: Partial<SessionOptions>;
  /** Options for bridge(); `false` to leave the bridge out. */
  bridge?: Partial<BridgeOptions<User>> | false;
  /** Replace the default deserializer, add strategies, etc. The default one is installed first unless `replace`. */
  passport?: (passport: InstanceType<typeof Passport>, users: Map<string, User>) => void;
  replaceDeserializer?: boolean;
  io?: Partial<ServerOptions>;
  /**
   * Connect the nodes through Redis, so several harnesses that share a `prefix` form one cluster: `true` or
   * "redis" for @socket.io/redis-adapter (pub/sub), "streams" for @socket.io/redis-streams-adapter, "sharded"
   * for createShardedAdapter (Redis 7 sharded pub/sub). On `redisUrl` when given, else the run's shared Redis.
   */
  redisAdapter?: boolean | RedisAdapterKind;
  /** The Redis adapter's requestsTimeout (default 2000 ms): lower for a test that waits for a silent node. */
  requestsTimeout?: number;
  /** Install another adapter (e.g. @socket.io/postgres-adapter) before bridge(); returns its cleanup. */
  adapter?: (io: Server) => (() => unknown) | void;
  /** Use the `passport` module's singleton, and leave the `passport` option out of bridge(). */
  singleton?: boolean;
  /** Passport's userProperty, as given to passport.initialize() over HTTP and to bridge(). */
  userProperty?: string;
  /** Other versions of the stack, for the compatibility matrix (defaults: the devDependencies). */
  modules?: StackModules;
  /** Runs before the session middleware is installed on the Express app (e.g. cookie-parser). */
  express?: (app: express.Express) => void;
  /** Listen on this port (a restarted server), instead of a free one. */
  port?: number;
}

export interface StackModules {
  Server?: typeof Server;
  session?: typeof session;
  Passport?: typeof Passport;
  express?: typeof express;
}

export interface ConnectOptions {
  cookie?: string | undefined;
  transport?: Transport;
  namespace?: string;
  auth?: Record<string, unknown>;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** Keep socket.io-client's default reconnection (on by default here, as in browsers). */
  reconnection?: boolean;
}

export interface Refusal {
  message: string;
  data: { code: string; reconnect: boolean; [key: string]: unknown };
  socket: ClientSocket;
}

export interface Harness {
  url: string;
  http: HttpServer;
  io: Server;
  app: express.Express;
  auth: SocketBridge<User>;
  passport: InstanceType<typeof Passport>;
  users: Map<string, User>;
  store: Store;
  prefix: string;
  /**
   * When the store is the harness's Redis store: an ioredis client on its Redis, for the spec's own reads and
   * writes. Under ioredis it is the store's client; under node-redis, one of its own, opened on first use.
   */
  redis: Redis | undefined;
  /** Which client the harness's Redis store uses (undefined for another store). */
  redisClient: RedisClientKind | undefined;
  /** The store's node-redis client, under node-redis. */
  nodeRedis: NodeRedisClient | undefined;
  sessionMiddleware: ReturnType<typeof session>;
  /** Logs in through POST /login and returns the `Cookie` header value that carries the session. */
  login(username: string, password?: string): Promise<string>;
  /** A Socket.IO client, created and connecting; closed with the harness. */
  client(options?: ConnectOptions): ClientSocket;
  /** Connects and resolves once connected, or rejects with the connect_error. */
  connect(options?: ConnectOptions): Promise<ClientSocket>;
  /**
   * Connects `total` sockets over the sessions of `cookies` (socket i gets cookies[i % n]): first one per
   * session, then the rest, so that each session's later sockets find it already connected.
   */
  connectSessions(cookies: string[], total: number, transport: (i: number) => Transport): Promise<ClientSocket[]>;
  /** Connects and resolves with the refusal; rejects if the socket is admitted. */
  refusal(options?: ConnectOptions): Promise<Refusal>;
  /** An HTTP request to the app with the given cookie. */
  request(path: string, init?: RequestInit & { cookie?: string }): Promise<Response>;
  close(): Promise<void>;
}

export const USERS: User[] = [
  { id: "1", username: "alice", name: "Alice", role: "user" },
  { id: "2", username: "bob", name: "Bob", role: "user" },
  { id: "3", username: "carol", name: "Carol", role: "admin" },
];

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const users = new Map(USERS.map((u) => [u.id, { ...u }]));
  const cleanups: Array<() => unknown> = [];
  const prefix = options.prefix ?? `sess:${randomUUID().slice(0, 8)}:`;

  const stack = { Server, session, Passport, express, ...options.modules };
  let redisStore: RedisSessionStore | undefined;
  let store: Store;
  if (options.store === "memory") {
    store = new stack.session.MemoryStore();
  } else if (typeof options.store === "object") {
    store = options.store;
  } else {
    redisStore = await openRedisStore({
      prefix,
      ...(options.redisUrl ? { url: options.redisUrl } : {}),
      ...(options.redisClient ? { client: options.redisClient } : {}),
    });
    cleanups.push(() => redisStore?.close());
    store = redisStore.store;
  }
  // Under node-redis, h.redis is an ioredis client of its own, opened only for a spec that asks for it.
  let redis = redisStore?.ioredis;
  const inspector = () => {
    if (!redis && redisStore) {
      const own = new Redis(options.redisUrl ?? inject("redisUrl"));
      own.on("error", () => undefined);
      cleanups.push(() => own.disconnect());
      redis = own;
    }
    return redis;
  };

  const sessionMiddleware = stack.session({
    secret: SECRET,
    resave: false,
    saveUninitialized: false,
    store,
    ...options.session,
  });

  const passport = options.singleton ? passportSingleton : new stack.Passport();
  passport.use(
    new LocalStrategy((username, password, done) => {
      const user = [...users.values()].find((u) => u.username === username);
      done(null, user && password === username ? user : false);
    }),
  );
  passport.serializeUser((user, done) => done(null, (user as User).id));
  if (!options.replaceDeserializer) {
    passport.deserializeUser((id: string, done) => done(null, users.get(id) ?? false));
  }
  options.passport?.(passport, users);

  const app = stack.express();
  app.use(stack.express.urlencoded({ extended: false }));
  app.use(stack.express.json());
  options.express?.(app);
  app.use(sessionMiddleware);
  const userProperty = options.userProperty ?? "user";
  if (options.userProperty) app.use(passport.initialize({ userProperty }));
  app.use(passport.session());
  app.post("/login", passport.authenticate("local", { failWithError: true }), (req, res) => {
    res.json(req.user);
  });
  app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(err) : res.sendStatus(204))));
  app.post("/destroy", (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.sendStatus(204))));
  app.post("/regenerate", (req, res, next) =>
    req.session.regenerate((err) => (err ? next(err) : res.sendStatus(204))),
  );
  // A session with data but nobody logged in.
  app.post("/visit", (req, res) => {
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.sendStatus(204);
  });
  app.get("/csrf", async (req, res) => {
    res.json({ token: await auth.csrfToken(req) });
  });
  app.get("/me", (req, res) => {
    const user = (req as unknown as Record<string, unknown>)[userProperty];
    res.json({ user: user ?? null, sessionID: req.sessionID, session: req.session });
  });

  const http = createServer(app);
  const io = new stack.Server(http, { ...options.io });
  if (options.redisAdapter) {
    const kind = options.redisAdapter === true ? "redis" : options.redisAdapter;
    // The newer adapters as docs/deployment.md sets them up: maxRetriesPerRequest null, so that commands wait
    // out an outage instead of rejecting (and errors heard, not thrown). The pub/sub adapter as it always was.
    const pub = new Redis(
      options.redisUrl ?? inject("redisUrl"),
      kind === "redis" ? {} : { maxRetriesPerRequest: null },
    );
    if (kind !== "redis") pub.on("error", () => undefined);
    cleanups.push(() => pub.disconnect());
    // One channel key (and stream) per cluster (its nodes share the prefix): spec files run in parallel on one
    // Redis, and another file's nodes must not answer this one's fetchSockets or serverSideEmit.
    const key = `socket.io:${prefix}`;
    if (kind === "streams") {
      // One client: the adapter duplicates it for its stream reader and its pub/sub subscriber.
      io.adapter(createStreamsAdapter(pub, { streamName: key, channelPrefix: key }));
    } else {
      const sub = pub.duplicate();
      if (kind !== "redis") sub.on("error", () => undefined);
      cleanups.push(() => sub.disconnect());
      io.adapter(
        kind === "sharded"
          ? createShardedAdapter(pub, sub, { channelPrefix: key })
          : createAdapter(pub, sub, { requestsTimeout: options.requestsTimeout ?? 2000, key }),
      );
    }
  }
  const adapterCleanup = options.adapter?.(io);
  if (adapterCleanup) cleanups.push(adapterCleanup);
  const auth =
    options.bridge === false
      ? (undefined as unknown as SocketBridge<User>)
      : bridge<User>(io, {
          session: sessionMiddleware,
          ...(options.singleton ? {} : { passport }),
          ...(options.userProperty ? { userProperty } : {}),
          ...options.bridge,
        });

  io.on("connection", (socket) => socket.on("whoami", (ack: (answer: unknown) => void) => ack(whoami(socket))));

  await new Promise<void>((resolve) => http.listen(options.port ?? 0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients = new Set<ClientSocket>();

  const client = (opts: ConnectOptions = {}): ClientSocket => {
    const transport = opts.transport ?? "websocket";
    const socketOptions: Partial<ManagerOptions & SocketOptions> = {
      forceNew: true,
      transports: transport === "websocket" ? ["websocket"] : transport === "polling" ? ["polling"] : ["polling", "websocket"],
      upgrade: transport === "upgrade",
      reconnection: opts.reconnection ?? true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      extraHeaders: { ...opts.headers, ...(opts.cookie ? { cookie: opts.cookie } : {}) },
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.query ? { query: opts.query } : {}),
    };
    const socket = ioClient(url + (opts.namespace ?? "/"), socketOptions);
    clients.add(socket);
    return socket;
  };

  const connect = (opts: ConnectOptions = {}) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const socket = client(opts);
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", (err) => reject(err));
    });

  const connectSessions = async (cookies: string[], total: number, transport: (i: number) => Transport) => {
    const open = (i: number) => connect({ cookie: cookies[i % cookies.length], transport: transport(i) });
    const first = await Promise.all(Array.from({ length: Math.min(total, cookies.length) }, (_, i) => open(i)));
    const rest = await Promise.all(Array.from({ length: Math.max(0, total - cookies.length) }, (_, i) => open(i + cookies.length)));
    return [...first, ...rest];
  };

  const refusal = (opts: ConnectOptions = {}) =>
    new Promise<Refusal>((resolve, reject) => {
      const socket = client(opts);
      socket.once("connect", () => reject(new Error(`socket ${socket.id} was admitted`)));
      socket.once("connect_error", (err: Error & { data?: Refusal["data"] }) =>
        resolve({ message: err.message, data: err.data as Refusal["data"], socket }),
      );
    });

  const request = (path: string, init: RequestInit & { cookie?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.cookie) headers.set("cookie", init.cookie);
    return fetch(url + path, { ...init, headers });
  };

  const login = async (username: string, password = username) => {
    const res = await request("/login", {
      method: "POST",
      body: new URLSearchParams({ username, password }),
    });
    if (!res.ok) throw new Error(`login of ${username} failed: ${res.status}`);
    return cookieFrom(res);
  };

  return {
    url,
    http,
    io,
    app,
    auth,
    passport,
    users,
    store,
    prefix,
    get redis() {
      return inspector();
    },
    redisClient: redisStore?.client,
    nodeRedis: redisStore?.nodeRedis,
    sessionMiddleware,
    login,
    client,
    connect,
    connectSessions,
    refusal,
    request,
    async close() {
      for (const socket of clients) socket.disconnect();
      io.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/** A start function for one spec file: every harness it starts is closed after its test. */
export function harnessPerTest(): (options?: HarnessOptions) => Promise<Harness> {
  const open: Harness[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((harness) => harness.close()));
  });
  return async (options) => {
    const harness = await startHarness(options);
    open.push(harness);
    return harness;
  };
}

/**
 * A start function for one `it.concurrent` test (harnessPerTest's afterEach would close a concurrent neighbour's
 * harnesses too): each harness it starts is closed when that test finishes. Pass the test's context.
 */
export function harnessesOf(context: Pick<TestContext, "onTestFinished">): (options?: HarnessOptions) => Promise<Harness> {
  return async (options) => {
    const harness = await startHarness(options);
    context.onTestFinished(() => harness.close());
    return harness;
  };
}

/** What the server knows about a socket, as the tests' `whoami` event reports it. */
export function whoami(socket: ServerSocket) {
  const req = socket.request;
  return {
    user: req.user ?? null,
    sessionID: req.sessionID ?? null,
    isAuthenticated: typeof req.isAuthenticated === "function" ? req.isAuthenticated() : null,
    data: { ...socket.data },
    rooms: [...socket.rooms].filter((room) => room !== socket.id).sort(),
  };
}
export type WhoAmI = ReturnType<typeof whoami>;

/** The `name=value` pairs of a response's Set-Cookie headers, as a Cookie header. */
export function cookieFrom(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
}

/** The session id inside a `connect.sid=s%3A<id>.<sig>` cookie. */
export function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(cookie.split("=")[1] ?? "");
  return value.slice(2, value.lastIndexOf("."));
}

/** Resolves with the next `event` on `socket` (its arguments), or rejects after `ms`. */
export function nextEvent<T = unknown>(socket: { once(ev: string, fn: (...args: any[]) => void): unknown }, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    socket.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * For connection-state recovery: the client receives a broadcast (recovery resumes from the last one), then
 * its connection drops and its session ends behind the bridge's back (deleted in Redis; no hook sees it).
 * The client reconnects by itself; wait for its `connect`.
 */
export async function dropWhileSessionEnds(h: Harness, socket: ClientSocket, cookie: string): Promise<void> {
  const news = nextEvent(socket, "news");
  h.io.emit("news", 1);
  await news;
  const redis = new Redis(inject("redisUrl"));
  socket.io.engine.close();
  await redis.del(`${h.prefix}${sessionIdOf(cookie)}`);
  redis.disconnect();
}

/** The ConfigError a setup step throws; fails the test if it throws nothing, or something else. */
export function setupError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("invalid_config");
    return err as ConfigError;
  }
  throw new Error("bridge() accepted a broken setup");
}
