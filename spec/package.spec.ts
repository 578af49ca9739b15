/**
 * The published package, as an app meets it: the built ESM and CommonJS entry points, imported by name from
 * a plain app outside this repo's source, and its type declarations compiled against a strict consumer.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeBlock } from "./helpers/docs.js";

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
  /** A consumer project (its directory is its name): package type, packages, source and compiler options. */
  interface Project {
    type: "module" | "commonjs";
    packages: string[];
    source: () => string;
    options: Record<string, unknown>;
  }
  const NODENEXT = { module: "nodenext", moduleResolution: "nodenext" };
  const BUNDLER = { module: "esnext", moduleResolution: "bundler" };
  const SERVER = [...RUNTIME, ...TYPES];
  const typed = () => readFixture("typed-app.ts");
  const client = () => readFixture("client-app.ts");
  const projects = {
    "types-esm": { type: "module", packages: SERVER, source: typed, options: { ...NODENEXT, esModuleInterop: true } },
    "types-cjs": { type: "commonjs", packages: SERVER, source: typed, options: { ...NODENEXT, esModuleInterop: true } },
    "types-bundler": { type: "module", packages: SERVER, source: typed, options: { ...BUNDLER, esModuleInterop: true } },
    "types-quickstart": {
      type: "module",
      packages: SERVER,
      source: () => codeBlock(root, "quickstart-ts", "ts").source,
      // The settings docs/getting-started.md states next to the block (but skipLibCheck, which stays false here).
      options: {
        ...NODENEXT,
        target: "es2022",
        esModuleInterop: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        verbatimModuleSyntax: true,
        isolatedModules: true,
        noUncheckedSideEffectImports: true,
        moduleDetection: "force",
      },
    },
    "client-esm": { type: "module", packages: CLIENT, source: client, options: NODENEXT },
    "client-cjs": { type: "commonjs", packages: CLIENT, source: client, options: NODENEXT },
    "client-bundler": { type: "module", packages: CLIENT, source: client, options: { ...BUNDLER, target: "es2020", lib: ["es2020", "dom"] } },
    "types-negative": {
      type: "module",
      packages: [...SERVER, ...CLIENT],
      source: () => readFixture("wrong-app.ts"),
      options: { ...NODENEXT, esModuleInterop: true },
    },
  } satisfies Record<string, Project>;
  type Name = keyof typeof projects;
  // Two `tsc -b` runs side by side (this machine has two cores). Each builds its projects one after the other,
  // every project its own program with its own options, sharing the parsed declaration files between them. (One
  // program for several apps would not do: one app's imports would lend their augmentations to the others.)
  const RUNS: Name[][] = [
    ["types-esm", "types-cjs", "types-bundler", "types-quickstart"],
    ["client-esm", "client-cjs", "client-bundler", "types-negative"],
  ];
  let diagnostics: Map<string, string>;

  beforeAll(async () => {
    for (const [name, project] of Object.entries(projects)) {
      const dir = makeApp(name, project.packages, project.type);
      writeFileSync(join(dir, "app.ts"), project.source());
      const compilerOptions = {
        noEmit: true,
        strict: true,
        // The package's declarations are checked, and its dependencies' (where a clash with its augmentations of
        // http and Express would show). TypeScript's own lib files are not: the same for every app, augmented
        // by nothing here, and most of the time.
        skipLibCheck: false,
        skipDefaultLibCheck: true,
        types: ["node"],
        ...project.options,
      };
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["app.ts"] }));
    }
    const outputs = await Promise.all(RUNS.map((names) => build(names)));
    diagnostics = new Map(outputs.flatMap((output) => [...output]));
  }, 120_000);

  /** Each project's diagnostics from one `tsc -b --verbose`, told apart by its "Building project" line. */
  async function build(dirs: string[]): Promise<Map<string, string>> {
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    let output: string;
    try {
      output = (await run(process.execPath, [tsc, "-b", "--verbose", "--pretty", "false", ...dirs], { cwd: app })).stdout;
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err);
    }
    // [before the first project, dir, its output, dir, its output, ...]
    const [before = "", ...parts] = output.split(/^.* - Building project '(.+)\/tsconfig\.json'\.\.\.$/m);
    // tsc's own progress lines start with the time; whatever else is printed is a diagnostic.
    const errors = (text: string) =>
      text
        .split("\n")
        .filter((line) => line.trim() && !/^\d{1,2}:\d{2}:\d{2}\b.* - /.test(line) && !/^ {4}\* /.test(line))
        .join("\n");
    const result = new Map<string, string>();
    for (let i = 0; i < parts.length; i += 2) {
      // An error before any project (a bad option, say) belongs to every project of the run.
      result.set(relative(app, parts[i]!), [errors(before), errors(parts[i + 1]!)].filter(Boolean).join("\n"));
    }
    return result;
  }
  /** The diagnostics of one project: "" when clean, undefined when tsc never built it. */
  const of = (name: Name) => diagnostics.get(name);

  it.each([
    ["an ESM app (NodeNext)", "types-esm"],
    ["a CommonJS app (NodeNext)", "types-cjs"],
    ["a bundled app (Bundler)", "types-bundler"],
  ] as const)("type socket.request for %s, with no cast", (_name, project) => {
    expect(of(project)).toBe("");
  });

  it.each([
    ["an ESM app (NodeNext)", "client-esm"],
    ["a CommonJS app (NodeNext)", "client-cjs"],
    ["a bundled front end (Bundler)", "client-bundler"],
  ] as const)("type passport-socketio-bridge/client for %s, with no cast", (_name, project) => {
    expect(of(project)).toBe("");
  });

  it("type the strict TypeScript quickstart (docs/getting-started.md) as written", () => {
    expect(of("types-quickstart")).toBe("");
  });

  it("reject what the app did not declare (the checks above can fail)", () => {
    const output = of("types-negative");
    expect(output).toMatch(/Property 'email' does not exist on type 'User'/);
    // The README's reason to narrow: without a check, the user may be undefined.
    expect(output).toMatch(/error TS18048: 'socket\.request\.user' is possibly 'undefined'/);
    expect(output).toMatch(/'alowAnonymous' does not exist/);
    expect(output).toMatch(/'tokn' does not exist in type 'WithAuthOptions'/);
    expect(output).toMatch(/'"refusd"' is not assignable/);
    expect(output).toMatch(/'SocketBridge' only refers to a type, but is being used as a value here/);
    expect(output).toMatch(/'maxFailuresPerMinute' does not exist/);
    expect(output).toMatch(/'endedEvent' does not exist in type 'WithAuthOptions'/);
    // Every diagnostic is in the app's own file (the package's declarations have none); indented lines go on one.
    expect(output!.split("\n").filter((line) => !/^(types-negative\/app\.ts\(| )/.test(line))).toEqual([]);
  });
});

function readFixture(name: string): string {
  return readFileSync(join(fixtures, name), "utf8");
}
