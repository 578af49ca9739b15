/**
 * npm run bench:handshake: what one authenticated handshake costs the server, stage by stage, with no network.
 *
 * Each configuration runs in a process of its own. It builds a real Socket.IO server (attached to an HTTP server
 * that never listens), the same Express-style express-session + Passport setup as bench/server.ts, and drives
 * handshakes through Socket.IO's own namespace flow: a fake Engine.IO connection (an EventEmitter carrying a real
 * `http.IncomingMessage` with the session cookie) goes to `io.onconnection()`, then a CONNECT packet, so Socket.IO
 * runs its middlewares and emits `connection` exactly as it would for a WebSocket. HTTP parsing, the WebSocket
 * upgrade and Engine.IO's own handshake are left out: they are the same for every configuration, and no library
 * here touches them.
 *
 * Per configuration and store (Redis through connect-redis + ioredis, and express-session's MemoryStore):
 *   - CPU per handshake: process.cpuUsage() over HS_HANDSHAKES handshakes, HS_CONCURRENCY at a time, sockets held
 *     connected (like `npm run bench`), after HS_WARMUP for warm-up; HS_WINDOWS windows per process, HS_ROUNDS
 *     processes per configuration, interleaved; the median (and the minimum, the least disturbed by other work on
 *     the machine) of all windows.
 *   - GC time and bytes allocated per handshake, in the same windows, from v8.GCProfiler: the cost of each GC, and
 *     the heap's growth plus what each GC freed (exact to a few KB per window; it agrees with a young generation
 *     so large that no GC runs at all). Bytes do not depend on the machine's load; CPU does.
 *   - Promises, timers (Timeout), immediates and nextTicks created per handshake: async_hooks over one window.
 *   - Timers still pending once the window's sockets are connected, per socket; bytes retained per connected socket
 *     (the heap after full GCs, sockets held and closed).
 *   - Store reads (store.get calls) per handshake, and CPU per socket to close the window's connections.
 *
 * The bridge's stages are switched off in turn: by its own options where they exist (origins: false,
 * keepAliveMs: false, revalidateEveryMs: false), else by stubs marked STUB, which are for attribution only (a
 * stubbed bridge is not a working bridge).
 *
 * Environment: HS_CONFIGS=a,e,e-origin,... (default: all), HS_STORES=redis,memory, HS_ROUNDS (3), HS_WINDOWS (3),
 * HS_HANDSHAKES (1500), HS_WARMUP (1500), HS_CONCURRENCY (20), HS_SESSIONS (50), HS_ORIGIN=0 to send no Origin
 * header (`npm run bench`'s Node client sends none; browsers always do), HS_PROFILE=<dir> to also save a V8 CPU
 * profile (.cpuprofile) and a sampling heap profile with collected objects (.heapprofile) of one window of each
 * configuration and print their top frames, HS_MARKDOWN=1 for markdown tables.
 */
import { createHook } from "node:async_hooks";
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import inspector from "node:inspector";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import v8 from "node:v8";
import { FakeConnection, handshakeRequest, openConnection } from "../spec/helpers/fake-engine.js";

const here = fileURLToPath(import.meta.url);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const HANDSHAKES = env("HS_HANDSHAKES", 1500);
const WARMUP = env("HS_WARMUP", 1500);
const WINDOWS = env("HS_WINDOWS", 3);
const ROUNDS = env("HS_ROUNDS", 3);
const CONCURRENCY = env("HS_CONCURRENCY", 20);
const SESSIONS = env("HS_SESSIONS", 50);
const WITH_ORIGIN = process.env.HS_ORIGIN !== "0";
const PROFILE_DIR = process.env.HS_PROFILE;
const MARKDOWN = process.env.HS_MARKDOWN === "1";

type StoreKind = "redis" | "memory";

