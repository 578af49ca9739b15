/**
 * The example app as a real cluster (npm run example:cluster, run through npm): two processes, one Redis for the
 * sessions and the Socket.IO adapter. A user's sockets on both nodes get what one node sends to their user room,
 * a logout through one node ends them all, and presence sees every node. SIGTERM to npm stops it all cleanly.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { nextEvent } from "./helpers/harness.js";
import { alive, commandOf, descendants, exampleLogin as login, parentOf, untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let cluster: ChildProcess;
let exited: Promise<number | string | null>;
const REDIS_CLIENT = process.env.PSB_REDIS_CLIENT === "node-redis" ? "node-redis" : "ioredis";
let output = "";
let ports: number[];
let nodes: string[];
// npm's process tree once serving; npm runs in a process group of its own, stopped at the end whatever happened.
let pids: number[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  ports = [await freePort(), await freePort()];
  nodes = ports.map((port) => `http://127.0.0.1:${port}`);
  cluster = spawn("npm", ["run", "example:cluster"], {
    cwd: root,
    // The node-redis project runs this file again with the example's sessions on connect-redis 9 + node-redis.
    env: { ...process.env, PORTS: ports.join(","), REDIS_URL: inject("redisUrl"), DATABASE_URL: "", SKIP_BUILD: "1", REDIS_CLIENT: REDIS_CLIENT },
    stdio: "pipe",
    detached: true,
  });
  exited = new Promise((resolve) => cluster.once("exit", (code, signal) => resolve(code ?? signal)));
  cluster.stdout!.on("data", (chunk) => (output += chunk));
  cluster.stderr!.on("data", (chunk) => (output += chunk));
  await untilServing(cluster, nodes, "the cluster", 25_000);
  expect(output).toContain(`Sessions (connect-redis over ${REDIS_CLIENT})`);
  pids = [cluster.pid!, ...descendants(cluster.pid!)];
}, 30_000);

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  if (cluster.exitCode === null && cluster.signalCode === null) {
    cluster.kill("SIGTERM");
    await exited;
  }
  try {
    process.kill(-cluster.pid!, "SIGKILL");
  } catch {
    // none left
  }
});


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
    expect(await bob.emitWithAck("whisper", { to: "alice", text: "psst" })).toMatchObject({ ok: true, to: "Alice" });
    for (const whisper of await whispers) expect(whisper).toMatchObject({ from: "Bob", text: "psst" });

    // A logout through node B ends her socket on node A too.
    const ended = Promise.all([nextEvent(aliceOnA, "auth:ended"), nextEvent(aliceOnB, "auth:ended")]);
    await fetch(`${b}/logout`, { method: "POST", headers: { cookie: alice }, redirect: "manual" });
    expect(await ended).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
    expect(bob.connected).toBe(true);
  });

  it("stops on SIGTERM sent to npm: every node closes its sockets and exits 0, then npm does; no process left, ports free", async () => {
    const primary = pids.filter((pid) => parentOf(pid) === cluster.pid);
    const workers = pids.filter((pid) => parentOf(pid) === primary[0]);
    const commands = { primary: primary.map(commandOf), workers: workers.map(commandOf) };

    const [a, b] = nodes as [string, string];
    const alice = await login(a, "alice", "wonderland");
    const both = await Promise.all([connect(a, alice), connect(b, alice)]);
    const gone = Promise.all(both.map((socket) => nextEvent<string>(socket, "disconnect", 10_000)));
    cluster.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await gone).toEqual(["transport close", "transport close"]);
    expect(output).toContain("SIGTERM: stopping 2 nodes");
    for (const port of ports) expect(output).toContain(`Example app on port ${port} closed.`);
    expect(output).not.toMatch(/a node exited|unhandled/i);
    expect(pids.filter(alive)).toEqual([]);
    for (const port of ports) expect(await portIsFree(port)).toBe(true);
    // npm's one child was the cluster's primary (no shell between them), and the nodes were its children.
    expect(commands).toEqual({
      primary: ["node scripts/example-app.js --cluster "],
      workers: [expect.stringMatching(/example-app\/server\.js $/), expect.stringMatching(/example-app\/server\.js $/)],
    });
  });
});



function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}
