/**
 * The example app as a real cluster (npm run example:cluster): two processes, one Redis for the sessions and
 * the Socket.IO adapter. A user's sockets on both nodes get what one node sends to their user room, a logout
 * through one node ends them all, and presence sees every node.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cookieFrom, nextEvent } from "./helpers/harness.js";
import { untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let cluster: ChildProcess;
let nodes: string[];
const sockets: Socket[] = [];

beforeAll(async () => {
  const ports = [await freePort(), await freePort()];
  nodes = ports.map((port) => `http://127.0.0.1:${port}`);
  cluster = spawn(process.execPath, [join(root, "example-app", "cluster.js")], {
    env: { ...process.env, PORTS: ports.join(","), REDIS_URL: inject("redisUrl") },
    stdio: "pipe",
  });
  await untilServing(cluster, nodes, "the cluster", 25_000);
}, 30_000);

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  await new Promise<void>((resolve) => {
    if (cluster.exitCode !== null) return resolve();
    cluster.once("exit", () => resolve());
    cluster.kill("SIGTERM");
  });
});

async function login(url: string, username: string, password: string) {
  const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username, password }), redirect: "manual" });
  return cookieFrom(res);
}

async function connect(url: string, cookie: string) {
  const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie } });
  sockets.push(socket);
  await nextEvent(socket, "hello");
  return socket;
}

describe("the example app on two processes", () => {
  it("reaches a user's sockets on every node, sees who is online everywhere, and ends them all on logout", async () => {
    const [a, b] = nodes as [string, string];
    const alice = await login(a, "alice", "wonderland");
    const aliceOnA = await connect(a, alice);
    const aliceOnB = await connect(b, alice);

    // Bob is only on node B; alice's socket on node A sees him online.
    const sawBob = new Promise<void>((resolve) =>
      aliceOnA.on("online", (names: string[]) => names.includes("Bob") && resolve()),
    );
    const bob = await connect(b, await login(b, "bob", "builder"));
    await sawBob;

    // Node B sends to alice's user room; both of her sockets get it.
    const whispers = Promise.all([nextEvent(aliceOnA, "whisper"), nextEvent(aliceOnB, "whisper")]);
    expect(await bob.emitWithAck("whisper", { to: "alice", text: "psst" })).toEqual({ ok: true });
    for (const whisper of await whispers) expect(whisper).toMatchObject({ from: "Bob", text: "psst" });

    // A logout through node B ends her socket on node A too.
    const ended = Promise.all([nextEvent(aliceOnA, "auth:ended"), nextEvent(aliceOnB, "auth:ended")]);
    await fetch(`${b}/logout`, { method: "POST", headers: { cookie: alice }, redirect: "manual" });
    expect(await ended).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
    expect(bob.connected).toBe(true);
  });
});
