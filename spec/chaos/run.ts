/**
 * `npm run test:chaos`: a seeded, randomized run of real app nodes (spec/chaos/node.ts, child processes) on one
 * real Redis, with the Redis adapter, checked against the session invariants (spec/chaos/history.ts).
 *
 *   SEED=1 DURATION_S=30 NODES=3 npm run test:chaos
 *
 * Random operations, a few at a time: logins; sockets over socket.io-client (websocket and polling) and raw
 * Engine.IO connections that stay idle with no namespace and CONNECT again later; logouts, destroys,
 * regenerates and session writes over HTTP on any node; DELs of session keys behind the bridge's back; bans
 * (deserializeUser refuses, then disconnectUser); disconnectUser; CLIENT PAUSE of Redis for a few hundred ms;
 * and races: CONNECTs on several nodes with a logout, destroy or regenerate sent while they are in flight.
 * The seed fixes the operations and their order; their timing is real, so two runs of a seed differ.
 * It prints the seed and every violation with the operations involved, and exits 1 on any.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { prng } from "../helpers/fuzz.js";
import { rawConnection, type RawConnection } from "../helpers/raw-engine.js";
import { startRedis } from "../helpers/redis-server.js";
import { check, describeOp, type Bounds, type Conn, type History, type Op, type OpKind, type Session } from "./history.js";
import type { NodeMessage } from "./node.js";

const SEED = Number(process.env.SEED ?? Date.now() % 100_000);
const DURATION_S = Number(process.env.DURATION_S ?? 30);
const NODES = Number(process.env.NODES ?? 3);
const BOUNDS: Bounds = { cacheMs: 300, revalidateMs: 1500, reachMs: 1000, slackMs: 500 };
/** Modest load for a shared 2-core machine: this many operations in flight, at most this many per second. */
const ACTORS = 3;
const MAX_OPS = DURATION_S * 40;
const MAX_CLIENTS = 24;
const MAX_RAW = 10;
const MAX_LIVE_SESSIONS = 10;
const USERS = Array.from({ length: 24 }, (_, i) => `u${i + 1}`);
const ANSWER_MS = 8000;
/** The nodes' deserializeUser takes up to this long. */
const SLOW_MS = 40;

const r = prng(SEED);
const t0 = Date.now();
const history: History = { ops: [], sessions: [], conns: [], admissions: [], fatal: [] };
const clients = new Map<Conn, ClientSocket>();
/** Raw Engine.IO connections, with the socket each namespace has on it now. */
const raws: Array<{ raw: RawConnection; node: number; session: Session; sockets: Map<string, Conn>; connects: number; seenDisconnects: number; seenEvents: number }> = [];
const banned = new Set<string>();

console.log(`chaos: SEED=${SEED} DURATION_S=${DURATION_S} NODES=${NODES} sessionCacheMs=${BOUNDS.cacheMs} revalidateEveryMs=${BOUNDS.revalidateMs}`);

const redisServer = await startRedis();
const prefix = `chaos:${randomUUID().slice(0, 8)}:`;
const admin = new Redis(redisServer.url);
admin.on("error", () => undefined);

