/**
 * The supported range, oldest to newest: socket.io 4.6–4.8, express-session 1.17–1.19, passport 0.6–0.7,
 * Express 4 and 5. The newest versions run in every other spec; here the older ones run the core paths.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { REFUSALS } from "../lib/index.js";
import { TRANSPORTS, harnessPerTest, nextEvent, type StackModules, type WhoAmI } from "./helpers/harness.js";

const require = createRequire(import.meta.url);
const load = (name: string) => ({
  module: require(name),
  version: JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), "utf8")).version as string,
});

const io46 = load("socket.io-4.6");
const io47 = load("socket.io-4.7");
const session117 = load("express-session-1.17");
const passport06 = load("passport-0.6");
const express4 = load("express-4");

const MATRIX: Array<[label: string, modules: StackModules, store: "memory" | "redis"]> = [
  [
    `socket.io ${io46.version}, express-session ${session117.version}, passport ${passport06.version}, express ${express4.version}`,
    { Server: io46.module.Server, session: session117.module, Passport: passport06.module.Passport, express: express4.module },
    "memory",
  ],
  [`socket.io ${io47.version} with connect-redis`, { Server: io47.module.Server }, "redis"],
];

const start = harnessPerTest();

describe.each(MATRIX)("%s", (_label, modules, store) => {
  it.each(TRANSPORTS)("admits the logged-in user over %s, with the HTTP user", async (transport) => {
    const h = await start({ modules, store });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie, transport });
    const me = (await socket.emitWithAck("whoami")) as WhoAmI;
    expect(me).toMatchObject({ user: { name: "Alice" }, isAuthenticated: true, rooms: expect.arrayContaining(["user:1"]) });
  });

  it("refuses with the right codes", async () => {
    const h = await start({ modules, store });
    expect((await h.refusal()).data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    const visit = (await h.request("/visit", { method: "POST" })).headers.getSetCookie()[0]!.split(";")[0];
    expect((await h.refusal({ cookie: visit })).data.code).toBe("unauthenticated");
    const cookie = await h.login("bob");
    h.users.delete("2");
    const refused = await h.refusal({ cookie, transport: "polling" });
    expect(refused).toMatchObject({ message: REFUSALS.user_not_found.message, data: { code: "user_not_found" } });
  });

  it("disconnects a user's sockets with the notice", async () => {
    const h = await start({ modules, store });
    const socket = await h.connect({ cookie: await h.login("alice") });
    const ended = nextEvent(socket, "auth:ended");
    expect(await h.auth.disconnectUser("1")).toBe(1);
    expect(await ended).toEqual({ code: "revoked" });
  });
});
