/**
 * npm run bench: the five ways to authenticate Socket.IO with express-session and Passport, side by side on
 * one machine, one Redis, the same users; servers and the load generator in separate processes. Medians of
 * BENCH_ROUNDS interleaved rounds. A full run writes docs/benchmarks.md. BENCH_VARIANTS=d,e and
 * BENCH_PARTS=handshakes,heap,storm,latency pick a part (printed only); BENCH_CPU_PROF=<dir> saves V8 CPU
 * profiles of the servers' measured handshake windows.
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { startRedis } from "../spec/helpers/redis-server.js";
import type { LoadCommand, Transport } from "./load.js";
import type { Command, Variant } from "./server.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env("BENCH_ROUNDS", 5);
const HANDSHAKES = env("BENCH_HANDSHAKES", 1500);
const HEAP_SOCKETS = env("BENCH_HEAP_SOCKETS", 10_000);
const STORM_SOCKETS = env("BENCH_STORM_SOCKETS", 5000);
const STORM_SESSIONS = env("BENCH_STORM_SESSIONS", 500);
const LATENCY_SOCKETS = env("BENCH_LATENCY_SOCKETS", 1000);
const EVENTS = 1000;
/** Which measurements to run (all by default): handshakes, heap, storm, latency. */
const PARTS = new Set((process.env.BENCH_PARTS ?? "handshakes,heap,storm,latency").split(","));
/** Which variants to run (all by default), e.g. BENCH_VARIANTS=d,e. */
const ONLY = process.env.BENCH_VARIANTS?.split(",");


const VARIANTS: Record<Variant, string> = {
  a: "(a) socket.io, no auth",
  b: "(b) docs' Passport recipe (io.engine, handshake only)",
  c: "(c) docs' express-session example (io.engine, every request)",
  d: "(d) passport.socketio 3.7.0",
  e: "(e) passport-socketio-bridge",
};
const TRANSPORTS: Transport[] = ["websocket", "polling"];
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

