/**
 * TypeScript apps of every kind, against the packed tarball: each of the four entry points (the package, /compat,
 * /nest, /client) type-checks in a consumer under each module resolution a tsconfig can ask for, on TypeScript 5.x,
 * 6.x and the current major (7.x, the native compiler). The plain `"module": "commonjs"` tsconfig of the classic
 * Express and Nest starters is node10 resolution on TypeScript 5.x: it ignores `exports`, and finds the subpaths
 * through `typesVersions` only. On 6.x and 7.x the same tsconfig resolves like a bundler; 6.x still takes an explicit
 * node10 (with `ignoreDeprecations`), 7.x refuses it (TS5108), so it is not tried there.
 *
 * The tarball is `npm pack` of dist/ as built (`npm test` builds first), unpacked into each app as npm would; the
 * apps' other packages are links to the repository's. arethetypeswrong runs on the same tarball.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NAME = "passport-socketio-bridge";
// What the consumers' imports reach: the package's peers and their typings.
const PEERS = ["@types", "@nestjs", "socket.io", "socket.io-client", "express-session", "passport", "reflect-metadata", "rxjs"];

/**
 * One file per entry point. Each uses a value and a type, and has a line that compiles only if the types are real
 * (not `any`), down to a dependency the declarations import (socket.io's Server, socket.io-client's Socket,
 * Nest's application context): an entry that fails to resolve, or resolves to nothing typed, fails.
 */
const ENTRIES = {
  index: `import { bridge, RefusalError, type RefusalCode } from "${NAME}";
export const connect: typeof bridge = bridge;
export const code: RefusalCode = "store_unavailable";
export const refusal = new RefusalError(code);
// @ts-expect-error: not a refusal code
export const wrong: RefusalCode = "nope";
// @ts-expect-error: not a socket.io Server
bridge(42, {} as never);
`,
  compat: `import { authorize, type AuthorizeOptions } from "${NAME}/compat";
export const legacy: typeof authorize = authorize;
// @ts-expect-error: secret and store are required
export const wrong: AuthorizeOptions = { key: "connect.sid" };
`,
  nest: `import { BridgeIoAdapter, SocketUser, WsAuthenticatedGuard } from "${NAME}/nest";
export const decorators = [SocketUser, WsAuthenticatedGuard];
declare const adapter: BridgeIoAdapter;
export const bridges = adapter.bridges;
// @ts-expect-error: a member neither the adapter nor Nest's IoAdapter has
adapter.noSuchMember();
`,
  client: `import { withAuth, type AuthState } from "${NAME}/client";
export const attach: typeof withAuth = withAuth;
// @ts-expect-error: not a state
export const wrong: AuthState = "nope";
// @ts-expect-error: not a socket.io-client Socket
withAuth(42);
`,
} as const;
type Entry = keyof typeof ENTRIES;

/** A consumer's tsconfig and package type, by how it resolves modules. */
const MODES = {
  // The classic Express and Nest starters: no moduleResolution (node10 on TypeScript 5.x, bundler-like on 6 and 7).
  commonjs: { type: "commonjs", options: { module: "commonjs" } },
  node10: { type: "commonjs", options: { module: "commonjs", moduleResolution: "node10" } },
  "node16-cjs": { type: "commonjs", options: { module: "node16", moduleResolution: "node16" } },
  "node16-esm": { type: "module", options: { module: "node16", moduleResolution: "node16" } },
  bundler: { type: "module", options: { module: "esnext", moduleResolution: "bundler" } },
} as const;
type Mode = keyof typeof MODES;

/** The compilers: the package's devDependency aliases. */
const COMPILERS = [
  { pkg: "typescript", modes: ["commonjs", "node10", "node16-cjs", "node16-esm", "bundler"] },
  // node10 is deprecated in 6.x: an app that keeps it says so.
  { pkg: "typescript-6", modes: ["commonjs", "node10", "node16-cjs", "node16-esm", "bundler"], extra: { node10: { ignoreDeprecations: "6.0" } } },
  // 7.x has no node10 (TS5108: "has been removed").
  { pkg: "typescript-next", modes: ["commonjs", "node16-cjs", "node16-esm", "bundler"] },
] as const satisfies ReadonlyArray<{ pkg: string; modes: readonly Mode[]; extra?: Partial<Record<Mode, object>> }>;

const versionOf = (pkg: string) => JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version as string;

let work: string;
let tarball: string;
/** "<compiler>/<mode>/<entry>" → that file's diagnostics ("" when clean); "<compiler>/<mode>" → the project's others. */
const diagnostics = new Map<string, string>();