/** The configurations: peers, the bridge, and the bridge with one stage off or stubbed. */
const CONFIGS = {
  a: "(a) socket.io, no auth",
  b: "(b) docs' Passport recipe (engine middlewares)",
  d: "(d) passport.socketio 3.7.0",
  w: "(w) io.use(wrap(session)), io.use(wrap(passport.session())): the floor of running both, no bridge",
  e: "(e) bridge, defaults",
  "e-origin": "(e) origins: false (no Origin check)",
  "e-session": "(e) STUB session middleware (fixed session, no store read)",
  "e-passport": "(e) STUB Passport (user from the session, no passport.session())",
  "e-admission": "(e) STUB admission (no handshake cache, tickets, endings, limits, hooks)",
  "e-rooms": "(e) STUB rooms (user:/session: joins skipped by the adapter)",
  "e-live": "(e) STUB live sessions (no tracking: no copies, expiry, revalidation, keep-alive)",
  "e-keepalive": "(e) keepAliveMs: false (no event hook)",
  "e-revalidate": "(e) revalidateEveryMs: false (no revalidation timer)",
  "e-floor": "(e) all of the above off or stubbed except session + Passport",
} as const;
type Config = keyof typeof CONFIGS;

interface Figures {
  cpu: number[];
  gc: number[];
  close: number[];
  bytes: number[];
  gets: number;
  counts: Record<string, number>;
  pendingTimers: number;
  retained: number;
  refused: number;
  profile?: { cpu: string[]; heap: string[] };
}

// ---------------------------------------------------------------------------------------------------------------
// The child: one configuration, one store.
// ---------------------------------------------------------------------------------------------------------------

