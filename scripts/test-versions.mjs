#!/usr/bin/env node
/**
 * The version matrix: `npm run test:versions` packs the library (`npm pack`, whose prepack builds dist/), then
 * installs the tarball with the oldest and the newest versions of each peer range (socket.io, express-session,
 * passport) and Express 4 and 5 into fresh apps under the OS temp dir, with npm's own peer-dependency checks on
 * (so a range that refuses a version fails here with ERESOLVE), and runs the core flow in each app:
 *
 *   an Express app with express-session (MemoryStore), passport-local and Socket.IO with bridge(); a login over
 *   HTTP; socket.io-client connects (websocket through /client's withAuth, which also joins a channel; then a
 *   plain polling socket) and its socket.request.user is HTTP's req.user; a connection without a cookie is
 *   refused (session_missing, no_cookie); an HTTP logout ends the socket with auth:ended { code: "logged_out" }
 *   at once (well before the 2-minute revalidation); the old cookie is then refused (Passport 0.6+:
 *   session_missing, unknown_session, the session was regenerated; 0.5: unauthenticated, the session stays).
 *
 * Passport 0.5's logout neither regenerates nor destroys the session: it deletes the user and saves. The flow
 * above is the proof that such a write ends the sockets at once (lib/user-writes.ts).
 *
 * Versions come from the registry (`npm view <pkg>@<range> version`): the oldest and newest that each peer range
 * of package.json accepts. Each part of a range such as `^0.5.1 || ^0.6.0 || ^0.7.0` counts: the full run takes
 * its oldest and newest (0.5.1, 0.5.3, 0.6.0, 0.7.0). Express is no peer: its newest 4 and newest 5 run.
 *
 *   npm run test:versions              every combination (one peer at its oldest, the rest at their newest), and
 *                                      a check that the release just below each floor is refused at install
 *   npm run test:versions -- --quick   just all-oldest and all-newest (also PSB_VERSIONS=quick); what .ci/run runs
 *   --only=<name>                      the combinations whose name contains <name>
 *   --keep                             keep the temp apps (printed), for a look after a failure
 *   --no-pack                          use dist/ as it is (`npm pack --ignore-scripts`) instead of building
 */
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick") || process.env.PSB_VERSIONS === "quick";
const keep = args.includes("--keep");
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length);
const noPack = args.includes("--no-pack");
// Two apps install and run side by side (a 2-core machine); more buys nothing.
const PARALLEL = Number(process.env.PSB_VERSIONS_PARALLEL ?? 2);
const started = Date.now();
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/** Orders release versions ("4.10.0" after "4.9.6"). */
const bySemver = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split(".").map(Number));
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
};

/** The versions of `pkg` that `range` accepts, oldest first (prereleases aside), from the registry. */
async function versions(pkg, range) {
  const { stdout } = await run(npm, ["view", `${pkg}@${range}`, "version", "--json"], { maxBuffer: 1 << 24 });
  // (npm lists them in publishing order: a backport comes after a newer release.)
  const list = [JSON.parse(stdout)].flat().filter((v) => !v.includes("-")).sort(bySemver);
  if (!list.length) throw new Error(`No published ${pkg} matches ${range}`);
  return list;
}
const oldest = (list) => list[0];
const newest = (list) => list.at(-1);

/** Oldest and newest of each part of a `||` range, oldest first, without repeats. */
async function ends(pkg, range) {
  const parts = range.split("||").map((p) => p.trim());
  const found = [];
  for (const part of parts) {
    const list = await versions(pkg, part);
    found.push(oldest(list), newest(list));
  }
  return [...new Set(found)];
}

async function plan() {
  const peers = manifest.peerDependencies;
  const [io, session, passport, express4, express5] = await Promise.all([
    ends("socket.io", peers["socket.io"]),
    ends("express-session", peers["express-session"]),
    ends("passport", peers.passport),
    versions("express", "^4").then(newest),
    versions("express", "^5").then(newest),
  ]);
  const newestOf = { io: io.at(-1), session: session.at(-1), passport: passport.at(-1), express: express5 };
  const combos = [
    { name: "all oldest", io: io[0], session: session[0], passport: passport[0], express: express4 },
    { name: "all newest", ...newestOf },
  ];
  if (!quick) {
    const one = (key, value, label) => combos.push({ ...newestOf, name: label, [key]: value });
    for (const v of io.slice(0, -1)) one("io", v, `socket.io ${v}`);
    for (const v of session.slice(0, -1)) one("session", v, `express-session ${v}`);
    for (const v of passport.slice(0, -1)) one("passport", v, `passport ${v}`);
    one("express", express4, `express ${express4}`);
  }
  // socket.io-client: the oldest its (optional, for /client) peer range accepts with all the oldest; elsewhere the
  // server's own release line, or the oldest the range accepts (any 4.x client speaks to any 4.x server).
  const clients = await versions("socket.io-client", peers["socket.io-client"]);
  for (const combo of combos) {
    if (combo.name === "all oldest") {
      combo.client = clients[0];
      continue;
    }
    const [major, minor] = combo.io.split(".");
    combo.client = clients.includes(combo.io) ? combo.io : newest(clients.filter((v) => v.startsWith(`${major}.${minor}.`))) ?? clients[0];
  }
  return combos.filter((c) => !only || c.name.includes(only));
}

