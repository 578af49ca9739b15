/**
 * What `npm pack` (and `npm publish`) ship from a clean checkout: a copy of the repository's files as git sees them
 * (tracked, and new files not ignored; no dist/, no node_modules/), packed by `npm pack` there, whose `prepack`
 * builds dist/. Every relative link and image of its documents resolves inside it. The tarball is then installed into two fresh apps outside the repository, one ES module and one
 * CommonJS, each with its own Express, express-session, Passport (local strategy) and Socket.IO. Each logs in over
 * HTTP and connects a socket whose `socket.request.user` is the user who logged in, through the packed files.
 *
 * Without network or registry: the checkout's node_modules/ is the repository's (a symlink), the tarball is
 * unpacked into each app's node_modules/ as npm would, and the apps' other packages are links to the repository's.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokenLinks } from "./helpers/docs.js";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NAME = "passport-socketio-bridge";
// What each app installs besides the package: a typical Express + Passport app, and the client for its check.
const APP_PACKAGES = ["express", "express-session", "passport", "passport-local", "socket.io", "socket.io-client"];

let work: string;
let checkout: string;
let tarball: string;
let packed: { files: Array<{ path: string }>; name: string; version: string };
let distBeforePack: boolean;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "psb-pack-"));
  checkout = join(work, "checkout");
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, maxBuffer: 1 << 24 });
  for (const file of stdout.split("\0").filter(Boolean)) {
    if (!statSync(join(root, file), { throwIfNoEntry: false })?.isFile()) continue; // deleted, not yet committed
    mkdirSync(dirname(join(checkout, file)), { recursive: true });
    copyFileSync(join(root, file), join(checkout, file));
  }
  symlinkSync(join(root, "node_modules"), join(checkout, "node_modules"), "dir");
  distBeforePack = statSync(join(checkout, "dist"), { throwIfNoEntry: false }) !== undefined;

  const pack = await run("npm", ["pack", "--json", "--ignore-scripts=false", "--pack-destination", work], {
    cwd: checkout,
    maxBuffer: 1 << 24,
  });
  // npm prints the prepack build's output first (in colour under CI=true, escape codes and all), then the
  // JSON: an array whose opening bracket stands alone on its line.
  [packed] = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[$/m)));
  tarball = join(work, `${NAME}-${packed.version}.tgz`);
}, 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("npm pack from a clean checkout", () => {
  it("starts with no dist/ (the checkout is clean) and ships one: every file package.json points at", () => {
    expect(distBeforePack).toBe(false);
    const files = packed.files.map((f) => f.path).sort();
    const manifest = JSON.parse(readFileSync(join(checkout, "package.json"), "utf8"));
    const targets = [manifest.main, manifest.module, manifest.types, ...exportTargets(manifest.exports)].map((t: string) =>
      t.replace(/^\.\//, ""),
    );
    expect(targets.filter((target) => !files.includes(target))).toEqual([]);
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.cjs");
    expect(files).toContain("dist/index.d.ts");
    // Nothing but the built package and its documents (the guides in docs/, their images, SECURITY.md).
    expect(files.filter((f) => !/^(dist\/|docs\/|README\.md$|CHANGELOG\.md$|SECURITY\.md$|LICENSE$|package\.json$)/.test(f))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(["SECURITY.md", "docs/README.md", "docs/getting-started.md", "docs/example-app.png"]));
  });

  it("ships every file its documents link to: each relative link and image resolves inside the tarball", async () => {
    const unpacked = join(work, "unpacked");
    mkdirSync(unpacked);
    await run("tar", ["-xzf", tarball, "-C", unpacked, "--strip-components=1"]);
    const documents = packed.files.map((f) => f.path).filter((f) => /^(README|SECURITY|CHANGELOG)\.md$|^docs\/[^/]+\.md$/.test(f));
    expect(documents).toEqual(expect.arrayContaining(["README.md", "SECURITY.md", "CHANGELOG.md", "docs/README.md"]));
    expect(brokenLinks(unpacked, documents)).toEqual([]);
  });

  const cases = [
    ["an ES module app (import)", "module", "dist/index.js"],
    ["a CommonJS app (require)", "commonjs", "dist/index.cjs"],
  ] as const;
  // The two apps side by side: each waits mostly on its own process.
  it.concurrent.for(cases)("installs into %s outside the repository: login over HTTP, then the socket sees req.user", async ([_name, type, entry], { expect }) => {
    const app = join(work, `${type}-app`);
    const modules = join(app, "node_modules");
    mkdirSync(join(modules, NAME), { recursive: true });
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: `${type}-app`, private: true, type }));
    // The tarball, as `npm install <tarball>` lays it out; its dependencies, and the app's own packages.
    await run("tar", ["-xzf", tarball, "-C", join(modules, NAME), "--strip-components=1"]);
    const dependencies = Object.keys(JSON.parse(readFileSync(join(modules, NAME, "package.json"), "utf8")).dependencies ?? {});
    for (const pkg of [...dependencies, ...APP_PACKAGES]) {
      mkdirSync(dirname(join(modules, pkg)), { recursive: true });
      symlinkSync(join(root, "node_modules", pkg), join(modules, pkg), "dir");
    }
    writeFileSync(join(app, "main.js"), appSource(type));

    const { stdout } = await run(process.execPath, ["main.js"], { cwd: app, timeout: 20_000 });
    const result = JSON.parse(stdout);
    expect(result).toEqual({
      user: { id: "1", name: "Alice" },
      refused: { code: "session_missing", reason: "no_cookie", reconnect: false },
      entry: expect.any(String),
      compat: "function",
      version: packed.version,
    });
    // The packed files, from the app's own node_modules (not the repository's dist/).
    expect(result.entry).toBe(join(modules, NAME, entry));
  });
});

/** Every file an `exports` map names, whatever its conditions. */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === "string") return [exports];
  if (!exports || typeof exports !== "object") return [];
  return Object.values(exports).flatMap(exportTargets);
}

