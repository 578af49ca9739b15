/**
 * npm run bench: the five ways to authenticate Socket.IO with express-session and Passport, side by side on
 * one machine, one Redis, the same users; servers and the load generator in separate processes. Medians of
 * BENCH_ROUNDS interleaved rounds. A full run writes docs/benchmarks.md. BENCH_VARIANTS=d,e and
 * BENCH_PARTS=handshakes,heap,storm,latency pick a part (printed only); BENCH_CPU_PROF=<dir> saves V8 CPU
 * profiles of the servers' measured handshake windows. A full run also runs the in-process stage breakdown
 * (bench/handshake.ts) and shows it beside the one recorded before (bench/handshake-before.md); BENCH_STAGES=0
 * leaves it out, BENCH_STAGES=1 adds it to a partial run. BENCH_COUNTS=1 prints what each window did per handshake
 * (TCP writes, WebSocket frames, timers, promises, GCs) and the listeners per connected socket (bench/server.ts).
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { startRedis } from "../spec/helpers/redis-server.js";
import { drawCharts } from "./charts.js";
import type { LoadCommand, Transport } from "./load.js";
import type { Command, Variant } from "./server.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env("BENCH_ROUNDS", 5);
const HANDSHAKES = env("BENCH_HANDSHAKES", 1500);
const WARMUP = env("BENCH_WARMUP", 200);
/**
 * BENCH_RATE=<handshakes per second>: the measured handshakes arrive at this pace (at most 20 in flight) instead of
 * as fast as the server answers, so every variant works at the same rate (and competes as much with the load).
 */
const RATE = process.env.BENCH_RATE ? Number(process.env.BENCH_RATE) : undefined;
const HEAP_SOCKETS = env("BENCH_HEAP_SOCKETS", 10_000);
const STORM_SOCKETS = env("BENCH_STORM_SOCKETS", 5000);
const STORM_SESSIONS = env("BENCH_STORM_SESSIONS", 500);
const LATENCY_SOCKETS = env("BENCH_LATENCY_SOCKETS", 1000);
const EVENTS = 1000;
/** Which measurements to run (all by default): handshakes, heap, storm, latency. */
const PARTS = new Set((process.env.BENCH_PARTS ?? "handshakes,heap,storm,latency").split(","));
/** Which variants to run (all by default), e.g. BENCH_VARIANTS=d,e. */
const ONLY = process.env.BENCH_VARIANTS?.split(",");
/** The bridge's default sessionCacheMs: a reconnect storm may read each session once per window of this. */
const SESSION_CACHE_MS = 2000;
/**
 * The bridge's published figures before the handshake-cost work (docs/benchmarks.md of 2026-11-27, commit 9ba41a4),
 * which the heap, store-command, storm and cross-node logout targets say must not get worse.
 */
const BEFORE = { heapKB: 11.5, pollingCommands: 0.03, stormGets: 500, logoutP50: 23.3, logoutP99: 54.1 };


const VARIANTS: Record<Variant, string> = {
  a: "(a) socket.io, no auth",
  b: "(b) docs' Passport recipe (io.engine, handshake only)",
  c: "(c) docs' express-session example (io.engine, every request)",
  d: "(d) passport.socketio 3.7.0",
  e: "(e) passport-socketio-bridge",
  // BENCH_BASELINE=<dist dir>: the bridge of another build (say, main's), interleaved with (e) in the same run.
  ...(process.env.BENCH_BASELINE ? { f: `(f) passport-socketio-bridge, ${process.env.BENCH_BASELINE}` } : {}),
} as Record<Variant, string>;
/** The pictures above the tables (bench/charts.ts draws them from the tables). */
const CHART_LINES = {
  handshakes: ["![Server CPU per handshake, for each setup and transport](images/bench-cpu.svg)", "", "![Store commands per handshake, for each setup and transport](images/bench-store.svg)"],
  memory: ["![Heap per connected socket, for each setup](images/bench-heap.svg)"],
};
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? "websocket,polling").split(",") as Transport[];
const STORE_COMMANDS = ["get", "set", "setex", "expire", "pexpire", "del", "mget", "exists"];