// The nodes, forked with tsx so lib/ runs from source (no build needed).
const nodeFile = fileURLToPath(new URL("./node.ts", import.meta.url));
let stopping = false;
const output: string[] = [];
const nodes: Array<{ name: string; url: string; child: ChildProcess }> = await Promise.all(
  Array.from({ length: NODES }, (_, i) => {
    const name = `node${i + 1}`;
    const args = [redisServer.url, prefix, name, String(BOUNDS.cacheMs), String(BOUNDS.revalidateMs), String(SEED * 10 + i), String(SLOW_MS)];
    const child = fork(nodeFile, args, {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const keep = (chunk: Buffer) => output.push(...String(chunk).trimEnd().split("\n").map((line) => `[${name}] ${line}`));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("exit", (code, signal) => {
      if (!stopping) history.fatal.push(`${name} exited (${code ?? signal}) during the run`);
    });
    return new Promise<{ name: string; url: string; child: ChildProcess }>((resolve, reject) => {
      child.once("exit", () => reject(new Error(`${name} did not start:\n${output.join("\n")}`)));
      child.on("message", (message: NodeMessage) => {
        if (message.type === "ready") resolve({ name, url: message.url, child });
        else if (message.type === "admitted") history.admissions.push(message);
        else history.fatal.push(`${message.node}: ${message.kind}: ${message.detail}`);
      });
    });
  }),
);

const now = () => Date.now();
function begin(kind: OpKind, node: string, detail: string, s?: { sid?: string; user?: string }): Op {
  const op: Op = { n: history.ops.length + 1, kind, node, start: now(), detail, ...s };
  history.ops.push(op);
  return op;
}
const finish = (op: Op, ok: boolean, detail?: string) => {
  op.end = now();
  op.ok = ok;
  if (detail) op.detail += ` (${detail})`;
};

const pickNode = () => r.int(nodes.length);
const live = () => history.sessions.filter((s) => !s.ending && !s.deleted && !s.uncertain && !banned.has(s.user));
/** Mostly live sessions; sometimes one that has ended (its CONNECTs must be refused). */
const pickSession = (): Session | undefined =>
  r.chance(0.75) && live().length ? r.pick(live()) : history.sessions.length ? r.pick(history.sessions) : undefined;

async function post(node: number, path: string, cookie?: string, body?: URLSearchParams): Promise<Response> {
  return fetch(nodes[node]!.url + path, {
    method: "POST",
    redirect: "manual",
    signal: AbortSignal.timeout(ANSWER_MS),
    ...(body ? { body } : {}),
    headers: cookie ? { cookie } : {},
  });
}

async function login(): Promise<void> {
  if (live().length >= MAX_LIVE_SESSIONS) return;
  const user = r.pick(USERS.filter((u) => !banned.has(u)));
  const node = pickNode();
  const op = begin("login", nodes[node]!.name, "", { user });
  try {
    const res = await post(node, "/login", undefined, new URLSearchParams({ username: user, password: user }));
    if (!res.ok) return finish(op, false, `HTTP ${res.status}`);
    const { sessionID } = (await res.json()) as { sessionID: string };
    finish(op, true);
    op.sid = sessionID;
    const cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    history.sessions.push({ sid: sessionID, cookie, user, login: op, writes: [], busy: false });
  } catch (err) {
    finish(op, false, String(err));
  }
}

/** One mutation of a session over HTTP (or a DEL in Redis), the session held meanwhile. */
async function mutate(kind: "logout" | "destroy" | "regenerate" | "write" | "delete", chosen?: Session): Promise<void> {
  const candidates = (r.chance(0.9) ? live() : history.sessions).filter((s) => !s.busy);
  const s = chosen ?? (candidates.length ? r.pick(candidates) : undefined);
  if (!s || s.busy) return;
  const node = pickNode();
  const mark = (s.writes.at(-1)?.mark ?? 0) + 1;
  const op = begin(kind, kind === "delete" ? "redis" : nodes[node]!.name, kind === "write" ? `mark ${mark}` : "", { sid: s.sid, user: s.user });
  s.busy = true;
  try {
    if (kind === "delete") {
      await admin.del(`${prefix}${s.sid}`);
      finish(op, true);
    } else {
      const res = await post(node, kind === "write" ? `/write?mark=${mark}` : `/${kind}`, s.cookie);
      await res.body?.cancel();
      finish(op, res.ok, `HTTP ${res.status}`);
    }
  } catch (err) {
    finish(op, false, String(err));
  } finally {
    s.busy = false;
  }
  // Only the first ending counts: once the key is gone, a logout over HTTP finds no session and ends a new,
  // empty one (express-session generates it), not this one.
  if (!op.ok) s.uncertain ??= op;
  else if (s.ending || s.deleted) return;
  else if (kind === "write") s.writes.push({ op, mark });
  else if (kind === "delete") s.deleted = op;
  else s.ending = op;
}

/** CONNECTs to a live session on several nodes, and while they are in flight, an ending of it. */
async function race(): Promise<void> {
  const s = live().length ? r.pick(live()) : undefined;
  if (!s || s.busy) return;
  const connects = Array.from({ length: 1 + r.int(3) }, () => (r.chance(0.5) ? openClient(s) : openRaw(s)));
  await sleep(r.int(SLOW_MS + 10));
  await Promise.all([...connects, mutate(r.pick(["logout", "destroy", "regenerate"] as const), s)]);
}

async function userOp(kind: "ban" | "kick"): Promise<void> {
  const users = [...new Set(history.sessions.map((s) => s.user))].filter((u) => !banned.has(u));
  if (!users.length) return;
  const user = r.pick(users);
  const node = pickNode();
  const op = begin(kind, nodes[node]!.name, "", { user });
  if (kind === "ban") banned.add(user);
  try {
    const res = await post(node, `/${kind}?user=${user}`);
    finish(op, res.ok, `HTTP ${res.status} ${await res.text()}`);
  } catch (err) {
    finish(op, false, String(err));
  }
}

let pausedUntil = 0;
async function pause(): Promise<void> {
  if (now() < pausedUntil + 1000) return;
  const ms = 100 + r.int(300);
  const mode = r.pick(["ALL", "WRITE"] as const);
  const op = begin("pause", "redis", `CLIENT PAUSE ${ms} ${mode}`);
  pausedUntil = now() + ms;
  try {
    await (mode === "ALL" ? admin.client("PAUSE", ms, "ALL") : admin.client("PAUSE", ms, "WRITE"));
    finish(op, true);
  } catch (err) {
    finish(op, false, String(err));
  }
}

function newConn(via: Conn["via"], node: number, nsp: string, session: Session, op: Op): Conn {
  const conn: Conn = { key: `${via} #${op.n} ${nsp}`, via, node: nodes[node]!.name, nsp, session, op, requested: now() };
  history.conns.push(conn);
  return conn;
}

/** A socket.io-client socket, no reconnection (every CONNECT is one the runner sent and timed). */
async function openClient(chosen?: Session): Promise<void> {
  const session = chosen ?? pickSession();
  if (!session) return;
  if (clients.size >= MAX_CLIENTS) closeClient();
  const node = pickNode();
  const transport = r.pick(["websocket", "polling"] as const);
  const nsp = r.pick(["/", "/b"]);
  const op = begin("connect", nodes[node]!.name, `socket.io-client ${transport} ${nsp}`, { sid: session.sid, user: session.user });
  const conn = newConn(`client/${transport}`, node, nsp, session, op);
  const socket = ioClient(nodes[node]!.url + nsp, {
    forceNew: true,
    transports: [transport],
    reconnection: false,
    extraHeaders: { cookie: session.cookie },
  });
  clients.set(conn, socket);
  socket.on("auth:ended", (payload: { code: string }) => (conn.ended ??= { at: now(), code: payload.code }));
  socket.on("disconnect", (reason) => {
    conn.closed ??= { at: now(), by: reason === "io client disconnect" ? "runner" : "server" };
    clients.delete(conn);
  });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ANSWER_MS);
    socket.once("connect", () => {
      conn.admitted = now();
      conn.id = socket.id;
      finish(op, true, `admitted ${socket.id}`);
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect_error", (err: Error & { data?: { code?: string } }) => {
      conn.refused = { at: now(), code: err.data?.code ?? `transport: ${err.message}` };
      finish(op, false, `refused ${conn.refused.code}`);
      clients.delete(conn);
      socket.close();
      clearTimeout(timer);
      resolve();
    });
  });
}