/** An app of the given module type: Express + express-session + passport-local + Socket.IO with the bridge. */
function appSource(type: "module" | "commonjs"): string {
  const imports =
    type === "module"
      ? `import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import express from "express";
import session from "express-session";
import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { io } from "socket.io-client";
import { bridge, RefusalError } from "passport-socketio-bridge";
import { authorize } from "passport-socketio-bridge/compat";
import pkg from "passport-socketio-bridge/package.json" with { type: "json" };
const entry = fileURLToPath(import.meta.resolve("passport-socketio-bridge"));`
      : `const { createServer } = require("node:http");
const express = require("express");
const session = require("express-session");
const { Passport } = require("passport");
const { Strategy: LocalStrategy } = require("passport-local");
const { Server } = require("socket.io");
const { io } = require("socket.io-client");
const { bridge, RefusalError } = require("passport-socketio-bridge");
const { authorize } = require("passport-socketio-bridge/compat");
const pkg = require("passport-socketio-bridge/package.json");
const entry = require.resolve("passport-socketio-bridge");`;
  return `${imports}

const alice = { id: "1", name: "Alice" };
const sessionMiddleware = session({ secret: "pack spec", resave: false, saveUninitialized: false });
const passport = new Passport();
passport.use(new LocalStrategy((username, password, done) => done(null, username === "alice" && password === "wonderland" ? alice : false)));
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id, done) => done(null, id === alice.id ? alice : false));

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(sessionMiddleware);
app.use(passport.session());
app.post("/login", passport.authenticate("local"), (req, res) => res.json({ user: req.user }));
const server = createServer(app);
const ioServer = new Server(server);
bridge(ioServer, { session: sessionMiddleware, passport });
ioServer.on("connection", (socket) => socket.emit("whoami", socket.request.user));

const connect = (url, headers) =>
  new Promise((resolve) => {
    const socket = io(url, { forceNew: true, transports: ["websocket"], reconnection: false, extraHeaders: headers });
    socket.on("whoami", (user) => resolve({ user }) || socket.close());
    socket.on("connect_error", (err) => resolve({ refused: err.data }) || socket.close());
  });

server.listen(0, "127.0.0.1", async () => {
  const url = "http://127.0.0.1:" + server.address().port;
  const res = await fetch(url + "/login", { method: "POST", body: new URLSearchParams({ username: "alice", password: "wonderland" }) });
  const cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const { user } = await connect(url, { cookie });
  const { refused } = await connect(url, {});
  if (!(new RefusalError("rejected") instanceof Error)) throw new Error("RefusalError is no Error");
  console.log(JSON.stringify({ user, refused, entry, compat: typeof authorize, version: pkg.version }));
  await ioServer.close();
  process.exit(0);
});
`;
}