/** A child process spoken to one message at a time. */
class Child {
  private waiting: Array<(message: any) => void> = [];
  readonly ready: Promise<any>;
  constructor(readonly proc: ChildProcess) {
    proc.on("message", (message) => this.waiting.shift()?.(message));
    this.ready = this.next();
  }
  next(): Promise<any> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  async ask<T = any>(message: Command | LoadCommand): Promise<T> {
    const answer = this.next();
    this.proc.send(message);
    const reply = await answer;
    if (reply && reply.ok === false) throw new Error(reply.error);
    return (reply?.result ?? reply) as T;
  }
}

/**
 * BENCH_CALLGRIND=1: servers run under valgrind's callgrind, counting instructions only inside each measured
 * window (bench/server.ts turns counting on and off). Instructions, unlike CPU seconds, don't move with
 * whatever else the machine runs; they leave out the kernel's time and count V8's threads one after another.
 */
const CALLGRIND = process.env.BENCH_CALLGRIND === "1";
const VALGRIND = ["--tool=callgrind", "--instr-atstart=no", "--smc-check=all-non-file", "--callgrind-out-file=/tmp/psb-callgrind.%p"];

const spawn = (file: string, args: string[], gc = false) =>
  new Child(
    fork(join(here, file), args, {
      ...(gc && CALLGRIND ? { execPath: "valgrind" } : {}),
      // BENCH_SERVER_FLAGS: V8 flags for the servers only (say, --trace-deopt).
      execArgv: [
        ...(gc && CALLGRIND ? [...VALGRIND, process.execPath] : []),
        "--import",
        "tsx",
        ...(gc ? ["--expose-gc", ...(process.env.BENCH_SERVER_FLAGS?.split(" ").filter(Boolean) ?? [])] : []),
      ],
      stdio: "inherit",
    }),
  );

async function server(variant: Variant, redisUrl: string, prefix: string, clustered = false) {
  const child = spawn("server.ts", [variant, redisUrl, prefix, ...(clustered ? ["clustered"] : [])], true);
  const { port } = await child.ready;
  return { child, url: `http://127.0.0.1:${port}`, stop: () => child.proc.send({ type: "stop" } satisfies Command) };
}

async function storeCommands(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info("commandstats");
  const counts: Record<string, number> = {};
  for (const [, name, calls] of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    if (STORE_COMMANDS.includes(name!)) counts[name!.toUpperCase()] = Number(calls);
  }
  return counts;
}
const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : NaN;
};
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

interface HandshakeFigures {
  /** Server CPU per handshake in the first window (handshakes WARMUP+1 to WARMUP+HANDSHAKES of the process). */
  cpuMicros: number;
  /** Of which on threads other than the main thread (V8's compiler and GC workers, libuv), from /proc. */
  otherThreadsMicros: number;
  /** The same in a second window, once the process has done WARMUP + HANDSHAKES handshakes: the steady state. */
  warmCpuMicros: number;
  warmOtherThreadsMicros: number;
  /** Of which GC (V8's own cost of each GC in the window, all threads' wall time). */
  gcMicros: number;
  bytesAllocated: number;
  perSecond: number;
  p50: number;
  p99: number;
  commandsPerHandshake: number;
  commandsPer100Events: number;
  mix: string;
}