function closeClient(): void {
  // Only answered sockets: closing one still connecting would leave its CONNECT unanswered, and unjudged.
  const open = [...clients].filter(([conn]) => conn.admitted !== undefined);
  const [conn, socket] = open.length ? r.pick(open) : [];
  if (!conn || !socket) return;
  finish(begin("close", conn.node, conn.key, { sid: conn.session.sid, user: conn.session.user }), true);
  socket.disconnect();
}

/** A raw Engine.IO connection: CONNECTs "/" and, more often than not, leaves it to sit idle. */
async function openRaw(chosen?: Session): Promise<void> {
  const session = chosen ?? pickSession();
  if (!session) return;
  if (raws.length >= MAX_RAW) closeRaw();
  const node = pickNode();
  try {
    const raw = await rawConnection(nodes[node]!.url, { cookie: session.cookie });
    const entry = { raw, node, session, sockets: new Map<string, Conn>(), connects: 0, seenDisconnects: 0, seenEvents: 0 };
    raws.push(entry);
    void raw.closed.then(() => {
      for (const conn of entry.sockets.values()) conn.closed ??= { at: now(), by: "server" };
      entry.sockets.clear();
      if (raws.includes(entry)) raws.splice(raws.indexOf(entry), 1);
    });
    await rawConnect(entry, "/");
    if (r.chance(0.6)) rawLeave(entry, "/");
  } catch (err) {
    begin("connect", nodes[node]!.name, `raw Engine.IO connection failed: ${String(err)}`, { sid: session.sid });
  }
}

