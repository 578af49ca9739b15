/**
 * The published package, as an app meets it: the built ESM and CommonJS entry points, imported by name from
 * a plain app outside this repo's source, and its type declarations compiled against a strict consumer.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const fixtures = join(root, "spec", "fixtures", "consumer");
let app: string;

/** A plain app: a directory of its own whose node_modules holds the package and its peers. */
function makeApp(name: string, packages: string[], type: "module" | "commonjs") {
  const dir = join(app, name);
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true, type }));
  symlinkSync(root, join(dir, "node_modules", "passport-socketio-bridge"), "dir");
  for (const pkg of packages) symlinkSync(join(root, "node_modules", pkg), join(dir, "node_modules", pkg), "dir");
  return dir;
}

beforeAll(() => {
  if (!existsSync(join(root, "dist", "index.js"))) throw new Error("dist/ is missing: `npm test` builds it first (npm run build).");
  mkdirSync(join(root, ".tmp"), { recursive: true });
  app = mkdtempSync(join(root, ".tmp", "consumer-"));
});
afterAll(() => rmSync(app, { recursive: true, force: true }));

const RUNTIME = ["socket.io", "express-session", "passport"];
// The typings a typical Express + Passport app has installed.
const TYPES = ["@types"];
// A front end's: passport-socketio-bridge/client on the app's own socket.io-client.
const CLIENT = ["socket.io-client"];

describe("entry points", () => {
  const script = (imports: string) => `${imports}
const io = new Server();
// No passport option: the passport singleton is used.
const auth = bridge(io, { session: session({ secret: "s", resave: false, saveUninitialized: false }) });
console.log(JSON.stringify({
  room: auth.userRoom(7),
  data: new RefusalError("store_unavailable").data,
  isError: new RefusalError("rejected") instanceof Error,
  compat: [typeof authorize, typeof filterSocketsByUser, typeof fetchSocketsByUser],
}));
`;
  const expected = {
    room: "user:7",
    data: { code: "store_unavailable", reconnect: true },
    isError: true,
    compat: ["function", "function", "function"],
  };

  it("imports by name from an ES module", async () => {
    const dir = makeApp("esm-app", RUNTIME, "module");
    writeFileSync(
      join(dir, "main.js"),
      script(`import { bridge, RefusalError } from "passport-socketio-bridge";
import { authorize, filterSocketsByUser, fetchSocketsByUser } from "passport-socketio-bridge/compat";
import { Server } from "socket.io";
import session from "express-session";`),
    );
    const { stdout } = await run(process.execPath, ["main.js"], { cwd: dir });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it("requires by name from CommonJS", async () => {
    const dir = makeApp("cjs-app", RUNTIME, "commonjs");
    writeFileSync(
      join(dir, "main.js"),
      script(`const { bridge, RefusalError } = require("passport-socketio-bridge");
const { authorize, filterSocketsByUser, fetchSocketsByUser } = require("passport-socketio-bridge/compat");
const { Server } = require("socket.io");
const session = require("express-session");`),
    );
    const { stdout } = await run(process.execPath, ["main.js"], { cwd: dir });
    expect(JSON.parse(stdout)).toEqual(expected);
  });
});

describe("type declarations", () => {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const compile = async (dir: string, options: string[]) => {
    try {
      await run(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck", "false", "--types", "node", ...options, "app.ts"], { cwd: dir });
      return "";
    } catch (err) {
      return String((err as { stdout?: string }).stdout ?? err);
    }
  };

  it.each([
    ["an ESM app (NodeNext)", "module", ["--module", "nodenext", "--moduleResolution", "nodenext"]],
    ["a CommonJS app (NodeNext)", "commonjs", ["--module", "nodenext", "--moduleResolution", "nodenext"]],
    ["a bundled app (Bundler)", "module", ["--module", "esnext", "--moduleResolution", "bundler"]],
  ] as const)("type socket.request for %s, with no cast", async (_name, type, options) => {
    const dir = makeApp(`types-${type}-${options[3]}`, [...RUNTIME, ...TYPES], type);
    writeFileSync(join(dir, "app.ts"), readFixture("typed-app.ts"));
    expect(await compile(dir, [...options, "--esModuleInterop"])).toBe("");
  });

  it.each([
    ["an ESM app (NodeNext)", "module", ["--module", "nodenext", "--moduleResolution", "nodenext"]],
    ["a CommonJS app (NodeNext)", "commonjs", ["--module", "nodenext", "--moduleResolution", "nodenext"]],
    ["a bundled front end (Bundler)", "module", ["--module", "esnext", "--moduleResolution", "bundler", "--target", "es2020", "--lib", "es2020,dom"]],
  ] as const)("type passport-socketio-bridge/client for %s, with no cast", async (_name, type, options) => {
    const dir = makeApp(`client-${type}-${options[3]}`, CLIENT, type);
    writeFileSync(join(dir, "app.ts"), readFixture("client-app.ts"));
    expect(await compile(dir, [...options])).toBe("");
  });

  it("type the README's TypeScript quickstart as written", async () => {
    const dir = makeApp("types-quickstart", [...RUNTIME, ...TYPES], "module");
    writeFileSync(join(dir, "app.ts"), readmeBlock("quickstart-ts", "ts"));
    expect(await compile(dir, ["--module", "nodenext", "--moduleResolution", "nodenext", "--esModuleInterop"])).toBe("");
  });

  it("reject what the app did not declare (the checks above can fail)", async () => {
    const dir = makeApp("types-negative", [...RUNTIME, ...TYPES, ...CLIENT], "module");
    writeFileSync(join(dir, "app.ts"), readFixture("wrong-app.ts"));
    const output = await compile(dir, ["--module", "nodenext", "--moduleResolution", "nodenext", "--esModuleInterop"]);
    expect(output).toMatch(/Property 'email' does not exist on type 'User'/);
    // The README's reason to narrow: without a check, the user may be undefined.
    expect(output).toMatch(/error TS18048: 'socket\.request\.user' is possibly 'undefined'/);
    expect(output).toMatch(/'alowAnonymous' does not exist/);
    expect(output).toMatch(/'tokn' does not exist in type 'WithAuthOptions'/);
    expect(output).toMatch(/'"refusd"' is not assignable/);
    expect(output).toMatch(/'SocketBridge' only refers to a type, but is being used as a value here/);
    expect(output).toMatch(/'maxFailuresPerMinute' does not exist/);
    expect(output).toMatch(/'endedEvent' does not exist in type 'WithAuthOptions'/);
  });
});

function readFixture(name: string): string {
  return readFileSync(join(fixtures, name), "utf8");
}

/** The README's code block that follows `<!-- marker ... -->`. */
function readmeBlock(marker: string, lang: string): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const match = new RegExp(`<!-- ${marker}[^>]*-->\\s*\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (!match) throw new Error(`README.md has no ${marker} block`);
  return match[1]!;
}
