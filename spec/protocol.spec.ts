/**
 * The wire protocol has one home, lib/protocol.ts, shared by the server and /client: no other file spells an
 * event name, and protocol.ts imports nothing (so the client bundle takes nothing of the server with it).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const lib = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "lib");
const sources = readdirSync(lib)
  .filter((file) => file.endsWith(".ts"))
  .map((file) => ({ file, code: withoutComments(readFileSync(join(lib, file), "utf8")) }));

/** The code without its comments (enough for this codebase: no `//` or `/*` inside the strings that matter). */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

describe("lib/protocol.ts", () => {
  it("is the only file that spells an event name", () => {
    const spelled = sources.flatMap(({ file, code }) =>
      file === "protocol.ts" ? [] : [...code.matchAll(/["']((?:auth|presence):[a-z]+)["']/g)].map((m) => `${file}: ${m[1]}`),
    );
    expect(spelled).toEqual([]);
  });

  it("names every event the server and the client use", () => {
    const protocol = sources.find(({ file }) => file === "protocol.ts")!.code;
    for (const event of ["auth:ended", "auth:join", "auth:leave", "auth:left", "auth:refresh", "auth:user", "presence:join", "presence:leave"]) {
      expect(protocol).toContain(`"${event}"`);
    }
  });

  it("imports nothing", () => {
    const protocol = sources.find(({ file }) => file === "protocol.ts")!.code;
    expect(protocol).not.toMatch(/\bimport\b|\brequire\(/);
  });
});