function closeRaw(): void {
  const entry = r.pick(raws);
  raws.splice(raws.indexOf(entry), 1);
  for (const conn of entry.sockets.values()) conn.closed ??= { at: now(), by: "runner" };
  finish(begin("close", nodes[entry.node]!.name, `raw connection of ${[...entry.sockets.keys()].join(" ") || "no namespace"}`, { sid: entry.session.sid }), true);
  entry.sockets.clear();
  entry.raw.close();
}

async function rawConnect(entry: (typeof raws)[number], nsp: string): Promise<void> {
  const { session } = entry;
  const op = begin("connect", nodes[entry.node]!.name, `raw${entry.sockets.size === 0 && entry.connects > 0 ? " (idle connection)" : ""} ${nsp}`, {
    sid: session.sid,
    user: session.user,
  });
  entry.connects++;
  const conn = newConn("raw", entry.node, nsp, session, op);
  entry.sockets.set(nsp, conn);
  const answer = await Promise.race([entry.raw.connect(nsp).catch(() => "closed" as const), sleep(ANSWER_MS, "timeout" as const)]);
  if (answer === "timeout") return finish(op, false, "no answer");
  if (answer === "closed") {
    conn.closed ??= { at: now(), by: "server" };
    return finish(op, false, "connection closed");
  }
  if (answer.ok) {
    conn.admitted = now();
    conn.id = answer.sid;
    finish(op, true, `admitted ${answer.sid}`);
  } else {
    conn.refused = { at: now(), code: answer.data.code };
    entry.sockets.delete(nsp);
    finish(op, false, `refused ${answer.data.code}`);
  }
}

function rawLeave(entry: (typeof raws)[number], nsp: string): void {
  const conn = entry.sockets.get(nsp);
  if (!conn || conn.admitted === undefined || conn.closed) return;
  finish(begin("leave", conn.node, conn.key, { sid: conn.session.sid, user: conn.session.user }), true);
  conn.closed = { at: now(), by: "runner" };
  entry.sockets.delete(nsp);
  entry.raw.leave(nsp);
}

/** A raw connection's DISCONNECT packets and auth:ended events, as the client received them. */
function watchRaws(): void {
  for (const entry of raws) {
    for (const [nsp, , payload] of entry.raw.events.slice(entry.seenEvents)) {
      const conn = entry.sockets.get(String(nsp));
      if (conn && !conn.ended) conn.ended = { at: now(), code: (payload as { code: string }).code };
    }
    entry.seenEvents = entry.raw.events.length;
    for (const nsp of entry.raw.disconnected.slice(entry.seenDisconnects)) {
      const conn = entry.sockets.get(nsp);
      if (conn) conn.closed ??= { at: now(), by: "server" };
      entry.sockets.delete(nsp);
    }
    entry.seenDisconnects = entry.raw.disconnected.length;
  }
}

async function rawCycle(): Promise<void> {
  // Mostly connections of live sessions (admissions to cycle), sometimes dead ones (refusals to check).
  const alive = raws.filter((e) => live().includes(e.session));
  const entry = alive.length && r.chance(0.7) ? r.pick(alive) : raws.length ? r.pick(raws) : undefined;
  if (!entry) return openRaw(pickSession());
  const nsp = r.pick(["/", "/b"]);
  if (entry.sockets.has(nsp)) rawLeave(entry, nsp);
  else await rawConnect(entry, nsp);
}