async function measureHandshakes(variant: Variant, transport: Transport, load: Child, redis: Redis, redisUrl: string, round: number) {
  const s = await server(variant, redisUrl, `bench:${round}:${variant}:${transport}:`);
  try {
    const cookies = await load.ask<string[]>({ type: "login", url: s.url, count: 50 });
    const connect = (count: number, rate?: number) => load.ask<{ latencies: number[]; failures: number; wallMs: number }>({
      type: "connect", url: s.url, cookies, transport, total: count, concurrency: 20, rate,
    });
    await connect(WARMUP);
    await load.ask({ type: "disconnect" });
    await redis.config("RESETSTAT");
    await s.child.ask({ type: "cpu-start", label: transport });
    const run = await connect(HANDSHAKES, RATE);
    const { micros, gcMicros, bytes, counts, listeners, instructions, otherMicros } = await s.child.ask<{
      micros: number;
      otherMicros: number;
      instructions?: number;
      gcMicros: number;
      bytes: number;
      counts?: Record<string, number>;
      listeners?: Record<string, number>;
    }>({ type: "cpu-stop" });
    // BENCH_COUNTS=1 (bench/server.ts): what the window did, per handshake.
    if (counts) {
      const perHandshake = Object.entries(counts).sort().map(([what, n]) => `${what} ${(n / HANDSHAKES).toFixed(2)}`);
      const perSocket = Object.entries(listeners ?? {}).map(([what, n]) => `${what} ${n.toFixed(1)}`);
      console.log(`  ${variant}/${transport} per handshake: ${perHandshake.join(", ")}\n  per connected socket: ${perSocket.join(", ")}`);
    }
    if (instructions !== undefined) console.log(`  ${variant}/${transport}: ${(instructions / HANDSHAKES / 1000).toFixed(0)} k instructions per handshake`);
    const handshakeCommands = await storeCommands(redis);
    if (run.failures) throw new Error(`${run.failures} handshakes failed for ${variant}/${transport}`);
    await redis.config("RESETSTAT");
    await load.ask({ type: "events", count: EVENTS });
    const eventCommands = total(await storeCommands(redis));
    await load.ask({ type: "disconnect" });
    // The same process again, warm: its code is compiled and optimized by now.
    await s.child.ask({ type: "cpu-start", label: `${transport}-warm` });
    const warmRun = await connect(HANDSHAKES, RATE);
    const warm = await s.child.ask<{ micros: number; otherMicros: number }>({ type: "cpu-stop" });
    await load.ask({ type: "disconnect" });
    if (warmRun.failures) throw new Error(`${warmRun.failures} warm handshakes failed for ${variant}/${transport}`);
    return {
      cpuMicros: micros / HANDSHAKES,
      otherThreadsMicros: otherMicros / HANDSHAKES,
      warmCpuMicros: warm.micros / HANDSHAKES,
      warmOtherThreadsMicros: warm.otherMicros / HANDSHAKES,
      gcMicros: gcMicros / HANDSHAKES,
      bytesAllocated: bytes / HANDSHAKES,
      perSecond: HANDSHAKES / (run.wallMs / 1000),
      p50: percentile(run.latencies, 50),
      p99: percentile(run.latencies, 99),
      commandsPerHandshake: total(handshakeCommands) / HANDSHAKES,
      commandsPer100Events: (eventCommands / EVENTS) * 100,
      mix: Object.entries(handshakeCommands).map(([name, n]) => `${(n / HANDSHAKES).toFixed(2)} ${name}`).join(", ") || "none",
    } satisfies HandshakeFigures;
  } finally {
    s.stop();
  }
}

async function measureHeap(variant: Variant, load: Child, redisUrl: string, round: number) {
  const s = await server(variant, redisUrl, `bench:heap:${round}:${variant}:`);
  try {
    const cookies = await load.ask<string[]>({ type: "login", url: s.url, count: Math.ceil(HEAP_SOCKETS / 10) });
    await load.ask({ type: "connect", url: s.url, cookies, transport: "websocket", total: 200, concurrency: 50 });
    await load.ask({ type: "disconnect" });
    const before = (await s.child.ask<{ bytes: number }>({ type: "heap" })).bytes;
    const run = await load.ask<{ failures: number }>({ type: "connect", url: s.url, cookies, transport: "websocket", total: HEAP_SOCKETS, concurrency: 100 });
    const after = (await s.child.ask<{ bytes: number }>({ type: "heap" })).bytes;
    await load.ask({ type: "disconnect" });
    if (run.failures) throw new Error(`${run.failures} of ${HEAP_SOCKETS} sockets failed for ${variant}`);
    return (after - before) / HEAP_SOCKETS;
  } finally {
    s.stop();
  }
}

