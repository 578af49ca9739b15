/**
 * Several nodes with no Redis at all: sessions in PostgreSQL (connect-pg-simple) and the Socket.IO adapter on
 * PostgreSQL (@socket.io/postgres-adapter's LISTEN/NOTIFY), on a real server of this file's own
 * (helpers/postgres-server.ts). Every node is set up by docs/deployment.md's `usePostgres()`, extracted from the
 * docs as written; each test's cluster gets a database of its own.
 *
 * - Handshake cost, counted around the session pool's `query`: one SELECT per session per node, none per event.
 * - Logout on node A ends the session's sockets on node B within 1 s; expiry, renewal, presence, refresh,
 *   disconnectSession and disconnectUser cross nodes.
 * - A node whose LISTEN connection ended catches up when it listens again: a logout made through the other node
 *   during the gap ends its socket then, not at the next revalidation.
 * - The docs' table setup holds when several nodes start at once on an empty database (createTableIfMissing alone
 *   does not: docs/deployment.md).
 * - Postgres stopped and started again: no crash (the adapter's LISTEN client has no "error" listener of its own,
 *   and a process without the docs' listener dies: shown on a child process), live sockets stay, handshakes that
 *   need the store are refused as store_unavailable (reconnect: true), and everything recovers with no restart.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Store } from "express-session";
import pg from "pg";
import { Server as SocketServer } from "socket.io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failOnLeaks } from "./helpers/leaks.js";
import {
  harnessPerTest,
  nextEvent,
  sessionIdOf,
  TRANSPORTS,
  type Harness,
  type HarnessOptions,
  type WhoAmI,
} from "./helpers/harness.js";
import { ending, whoami } from "./helpers/live.js";
import { startPostgres, type PostgresServer } from "./helpers/postgres-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** What docs/deployment.md's `usePostgres(connectionString, log)` returns. */
interface PostgresSetup {
  store: Store;
  adapter: Parameters<SocketServer["adapter"]>[0];
  sessionPool: pg.Pool;
  adapterPool: pg.Pool;
  close(): Promise<void>;
}
type UsePostgres = (connectionString: string, log?: (line: string) => void) => Promise<PostgresSetup>;

/** The docs' PostgreSQL block, verbatim. */
function docsBlock(): string {
  const docs = readFileSync(join(root, "docs", "deployment.md"), "utf8");
  const match = /<!-- postgres-setup[^>]*-->\s*```js\n([\s\S]*?)```/.exec(docs);
  if (!match) throw new Error("docs/deployment.md has no postgres-setup block");
  return match[1]!;
}

const start = harnessPerTest();
const leaks = failOnLeaks();
let server: PostgresServer;
let admin: pg.Pool;
let snippetDir: string;
let snippet: string;
let usePostgres: UsePostgres;
/** What the nodes logged (the docs' `log`): pool and adapter errors during the outage. */
const logged: string[] = [];

beforeAll(async () => {
  mkdirSync(join(root, ".tmp"), { recursive: true });
  // Inside the package, so that pg, connect-pg-simple and the adapter resolve from its node_modules.
  snippetDir = mkdtempSync(join(root, ".tmp", "postgres-"));
  snippet = join(snippetDir, "postgres.js");
  writeFileSync(snippet, docsBlock());
  ({ usePostgres } = (await import(pathToFileURL(snippet).href)) as { usePostgres: UsePostgres });
  server = await startPostgres();
  admin = new pg.Pool({ connectionString: server.url, max: 2 });
  admin.on("error", () => undefined);
}, 30_000);

afterAll(async () => {
  await admin?.end();
  await server?.close();
  if (snippetDir) rmSync(snippetDir, { recursive: true, force: true });
});

let databases = 0;
/** A fresh database, so that each cluster has its own session table and NOTIFY channels. */
async function database(): Promise<string> {
  const name = `psb_${process.pid}_${++databases}`;
  await admin.query(`CREATE DATABASE ${name}`);
  return server.url.replace(/\/postgres$/, `/${name}`);
}

interface PgNode extends Harness {
  setup: PostgresSetup;
  /** Queries on the session table through the store's pool since the last take, by verb (SELECT = a read). */
  queries(): Record<string, number>;
}

