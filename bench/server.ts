/**
 * One benchmark server: an Express + passport-local app on a Redis session store (connect-redis 8 + ioredis),
 * with Socket.IO authenticated one of five ways. Driven by bench/run.ts over IPC; run with --expose-gc.
 *
 *   a  no authentication
 *   b  the Socket.IO docs' Passport recipe: session + passport.session() on io.engine, handshake only
 *   c  the Socket.IO docs' express-session example: io.engine.use(session) on every request (resave: true)
 *   d  passport.socketio 3.7.0
 *   e  passport-socketio-bridge
 */
import { createHook } from "node:async_hooks";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Socket as NetSocket } from "node:net";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import inspector from "node:inspector";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { GCProfiler, getHeapStatistics, writeHeapSnapshot } from "node:v8";
import { createAdapter } from "@socket.io/redis-adapter";
import { RedisStore } from "connect-redis";
import cookieParser from "cookie-parser";
import express from "express";
import session from "express-session";
import { Redis } from "ioredis";
import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
// @ts-expect-error: passport.socketio has no types.
import passportSocketIo from "passport.socketio";
import { Server } from "socket.io";

// The build bench/run.ts snapshotted when it began (other builds may rewrite dist/ meanwhile), else the package's.
const [variant, redisUrl, prefix, clustered] = process.argv.slice(2) as [Variant, string, string, string?];
// (f): the bridge of another build (bench/run.ts's BENCH_BASELINE), measured beside this tree's (e).
const dist = variant === "f" ? process.env.BENCH_BASELINE_DIST : process.env.BENCH_DIST;
const { bridge } = (await import(
  dist ? pathToFileURL(join(dist, "index.js")).href : "passport-socketio-bridge"
)) as typeof import("passport-socketio-bridge");

export type Variant = "a" | "b" | "c" | "d" | "e" | "f";

export type Command =
  | { type: "cpu-start"; label?: string }
  | { type: "cpu-stop" }
  | { type: "heap" }
  | { type: "snapshot" }
  | { type: "stop" };

const SECRET = "bench secret";
const callgrind = process.env.BENCH_CALLGRIND === "1";
const KEY = "connect.sid";

const client = new Redis(redisUrl);
client.on("error", () => undefined);
const store = new RedisStore({ client, prefix });
// The docs' express-session example uses resave and saveUninitialized; the others the recommended settings.
const sessionMiddleware = session({
  secret: SECRET,
  name: KEY,
  store,
  resave: variant === "c",
  saveUninitialized: variant === "c",
  cookie: { maxAge: 60 * 60 * 1000 },
});

const passport = new Passport();
passport.use(new LocalStrategy((username, _password, done) => done(null, { id: username, name: username })));
passport.serializeUser((user, done) => done(null, (user as { id: string }).id));
passport.deserializeUser((id: string, done) => done(null, { id, name: id }));

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(sessionMiddleware);
app.use(passport.session());
app.post("/login", passport.authenticate("local"), (_req, res) => res.sendStatus(204));
app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(err) : res.sendStatus(204))));

const http = createServer(app);
const io = new Server(http, { maxHttpBufferSize: 1e6 });
if (clustered) io.adapter(createAdapter(client.duplicate(), client.duplicate()));

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
const onlyForHandshake =
  (middleware: Middleware): Middleware =>
  (req, res, next) => {
    const isHandshake = (req as unknown as { _query: { sid?: string } })._query.sid === undefined;
    if (isHandshake) middleware(req, res, next);
    else next();
  };

switch (variant) {
  case "a":
    break;
  case "b":
    io.engine.use(onlyForHandshake(sessionMiddleware as unknown as Middleware));
    io.engine.use(onlyForHandshake(passport.session() as unknown as Middleware));
    io.engine.use(
      onlyForHandshake((req, res, next) => {
        if ((req as IncomingMessage & { user?: unknown }).user) next();
        else {
          res.writeHead(401);
          res.end();
        }
      }),
    );
    break;
  case "c":
    io.engine.use(sessionMiddleware);
    break;
  case "d":
    io.use(passportSocketIo.authorize({ cookieParser, key: KEY, secret: SECRET, store, passport }));
    break;
  case "e":
  case "f":
    // (Under callgrind a second lasts about fifty: the session cache keeps its real-time reach.)
    bridge(io, { session: sessionMiddleware, passport, ...(callgrind ? { sessionCacheMs: 100_000 } : {}) });
    break;
}