beforeAll(async () => {
  if (!existsSync(join(root, "dist", "index.js"))) throw new Error("dist/ is missing: `npm test` builds it first (npm run build).");
  work = mkdtempSync(join(tmpdir(), "psb-consumers-"));
  // dist/ as built: --ignore-scripts, so prepack's build does not rewrite dist/ under the specs running beside this one.
  const pack = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: root, maxBuffer: 1 << 24 });
  tarball = join(work, JSON.parse(pack.stdout)[0].filename);

  for (const { pkg, modes, ...rest } of COMPILERS) {
    const extra: Partial<Record<Mode, object>> = "extra" in rest ? rest.extra : {};
    for (const mode of modes) {
      const dir = join(work, pkg, mode);
      const modules = join(dir, "node_modules");
      mkdirSync(join(modules, NAME), { recursive: true });
      await run("tar", ["-xzf", tarball, "-C", join(modules, NAME), "--strip-components=1"]);
      for (const peer of PEERS) symlinkSync(join(root, "node_modules", peer), join(modules, peer), "dir");
      writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `${pkg}-${mode}`, private: true, type: MODES[mode].type }));
      for (const [entry, source] of Object.entries(ENTRIES)) writeFileSync(join(dir, `${entry}.ts`), source);
      const compilerOptions = {
        ...MODES[mode].options,
        ...extra[mode],
        target: "es2022",
        lib: ["es2022", "dom"],
        strict: true,
        noEmit: true,
        esModuleInterop: true,
        experimentalDecorators: true,
        // As the starters have it: the dependencies' own declarations are not checked (spec/package.spec.ts checks
        // the package's under NodeNext and Bundler); what they import must still resolve, or the lines above fail.
        skipLibCheck: true,
        types: ["node"],
      };
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: Object.keys(ENTRIES).map((e) => `${e}.ts`) }));
    }
  }
  // One compiler process per version, building its projects one after the other, one version at a time (and 7.x
  // single-threaded): the specs beside this one keep the other core.
  await buildAll(COMPILERS);
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function buildAll(compilers: ReadonlyArray<(typeof COMPILERS)[number]>): Promise<void> {
  for (const { pkg, modes } of compilers) {
    const tsc = join(root, "node_modules", pkg, "bin", "tsc");
    const projects = modes.map((mode) => join(pkg, mode));
    let output: string;
    try {
      const threads = pkg === "typescript-next" ? ["--singleThreaded"] : [];
      output = (await run(process.execPath, [tsc, "-b", "--pretty", "false", ...threads, ...projects], { cwd: work, maxBuffer: 1 << 24 })).stdout;
    } catch (err) {
      output = String((err as { stdout?: string }).stdout || err);
    }
    // Diagnostics start with their file ("typescript/commonjs/nest.ts(4,1): error ..."); indented lines continue one.
    const lines = output.split("\n").filter((line) => line.trim());
    for (const mode of modes) {
      const project = `${pkg}/${mode}`;
      const own = (line: string) => line.startsWith(`${project}/`);
      for (const entry of Object.keys(ENTRIES)) {
        diagnostics.set(`${project}/${entry}`, lines.filter((line) => line.startsWith(`${project}/${entry}.ts(`)).join("\n"));
      }
      diagnostics.set(project, lines.filter((line) => own(line) && !Object.keys(ENTRIES).some((e) => line.startsWith(`${project}/${e}.ts(`))).join("\n"));
    }
    // Whatever names no project (a bad option, a crash) belongs to all of them.
    const stray = lines.filter((line) => !modes.some((mode) => line.startsWith(`${pkg}/${mode}/`)) && !/^\s/.test(line)).join("\n");
    for (const mode of modes) diagnostics.set(`${pkg}/${mode}`, [diagnostics.get(`${pkg}/${mode}`), stray].filter(Boolean).join("\n"));
  }
}

describe.each(COMPILERS.map((c) => [`TypeScript ${versionOf(c.pkg)}`, c] as const))("%s", (_label, { pkg, modes }) => {
  describe.each(modes.map((mode) => [mode]))("%s", (mode: Mode) => {
    it.each(Object.keys(ENTRIES) as Entry[])("types the entry point %s", (entry) => {
      expect(diagnostics.get(`${pkg}/${mode}/${entry}`)).toBe("");
    });
    it("has no other diagnostic", () => {
      expect(diagnostics.get(`${pkg}/${mode}`)).toBe("");
    });
  });
});

describe("arethetypeswrong", () => {
  it("finds no problem for any entry point under node10, node16 (CJS and ESM) and bundler", async () => {
    const attw = join(root, "node_modules", "@arethetypeswrong", "cli", "dist", "index.js");
    let stdout: string;
    try {
      stdout = (await run(process.execPath, [attw, tarball, "--format", "json"], { maxBuffer: 1 << 26 })).stdout;
    } catch (err) {
      stdout = String((err as { stdout?: string }).stdout || err);
    }
    const { analysis } = JSON.parse(stdout) as {
      analysis: { problems: unknown[]; entrypoints: Record<string, { resolutions: Record<string, { resolution?: { fileName: string } }> }> };
    };
    expect(analysis.problems).toEqual([]);
    const resolved = Object.fromEntries(
      Object.entries(analysis.entrypoints).map(([entry, { resolutions }]) => [
        entry,
        Object.fromEntries(Object.entries(resolutions).map(([kind, r]) => [kind, r.resolution?.fileName.replace(/^.*\/dist\//, "")])),
      ]),
    );
    for (const entry of ["index", "compat", "nest", "client"]) {
      const subpath = entry === "index" ? "." : `./${entry}`;
      expect(resolved[subpath]).toEqual({
        node10: entry === "index" ? "index.d.ts" : `${entry}.d.cts`,
        "node16-cjs": `${entry}.d.cts`,
        "node16-esm": `${entry}.d.ts`,
        bundler: `${entry}.d.ts`,
      });
    }
  }, 60_000);
});