/** One node: the docs' usePostgres() on `url`, the harness's app around it. */
async function node(url: string, options: HarnessOptions = {}): Promise<PgNode> {
  const setup = await usePostgres(url, (line) => logged.push(line));
  const counts: Record<string, number> = {};
  const pool = setup.sessionPool as unknown as { query: (...args: unknown[]) => unknown };
  const query = pool.query.bind(pool);
  pool.query = (...args: unknown[]) => {
    const text = typeof args[0] === "string" ? args[0] : "";
    if (text.includes(`"session"`)) {
      const verb = text.trim().split(/\s+/)[0]!.toUpperCase();
      counts[verb] = (counts[verb] ?? 0) + 1;
    }
    return query(...args);
  };
  const h = await start({
    ...options,
    store: setup.store,
    adapter: (io) => {
      io.adapter(setup.adapter);
      return () => setup.close();
    },
  });
  return Object.assign(h, {
    setup,
    queries() {
      const taken = { ...counts };
      for (const verb of Object.keys(counts)) delete counts[verb];
      return taken;
    },
  });
}

/** Two nodes of one app on a database of their own, each one hearing the other. */
async function cluster(options: HarnessOptions = {}) {
  const url = await database();
  const a = await node(url, options);
  const b = await node(url, options);
  await linked([a, b]);
  return [a, b] as const;
}

/**
 * Resolves once every node has heard every other over the adapter (each LISTEN is up; each node counts the
 * others, so serverSideEmit with acknowledgements waits for them). The adapter's own heartbeat (every 5 s) would
 * get there too, later.
 */
async function linked(nodes: Harness[], ms = 10_000): Promise<number> {
  const started = Date.now();
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to) continue;
      const token = `${Math.random()}`;
      let heard = false;
      const listener = (value: unknown) => {
        if (value === token) heard = true;
      };
      to.io.on("psb:ping", listener);
      try {
        while (!heard) {
          if (Date.now() - started > ms) throw new Error(`the nodes did not hear each other within ${ms} ms`);
          from.io.serverSideEmit("psb:ping", token);
          for (let i = 0; i < 10 && !heard; i++) await sleep(20);
        }
      } finally {
        to.io.off("psb:ping", listener);
      }
    }
  }
  return Date.now() - started;
}

const nameOf = (me: WhoAmI) => (me.user as { name?: string } | null)?.name;

/**
 * The pg client a node's @socket.io/postgres-adapter (0.5) keeps checked out for LISTEN (its private
 * `client.client`), while it has one.
 */
function listenClientOf(h: Harness): { processID?: number } | undefined {
  return (h.io.of("/").adapter as { client?: { client?: { processID?: number } } }).client?.client;
}

describe("the docs' PostgreSQL setup", () => {
  it("gives every node working tables when four start at once on an empty database, and closes at once", async () => {
    const url = await database();
    const setups = await Promise.all(Array.from({ length: 4 }, () => usePostgres(url, (line) => logged.push(line))));
    const servers = await Promise.all(
      setups.map(async (setup) => {
        const http = createServer();
        await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
        return new SocketServer(http, { adapter: setup.adapter });
      }),
    );
    const get = (store: Store, sid: string) =>
      new Promise<unknown>((resolve, reject) => store.get(sid, (err, session) => (err ? reject(err) : resolve(session ?? null))));
    // The first query of each store at once: connect-pg-simple's createTableIfMissing finds the table.
    expect(await Promise.all(setups.map((s) => get(s.store, "nobody")))).toEqual([null, null, null, null]);
    const session = { cookie: { expires: new Date(Date.now() + 60_000).toISOString(), originalMaxAge: 60_000 }, n: 1 };
    await new Promise<void>((resolve, reject) => setups[0]!.store.set("s1", session as never, (err) => (err ? reject(err) : resolve())));
    expect(await get(setups[3]!.store, "s1")).toMatchObject({ n: 1 });

    // The graceful close of serving nodes: io.close() releases the adapter's LISTEN client, so the pools end at
    // once. (A node closed while its adapter is still acquiring that client leaves it checked out, and close()
    // then takes its 2 s bound: so first, every node's adapter is listening.)
    const listening = () =>
      setups[0]!.sessionPool
        .query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle' AND query LIKE 'LISTEN%'")
        .then((result) => (result.rows[0] as { n: number }).n);
    for (let tries = 0; (await listening()) < setups.length; tries++) {
      if (tries > 200) throw new Error("the adapters never listened");
      await sleep(25);
    }
    const closing = Date.now();
    await Promise.all(servers.map((io) => io.close()));
    await Promise.all(setups.map((s) => s.close()));
    expect(Date.now() - closing).toBeLessThan(1000);
  });
});

