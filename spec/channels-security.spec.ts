/**
 * Channels against a client that probes them: repeated presence joins that would make every node answer
 * with every member's handshake, channel names that are someone else's socket id, requests without a payload,
 * and presence that must survive a connection-state recovery.
 */
import { describe, expect, it } from "vitest";
import { CHANNEL_REFUSALS, type ChannelRefusalCode } from "../lib/errors.js";
import { ConfigError } from "../lib/index.js";
import { harnessPerTest, nextEvent, sessionIdOf, type HarnessOptions, type WhoAmI } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { monitorPerTest } from "./helpers/monitor.js";

const start = harnessPerTest();
const monitor = monitorPerTest();
const leaks = failOnLeaks();
const SECRET = "channel secret, 32 bytes at least!";
const refused = (code: ChannelRefusalCode) => ({ ok: false, code, message: CHANNEL_REFUSALS[code] });

type Answer = { ok: boolean; code?: string; members?: unknown[] };
type Client = { timeout(ms: number): { emitWithAck(ev: string, ...args: unknown[]): Promise<unknown> } };
/** A request whose answer must come within 2 s (a missing answer fails the test instead of hanging it). */
const ask = (socket: Client, event: string, ...args: unknown[]) => socket.timeout(2000).emitWithAck(event, ...args) as Promise<Answer>;
const join = (socket: Client, payload: unknown) => ask(socket, "auth:join", payload);

async function app(options: HarnessOptions = {}) {
  const h = await start({ ...options, bridge: { channelSecret: SECRET, ...options.bridge } });
  h.auth.channel("presence:room:{roomId}", (user) => (user ? { info: { name: user.name } } : false));
  return h;
}

describe("presence lookups across nodes", () => {
  async function cluster() {
    const a = await app({ redisAdapter: true });
    const b = await app({ redisAdapter: true, prefix: a.prefix });
    // Members on node B, each with a session cookie in its handshake.
    const bobCookie = await b.login("bob");
    const bobs = await Promise.all(Array.from({ length: 12 }, () => b.connect({ cookie: bobCookie })));
    for (const bob of bobs) expect(await join(bob, { channel: "presence:room:1" })).toMatchObject({ ok: true });
    const aliceCookie = await a.login("alice");
    const alice = await a.connect({ cookie: aliceCookie });
    return { a, b, alice, bobCookie, aliceCookie };
  }

  it("a repeated join of a presence channel sends nothing through Redis", async () => {
    const { a, alice } = await cluster();
    const first = await join(alice, { channel: "presence:room:1" });
    expect(first.members).toEqual(expect.arrayContaining([{ userId: "2", info: { name: "Bob" } }, { userId: "1", info: { name: "Alice" } }]));
    const adapterTraffic = await monitor(`socket.io:${a.prefix}`);
    const again: Answer[] = [];
    for (let i = 0; i < 50; i++) again.push(await join(alice, { channel: "presence:room:1" }));
    expect(await adapterTraffic.take()).toEqual([]);
    // Already in: the members came with the first answer, and every change since as presence events.
    expect(again).toEqual(Array(50).fill({ ok: true }));
    expect(leaks).toEqual([]);
  });

  it("the members lookup carries ids and info, never a member's handshake, headers or session cookie", async () => {
    const { a, alice, bobCookie, aliceCookie } = await cluster();
    const adapterTraffic = await monitor(`socket.io:${a.prefix}`);
    expect((await join(alice, { channel: "presence:room:1" })).members).toHaveLength(2);
    const sent = (await adapterTraffic.take()).flat().join("\n");
    // The lookup did cross Redis (node B answered), and carried Bob's info...
    expect(sent).toContain("Bob");
    // ...but nothing of anyone's request.
    for (const secret of [sessionIdOf(bobCookie), sessionIdOf(aliceCookie), "connect.sid", "cookie", "user-agent", "handshake"]) {
      expect(sent).not.toContain(secret);
    }
  });
});