io.on("connection", (socket) => {
  socket.on("ping", (ack: () => void) => ack());
});

/**
 * BENCH_COUNTS=1: what each measured window did besides CPU, per handshake: TCP writes (calls into the socket's
 * handle, Redis's included) and their bytes, WebSocket frames sent, async resources created by type (timers,
 * promises, ticks), GCs; and, once it ends, the listeners each connected socket and its connection carry.
 * Opt-in: the counting itself costs CPU.
 */
const counting = process.env.BENCH_COUNTS === "1";
const counts = new Map<string, number>();
const bump = (key: string, n = 1) => counts.set(key, (counts.get(key) ?? 0) + n);
let windowOpen = false;
if (counting) {
  const proto = NetSocket.prototype as unknown as { _writeGeneric(writev: boolean, data: any, encoding: string, cb: unknown): unknown };
  const writeGeneric = proto._writeGeneric;
  proto._writeGeneric = function (writev, data, encoding, cb) {
    if (windowOpen) {
      const to = (this as unknown as NetSocket).remotePort === Number(new URL(redisUrl).port) ? "redis" : "client";
      bump(`tcp writes to ${to}`);
      const chunks: Array<{ chunk: { length: number } }> | undefined = writev ? data : undefined;
      bump(`tcp bytes to ${to}`, chunks ? chunks.reduce((n, c) => n + c.chunk.length, 0) : Buffer.byteLength(data, encoding as BufferEncoding));
    }
    return writeGeneric.call(this, writev, data, encoding, cb);
  };
  // engine.io's own copy of ws.
  const ws = createRequire(createRequire(import.meta.url).resolve("engine.io"))("ws") as { Sender: { prototype: { sendFrame(...args: unknown[]): unknown } } };
  const sendFrame = ws.Sender.prototype.sendFrame;
  ws.Sender.prototype.sendFrame = function (...args: unknown[]) {
    if (windowOpen) bump("websocket frames sent");
    return sendFrame.apply(this, args);
  };
  createHook({ init: (_id, type) => windowOpen && bump(`created ${type}`) }).enable();
}
/**
 * CPU time per thread kind (Linux's /proc/self/task: the main thread, V8's workers (GC, compilers), libuv's
 * pool, the inspector), in clock ticks of 10 ms, user and system together: where process.cpuUsage() goes
 * besides the main thread, which a CPU profile samples alone.
 */
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const kind = tid === String(process.pid) ? "main thread" : name.replace(/[\d-]+$/, "").trim();
      ticks.set(kind, (ticks.get(kind) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // (A thread that ended meanwhile.)
    }
  }
  return ticks;
}
let ticksAtStart = new Map<string, number>();

/** Listeners on each connected socket of "/", its Engine.IO socket and its transport, on average. */
function listenersPerSocket(): Record<string, number> {
  const sockets = [...io.of("/").sockets.values()];
  const sum = (emitter: (s: (typeof sockets)[number]) => NodeJS.EventEmitter) =>
    sockets.reduce((n, s) => n + emitter(s).eventNames().reduce((m, name) => m + emitter(s).listenerCount(name), 0), 0) / (sockets.length || 1);
  return {
    "listeners on socket": sum((s) => s),
    "listeners on engine socket": sum((s) => s.conn as unknown as NodeJS.EventEmitter),
    "listeners on transport": sum((s) => (s.conn as unknown as { transport: NodeJS.EventEmitter }).transport),
    "own properties on socket": sockets.reduce((n, s) => n + Object.keys(s).length, 0) / (sockets.length || 1),
  };
}