describe("two nodes on PostgreSQL", () => {
  it("reads a session once per node, not per connection, and never per event: 120 sockets of 6 sessions on 2 nodes cost 12 SELECTs", async () => {
    const [a, b] = await cluster();
    const cookies = [
      await a.login("alice"), await b.login("bob"), await a.login("carol"),
      await b.login("alice"), await a.login("bob"), await b.login("carol"),
    ];
    a.queries();
    b.queries();
    const transport = (i: number) => TRANSPORTS[i % 3]!;
    const onA = await a.connectSessions(cookies, 60, transport);
    const onB = await b.connectSessions(cookies, 60, transport);
    // At most one store read per connection; with the bridge's shared reads, one per session on each node.
    expect(a.queries()).toEqual({ SELECT: 6 });
    expect(b.queries()).toEqual({ SELECT: 6 });

    const answers = await Promise.all(
      [...onA, ...onB].map(async (socket) => {
        let last: WhoAmI | undefined;
        for (let i = 0; i < 5; i++) last = await whoami(socket);
        return nameOf(last!);
      }),
    );
    expect(answers.filter((name) => !name)).toEqual([]);
    // 600 events: no query at all on the session table.
    expect(a.queries()).toEqual({});
    expect(b.queries()).toEqual({});
  });

  it("req.logout() through node A ends the session's sockets on node B within 1 s, and nobody else's", async () => {
    const [a, b] = await cluster();
    const alice = await a.login("alice");
    const bob = await b.login("bob");
    const aliceSockets = [
      await b.connect({ cookie: alice, transport: "websocket" }),
      await b.connect({ cookie: alice, transport: "polling" }),
      await a.connect({ cookie: alice, transport: "upgrade" }),
    ];
    const bobs = [await b.connect({ cookie: bob }), await a.connect({ cookie: bob, transport: "polling" })];

    const since = Date.now();
    const endings = Promise.all(aliceSockets.map((s) => ending(s, since)));
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    for (const end of await endings) {
      expect(end).toMatchObject({ code: "logged_out", reason: "io server disconnect" });
      expect(end.ms).toBeLessThan(1000);
    }
    await sleep(100);
    expect(bobs.every((s) => s.connected)).toBe(true);
    expect((await whoami(bobs[0]!)).user).toMatchObject({ name: "Bob" });
    // The row is gone: the old cookie is refused on either node.
    expect((await b.refusal({ cookie: alice })).data.code).toBe("session_missing");
  });

  it("ends a session's sockets on both nodes at its expiry (connect-pg-simple keeps whole seconds: within 1.5 s of it)", async () => {
    const [a, b] = await cluster({ session: { cookie: { maxAge: 1000 } } });
    const loggedIn = Date.now();
    const cookie = await a.login("alice");
    const sockets = [await a.connect({ cookie }), await b.connect({ cookie, transport: "polling" })];
    const ends = await Promise.all(sockets.map((s) => ending(s, loggedIn)));
    for (const end of ends) {
      expect(end.code).toBe("session_expired");
      expect(end.ms).toBeGreaterThanOrEqual(1000);
      expect(end.ms).toBeLessThan(1000 + 1500);
    }
  });

  it("follows a renewal made through the other node (connect-pg-simple's touch writes only the expire column)", async () => {
    const [a, b] = await cluster({ session: { rolling: true, cookie: { maxAge: 1000 } } });
    const loggedIn = Date.now();
    const cookie = await a.login("alice");
    const socket = await b.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(600 - (Date.now() - loggedIn));
    // An HTTP request through node A renews the session (an UPDATE of `expire`; the stored cookie is unchanged).
    expect((await a.request("/me", { cookie })).status).toBe(200);
    const renewedAt = Date.now() - loggedIn;
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(renewedAt + 1000);
    expect(end.ms).toBeLessThan(renewedAt + 1000 + 1500);
  });

  it("presence, refresh, disconnectSession and disconnectUser reach every node", async () => {
    const [a, b] = await cluster();
    const alice = await a.login("alice");
    const aliceElsewhere = await b.login("alice");
    const bob = await b.login("bob");
    const aliceOnA = await a.connect({ cookie: alice });
    const bobOnB = await b.connect({ cookie: bob, transport: "polling" });

    // Each node sees the users connected only on the other.
    expect((await a.auth.onlineUsers()).sort()).toEqual(["1", "2"]);
    expect(await b.auth.isOnline("1")).toBe(true);
    expect(await a.auth.isOnline("2")).toBe(true);
    expect(await a.auth.isOnline("3")).toBe(false);

    // refresh() through node A re-reads the session and the user on node B too (its own users, renamed).
    const aliceOnB = await b.connect({ cookie: alice });
    b.users.get("1")!.name = "Alicia";
    expect(await a.auth.refresh("1")).toBe(2);
    expect(nameOf(await whoami(aliceOnB))).toBe("Alicia");
    expect(nameOf(await whoami(aliceOnA))).toBe("Alice");

    const otherSession = await a.connect({ cookie: aliceElsewhere, transport: "polling" });
    const revoked = ending(otherSession);
    expect(await b.auth.disconnectSession(sessionIdOf(aliceElsewhere))).toBe(1);
    expect((await revoked).code).toBe("revoked");

    const endings = Promise.all([ending(aliceOnA), ending(aliceOnB)]);
    expect(await b.auth.disconnectUser("1")).toBe(2);
    for (const end of await endings) expect(end).toMatchObject({ code: "revoked", reason: "io server disconnect" });
    expect(bobOnB.connected).toBe(true);
    expect(await b.auth.onlineUsers()).toEqual(["2"]);
    expect(await a.auth.isOnline("1")).toBe(false);
  });

  it("a node whose LISTEN connection dropped catches up on a logout made through another node meanwhile, once it listens again", async () => {
    // Revalidation far away: only the catch-up can end the socket within this test.
    const [a, b] = await cluster({ bridge: { revalidateEveryMs: 600_000 } });
    const alice = await a.login("alice");
    const bob = await a.login("bob");
    const aliceOnB = await b.connect({ cookie: alice });
    const bobOnB = await b.connect({ cookie: bob });
    const listener = listenClientOf(b);
    expect(listener?.processID).toBeGreaterThan(0);

    // B's LISTEN backend ends (as in a network cut or a failover); its adapter listens again 1 to 3 s later.
    await admin.query("SELECT pg_terminate_backend($1)", [listener!.processID]);
    for (let i = 0; listenClientOf(b); i++) {
      if (i > 250) throw new Error("node B's adapter never noticed its LISTEN connection ended");
      await sleep(20);
    }
    const ended = ending(aliceOnB);
    // The logout's NOTIFY goes out while B is not listening: B never hears it.
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    expect(listenClientOf(b)).toBeUndefined();
    expect(aliceOnB.connected).toBe(true);

    for (let i = 0; !listenClientOf(b); i++) {
      if (i > 250) throw new Error("node B's adapter did not listen again within 5 s");
      await sleep(20);
    }
    const back = Date.now();
    const end = await ended;
    // A row that vanished reads as expired to revalidation: either code says the session is over.
    expect(["logged_out", "session_expired"]).toContain(end.code);
    expect(end.reason).toBe("io server disconnect");
    expect(Date.now() - back).toBeLessThan(1500);
    expect(bobOnB.connected).toBe(true);
    expect(nameOf(await whoami(bobOnB))).toBe("Bob");
  });
});

