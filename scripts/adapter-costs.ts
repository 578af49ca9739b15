/**
 * What each Redis-backed Socket.IO adapter costs Redis per chat line between two nodes: commands (INFO
 * commandstats), and for the Streams adapter the stream's length and memory (XLEN, MEMORY USAGE). Also what a
 * room costs the sharded adapter (it subscribes to one channel per room, and the bridge puts every socket in a
 * user room and a session room). Two Socket.IO servers in this process, a redis-server of its own.
 *
 *   npx tsx scripts/adapter-costs.ts [lines=2000] [rooms=200]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { io as ioClient, type Socket } from "socket.io-client";
import { startRedis } from "../spec/helpers/redis-server.js";

const LINES = Number(process.argv[2] ?? 2000);
const ROOMS = Number(process.argv[3] ?? 200);
const KINDS = ["redis", "streams", "sharded"] as const;
type Kind = (typeof KINDS)[number];

const redisServer = await startRedis();
const admin = new Redis(redisServer.url);

async function commandStats(): Promise<Map<string, number>> {
  const info = await admin.info("commandstats");
  const stats = new Map<string, number>();
  for (const [, name, calls] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) stats.set(name!, Number(calls));
  return stats;
}
const delta = (before: Map<string, number>, after: Map<string, number>) =>
  Object.fromEntries(
    [...after]
      .map(([name, n]) => [name, n - (before.get(name) ?? 0)] as const)
      .filter(([name, n]) => n > 0 && !["info", "xlen", "memory"].includes(name)),
  );

async function node(kind: Kind) {
  const pub = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const sub = kind === "streams" ? undefined : pub.duplicate();
  const http = createServer();
  const io = new Server(http, {
    adapter:
      kind === "streams"
        ? createStreamsAdapter(pub)
        : kind === "sharded"
          ? createShardedAdapter(pub, sub!)
          : createAdapter(pub, sub!),
  });
  io.on("connection", (socket) => {
    socket.on("join", (rooms: string[], ack: () => void) => (void socket.join(rooms), ack()));
    socket.on("say", (text: string) => socket.to("lobby").emit("chat", text));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url,
    close: () => (io.close(), pub.disconnect(), sub?.disconnect()),
  };
}

const connect = async (url: string): Promise<Socket> => {
  const socket = ioClient(url, { forceNew: true, transports: ["websocket"] });
  await new Promise((resolve) => socket.once("connect", resolve));
  return socket;
};

for (const kind of KINDS) {
  await admin.flushall();
  const [a, b] = [await node(kind), await node(kind)];
  await sleep(300); // the Streams adapter duplicates its client and starts reading asynchronously
  const sender = await connect(a.url);
  const member = await connect(b.url);
  await member.emitWithAck("join", ["lobby"]);
  const memoryBefore = Number((await admin.info("memory")).match(/used_memory:(\d+)/)![1]);

  // Chat lines every 2 ms (about 500 a second), each about 60 bytes of text.
  let received = 0;
  const all = new Promise<void>((resolve) => member.on("chat", () => ++received === LINES && resolve()));
  const before = await commandStats();
  for (let i = 0; i < LINES; i++) {
    sender.emit("say", `line ${String(i).padStart(6, "0")}: the quick brown fox jumps over the dog`);
    if (i % 2 === 1) await sleep(2);
  }
  await all;
  const after = await commandStats();
  const commands = delta(before, after);
  const memoryAfter = Number((await admin.info("memory")).match(/used_memory:(\d+)/)![1]);
  const perLine = Object.fromEntries(Object.entries(commands).map(([name, n]) => [name, +(n / LINES).toFixed(2)]));
  console.log(`\n${kind}: ${LINES} lines from node A to a room member on node B`);
  console.log(`  commands per line: ${JSON.stringify(perLine)}`);
  console.log(`  used_memory growth: ${(((memoryAfter - memoryBefore) / LINES)).toFixed(0)} bytes per line`);
  if (kind === "streams") {
    const stream = "socket.io";
    const length = await admin.xlen(stream);
    const usage = Number(await admin.call("MEMORY", "USAGE", stream, "SAMPLES", "0"));
    console.log(`  stream: XLEN ${length}, MEMORY USAGE ${usage} bytes (${(usage / length).toFixed(0)} per entry)`);
  }

  // Rooms: ROOMS sockets on node B, each joining two rooms of its own (a user room and a session room).
  const roomsBefore = await commandStats();
  const sockets = await Promise.all(Array.from({ length: ROOMS }, () => connect(b.url)));
  await Promise.all(sockets.map((s, i) => s.emitWithAck("join", [`user:${i}`, `session:${i}`])));
  for (const s of sockets) s.disconnect();
  await sleep(500);
  const rooms = delta(roomsBefore, await commandStats());
  console.log(`  ${ROOMS} sockets, each in 2 rooms of its own, connect and leave: ${JSON.stringify(rooms)}`);

  for (const s of [sender, member]) s.disconnect();
  a.close();
  b.close();
  await sleep(200);
}

admin.disconnect();
await redisServer.close();
process.exit(0);