async function pack(work) {
  const { stdout } = await run(npm, ["pack", "--json", ...(noPack ? ["--ignore-scripts"] : []), "--pack-destination", work], {
    cwd: root,
    maxBuffer: 1 << 26,
  });
  // prepack's build prints first; the JSON is an array whose opening bracket stands alone on its line.
  const [packed] = JSON.parse(stdout.slice(stdout.search(/^\[$/m)));
  return join(work, packed.filename);
}

/** Runs `cmd` and resolves with its output; rejects with the output when it fails or outlives `timeoutMs`. */
function exec(cmd, argv, { cwd, timeoutMs }) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, argv, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_ENV: "test" } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} ${argv.join(" ")}: no answer within ${timeoutMs} ms\n${out}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${argv.join(" ")} exited with ${code}\n${out}`));
    });
  });
}

async function runCombo(combo, tarball, work) {
  const dir = join(work, combo.name.replace(/[^\w.]+/g, "-"));
  mkdirSync(dir, { recursive: true });
  const dependencies = {
    "passport-socketio-bridge": `file:${tarball}`,
    express: combo.express,
    "express-session": combo.session,
    passport: combo.passport,
    "passport-local": "^1.0.0",
    "socket.io": combo.io,
    "socket.io-client": combo.client,
  };
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "psb-versions-app", private: true, type: "module", dependencies }, null, 2));
  writeFileSync(join(dir, "flow.js"), FLOW);
  const t0 = Date.now();
  // npm's peer checks stay on: a peer range that refuses one of these versions fails the install (ERESOLVE).
  await exec(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock", "--loglevel=error"], {
    cwd: dir,
    timeoutMs: 240_000,
  });
  const installMs = Date.now() - t0;
  const t1 = Date.now();
  const out = await exec(process.execPath, ["flow.js"], { cwd: dir, timeoutMs: 60_000 });
  const result = JSON.parse(out.trim().split("\n").at(-1));
  const installed = (pkg) => JSON.parse(readFileSync(join(dir, "node_modules", pkg, "package.json"), "utf8")).version;
  result.installed = Object.fromEntries(Object.keys(dependencies).map((pkg) => [pkg, installed(pkg)]));
  return { ...result, installMs, flowMs: Date.now() - t1 };
}

/**
 * Just below each floor, npm refuses the install (ERESOLVE): the ranges say where support ends. A dry run, so
 * nothing is downloaded; the app pins the peer one release below its range and everything else in range.
 */
async function belowFloors(tarball, work) {
  const peers = manifest.peerDependencies;
  const checked = ["socket.io", "socket.io-client", "express-session", "passport"];
  const rows = await Promise.all(
    checked.map(async (pkg) => {
      const floor = (await versions(pkg, peers[pkg]))[0];
      const below = newest(await versions(pkg, `<${floor}`));
      const dir = join(work, `below-${pkg}`);
      mkdirSync(dir, { recursive: true });
      const dependencies = { "passport-socketio-bridge": `file:${tarball}`, [pkg]: below };
      writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "psb-below-floor", private: true, dependencies }));
      try {
        await exec(npm, ["install", "--dry-run", "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock"], { cwd: dir, timeoutMs: 120_000 });
        return { pkg, floor, below, refused: false };
      } catch (err) {
        return { pkg, floor, below, refused: /ERESOLVE/.test(String(err.message)) };
      }
    }),
  );
  for (const row of rows) {
    console.log(`${row.refused ? "ok  " : "FAIL"} ${row.pkg} ${row.below} (below the floor, ${row.floor}) is ${row.refused ? "refused at install (ERESOLVE)" : "NOT refused at install"}`);
  }
  return rows.filter((row) => !row.refused).length;
}

/** The checks on what an app reports; returns what went wrong (nothing when all is well). */
function problems(combo, result) {
  const wrong = [];
  // Key order aside.
  const canonical = (value) => JSON.stringify(value, (_key, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
  const expectEqual = (what, actual, expected) => {
    if (canonical(actual) !== canonical(expected)) wrong.push(`${what}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  };
  for (const [pkg, version] of Object.entries({
    "socket.io": combo.io,
    "socket.io-client": combo.client,
    "express-session": combo.session,
    passport: combo.passport,
    express: combo.express,
    "passport-socketio-bridge": manifest.version,
  })) {
    expectEqual(`${pkg} installed`, result.installed[pkg], version);
  }
  for (const transport of ["websocket", "polling"]) {
    const t = result.transports[transport];
    if (!t) {
      wrong.push(`${transport}: no result`);
      continue;
    }
    expectEqual(`${transport}: HTTP user`, t.httpUser, { id: "1", name: "Alice" });
    expectEqual(`${transport}: socket user`, t.socketUser, t.httpUser);
    expectEqual(`${transport}: ended`, t.ended, { code: "logged_out" });
    expectEqual(`${transport}: disconnected`, t.disconnected, true);
    // At once: the revalidation that would otherwise catch it runs after 2 minutes.
    if (!(t.endedAfterMs < 2000)) wrong.push(`${transport}: auth:ended came ${t.endedAfterMs} ms after the logout`);
    // Passport 0.6+ regenerates the session on logout (the old id is gone); 0.5 keeps it, without a user.
    const regenerates = !/^0\.[0-5]\./.test(combo.passport);
    if (transport === "websocket") {
      expectEqual("withAuth: state once connected", t.state, "connected");
      expectEqual("withAuth: channel joined", t.joined, true);
      expectEqual("withAuth: ended", t.withAuthEnded, { info: { code: "logged_out" }, state: "ended" });
    }
    expectEqual(`${transport}: old cookie after logout`, t.afterLogout, regenerates ? { code: "session_missing", reconnect: false, reason: "unknown_session" } : { code: "unauthenticated", reconnect: false });
  }
  expectEqual("no cookie", result.noCookie, { reason: "no_cookie", code: "session_missing", reconnect: false });
  return wrong;
}