// BENCH_CALLGRIND=1 (bench/run.ts runs this process under callgrind): instructions counted in the window only.
const callgrindControl = (...args: string[]) => execFileSync("callgrind_control", [...args, String(process.pid)], { stdio: "ignore" });
function callgrindInstructions(): number {
  callgrindControl("-d", "window");
  callgrindControl("-i", "off");
  const file = `/tmp/psb-callgrind.${process.pid}.1`;
  const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, "utf8"));
  if (process.env.BENCH_CALLGRIND_KEEP) execFileSync("cp", [file, join(process.env.BENCH_CALLGRIND_KEEP, `${variant}-${label}${process.pid}.callgrind`)]);
  rmSync(file);
  return Number(totals?.[1]);
}

type GcHeap = { heapStatistics: { usedHeapSize: number } };
let cpu: NodeJS.CpuUsage | undefined;
// GC time and bytes allocated in the measured window: each GC's cost, and the heap's growth plus what GCs freed.
let gcProfiler: GCProfiler | undefined;
let heapAtStart = 0;
let label = "";
// BENCH_CPU_PROF=<dir>: a V8 CPU profile of each measured window (the handshakes only) goes to <dir>.
const profileDir = process.env.BENCH_CPU_PROF;
const profiler = profileDir ? new inspector.Session() : undefined;
profiler?.connect();
const post = (method: "Profiler.enable" | "Profiler.start" | "Profiler.stop" | "Profiler.setSamplingInterval", params?: object) =>
  new Promise<any>((resolve, reject) => profiler!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
process.on("message", (command: Command) => {
  switch (command.type) {
    case "cpu-start":
      label = command.label ? `${command.label}-` : "";
      if (profiler) {
        void post("Profiler.enable")
          .then(() => post("Profiler.setSamplingInterval", { interval: 200 }))
          .then(() => post("Profiler.start"));
      }
      gcProfiler = new GCProfiler();
      gcProfiler.start();
      heapAtStart = getHeapStatistics().used_heap_size;
      counts.clear();
      windowOpen = counting;
      ticksAtStart = threadTicks();
      if (callgrind) callgrindControl("-i", "on");
      cpu = process.cpuUsage();
      return process.send!({ type: "cpu-start" });
    case "cpu-stop": {
      const used = process.cpuUsage(cpu);
      windowOpen = false;
      const instructions = callgrind ? callgrindInstructions() : undefined;
      const heapNow = getHeapStatistics().used_heap_size;
      const { statistics } = gcProfiler!.stop() as unknown as { statistics: Array<{ cost: number; beforeGC: GcHeap; afterGC: GcHeap }> };
      const gcMicros = statistics.reduce((sum, gc) => sum + gc.cost, 0);
      const freed = statistics.reduce((sum, gc) => sum + gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize, 0);
      if (profiler) {
        void post("Profiler.stop").then(({ profile }) =>
          writeFileSync(join(profileDir!, `${variant}-${label}${process.pid}.cpuprofile`), JSON.stringify(profile)),
        );
      }
      if (counting) bump("GCs", statistics.length);
      // CPU by thread: the main thread, and everything else (V8's compiler and GC workers, libuv's pool).
      let mainMicros = 0;
      let otherMicros = 0;
      for (const [kind, ticks] of threadTicks()) {
        const micros = (ticks - (ticksAtStart.get(kind) ?? 0)) * 10_000;
        if (kind === "main thread") mainMicros += micros;
        else otherMicros += micros;
        if (counting) bump(`µs on ${kind} (10 ms ticks)`, micros);
      }
      const extra = counting ? { counts: Object.fromEntries(counts), listeners: listenersPerSocket() } : {};
      return process.send!({ type: "cpu", micros: used.user + used.system, gcMicros, bytes: heapNow - heapAtStart + freed, instructions, mainMicros, otherMicros, ...extra });
    }
    case "snapshot":
      for (let i = 0; i < 3; i++) global.gc?.();
      return process.send!({ type: "snapshot", path: writeHeapSnapshot() });
    case "heap":
      for (let i = 0; i < 3; i++) global.gc?.();
      return process.send!({ type: "heap", bytes: process.memoryUsage().heapUsed });
    case "stop":
      io.close();
      http.closeAllConnections();
      client.disconnect();
      process.exit(0);
  }
});

http.listen(0, "127.0.0.1", () => {
  process.send!({ type: "ready", port: (http.address() as AddressInfo).port });
});