async function child(config: Config, kind: StoreKind, redisUrl: string): Promise<Figures> {
  const [{ RedisStore }, { default: session }, { Redis }, { Passport }, { Server }, cookieSignature, cookieParser] =
    await Promise.all([
      import("connect-redis"),
      import("express-session"),
      import("ioredis"),
      import("passport"),
      import("socket.io"),
      import("cookie-signature"),
      import("cookie-parser"),
    ]);
  // @ts-expect-error: passport.socketio has no types.
  const { default: passportSocketIo } = await import("passport.socketio");
  // A snapshot of dist/ taken when the run began (other builds may rewrite dist/ meanwhile).
  const { bridge } = (await import(process.env.HS_DIST ? pathToFileURL(join(process.env.HS_DIST, "index.js")).href : "passport-socketio-bridge")) as typeof import("passport-socketio-bridge");

  const SECRET = "bench secret";
  const KEY = "connect.sid";
  const prefix = `hs:${process.pid}:`;
  const client = kind === "redis" ? new Redis(redisUrl) : undefined;
  const store = client ? new RedisStore({ client, prefix }) : new session.MemoryStore();
  // Store reads, counted under every wrapper (the bridge wraps the instance's own `get`).
  let gets = 0;
  const rawGet = store.get;
  Object.defineProperty(store, "get", {
    value: function (this: unknown, ...args: unknown[]) {
      gets++;
      return (rawGet as (...a: unknown[]) => unknown).apply(this, args);
    },
    writable: true,
    configurable: true,
  });
  const sessionMiddleware = session({
    secret: SECRET,
    name: KEY,
    store,
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 60 * 60 * 1000 },
  });
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, (user as { id: string }).id));
  passport.deserializeUser((id: string, done) => done(null, { id, name: id }));

  // The sessions: what express-session and Passport write at login, written straight to the store.
  const cookies: string[] = [];
  const sessionIds = new Map<string, string>();
  const expires = new Date(Date.now() + 60 * 60 * 1000);
  for (let i = 0; i < SESSIONS; i++) {
    const sid = randomBytes(24).toString("base64url");
    const record = {
      cookie: { originalMaxAge: 60 * 60 * 1000, expires: expires.toISOString(), secure: false, httpOnly: true, path: "/" },
      passport: { user: `user-${i}` },
    };
    await new Promise<void>((resolve, reject) =>
      store.set(sid, record as never, (err?: unknown) => (err ? reject(err as Error) : resolve())),
    );
    const cookie = `${KEY}=${encodeURIComponent(`s:${cookieSignature.sign(sid, SECRET)}`)}`;
    cookies.push(cookie);
    sessionIds.set(cookie, sid);
  }

  const http = createServer();
  const io = new Server(http);
  /** The bridge, with its private parts reachable for the STUB rows. */
  type Bridge = Record<string, any>;
  let auth: Bridge | undefined;
  const stubbed = (stage: Config) => config === stage || (config === "e-floor" && stage !== "e-session" && stage !== "e-passport");

  // STUB session middleware: a fixed session for the cookie's id, no store read (attribution only).
  const stubSession = function session(req: any, _res: unknown, next: () => void) {
    if (req.session) return next();
    req.sessionStore = store;
    const sid = sessionIds.get(req.headers.cookie);
    req.sessionID = sid ?? randomBytes(24).toString("base64url");
    req.session = {
      cookie: { originalMaxAge: 60 * 60 * 1000, expires: new Date(expires), secure: false, httpOnly: true, path: "/" },
      passport: sid ? { user: `user-${cookies.indexOf(req.headers.cookie)}` } : undefined,
    };
    next();
  };
  // STUB Passport: the user straight from the session (attribution only).
  const stubPassport = {
    _key: "passport",
    _deserializers: [(id: string, done: (err: unknown, user: unknown) => void) => done(null, { id, name: id })],
    session() {
      return function authenticate(req: any, _res: unknown, next: () => void) {
        const id = req.session?.passport?.user;
        if (id !== undefined) req[req._userProperty ?? "user"] = { id, name: id };
        next();
      };
    },
    deserializeUser: (id: string, _req: unknown, done: (err: unknown, user: unknown) => void) => done(null, { id, name: id }),
    serializeUser: (user: { id: string }, _req: unknown, done: (err: unknown, id: unknown) => void) => done(null, user.id),
    authenticate: () => {
      throw new Error("not in this bench");
    },
  };

  type Middleware = (req: any, res: any, next: (err?: unknown) => void) => void;
  const onlyForHandshake =
    (middleware: Middleware): Middleware =>
    (req, res, next) => {
      if (req._query.sid === undefined) middleware(req, res, next);
      else next();
    };
  switch (config) {
    case "a":
      break;
    case "b":
      io.engine.use(onlyForHandshake(sessionMiddleware as Middleware));
      io.engine.use(onlyForHandshake(passport.session() as Middleware));
      io.engine.use(
        onlyForHandshake((req, res, next) => {
          if (req.user) next();
          else {
            res.writeHead(401);
            res.end();
          }
        }),
      );
      break;
    case "w": {
      // Socket.IO 4's older docs: the two middlewares wrapped for io.use(), and a check. A store read per handshake.
      const wrap = (middleware: Middleware) => (socket: { request: unknown }, next: (err?: Error) => void) =>
        middleware(socket.request, {}, next as (err?: unknown) => void);
      const passportSession = passport.session() as Middleware;
      io.use(wrap(sessionMiddleware as Middleware));
      io.use(wrap(passportSession));
      io.use((socket, next) => (socket.request.user ? next() : next(new Error("unauthorized"))));
      break;
    }
    case "d":
      io.use(passportSocketIo.authorize({ cookieParser: cookieParser.default, key: KEY, secret: SECRET, store, passport }));
      break;
    default: {
      auth = bridge(io, {
        session: stubbed("e-session") ? stubSession : sessionMiddleware,
        passport: stubbed("e-passport") ? stubPassport : passport,
        ...(stubbed("e-origin") ? { origins: false as const } : {}),
        ...(stubbed("e-keepalive") ? { keepAliveMs: false as const } : {}),
        ...(stubbed("e-revalidate") ? { revalidateEveryMs: false as const } : {}),
      }) as unknown as Bridge;
      if (stubbed("e-admission")) {
        // STUB: the Origin check and the user, nothing else of the Gate (attribution only).
        const gate = auth.gate;
        gate.admit = async (socket: any) => {
          const decided = await gate.security.screen(socket.request);
          const identity = await gate.handshake.authenticate(socket.request);
          decided();
          const handshake = { identity: Promise.resolve(identity), request: socket.request, ticket: 0, startedAt: Date.now(), settled: true };
          return { identity, ticket: 0, finished: true, handshake };
        };
      }
      if (stubbed("e-rooms")) {
        // STUB: the adapter skips every join but the socket's own room (attribution only).
        const adapter = io.of("/").adapter as any;
        const addAll = adapter.addAll.bind(adapter);
        adapter.addAll = (id: string, rooms: Set<string>) => (rooms.has(id) ? addAll(id, rooms) : undefined);
      }
      if (stubbed("e-live")) {
        // STUB: no live-session tracking at all (attribution only).
        auth.live.add = () => undefined;
      }
    }
  }
  io.on("connection", (socket) => {
    socket.on("ping", (ack: () => void) => ack());
  });

  // One handshake: a fake Engine.IO connection with a real IncomingMessage, then a CONNECT to "/".
  let refused = 0;
  const detached = () => ({
    statusCode: 200,
    writeHead() {
      return this;
    },
    setHeader() {},
    getHeader() {
      return undefined;
    },
    removeHeader() {},
    write() {
      return true;
    },
    end() {
      return this;
    },
  });
  const engine = io.engine as unknown as { _applyMiddlewares(req: unknown, res: unknown, cb: (err?: unknown) => void): void };
  const handshake = (i: number): Promise<FakeConnection> => {
    const req = handshakeRequest({
      host: "127.0.0.1:3000",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-extensions": "permessage-deflate; client_max_window_bits",
      ...(WITH_ORIGIN ? { origin: "http://127.0.0.1:3000" } : {}),
      cookie: cookies[i % cookies.length]!,
    });
    const conn = new FakeConnection(req);
    return new Promise<FakeConnection>((resolve) => {
      conn.answered = (ok) => {
        if (!ok) refused++;
        resolve(conn);
      };
      const open = () => openConnection(io, conn);
      if (config === "b") engine._applyMiddlewares(req, detached(), (err) => (err ? conn.answered(false) : open()));
      else open();
    });
  };
  const connectAll = async (total: number): Promise<FakeConnection[]> => {
    const conns: FakeConnection[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, total) }, async () => {
        while (next < total) conns.push(await handshake(next++));
      }),
    );
    return conns;
  };
  const closeAll = async (conns: FakeConnection[]) => {
    for (const conn of conns) conn.end();
    // (A suspended async function keeps its dead locals: the array must not keep the connections.)
    conns.length = 0;
    await new Promise((resolve) => setImmediate(resolve));
  };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  const figures: Figures = { cpu: [], gc: [], close: [], bytes: [], gets: NaN, counts: {}, pendingTimers: NaN, retained: NaN, refused: 0 };
  await closeAll(await connectAll(WARMUP));
  await settle();

  // Timers left pending by connected sockets (socket.io's and the bridge's).
  const pendingTimers = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length;
  for (let w = 0; w < WINDOWS; w++) {
    // GC time (each GC's cost) and bytes allocated (the heap's growth plus what each GC freed) in the window.
    const profiler = new v8.GCProfiler();
    gets = 0;
    profiler.start();
    const heapBefore = v8.getHeapStatistics().used_heap_size;
    const started = process.cpuUsage();
    const conns = await connectAll(HANDSHAKES);
    const used = process.cpuUsage(started);
    const heapAfter = v8.getHeapStatistics().used_heap_size;
    const { statistics } = profiler.stop() as { statistics: any[] };
    const freed = statistics.reduce((sum, gc) => sum + gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize, 0);
    if (process.env.HS_GCLOG) {
      const byType = new Map<string, number[]>();
      for (const gc of statistics) byType.set(gc.gcType, [...(byType.get(gc.gcType) ?? []), Math.round(gc.cost)]);
      console.error(`  ${config}/${kind} window ${w}: ${[...byType].map(([type, costs]) => `${type} ×${costs.length} (${costs.join(", ")} µs)`).join("; ")}`);
    }
    figures.cpu.push((used.user + used.system) / HANDSHAKES);
    figures.gc.push(statistics.reduce((sum, gc) => sum + gc.cost, 0) / HANDSHAKES);
    figures.bytes.push((heapAfter - heapBefore + freed) / HANDSHAKES);
    figures.gets = gets / HANDSHAKES;
    const pendingConnected = pendingTimers();
    const closing = process.cpuUsage();
    await closeAll(conns);
    const closed = process.cpuUsage(closing);
    figures.close.push((closed.user + closed.system) / HANDSHAKES);
    await settle();
    figures.pendingTimers = (pendingConnected - pendingTimers()) / HANDSHAKES;
  }

  // Bytes retained per connected socket: the heap after full GCs with the sockets held, and after they closed.
  {
    const heap = () => {
      for (let i = 0; i < 3; i++) global.gc!();
      return v8.getHeapStatistics().used_heap_size;
    };
    const conns = await connectAll(HANDSHAKES);
    const held = heap();
    // HS_SNAPSHOT=<dir>: a heap snapshot with the sockets held, to see what each one keeps.
    if (process.env.HS_SNAPSHOT) v8.writeHeapSnapshot(join(process.env.HS_SNAPSHOT, `${config}-${kind}.heapsnapshot`));
    await closeAll(conns);
    await settle();
    figures.retained = (held - heap()) / HANDSHAKES;
  }

  // Promises, timers, immediates and ticks created per handshake.
  {
    const counts: Record<string, number> = {};
    const hook = createHook({
      init(_id, type) {
        counts[type] = (counts[type] ?? 0) + 1;
      },
    });
    const total = Math.min(HANDSHAKES, 500);
    hook.enable();
    const conns = await connectAll(total);
    hook.disable();
    for (const type of Object.keys(counts)) counts[type] = counts[type]! / total;
    figures.counts = counts;
    await closeAll(conns);
    await settle();
  }

  if (PROFILE_DIR) {
    const session = new inspector.Session();
    session.connect();
    const post = (method: string, params?: object) =>
      new Promise<any>((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
    const name = `${config}-${kind}`;
    await post("Profiler.enable");
    await post("Profiler.setSamplingInterval", { interval: 100 });
    await post("Profiler.start");
    let conns = await connectAll(HANDSHAKES);
    const { profile } = await post("Profiler.stop");
    writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
    await closeAll(conns);
    await settle();
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    conns = await connectAll(HANDSHAKES);
    const { profile: heap } = await post("HeapProfiler.stopSampling");
    writeFileSync(join(PROFILE_DIR, `${name}.heapprofile`), JSON.stringify(heap));
    await closeAll(conns);
    figures.profile = { cpu: cpuSummary(profile, HANDSHAKES), heap: heapSummary(heap, HANDSHAKES) };
    session.disconnect();
  }

  figures.refused = refused;
  io.close();
  client?.disconnect();
  void auth;
  return figures;
}

/** Which package a profile frame belongs to. */
function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  // The innermost package (engine.io's own ws is ws, not engine.io).
  const match = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url.replaceAll("\\", "/"));
  if (match) return match[1]!;
  if (/\/dist\/|\/bench-dist-/.test(url)) return "bridge";
  if (url.startsWith("node:")) return "node";
  return "bench";
}