// The app: a typical Express + express-session + Passport (local) app with Socket.IO and the bridge, and a
// socket.io-client user. One process, on a free port; it prints one JSON line.
const FLOW = String.raw`import { createServer } from "node:http";
import { createRequire } from "node:module";
import express from "express";
import session from "express-session";
import passport from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { io as connectClient } from "socket.io-client";
import { bridge } from "passport-socketio-bridge";
import { withAuth } from "passport-socketio-bridge/client";

const require = createRequire(import.meta.url);
const passportVersion = require("passport/package.json").version;
const alice = { id: "1", name: "Alice" };
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error("timed out: " + what)), ms).unref());
const within = (promise, what) => Promise.race([promise, deadline(10_000, what)]);

passport.use(new LocalStrategy((username, password, done) => done(null, username === "alice" && password === "wonderland" ? alice : false)));
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id, done) => done(null, id === alice.id ? alice : false));

const sessionMiddleware = session({ secret: "version matrix", resave: false, saveUninitialized: false });
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(sessionMiddleware);
app.use(passport.initialize());
app.use(passport.session());
app.post("/login", passport.authenticate("local"), (req, res) => res.json({ user: req.user }));
app.get("/me", (req, res) => res.json({ user: req.user ?? null }));
app.post("/logout", (req, res, next) => {
  // Passport 0.5: synchronous, no callback (it deletes the user and saves). 0.6+: a callback, after a regenerate.
  if (/^0\.[0-5]\./.test(passportVersion)) {
    req.logout();
    return res.sendStatus(204);
  }
  req.logout((err) => (err ? next(err) : res.sendStatus(204)));
});

const server = createServer(app);
const ioServer = new Server(server);
const auth = bridge(ioServer, { session: sessionMiddleware, passport });
auth.channel("room:{id}", (user) => user !== undefined);
ioServer.on("connection", (socket) => socket.on("whoami", (ack) => ack(socket.request.user ?? null)));

function open(url, cookie, transport) {
  const headers = cookie ? { cookie } : {};
  return connectClient(url, { forceNew: true, reconnection: false, autoConnect: false, transports: [transport], extraHeaders: headers, transportOptions: { polling: { extraHeaders: headers } } });
}
const once = (socket, event) => new Promise((resolve) => socket.once(event, resolve));
/** The refusal a connection gets (err.data), or "connected". */
function attempt(url, cookie, transport) {
  const socket = open(url, cookie, transport).connect();
  return within(
    new Promise((resolve) => {
      socket.on("connect", () => resolve("connected"));
      socket.on("connect_error", (err) => resolve(err.data ?? { message: err.message }));
    }),
    "a connection attempt",
  ).finally(() => socket.close());
}

/**
 * Over websocket the socket goes through /client's withAuth (its state, its user, a channel joined through an
 * acknowledged emit, its "ended"); over polling it is a plain socket.io-client socket.
 */
async function flow(url, transport) {
  const login = await fetch(url + "/login", { method: "POST", body: new URLSearchParams({ username: "alice", password: "wonderland" }) });
  if (login.status !== 200) throw new Error("login: HTTP " + login.status);
  const cookie = login.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const httpUser = (await (await fetch(url + "/me", { headers: { cookie } })).json()).user;

  const socket = open(url, cookie, transport);
  const client = transport === "websocket" ? withAuth(socket) : undefined;
  if (!client) socket.connect();
  const connected = within(
    new Promise((resolve, reject) => {
      socket.on("connect", resolve);
      socket.on("connect_error", (err) => reject(new Error("refused: " + JSON.stringify(err.data ?? err.message))));
    }),
    "connect",
  );
  client?.connect();
  await connected;
  const state = client?.state;
  const socketUser = await within(new Promise((resolve) => socket.emit("whoami", resolve)), "whoami");
  const joined = client ? await within(client.join("room:7").then(() => true, (err) => err.code), "join") : undefined;
  const ended = once(socket, "auth:ended");
  const clientEnded = client && new Promise((resolve) => client.on("ended", resolve));
  const disconnected = once(socket, "disconnect");
  const logout = await fetch(url + "/logout", { method: "POST", headers: { cookie } });
  if (logout.status !== 204) throw new Error("logout: HTTP " + logout.status);
  const loggedOutAt = Date.now();
  const endedWith = await within(ended, "auth:ended after the logout");
  const endedAfterMs = Date.now() - loggedOutAt;
  await within(disconnected, "disconnect after auth:ended");
  const withAuthEnded = client && { info: await within(clientEnded, "withAuth's ended"), state: client.state };
  socket.close();
  const afterLogout = await attempt(url, cookie, transport);
  return { httpUser, socketUser, ended: endedWith, endedAfterMs, disconnected: true, afterLogout, ...(client ? { state, joined, withAuthEnded } : {}) };
}

server.listen(0, "127.0.0.1", async () => {
  const url = "http://127.0.0.1:" + server.address().port;
  try {
    const transports = {};
    for (const transport of ["websocket", "polling"]) transports[transport] = await flow(url, transport);
    const noCookie = await attempt(url, undefined, "websocket");
    console.log(JSON.stringify({ transports, noCookie }));
    ioServer.close();
    process.exit(0);
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
});
`;