/**
 * A Socket.IO server with @socket.io/postgres-adapter and nothing else, as a child process: `readme` is the
 * adapter README's setup (an "error" listener on the pool only); `docs` is docs/deployment.md's usePostgres().
 * It prints "listening" once the adapter's LISTEN client is up.
 */
function adapterProcess(setup: "readme" | "docs", url: string) {
  const script = `
    import pg from "pg";
    import { Server } from "socket.io";
    import { createAdapter } from "@socket.io/postgres-adapter";
    const url = process.env.DATABASE_URL;
    let adapter;
    if (process.env.SETUP === "docs") {
      const { usePostgres } = await import(process.env.SNIPPET);
      adapter = (await usePostgres(url, (line) => console.log(line))).adapter;
    } else {
      const pool = new pg.Pool({ connectionString: url });
      pool.on("error", (err) => console.log("Postgres error: " + err.message));
      adapter = createAdapter(pool);
    }
    const io = new Server({ adapter });
    const timer = setInterval(() => {
      if (io.of("/").adapter.client?.client) {
        clearInterval(timer);
        console.log("listening");
      }
    }, 20);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, SETUP: setup, SNIPPET: pathToFileURL(snippet).href, DEBUG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "")));
  const listening = (async () => {
    for (let i = 0; i < 200 && !output.includes("listening"); i++) {
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    if (!output.includes("listening")) throw new Error(`the ${setup} adapter process did not start:\n${output}`);
  })();
  return { child, exited, listening, output: () => output };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/**
 * How the server goes away, and the error it leaves the LISTEN client with: a fast shutdown (SIGINT, a planned
 * restart) tells its clients first; an immediate one (SIGQUIT, like a crash or a failover) just closes them.
 */
const STOPS = [
  { mode: "fast", error: "terminating connection due to administrator command" },
  { mode: "immediate", error: "Connection terminated unexpectedly" },
] as const;

describe.each(STOPS)("PostgreSQL stopped ($mode shutdown), then started again", ({ mode, error }) => {
  it("crashes nothing, keeps live sockets, refuses what needs the store as store_unavailable, and recovers with no restart", { timeout: 45_000 }, async () => {
    const storeTimeoutMs = 1000;
    const [a, b] = await cluster({ bridge: { storeTimeoutMs } });
    const alice = await a.login("alice");
    const bob = await b.login("bob");
    // A session with no socket yet anywhere: its first handshake needs the store.
    const carol = await a.login("carol");
    const sockets = [
      await a.connect({ cookie: alice }),
      await b.connect({ cookie: alice, transport: "polling" }),
      await b.connect({ cookie: bob }),
      await a.connect({ cookie: bob, transport: "upgrade" }),
    ];
    // The trap, on processes of their own (it kills the process): the adapter README's setup, and the docs'.
    const trapUrl = await database();
    const readme = adapterProcess("readme", trapUrl);
    const docs = adapterProcess("docs", trapUrl);
    try {
      await Promise.all([readme.listening, docs.listening]);
      logged.length = 0;

      await server.stop({ mode });
      const down = Date.now();

      // Without a listener on the LISTEN client, the whole process dies of an uncaught 'error' event.
      expect(await Promise.race([readme.exited, sleep(5000).then(() => "still running")])).toBe(1);
      expect(readme.output()).toContain("Unhandled 'error' event");
      expect(readme.output()).toContain(error);
      // With the docs' listener, it lives, and says what happened.
      for (let i = 0; i < 100 && !docs.output().includes(error); i++) await sleep(50);
      expect(docs.output()).toContain(`Postgres (adapter): ${error}`);
      expect(docs.child.exitCode).toBeNull();

      // Our nodes: still up, sockets connected and answering.
      expect(sockets.filter((s) => !s.connected)).toEqual([]);
      expect((await Promise.all(sockets.map(whoami))).map(nameOf)).toEqual(["Alice", "Alice", "Bob", "Bob"]);

      // A handshake that needs the store: refused, as worth retrying, on either node. The pool's connect fails at
      // once (ECONNREFUSED), before storeTimeoutMs.
      for (const h of [a, b]) {
        const started = Date.now();
        const refused = await h.refusal({ cookie: carol, reconnection: false });
        expect(refused.data).toEqual({ code: "store_unavailable", reconnect: true });
        expect(Date.now() - started).toBeLessThan(storeTimeoutMs);
      }
      // HTTP that needs the session fails too (express-session's error), and the node stays up.
      expect((await a.request("/me", { cookie: alice })).status).toBe(500);
      expect(Date.now() - down).toBeLessThan(10_000);

      await server.restart();

      // The adapters listen again by themselves (their reconnection delay is 1 to 3 s).
      const relinkMs = await linked([a, b]);
      expect(relinkMs).toBeLessThan(8000);
      // The sessions are still there (Postgres keeps them): carol's old cookie now connects, on node B.
      const carolOnB = await b.connect({ cookie: carol });
      expect((await whoami(carolOnB)).user).toMatchObject({ name: "Carol" });
      // And a logout through node A ends alice's sockets on both nodes within 1 s again.
      const since = Date.now();
      const endings = Promise.all(sockets.slice(0, 2).map((s) => ending(s, since)));
      expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
      for (const end of await endings) {
        expect(end.code).toBe("logged_out");
        expect(end.ms).toBeLessThan(1000);
      }
      expect(sockets.slice(2).every((s) => s.connected)).toBe(true);
      expect(logged).toContain(`Postgres (adapter): ${error}`);
      // The docs' process lived through it all.
      expect(docs.child.exitCode).toBeNull();
      expect(leaks).toEqual([]);
    } finally {
      await Promise.all([kill(readme.child), kill(docs.child)]);
    }
  });
});