describe("names no client may join", () => {
  it("another socket's id is refused as channel_reserved, even under a catch-all pattern", async () => {
    const h = await app();
    h.auth.channel("{name}", () => true).channel("{kind}:{id}", () => true);
    const bob = await h.connect({ cookie: await h.login("bob") });
    const mallory = await h.connect({ cookie: await h.login("carol") });
    expect(await join(mallory, { channel: bob.id })).toEqual(refused("channel_reserved"));
    // A name shaped like a socket id that no socket has (yet) is refused too, as is a namespace-prefixed one.
    for (const channel of ["A".repeat(20), "abc-DEF_123-xyz_7890", `/admin#${bob.id!}`, "user:2", "session:x", mallory.id]) {
      expect(await join(mallory, { channel })).toEqual(refused("channel_reserved"));
    }
    const heard: unknown[] = [];
    mallory.on("for-bob", (message) => heard.push(message));
    const toBob = nextEvent(bob, "for-bob");
    h.io.to(bob.id!).emit("for-bob", "secret");
    expect(await toBob).toBe("secret");
    await ask(mallory, "whoami");
    expect(heard).toEqual([]);
    // Names that merely look alike are fine.
    for (const channel of ["A".repeat(19), "A".repeat(21), "orders:abc-DEF_123-xyz_7890"]) expect(await join(mallory, { channel })).toEqual({ ok: true });
  });

  it("tickets are never signed or issued for a reserved name, and patterns that could only match one are a ConfigError", async () => {
    const h = await app();
    h.auth.channel("{name}", () => true);
    h.app.post("/pusher/auth", h.auth.channelAuthHandler());
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const bob = await h.connect({ cookie: await h.login("bob") });
    expect(() => h.auth.signChannel(socket.id!, bob.id!)).toThrow(ConfigError);
    expect(() => h.auth.signChannel(socket.id!, "user:2")).toThrow(ConfigError);
    const res = await h.request("/pusher/auth", { method: "POST", cookie, body: new URLSearchParams({ socket_id: socket.id!, channel_name: bob.id! }) });
    expect([res.status, await res.json()]).toEqual([403, { error: "channel_reserved" }]);
    for (const pattern of ["user:{id}", "session:{sid}", "abcdefghij0123456789"]) expect(() => h.auth.channel(pattern, () => true)).toThrow(ConfigError);
  });
});

describe("requests without a usable payload", () => {
  it("auth:join and auth:leave sent with only an ack, or with a malformed payload, answer with a code", async () => {
    const h = await app();
    const socket = await h.connect({ cookie: await h.login("alice") });
    for (const event of ["auth:join", "auth:leave"]) {
      expect(await ask(socket, event)).toEqual(refused("channel_unknown"));
      for (const payload of [null, 5, "presence:room:1", [], { channel: 5 }, { channel: "" }]) {
        expect(await ask(socket, event, payload)).toEqual(refused("channel_unknown"));
      }
    }
    expect(await join(socket, { channel: "presence:room:1", auth: 5 })).toEqual(refused("ticket_invalid"));
    expect(await join(socket, { channel: "presence:room:1", auth: "x", data: {} })).toEqual(refused("ticket_invalid"));
    // Extra arguments: the ack is still the last one.
    expect(await ask(socket, "auth:join", { channel: "presence:room:1" }, "extra")).toMatchObject({ ok: true });
    expect(leaks).toEqual([]);
  });
});

describe("presence across a connection-state recovery", () => {
  it("a member recovered as the same user is announced again with its info, and its later leave is heard", async () => {
    const h = await app({ io: { connectionStateRecovery: { maxDisconnectionDuration: 10_000 } } });
    const alice = await h.connect({ cookie: await h.login("alice") });
    const bob = await h.connect({ cookie: await h.login("bob") });
    await join(bob, { channel: "presence:room:1" });
    expect((await join(alice, { channel: "presence:room:1" })).members).toHaveLength(2);
    const heardByBob: unknown[] = [];
    for (const event of ["presence:join", "presence:leave"]) bob.on(event, (news) => heardByBob.push([event, news]));
    const heardByAlice: unknown[] = [];
    alice.on("presence:leave", (news) => heardByAlice.push(news));

    // A packet gives the client an offset to recover from; then its transport breaks.
    const news = nextEvent(alice, "news");
    h.io.emit("news", 1);
    await news;
    const back = nextEvent(alice, "connect");
    alice.io.engine.close();
    await back;
    expect(alice.recovered).toBe(true);

    const member = { userId: "1", info: { name: "Alice" } };
    await expect.poll(() => heardByBob).toEqual([
      ["presence:leave", { channel: "presence:room:1", member }],
      ["presence:join", { channel: "presence:room:1", member }],
    ]);
    // Its info is kept: a newcomer sees it, and it never heard itself leave.
    const carol = await h.connect({ cookie: await h.login("carol") });
    expect((await join(carol, { channel: "presence:room:1" })).members).toContainEqual(member);
    expect(heardByAlice).toEqual([]);
    expect(((await ask(alice, "whoami")) as unknown as WhoAmI).rooms).toContain("presence:room:1");

    // The recovered socket's own leave is still announced.
    heardByBob.length = 0;
    alice.disconnect();
    await expect.poll(() => heardByBob).toEqual([["presence:leave", { channel: "presence:room:1", member }]]);
    expect(leaks).toEqual([]);
  });
});