async function main() {
  const work = mkdtempSync(join(tmpdir(), "psb-versions-"));
  let failed = 0;
  try {
    const [combos, tarball] = await Promise.all([plan(), pack(work)]);
    console.log(`${quick ? "Quick" : "Full"} version matrix: ${combos.length} apps, ${manifest.name}@${manifest.version} packed (${Date.now() - started} ms)`);
    const queue = [...combos];
    const rows = [];
    const worker = async () => {
      for (let combo = queue.shift(); combo; combo = queue.shift()) {
        const label = `socket.io ${combo.io} (client ${combo.client}), express-session ${combo.session}, passport ${combo.passport}, express ${combo.express}`;
        try {
          const result = await runCombo(combo, tarball, work);
          const wrong = problems(combo, result);
          rows.push({ combo, ok: !wrong.length, result });
          const times = `install ${(result.installMs / 1000).toFixed(1)} s, flow ${(result.flowMs / 1000).toFixed(1)} s, logout→auth:ended ${result.transports.websocket.endedAfterMs}/${result.transports.polling.endedAfterMs} ms`;
          console.log(`${wrong.length ? "FAIL" : "ok  "} ${combo.name}: ${label} (${times})`);
          for (const w of wrong) console.log(`       ${w}`);
          if (wrong.length) failed++;
        } catch (err) {
          failed++;
          rows.push({ combo, ok: false });
          console.log(`FAIL ${combo.name}: ${label}\n${String(err.message ?? err).replace(/^/gm, "       ")}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, combos.length) }, worker));
    if (!quick && !only) failed += await belowFloors(tarball, work);
    console.log(`${failed ? `${failed} failed` : "all passed"} (${combos.length} apps${quick || only ? "" : " and 4 floors"}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    if (keep || failed) console.log(`Apps kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