/** Self time per handshake of one CPU profile, by package and by function (µs). */
function selfTimes(profile: any, handshakes: number): { byPackage: Map<string, number>; byFunction: Map<string, number>; inclusive: Map<string, number> } {
  const nodes = new Map<number, any>(profile.nodes.map((node: any) => [node.id, node]));
  const dt = new Map<number, number>();
  // Each sample counts as one median interval: a long delta is the process waiting for a core (other work on
  // the machine), not time spent in whatever frame comes next. (The first delta spans the profiler's start.)
  const deltas = [...profile.timeDeltas.slice(1)].sort((a: number, b: number) => a - b);
  const interval = deltas[Math.floor(deltas.length / 2)] ?? 0;
  profile.samples.forEach((id: number, i: number) => i > 0 && dt.set(id, (dt.get(id) ?? 0) + interval));
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, micros] of dt) {
    const { callFrame } = nodes.get(id);
    const pkg = packageOf(callFrame.url, callFrame.functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
    const key = `${callFrame.functionName || "(anonymous)"} ${pkg}:${callFrame.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  }
  // Inclusive: each function's own time and its callees', counted once per sample however deep it recurses.
  const inclusive = new Map<string, number>();
  const walk = (id: number, path: Set<string>) => {
    const node = nodes.get(id);
    const { callFrame } = node;
    const key = `${callFrame.functionName || "(anonymous)"} ${packageOf(callFrame.url, callFrame.functionName)}:${callFrame.lineNumber + 1}`;
    const added = !path.has(key);
    if (added) path.add(key);
    const micros = dt.get(id) ?? 0;
    if (micros) for (const k of path) inclusive.set(k, (inclusive.get(k) ?? 0) + micros);
    for (const child of node.children ?? []) walk(child, path);
    if (added) path.delete(key);
  };
  walk(profile.nodes[0].id, new Set());
  for (const m of [byPackage, byFunction, inclusive]) for (const [k, v] of m) m.set(k, v / handshakes);
  return { byPackage, byFunction, inclusive };
}

function cpuSummary(profile: any, handshakes: number): string[] {
  const { byPackage, byFunction } = selfTimes(profile, 1);
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((x, y) => y[1] - x[1]).slice(0, n).map(([k, v]) => `${(v / handshakes).toFixed(1).padStart(6)} µs  ${k}`);
  return ["self time per handshake, by package:", ...top(byPackage, 12), "by function:", ...top(byFunction, 20)];
}

/**
 * tsx bench/handshake.ts compare <dir> <variant> <variant> [transport] [handshakes]: the CPU profiles that
 * `BENCH_CPU_PROF=<dir> npm run bench` saved (<variant>-<transport>-<pid>.cpuprofile), the second variant against
 * the first: self time per handshake by package and by function, the median over each variant's profiles, with
 * the difference's range over the rounds (profiles paired in the order they were written).
 */
function compareProfiles(dir: string, first: string, second: string, transport: string, handshakes: number, rows: number): string[] {
  const of = (variant: string) =>
    readdirSync(dir)
      .filter((f) => f.startsWith(`${variant}-${transport}-`) && f.endsWith(".cpuprofile"))
      .map((f) => join(dir, f))
      .sort((x, y) => statSync(x).mtimeMs - statSync(y).mtimeMs)
      .map((f) => selfTimes(JSON.parse(readFileSync(f, "utf8")), handshakes));
  const [a, b] = [of(first), of(second)];
  if (!a.length || !b.length) throw new Error(`no ${first}-${transport}-* or ${second}-${transport}-* profiles in ${dir}`);
  const table = (pick: (t: ReturnType<typeof selfTimes>) => Map<string, number>, title: string) => {
    const keys = new Set([...a, ...b].flatMap((t) => [...pick(t).keys()]));
    const lines = [...keys].map((key) => {
      const [x, y] = [a, b].map((runs) => median(runs.map((t) => pick(t).get(key) ?? 0)));
      const diffs = a.slice(0, b.length).map((t, i) => (pick(b[i]!).get(key) ?? 0) - (pick(t).get(key) ?? 0));
      return { key, x: x!, y: y!, d: y! - x!, lo: Math.min(...diffs), hi: Math.max(...diffs) };
    });
    lines.sort((p, q) => Math.abs(q.d) - Math.abs(p.d));
    const f = (n: number) => n.toFixed(1).padStart(7);
    return [
      `${title}: ${first} | ${second} | difference (range over ${Math.min(a.length, b.length)} rounds)`,
      ...lines.slice(0, rows).map((l) => `${f(l.x)} ${f(l.y)} ${f(l.d)} (${l.lo.toFixed(1)}..${l.hi.toFixed(1)})  ${l.key}`),
    ];
  };
  const totals = (runs: ReturnType<typeof selfTimes>[]) =>
    runs.map((t) => [...t.byPackage].filter(([k]) => k !== "(idle)").reduce((n, [, v]) => n + v, 0));
  return [
    `busy (all but (idle)) per handshake: ${first} ${totals(a).map((n) => n.toFixed(0)).join(", ")}; ${second} ${totals(b).map((n) => n.toFixed(0)).join(", ")}`,
    ...table((t) => t.byPackage, "by package"),
    ...table((t) => t.byFunction, "by function"),
    ...table((t) => t.inclusive, "by function, inclusive (with its callees)"),
  ];
}

function heapSummary(profile: any, handshakes: number): string[] {
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const walk = (node: any) => {
    const self = node.selfSize as number;
    if (self) {
      const { callFrame } = node;
      const pkg = packageOf(callFrame.url, callFrame.functionName);
      const key = `${callFrame.functionName || "(anonymous)"} ${pkg}:${callFrame.lineNumber + 1}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + self);
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + self);
    }
    for (const childNode of node.children ?? []) walk(childNode);
  };
  walk(profile.head);
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((x, y) => y[1] - x[1]).slice(0, n).map(([k, v]) => `${(v / handshakes).toFixed(0).padStart(6)} B  ${k}`);
  return ["sampled allocations per handshake, by package:", ...top(byPackage, 12), "by function:", ...top(byFunction, 20)];
}