/** A restarted server meets every client at once: STORM_SOCKETS sockets of STORM_SESSIONS sessions. */
async function measureStorm(variant: Variant, load: Child, redis: Redis, redisUrl: string, round: number) {
  const s = await server(variant, redisUrl, `bench:storm:${round}:${variant}:`);
  try {
    const cookies = await load.ask<string[]>({ type: "login", url: s.url, count: STORM_SESSIONS });
    await redis.config("RESETSTAT");
    const run = await load.ask<{ failures: number; wallMs: number }>({
      type: "connect", url: s.url, cookies, transport: "websocket", total: STORM_SOCKETS, concurrency: STORM_SOCKETS,
    });
    const gets = (await storeCommands(redis)).GET ?? 0;
    await load.ask({ type: "disconnect" });
    return { gets, failures: run.failures, seconds: run.wallMs / 1000 };
  } finally {
    s.stop();
  }
}

/** Two nodes of (e) on the Redis adapter: sockets on B, each session logged out through A. */
async function measureLogoutLatency(load: Child, redisUrl: string, round: number) {
  const prefix = `bench:cluster:${round}:`;
  const [a, b] = [await server("e", redisUrl, prefix, true), await server("e", redisUrl, prefix, true)];
  try {
    const cookies = await load.ask<string[]>({ type: "login", url: a.url, count: LATENCY_SOCKETS });
    const { latencies } = await load.ask<{ latencies: number[] }>({
      type: "logout-latency", loginUrl: a.url, socketUrl: b.url, cookies, concurrency: 10,
    });
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    a.stop();
    b.stop();
  }
}

/**
 * The in-process stage breakdown (bench/handshake.ts) of this tree, and the one recorded before the handshake-cost
 * work (bench/handshake-before.md, the same bench run on the earlier build), as markdown.
 */
