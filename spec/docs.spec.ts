/**
 * The documents: every relative link and image in README.md, SECURITY.md, CHANGELOG.md and docs/*.md resolves
 * (fragments included); the guides document every option, code, warning and event the library has; and the
 * NestJS guide's files compile together as written. (spec/pack.spec.ts checks the links again in the tarball.)
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Server } from "socket.io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BENCHMARKS, chartsOf, svg } from "../bench/charts.js";
import { CHANNEL_REFUSALS } from "../lib/errors.js";
import { bridge, ENDINGS, REFUSALS, SESSION_MISSING_REASONS } from "../lib/index.js";
import { anchors, brokenLinks, codeBlock, documents } from "./helpers/docs.js";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const read = (file: string) => readFileSync(join(root, file), "utf8");
let tmp: string;

beforeAll(() => {
  mkdirSync(join(root, ".tmp"), { recursive: true });
  tmp = mkdtempSync(join(root, ".tmp", "docs-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("links", () => {
  it("every relative link and image in the README, SECURITY.md, CHANGELOG.md and docs/ resolves in the repository", () => {
    const files = documents(root);
    expect(files).toEqual(expect.arrayContaining(["README.md", "SECURITY.md", "CHANGELOG.md", "docs/README.md", "docs/api.md"]));
    expect(brokenLinks(root, files)).toEqual([]);
  });

  it("the check finds a missing file, a missing heading, and a path that leaves the package (it can fail)", () => {
    const dir = join(tmp, "links");
    mkdirSync(join(dir, "docs"), { recursive: true });
    writeFileSync(join(dir, "README.md"), "# Title\n\n## `bridge(io, options)`\n\n[ok](#bridgeio-options) [ok](docs/a.md#a-heading)\n");
    writeFileSync(
      join(dir, "docs", "a.md"),
      [
        "# A heading",
        "[ok](../README.md#title) ![gone](gone.png) [gone](b.md) [no heading](../README.md#nope) [out](../../x.md)",
        '<img src="missing.svg"> `[not a link](x.md)`',
        "```md\n[not a link either](y.md)\n```",
      ].join("\n"),
    );
    expect(brokenLinks(dir)).toEqual([
      "docs/a.md: gone.png (no such file)",
      "docs/a.md: b.md (no such file)",
      "docs/a.md: ../README.md#nope (no heading #nope)",
      "docs/a.md: ../../x.md (outside the package)",
      "docs/a.md: missing.svg (no such file)",
    ]);
  });

  it("anchors follow GitHub's rules: punctuation dropped, repeats numbered", () => {
    expect([...anchors("# `ConfigError` at `bridge()`\n## Tokens: mobile apps\n## Refusals\n### Refusals\n")]).toEqual([
      "configerror-at-bridge",
      "tokens-mobile-apps",
      "refusals",
      "refusals-1",
    ]);
  });

  it("the README stays a front page: at most about 15 KB, with the guides' index", () => {
    const readme = read("README.md");
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(15_500);
    const guides = readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md") && f !== "README.md" && !f.startsWith("migrating-from-"));
    // Every guide is linked from the README and from docs/README.md (the migrating-from pages, from migrating.md).
    for (const guide of guides) {
      expect(readme, guide).toContain(`(docs/${guide}`);
      expect(read("docs/README.md"), guide).toContain(`(${guide}`);
    }
    for (const page of readdirSync(join(root, "docs")).filter((f) => f.startsWith("migrating-from-"))) {
      expect(read("docs/migrating.md"), page).toContain(`(${page}`);
    }
  });
});

describe("the guides document everything", () => {
  it("every bridge() option has a row in the API reference's options table", () => {
    let message = "";
    try {
      bridge(new Server(), { notAnOption: true } as never);
    } catch (err) {
      message = (err as Error).message;
    }
    const known = /Known options: (.+)\.$/.exec(message)?.[1]?.split(", ") ?? [];
    expect(known).toContain("session");
    const api = read("docs/api.md");
    expect(known.filter((option) => !new RegExp(`^\\| \`${option}[\`(]`, "m").test(api))).toEqual([]);
  });

  it("every refusal code and reason is in the API reference, and in Troubleshooting", () => {
    const codes = [...Object.keys(REFUSALS), ...Object.keys(SESSION_MISSING_REASONS)];
    expect(codes).toContain("no_cookie");
    for (const page of ["docs/api.md", "docs/troubleshooting.md"]) {
      const text = read(page);
      expect(codes.filter((code) => !text.includes(`\`${code}\``)), page).toEqual([]);
    }
  });

  it("every ending is in Live sessions, and every channel refusal in Tokens and channels", () => {
    const live = read("docs/live-sessions.md");
    expect(Object.keys(ENDINGS).filter((code) => !live.includes(`| \`${code}\` |`))).toEqual([]);
    const channels = read("docs/tokens-and-channels.md");
    expect(Object.keys(CHANNEL_REFUSALS).filter((code) => !channels.includes(`| \`${code}\` |`))).toEqual([]);
  });

  it("every event of the protocol is in the API reference's events table", () => {
    const enumBody = /export const enum Events \{([\s\S]*?)\n\}/.exec(read("lib/protocol.ts"))?.[1] ?? "";
    const events = [...enumBody.matchAll(/= "([^"]+)"/g)].map((m) => m[1]!);
    expect(events).toContain("auth:ended");
    const table = read("docs/api.md").split("## Events")[1] ?? "";
    expect(events.filter((event) => !table.includes(`\`${event}\``))).toEqual([]);
  });

  it("every process warning is in Troubleshooting's table", () => {
    const lib = readdirSync(join(root, "lib")).map((file) => read(`lib/${file}`)).join("\n");
    const warnings = [...new Set(lib.match(/PSB_[A-Z_]+/g))];
    expect(warnings).toContain("PSB_USER_ID");
    const text = read("docs/troubleshooting.md");
    expect(warnings.filter((code) => !text.includes(`| \`${code}\` |`))).toEqual([]);
  });

  it("every withAuth() option is in the Client guide's table", () => {
    const body = /export interface WithAuthOptions \{([\s\S]*?)\n\}/.exec(read("lib/client.ts"))?.[1] ?? "";
    const options = [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]!);
    expect(options).toContain("token");
    const text = read("docs/client.md");
    expect(options.filter((option) => !text.includes(`| \`${option}\` |`))).toEqual([]);
  });
});

describe("the NestJS guide", () => {
  /** The guide's blocks as files of one app (ESM), type-checked with the settings the guide states. */
  async function typecheck(name: string, blocks: string[]): Promise<string> {
    const dir = join(tmp, name);
    mkdirSync(join(dir, "node_modules"), { recursive: true });
    for (const entry of readdirSync(join(root, "node_modules"))) {
      if (!entry.startsWith(".")) symlinkSync(join(root, "node_modules", entry), join(dir, "node_modules", entry), "dir");
    }
    symlinkSync(root, join(dir, "node_modules", "passport-socketio-bridge"), "dir");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true, type: "module" }));
    const files = blocks.map((marker) => {
      const { source } = codeBlock(root, marker, "ts");
      const file = /^\/\/ (\S+\.ts)\n/.exec(source)?.[1];
      if (!file) throw new Error(`The ${marker} block does not start with its file name`);
      writeFileSync(join(dir, file), source);
      return file;
    });
    const compilerOptions = {
      module: "nodenext",
      target: "es2022",
      strict: true,
      esModuleInterop: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
    };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    try {
      await run(process.execPath, [tsc, "-p", dir, "--pretty", "false"]);
      return "";
    } catch (err) {
      return String((err as { stdout?: string }).stdout ?? err);
    }
  }

  it("its four files (user, main, module, gateway) compile together as written", async () => {
    expect(await typecheck("nest-app", ["nest-user", "nest-main", "nest-module", "nest-gateway"])).toBe("");
  }, 120_000);

  it("without the user's declaration the gateway does not compile (the check above can fail)", async () => {
    const output = await typecheck("nest-no-user", ["nest-main", "nest-module", "nest-gateway"]);
    expect(output).toMatch(/admin\.gateway\.ts\(\d+,\d+\): error TS2339: Property 'name' does not exist on type 'User'/);
  }, 120_000);
});

describe("docs/benchmarks.md's charts", () => {
  const markdown = readFileSync(BENCHMARKS, "utf8");
  const charts = chartsOf(markdown);

  it("are drawn from its tables: each committed SVG is what the tables give now", () => {
    expect(charts.map((c) => c.file)).toEqual(["bench-cpu.svg", "bench-store.svg", "bench-heap.svg"]);
    for (const chart of charts) {
      expect(chart.groups.length, chart.file).toBeGreaterThanOrEqual(5);
      for (const bar of chart.groups.flatMap((g) => g.bars)) expect(Number.isFinite(bar.value), `${chart.file} ${bar.label}`).toBe(true);
      expect(readFileSync(join(dirname(BENCHMARKS), "images", chart.file), "utf8"), chart.file).toBe(svg(chart));
    }
  });

  it("each sits above its table, so a reader sees the picture first", () => {
    for (const file of ["bench-cpu.svg", "bench-store.svg", "bench-heap.svg"]) {
      expect(markdown.indexOf(`(images/${file})`), file).toBeGreaterThan(0);
    }
    expect(markdown.indexOf("(images/bench-cpu.svg)")).toBeLessThan(markdown.indexOf("| setup | transport |"));
  });
});