// ---------------------------------------------------------------------------------------------------------------
// The parent: interleaved rounds of child processes, then the tables.
// ---------------------------------------------------------------------------------------------------------------

const median = (values: number[]) => {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : NaN;
};

function runChild(config: Config, kind: StoreKind, redisUrl: string): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const proc = fork(here, ["child", config, kind, redisUrl], {
      execArgv: ["--import", "tsx", "--expose-gc"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let result: Figures | undefined;
    proc.on("message", (message: { ok: boolean; figures?: Figures; error?: string }) => {
      if (message.ok) result = message.figures;
      else reject(new Error(`${config}/${kind}: ${message.error}`));
    });
    proc.on("exit", (code) => (result ? resolve(result) : reject(new Error(`${config}/${kind} exited with ${code}`))));
  });
}

async function parent() {
  const { startRedis } = await import("../spec/helpers/redis-server.js");
  const configs = (process.env.HS_CONFIGS?.split(",") ?? Object.keys(CONFIGS)) as Config[];
  for (const config of configs) if (!(config in CONFIGS)) throw new Error(`unknown configuration ${config}`);
  const stores = (process.env.HS_STORES?.split(",") ?? ["redis", "memory"]) as StoreKind[];
  const redis = stores.includes("redis") ? await startRedis() : undefined;
  // Every child loads this snapshot of the build, whatever rebuilds dist/ while the bench runs. HS_DIST_FROM=<dir>
  // measures another build instead (e.g. one of an earlier commit, for a before/after breakdown).
  const snapshot = join(dirname(here), "..", ".tmp", `bench-dist-${process.pid}`);
  cpSync(process.env.HS_DIST_FROM ?? join(dirname(here), "..", "dist"), snapshot, { recursive: true });
  process.env.HS_DIST = snapshot;
  // Interrupted, the bench still stops its Redis and removes its snapshot.
  const interrupted = () => {
    void redis?.close().finally(() => {
      rmSync(snapshot, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const results = new Map<string, Figures[]>();
  const started = Date.now();
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const kind of stores) {
        const order = configs.map((_, i) => configs[(i + round - 1) % configs.length]!);
        for (const config of order) {
          const figures = await runChild(config, kind, redis?.url ?? "");
          const key = `${config}/${kind}`;
          results.set(key, [...(results.get(key) ?? []), figures]);
          console.error(
            `round ${round} ${kind} ${config}: ${figures.cpu.map((c) => c.toFixed(0)).join("/")} µs, ${(median(figures.bytes) / 1024).toFixed(1)} KB`,
          );
          if (figures.profile) console.error([...figures.profile.cpu, ...figures.profile.heap].map((l) => `    ${l}`).join("\n"));
        }
      }
    }
  } finally {
    await redis?.close();
    rmSync(snapshot, { recursive: true, force: true });
  }
  const lines: string[] = [];
  if (process.env.HS_DIST_FROM) lines.push(`Build measured: ${process.env.HS_DIST_LABEL ?? process.env.HS_DIST_FROM}.`);
  lines.push(
    `In-process handshakes (bench/handshake.ts): ${HANDSHAKES} per window, ${CONCURRENCY} at a time, sockets held, ` +
      `${SESSIONS} sessions, ${WITH_ORIGIN ? "with" : "without"} an Origin header; ${WARMUP} for warm-up; ` +
      `median of ${WINDOWS} windows × ${ROUNDS} interleaved processes; Node ${process.version}; ${Math.round((Date.now() - started) / 1000)} s.`,
    "Bytes: v8.GCProfiler (heap growth + bytes each GC freed) over one window. Counts: async_hooks over one window.",
    "STUB rows replace a stage with a stub, for attribution only. Δ: against (e) with the same store.",
    "",
  );
  for (const kind of stores) {
    const e = results.get(`e/${kind}`);
    const eCpu = e ? median(e.flatMap((f) => f.cpu)) : NaN;
    const eBytes = e ? median(e.flatMap((f) => f.bytes)) : NaN;
    const eMin = e ? Math.min(...e.flatMap((f) => f.cpu)) : NaN;
    const header = [
      `${kind === "redis" ? "Redis store" : "MemoryStore"}`,
      "CPU µs/hs",
      "Δ CPU",
      "min CPU",
      "Δ min",
      "per process",
      "GC µs/hs",
      "KB alloc/hs",
      "Δ KB",
      "GETs/hs",
      "promises/hs",
      "timeouts/hs",
      "immediates/hs",
      "ticks/hs",
      "timers held/socket",
      "KB held/socket",
      "close µs/socket",
    ];
    const rows: string[][] = [];
    for (const config of configs) {
      const all = results.get(`${config}/${kind}`);
      if (!all) continue;
      const cpu = median(all.flatMap((f) => f.cpu));
      const bytes = median(all.flatMap((f) => f.bytes));
      const least = Math.min(...all.flatMap((f) => f.cpu));
      const count = (type: string) => median(all.map((f) => f.counts[type] ?? 0)).toFixed(1);
      const isE = config.startsWith("e");
      rows.push([
        CONFIGS[config],
        cpu.toFixed(0),
        isE && config !== "e" ? signed(cpu - eCpu, 0) : "",
        least.toFixed(0),
        isE && config !== "e" ? signed(least - eMin, 0) : "",
        all.map((f) => median(f.cpu).toFixed(0)).join("/"),
        median(all.flatMap((f) => f.gc)).toFixed(0),
        (bytes / 1024).toFixed(1),
        isE && config !== "e" ? signed((bytes - eBytes) / 1024, 1) : "",
        median(all.map((f) => f.gets)).toFixed(2),
        count("PROMISE"),
        count("Timeout"),
        count("Immediate"),
        count("TickObject"),
        median(all.map((f) => f.pendingTimers)).toFixed(2),
        (median(all.map((f) => f.retained)) / 1024).toFixed(2),
        median(all.flatMap((f) => f.close)).toFixed(0),
      ]);
      const refused = all.reduce((n, f) => n + f.refused, 0);
      if (refused) rows.at(-1)![0] += ` (${refused} refused!)`;
    }
    lines.push(...table(header, rows), "");
  }
  console.log(lines.join("\n"));
}

const signed = (n: number, digits: number) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`;

function table(header: string[], rows: string[][]): string[] {
  if (MARKDOWN) {
    return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), ...rows.map(line)];
}

if (process.argv[2] === "summarize") {
  // tsx bench/handshake.ts summarize <file.cpuprofile|file.heapprofile> [handshakes]: the same summary for any
  // profile, e.g. those `BENCH_CPU_PROF=<dir> npm run bench` saves of the real servers' measured windows.
  const file = process.argv[3]!;
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const count = Number(process.argv[4] ?? 1500);
  console.log((file.endsWith(".heapprofile") ? heapSummary(profile, count) : cpuSummary(profile, count)).join("\n"));
} else if (process.argv[2] === "compare") {
  const [, , , dir, first, second, transport = "websocket", count = "1500", rows = "40"] = process.argv as string[];
  console.log(compareProfiles(dir!, first!, second!, transport, Number(count), Number(rows)).join("\n"));
} else if (process.argv[2] === "child") {
  const [, , , config, kind, redisUrl] = process.argv as [string, string, string, Config, StoreKind, string];
  child(config, kind, redisUrl).then(
    (figures) => {
      process.send!({ ok: true, figures }, () => process.exit(0));
    },
    (err: Error) => {
      process.send!({ ok: false, error: err.stack ?? String(err) }, () => process.exit(1));
    },
  );
} else {
  await parent();
}