const OPERATIONS: Array<[number, () => Promise<void> | void]> = [
  [8, login],
  [14, () => openClient()],
  [6, () => openRaw()],
  [14, rawCycle],
  [5, closeClient],
  [3, () => mutate("logout")],
  [2, () => mutate("destroy")],
  [2, () => mutate("regenerate")],
  [8, () => mutate("write")],
  [2, () => mutate("delete")],
  [0.7, () => userOp("ban")],
  [2, () => userOp("kick")],
  [1.5, pause],
  [6, race],
];
const TOTAL = OPERATIONS.reduce((sum, [weight]) => sum + weight, 0);
function pickOperation(): () => Promise<void> | void {
  let roll = r.next() * TOTAL;
  for (const [weight, run] of OPERATIONS) if ((roll -= weight) < 0) return run;
  return login;
}

const watcher = setInterval(watchRaws, 10);
const deadline = t0 + DURATION_S * 1000;
let started = 0;
await Promise.all(
  Array.from({ length: ACTORS }, async () => {
    while (now() < deadline && started < MAX_OPS && history.fatal.length === 0) {
      started++;
      await pickOperation()();
      await sleep(20 + r.int(120));
    }
  }),
);

// Let every bound run out before judging: a DEL's live sockets have revalidateEveryMs + slack.
await sleep(BOUNDS.revalidateMs + BOUNDS.slackMs + 1000);
watchRaws();
clearInterval(watcher);
stopping = true;
const { violations, latencies } = check(history, BOUNDS);

for (const socket of clients.values()) socket.disconnect();
for (const { raw } of raws) raw.close();
admin.disconnect();
for (const node of nodes) node.child.kill();
await Promise.all(nodes.map((node) => (node.child.exitCode === null ? new Promise((resolve) => node.child.once("exit", resolve)) : null)));
await redisServer.close();

const count = (kind: OpKind) => history.ops.filter((op) => op.kind === kind).length;
const admitted = history.conns.filter((c) => c.admitted !== undefined).length;
const refusals: Record<string, number> = {};
for (const c of history.conns) if (c.refused) refusals[c.refused.code] = (refusals[c.refused.code] ?? 0) + 1;
console.log(
  `chaos: ${history.ops.length} operations in ${((now() - t0) / 1000).toFixed(1)} s: ` +
    (["login", "connect", "leave", "close", "logout", "destroy", "regenerate", "write", "delete", "ban", "kick", "pause"] as const)
      .map((kind) => `${count(kind)} ${kind}`)
      .join(", "),
);
const idle = history.conns.filter((c) => c.op.detail.includes("(idle connection)"));
console.log(`chaos: ${history.conns.length} CONNECTs: ${admitted} admitted, refused ${JSON.stringify(refusals)}`);
console.log(`chaos: ${idle.length} CONNECTs on idle Engine.IO connections: ${idle.filter((c) => c.admitted !== undefined).length} admitted`);
console.log(`chaos: slowest seen (ms): ${JSON.stringify(latencies)}`);

// A run that admits nothing, or refuses nothing, checked nothing.
if (admitted < 10 || history.conns.length - admitted < 5) {
  violations.push({ rule: "the run exercised the bridge", message: `only ${admitted} admissions of ${history.conns.length} CONNECTs`, ops: [] });
}
if (violations.length) {
  console.log(`\nchaos: ${violations.length} violation(s), SEED=${SEED}:`);
  for (const v of violations) {
    console.log(`\n- [${v.rule}] ${v.message}`);
    for (const op of v.ops) console.log(`    ${describeOp(op, t0)}`);
  }
  if (history.fatal.length) console.log(`\nnode output:\n${output.slice(-60).join("\n")}`);
  console.log(`\nchaos: FAILED (SEED=${SEED}); run again with SEED=${SEED} DURATION_S=${DURATION_S}`);
  process.exit(1);
}
console.log(`chaos: OK (SEED=${SEED})`);
process.exit(0);