function stageBreakdown(): string[] {
  console.log("stage breakdown: npm run bench:handshake (in process)...");
  const after = execFileSync(process.execPath, ["--import", "tsx", join(here, "handshake.ts")], {
    cwd: root,
    env: { ...process.env, HS_MARKDOWN: "1", HS_DIST_FROM: process.env.BENCH_DIST, HS_DIST_LABEL: "this tree (the dist/ this run built)" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 16 * 2 ** 20,
  });
  let before = "";
  try {
    before = readFileSync(join(here, "handshake-before.md"), "utf8");
  } catch {
    before = "(not recorded)";
  }
  return [
    "## Stage breakdown (in process)",
    "",
    "`npm run bench:handshake` (bench/handshake.ts) drives handshakes through Socket.IO's own namespace flow in one process, with no network: a fake Engine.IO connection carrying a real `IncomingMessage` with the session cookie, then a CONNECT packet. HTTP parsing, the WebSocket upgrade and Engine.IO's handshake are left out (the same for every setup, and no library here touches them), so these figures are a fraction of the ones above, and far steadier. Each of the bridge's stages is switched off in turn: by its option where it has one, else by a stub marked STUB, for attribution only. Δ is against (e) with the same store; \"per process\" is round by round.",
    "",
    "### Before",
    "",
    before.trim(),
    "",
    "### After",
    "",
    after.trim(),
  ];
}

const versionOf = (name: string) => (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;

async function main() {
  // Every server loads this snapshot of the build: other builds may rewrite dist/ during a run of many minutes.
  const snapshot = join(root, ".tmp", `bench-dist-${process.pid}`);
  cpSync(join(root, "dist"), snapshot, { recursive: true });
  process.env.BENCH_DIST = snapshot;
  if (process.env.BENCH_BASELINE) {
    const baseline = join(root, ".tmp", `bench-baseline-${process.pid}`);
    cpSync(process.env.BENCH_BASELINE, baseline, { recursive: true });
    process.env.BENCH_BASELINE_DIST = baseline;
  }
  try {
    await measureAll();
  } finally {
    rmSync(snapshot, { recursive: true, force: true });
    if (process.env.BENCH_BASELINE_DIST) rmSync(process.env.BENCH_BASELINE_DIST, { recursive: true, force: true });
  }
}

async function measureAll() {
  const redisServer = await startRedis();
  const redis = new Redis(redisServer.url);
  const load = spawn("load.ts", []);
  await load.ready;
  const variants = (Object.keys(VARIANTS) as Variant[]).filter((v) => !ONLY || ONLY.includes(v));
  const handshakes = new Map<string, HandshakeFigures[]>();
  const heaps = new Map<Variant, number[]>();
  const storms = new Map<Variant, Array<{ gets: number; failures: number; seconds: number }>>();
  const latencies: Array<{ p50: number; p99: number }> = [];
  const started = Date.now();
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Interleaved, and in a different order each round, so drift in the machine spreads over all variants.
      const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]!);
      for (const variant of order) {
        for (const transport of PARTS.has("handshakes") ? TRANSPORTS : []) {
          const figures = await measureHandshakes(variant, transport, load, redis, redisServer.url, round);
          handshakes.set(`${variant}/${transport}`, [...(handshakes.get(`${variant}/${transport}`) ?? []), figures]);
          console.log(`round ${round} ${VARIANTS[variant]} ${transport}: ${figures.cpuMicros.toFixed(0)} µs/handshake (GC ${figures.gcMicros.toFixed(0)} µs, other threads ${figures.otherThreadsMicros.toFixed(0)} µs), warm ${figures.warmCpuMicros.toFixed(0)} µs (other threads ${figures.warmOtherThreadsMicros.toFixed(0)} µs), ${figures.perSecond.toFixed(0)}/s, ${(figures.bytesAllocated / 1024).toFixed(1)} KB allocated/handshake, ${figures.commandsPerHandshake.toFixed(2)} store commands/handshake`);
        }
        if (PARTS.has("heap")) {
          heaps.set(variant, [...(heaps.get(variant) ?? []), await measureHeap(variant, load, redisServer.url, round)]);
          console.log(`round ${round} ${VARIANTS[variant]}: ${(heaps.get(variant)!.at(-1)! / 1024).toFixed(1)} KB/socket`);
        }
        if (PARTS.has("storm")) {
          storms.set(variant, [...(storms.get(variant) ?? []), await measureStorm(variant, load, redis, redisServer.url, round)]);
          console.log(`round ${round} ${VARIANTS[variant]}: storm ${storms.get(variant)!.at(-1)!.gets} GETs`);
        }
      }
      if (PARTS.has("latency")) {
        latencies.push(await measureLogoutLatency(load, redisServer.url, round));
        console.log(`round ${round} cross-node logout: p50 ${latencies.at(-1)!.p50.toFixed(1)} ms, p99 ${latencies.at(-1)!.p99.toFixed(1)} ms`);
      }
    }
  } finally {
    load.proc.send({ type: "stop" } satisfies LoadCommand);
    redis.disconnect();
    await redisServer.close();
  }

  const m = (variant: Variant, transport: Transport, pick: (f: HandshakeFigures) => number) =>
    median((handshakes.get(`${variant}/${transport}`) ?? []).map(pick));
  const stages =
    PARTS.has("handshakes") && (process.env.BENCH_STAGES === "1" || (!ONLY && process.env.BENCH_STAGES !== "0")) ? stageBreakdown() : undefined;
  const redisVersion = execFileSync("redis-server", ["--version"], { encoding: "utf8" }).match(/v=(\S+)/)?.[1] ?? "?";
  const lines: string[] = [];
  lines.push("# Benchmarks", "");
  lines.push(
    `Measured by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString().slice(0, 10)}, in ${Math.round((Date.now() - started) / 60000)} min.`,
    `Machine: ${cpus()[0]?.model.trim()} × ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; Node.js ${process.version}; redis-server ${redisVersion}.`,
    `Versions: socket.io ${versionOf("socket.io")}, express-session ${versionOf("express-session")}, passport ${versionOf("passport")}, connect-redis ${versionOf("connect-redis")}, ioredis ${versionOf("ioredis")}, passport.socketio ${versionOf("passport.socketio")}, passport-socketio-bridge ${versionOf("../")}.`,
    "",
    `Each figure is the median of ${ROUNDS} interleaved rounds. Every variant uses the same Redis session store (connect-redis + ioredis), the same users and the same Socket.IO server; the server and the load generator are separate processes on the same machine. CPU is the server's \`process.cpuUsage()\` over ${HANDSHAKES} handshakes (20 at a time, after 200 for warm-up); store commands come from Redis' \`INFO commandstats\`; per-event costs from ${EVENTS} acknowledged events on the connected sockets.`,
    "",
  );
  lines.push("## Handshakes", "", ...CHART_LINES.handshakes, "");
  lines.push("| setup | transport | server CPU / handshake | of which GC | of which other threads | warm: CPU / handshake | warm: other threads | allocated / handshake | handshakes / s | latency p50 | latency p99 | store commands / handshake | store commands / 100 events |");
  lines.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const variant of variants) {
    for (const transport of TRANSPORTS) {
      const mix = (handshakes.get(`${variant}/${transport}`) ?? []).at(0)?.mix ?? "";
      lines.push(
        `| ${VARIANTS[variant]} | ${transport} | ${m(variant, transport, (f) => f.cpuMicros).toFixed(0)} µs | ${m(variant, transport, (f) => f.gcMicros).toFixed(0)} µs | ${m(variant, transport, (f) => f.otherThreadsMicros).toFixed(0)} µs | ${m(variant, transport, (f) => f.warmCpuMicros).toFixed(0)} µs | ${m(variant, transport, (f) => f.warmOtherThreadsMicros).toFixed(0)} µs | ${(m(variant, transport, (f) => f.bytesAllocated) / 1024).toFixed(1)} KB | ${m(variant, transport, (f) => f.perSecond).toFixed(0)} | ${m(variant, transport, (f) => f.p50).toFixed(1)} ms | ${m(variant, transport, (f) => f.p99).toFixed(1)} ms | ${m(variant, transport, (f) => f.commandsPerHandshake).toFixed(2)} (${mix}) | ${m(variant, transport, (f) => f.commandsPer100Events).toFixed(1)} |`,
      );
    }
  }
  lines.push(
    "",
    `Round by round, server CPU per handshake (rounds in the order they ran; each round runs the variants in a different order). The first window is handshakes ${WARMUP + 1} to ${WARMUP + HANDSHAKES} of a new server process; "warm" is a second window of ${HANDSHAKES} in the same process afterwards, once V8 has compiled and optimized the code. "Other threads" is the CPU of every thread but the main one (V8's compiler and GC workers, libuv's pool; /proc, 10 ms ticks), which a CPU profile of the main thread does not see. GC is V8's own cost of each GC in the window (GCProfiler); allocated is the heap's growth plus what GCs freed.`,
    "",
  );
  for (const transport of TRANSPORTS) {
    lines.push(`- ${transport}: ${variants.map((v) => `${v} ${(handshakes.get(`${v}/${transport}`) ?? []).map((f) => f.cpuMicros.toFixed(0)).join("/")}`).join("; ")} µs.`);
    lines.push(`- ${transport}, warm: ${variants.map((v) => `${v} ${(handshakes.get(`${v}/${transport}`) ?? []).map((f) => f.warmCpuMicros.toFixed(0)).join("/")}`).join("; ")} µs.`);
  }
  if (stages) lines.push("", ...stages);
  lines.push("", `## Memory and reconnect storms`, "", ...CHART_LINES.memory, "");
  lines.push(
    `| setup | heap / connected socket (${HEAP_SOCKETS.toLocaleString("en")} websocket sockets) | store GETs in a reconnect storm (${STORM_SOCKETS.toLocaleString("en")} sockets of ${STORM_SESSIONS} sessions at once) | the storm's duration | GETs per session per ${SESSION_CACHE_MS / 1000} s window (max) |`,
  );
  lines.push("|---|---|---|---|---|");
  const stormOf = (variant: Variant) => {
    const runs = storms.get(variant) ?? [];
    const gets = median(runs.map((r) => r.gets));
    const seconds = median(runs.map((r) => r.seconds));
    // Reads a session may get at one per window: one at the start, one more per full window after it.
    const perWindow = Math.max(...runs.map((r) => r.gets / (STORM_SESSIONS * (Math.floor((r.seconds * 1000) / SESSION_CACHE_MS) + 1))));
    return { gets, seconds, perWindow, rounds: runs.map((r) => `${r.gets} in ${r.seconds.toFixed(1)} s`).join(", ") };
  };
  for (const variant of variants) {
    const storm = stormOf(variant);
    lines.push(
      `| ${VARIANTS[variant]} | ${(median(heaps.get(variant) ?? []) / 1024).toFixed(1)} KB | ${variant === "a" ? "n/a (no store)" : storm.gets} | ${storm.seconds.toFixed(1)} s | ${variant === "a" ? "n/a" : storm.perWindow.toFixed(2)} |`,
    );
  }
  lines.push("", `Storms round by round: ${variants.filter((v) => v !== "a").map((v) => `${v}: ${stormOf(v).rounds}`).join("; ")}.`);
  lines.push("", "## Cross-node logout", "");
  lines.push(
    `Two nodes of (e) on @socket.io/redis-adapter, one Redis: ${LATENCY_SOCKETS.toLocaleString("en")} sessions with a socket on node B, each logged out with an HTTP request to node A (10 at a time). Time from sending the logout request to the socket's disconnect: **p50 ${median(latencies.map((l) => l.p50)).toFixed(1)} ms, p99 ${median(latencies.map((l) => l.p99)).toFixed(1)} ms**.`,
    "",
  );
  const cpu = (v: Variant, transport: Transport = "websocket") => m(v, transport, (f) => f.cpuMicros);
  const warmCpu = (v: Variant, transport: Transport = "websocket") => m(v, transport, (f) => f.warmCpuMicros);
  const percent = (more: number, less: number) => `${(((more - less) / less) * 100).toFixed(0)}%`;
  // Rounds are interleaved, so each round's pair shares the machine's state of the moment.
  const perRound = (x: Variant, y: Variant, transport: Transport = "websocket", pick: (f: HandshakeFigures) => number = (f) => f.cpuMicros) => {
    const [xs, ys] = [x, y].map((v) => (handshakes.get(`${v}/${transport}`) ?? []).map(pick));
    return xs!.map((value, i) => `${value >= ys![i]! ? "+" : ""}${(((value - ys![i]!) / ys![i]!) * 100).toFixed(0)}%`).join(", ");
  };
  /** "met (x% below)" or "**missed by x%**", for (e) against another figure. */
  const verdict = (mine: number, limit: number) =>
    mine <= limit ? `met (${percent(limit, mine)} below)` : `**missed by ${percent(mine, limit)}** (${(mine - limit).toFixed(0)} µs)`;
  const heap = (v: Variant) => median(heaps.get(v) ?? []);
  const overhead = cpu("e") - cpu("a");
  const latency = { p50: median(latencies.map((l) => l.p50)), p99: median(latencies.map((l) => l.p99)) };
  const notWorse = (now: number, before: number, unit: string, digits = 1) =>
    `${now.toFixed(digits)}${unit} against ${before.toFixed(digits)}${unit} before: ${now <= before * 1.1 ? "no worse" : "**worse**"}`;
  lines.push("## Targets", "");
  lines.push(
    `- CPU per WebSocket handshake at or below passport.socketio's: (e) ${cpu("e").toFixed(0)} µs against (d) ${cpu("d").toFixed(0)} µs, ${verdict(cpu("e"), cpu("d"))}. Round by round, (e) against (d): ${perRound("e", "d")}.`,
    `- At or below the docs' recipe: (e) against (b) ${cpu("b").toFixed(0)} µs, ${verdict(cpu("e"), cpu("b"))}. Round by round: ${perRound("e", "b")}.`,
    `- Warm (the same process, a second window): (e) ${warmCpu("e").toFixed(0)} µs against (d) ${warmCpu("d").toFixed(0)} µs, ${verdict(warmCpu("e"), warmCpu("d"))}, round by round ${perRound("e", "d", "websocket", (f) => f.warmCpuMicros)}; against (b) ${warmCpu("b").toFixed(0)} µs, ${verdict(warmCpu("e"), warmCpu("b"))}; over no auth ${(warmCpu("e") - warmCpu("a")).toFixed(0)} µs. Polling, warm: (e) ${warmCpu("e", "polling").toFixed(0)} µs against (d) ${warmCpu("d", "polling").toFixed(0)} µs, ${verdict(warmCpu("e", "polling"), warmCpu("d", "polling"))}.`,
    `- Stretch, overhead over no auth at most 100 µs (issue 22): (e) ${cpu("e").toFixed(0)} µs − (a) ${cpu("a").toFixed(0)} µs = ${overhead.toFixed(0)} µs, ${overhead <= 100 ? "met" : `**missed by ${(overhead - 100).toFixed(0)} µs**`}. Round by round: ${(handshakes.get("e/websocket") ?? []).map((f, i) => (f.cpuMicros - (handshakes.get("a/websocket")?.[i]?.cpuMicros ?? NaN)).toFixed(0)).join(", ")} µs.`,
    `- Polling, CPU per handshake at or below passport.socketio's: (e) ${cpu("e", "polling").toFixed(0)} µs against (d) ${cpu("d", "polling").toFixed(0)} µs, ${verdict(cpu("e", "polling"), cpu("d", "polling"))}. Round by round: ${perRound("e", "d", "polling")}.`,
    `- Heap per connected socket, (e): ${notWorse(heap("e") / 1024, BEFORE.heapKB, " KB")} ((e) adds ${((heap("e") - heap("a")) / 1024).toFixed(1)} KB to (a), (b) adds ${((heap("b") - heap("a")) / 1024).toFixed(1)} KB). ${HEAP_SOCKETS.toLocaleString("en")} concurrent authenticated sockets on one node: ${heaps.get("e")?.length ? "held" : "not measured"}.`,
    `- Store commands, (e): ${m("e", "polling", (f) => f.commandsPerHandshake).toFixed(2)} per polling handshake (${BEFORE.pollingCommands.toFixed(2)} before; one read per session per ${SESSION_CACHE_MS / 1000} s sessionCacheMs window, so a window of ${HANDSHAKES} handshakes that lasts longer reads again), ${m("e", "polling", (f) => f.commandsPer100Events).toFixed(1)} per 100 events.`,
    `- Reconnect storm, (e): ${stormOf("e").gets} GETs for ${STORM_SESSIONS} sessions in ${stormOf("e").seconds.toFixed(1)} s, against ${STORM_SOCKETS.toLocaleString("en")} for each peer (${BEFORE.stormGets} before, when a copy could outlive sessionCacheMs); at most ${stormOf("e").perWindow.toFixed(2)} read per session per ${SESSION_CACHE_MS / 1000} s window (${stormOf("e").perWindow <= 1 ? "within" : "**over**"} one).`,
    `- Cross-node logout: p50 ${notWorse(latency.p50, BEFORE.logoutP50, " ms")}; p99 ${notWorse(latency.p99, BEFORE.logoutP99, " ms")} (within 10%, the rounds' spread, counts as no worse).`,
    "",
    `Rounds differ by ±15% on a shared 2-core machine, so the round-by-round ordering says more than one median. In a new process's first window (e) pays more than its peers mostly on threads other than the main one: V8 compiles and optimizes the code each handshake runs (the bridge's own, express-session's and Passport's, where passport.socketio runs cookie-parser and a few small functions), concurrently, on its worker threads; warm, that is done. The section "Whole-process attribution" below says where each microsecond goes. \`BENCH_CPU_PROF=<dir>\` saves V8 CPU profiles of the servers' measured windows (the main thread only), and \`tsx bench/handshake.ts summarize <profile>\` sums one by package and function.`,

    "",
  );
  // Only a full run is the published table; a partial one (BENCH_VARIANTS, BENCH_PARTS) is printed only.
  if (!ONLY && PARTS.size === 4) {
    // Sections written by hand (from "## Whole-process attribution" on) survive a rerun.
    const file = join(root, "docs", "benchmarks.md");
    const kept = /^## Whole-process attribution[\s\S]*/m.exec(readFileSync(file, "utf8"))?.[0];
    writeFileSync(file, `${lines.join("\n")}\n${kept ? `\n${kept}` : ""}`);
    console.log(`drew ${drawCharts(file).join(", ")}`);
  }
  console.log(lines.join("\n"));
}

await main();