const spawn = (file: string, args: string[], gc = false) =>
  new Child(fork(join(here, file), args, { execArgv: ["--import", "tsx", ...(gc ? ["--expose-gc"] : [])], stdio: "inherit" }));

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
  cpuMicros: number;
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
    const connect = (count: number) => load.ask<{ latencies: number[]; failures: number; wallMs: number }>({
      type: "connect", url: s.url, cookies, transport, total: count, concurrency: 20,
    });
    await connect(200); // warm-up
    await load.ask({ type: "disconnect" });
    await redis.config("RESETSTAT");
    await s.child.ask({ type: "cpu-start" });
    const run = await connect(HANDSHAKES);
    const { micros } = await s.child.ask<{ micros: number }>({ type: "cpu-stop" });
    const handshakeCommands = await storeCommands(redis);
    if (run.failures) throw new Error(`${run.failures} handshakes failed for ${variant}/${transport}`);
    await redis.config("RESETSTAT");
    await load.ask({ type: "events", count: EVENTS });
    const eventCommands = total(await storeCommands(redis));
    await load.ask({ type: "disconnect" });
    return {
      cpuMicros: micros / HANDSHAKES,
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

const versionOf = (name: string) => (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;

async function main() {
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
          console.log(`round ${round} ${VARIANTS[variant]} ${transport}: ${figures.cpuMicros.toFixed(0)} µs/handshake, ${figures.commandsPerHandshake.toFixed(2)} store commands/handshake`);
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
  lines.push("## Handshakes", "");
  lines.push("| setup | transport | server CPU / handshake | handshakes / s | latency p50 | latency p99 | store commands / handshake | store commands / 100 events |");
  lines.push("|---|---|---|---|---|---|---|---|");
  for (const variant of variants) {
    for (const transport of TRANSPORTS) {
      const mix = (handshakes.get(`${variant}/${transport}`) ?? []).at(0)?.mix ?? "";
      lines.push(
        `| ${VARIANTS[variant]} | ${transport} | ${m(variant, transport, (f) => f.cpuMicros).toFixed(0)} µs | ${m(variant, transport, (f) => f.perSecond).toFixed(0)} | ${m(variant, transport, (f) => f.p50).toFixed(1)} ms | ${m(variant, transport, (f) => f.p99).toFixed(1)} ms | ${m(variant, transport, (f) => f.commandsPerHandshake).toFixed(2)} (${mix}) | ${m(variant, transport, (f) => f.commandsPer100Events).toFixed(1)} |`,
      );
    }
  }
  lines.push("", `## Memory and reconnect storms`, "");
  lines.push(`| setup | heap / connected socket (${HEAP_SOCKETS.toLocaleString("en")} websocket sockets) | store GETs in a reconnect storm (${STORM_SOCKETS.toLocaleString("en")} sockets of ${STORM_SESSIONS} sessions at once) |`);
  lines.push("|---|---|---|");
  for (const variant of variants) {
    lines.push(`| ${VARIANTS[variant]} | ${(median(heaps.get(variant) ?? []) / 1024).toFixed(1)} KB | ${variant === "a" ? "n/a (no store)" : median((storms.get(variant) ?? []).map((s) => s.gets))} |`);
  }
  lines.push("", "## Cross-node logout", "");
  lines.push(
    `Two nodes of (e) on @socket.io/redis-adapter, one Redis: ${LATENCY_SOCKETS.toLocaleString("en")} sessions with a socket on node B, each logged out with an HTTP request to node A (10 at a time). Time from sending the logout request to the socket's disconnect: **p50 ${median(latencies.map((l) => l.p50)).toFixed(1)} ms, p99 ${median(latencies.map((l) => l.p99)).toFixed(1)} ms**.`,
    "",
  );
  const cpuE = m("e", "websocket", (f) => f.cpuMicros);
  const cpuD = m("d", "websocket", (f) => f.cpuMicros);
  const cpuB = m("b", "websocket", (f) => f.cpuMicros);
  const percent = (more: number, less: number) => `${(((more - less) / less) * 100).toFixed(0)}%`;
  // Rounds are interleaved, so each round's pair shares the machine's state of the moment.
  const perRound = (x: Variant, y: Variant) => {
    const [xs, ys] = [x, y].map((v) => (handshakes.get(`${v}/websocket`) ?? []).map((f) => f.cpuMicros));
    return xs!.map((value, i) => `${value >= ys![i]! ? "+" : ""}${(((value - ys![i]!) / ys![i]!) * 100).toFixed(0)}%`).join(", ");
  };
  const heap = (v: Variant) => median(heaps.get(v) ?? []);
  lines.push("## Targets", "");
  lines.push(
    `- CPU per handshake (websocket): (e) ${cpuE.toFixed(0)} µs against (d) ${cpuD.toFixed(0)} µs and (b) ${cpuB.toFixed(0)} µs: ${cpuE <= cpuD ? "at or below passport.socketio" : `**${percent(cpuE, cpuD)} above passport.socketio (target missed)**`}, ${cpuE <= cpuB ? `${percent(cpuB, cpuE)} below` : `**${percent(cpuE, cpuB)} above**`} the docs' recipe. Round by round, (e) against (d): ${perRound("e", "d")}; against (b): ${perRound("e", "b")}.${cpuE <= cpuD ? "" : ` Where it goes: (e) runs the app's real express-session middleware and \`passport.session()\` where passport.socketio parses the cookie and the JSON itself, joins two rooms per socket, and keeps each session's live state (expiry, record, keep-alive hook), none of which passport.socketio does (nothing notices its sockets' logouts). \`BENCH_CPU_PROF=<dir>\` saves profiles of the measured windows to look for yourself.`}`,
    `- Heap per socket above (a): (e) adds ${((heap("e") - heap("a")) / 1024).toFixed(1)} KB, (b) adds ${((heap("b") - heap("a")) / 1024).toFixed(1)} KB: ${heap("e") - heap("a") <= (heap("b") - heap("a")) / 2 ? "within" : "more than"} half.`,
    `- ${HEAP_SOCKETS.toLocaleString("en")} concurrent authenticated sockets on one node: ${heaps.get("e")?.length ? "held" : "not measured"}.`,
    `- Store commands (e): ${m("e", "polling", (f) => f.commandsPerHandshake).toFixed(2)} per polling handshake, ${m("e", "polling", (f) => f.commandsPer100Events).toFixed(1)} per 100 events.`,
    `- Reconnect storm (e): ${median((storms.get("e") ?? []).map((s) => s.gets))} GETs for ${STORM_SESSIONS} sessions.`,
    "",
  );
  // Only a full run is the published table; a partial one (BENCH_VARIANTS, BENCH_PARTS) is printed only.
  if (!ONLY && PARTS.size === 4) writeFileSync(join(root, "docs", "benchmarks.md"), `${lines.join("\n")}\n`);
  console.log(lines.join("\n"));
}

await main();
