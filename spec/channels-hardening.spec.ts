/**
 * Channels under attack or under failure: tickets bound to exactly one channel (and, if asked, a deadline),
 * channel names matched in linear time, joins whose cost does not grow with the socket's channels, and
 * client requests that answer with a code instead of crashing the process when other nodes are silent.
 */
import { createHmac } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { compileChannelPattern } from "../lib/channel-patterns.js";
import { CHANNEL_REFUSALS, type ChannelRefusalCode } from "../lib/errors.js";
import { ConfigError } from "../lib/index.js";
import { harnessPerTest, nextEvent, type Harness, type HarnessOptions, type User, type WhoAmI } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";

const start = harnessPerTest();
const leaks = failOnLeaks();
const SECRET = "channel secret, 32 bytes at least!";
/** A refused join or leave: its code, and the sentence that goes with it. */
const refused = (code: ChannelRefusalCode) => ({ ok: false, code, message: CHANNEL_REFUSALS[code] });

type Answer = { ok: boolean; code?: string; members?: unknown[] };
type Client = { emitWithAck(ev: string, ...args: unknown[]): Promise<unknown> };
const join = (socket: Client, payload: unknown) => socket.emitWithAck("auth:join", payload) as Promise<Answer>;
const leave = (socket: Client, channel: string) => socket.emitWithAck("auth:leave", { channel }) as Promise<Answer>;

/** An app whose presence channel tells the members each other's name, and whose feeds anyone may read. */
async function app(options: HarnessOptions = {}) {
  const h = await start({ ...options, bridge: { channelSecret: SECRET, ...options.bridge } });
  h.auth
    .channel("feeds:{feedId}", (user) => user !== undefined)
    .channel("presence:room:{roomId}", (user) => (user ? { info: { name: user.name } } : false));
  return h;
}

/** The server side of a client socket (same node). */
const serverSocket = (h: Harness, id: string | undefined) => h.io.of("/").sockets.get(id!)!;

describe("tickets", () => {
  it("a ticket for one channel is never valid for another, whatever the data", async () => {
    const h = await app();
    const socket = await h.connect({ cookie: await h.login("alice") });
    // Unframed, "orders:43" signed alone read the same as "orders" with data "43".
    const ticket = h.auth.signChannel(socket.id!, "orders:43");
    expect(await join(socket, { channel: "orders", data: "43", auth: ticket })).toEqual(refused("ticket_invalid"));
    const withData = h.auth.signChannel(socket.id!, "a", "b:c");
    expect(await join(socket, { channel: "a:b", data: "c", auth: withData })).toEqual(refused("ticket_invalid"));
    expect(await join(socket, { channel: "a", auth: withData })).toEqual(refused("ticket_invalid"));
    expect(await join(socket, { channel: "a", data: "b:c", auth: withData })).toEqual({ ok: true });
    expect(await join(socket, { channel: "orders:43", auth: ticket })).toEqual({ ok: true });
  });

  it("tickets of the old, unversioned format are refused", async () => {
    const h = await app();
    const socket = await h.connect({ cookie: await h.login("alice") });
    const old = createHmac("sha256", SECRET).update(`${socket.id!}:feeds:1`).digest("hex");
    expect(await join(socket, { channel: "feeds:1", auth: old })).toEqual(refused("ticket_invalid"));
  });

  it("a ticket with an expiry admits until then, is refused as ticket_expired after, and its expiry cannot be moved", async () => {
    const h = await app();
    const socket = await h.connect({ cookie: await h.login("alice") });
    const lasting = h.auth.signChannel(socket.id!, "feeds:1", undefined, { expiresInMs: 60_000 });
    expect(lasting).toMatch(/^\d+\.[0-9a-f]{64}$/);
    expect(await join(socket, { channel: "feeds:1", auth: lasting })).toEqual({ ok: true });

    const brief = h.auth.signChannel(socket.id!, "feeds:2", undefined, { expiresInMs: 1 });
    await sleep(20);
    expect(await join(socket, { channel: "feeds:2", auth: brief })).toEqual(refused("ticket_expired"));
    const [, mac] = brief.split(".");
    expect(await join(socket, { channel: "feeds:2", auth: `${Date.now() + 60_000}.${mac}` })).toEqual(refused("ticket_invalid"));
    // A ticket signed without an expiry cannot be given one, nor one with an expiry lose it.
    expect(await join(socket, { channel: "feeds:2", auth: `${Date.now() + 60_000}.${h.auth.signChannel(socket.id!, "feeds:2")}` })).toEqual(refused("ticket_invalid"));
    expect(await join(socket, { channel: "feeds:2", auth: mac })).toEqual(refused("ticket_invalid"));
  });

  it("signChannel refuses a bad expiry and a channel name no client could join", async () => {
    const h = await app();
    for (const expiresInMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "60000"]) {
      expect(() => h.auth.signChannel("abc", "feeds:1", undefined, { expiresInMs } as { expiresInMs: number })).toThrow(ConfigError);
    }
    expect(() => h.auth.signChannel("abc", "x".repeat(201))).toThrow(ConfigError);
    expect(() => h.auth.signChannel("abc", "")).toThrow(ConfigError);
    expect(h.auth.signChannel("abc", "x".repeat(200))).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("channel patterns", () => {
  it("a parameter is non-empty, holds no ':', and never holds the literal that follows it", () => {
    const dm = compileChannelPattern("dm:{a}-{b}");
    expect(dm.match("dm:x-y")).toEqual({ a: "x", b: "y" });
    expect(dm.match("dm:x-y-z")).toEqual({ a: "x", b: "y-z" });
    for (const name of ["dm:-y", "dm:x-", "dm:x", "dm:x:1-y", "dm:x-y:1", "dm:x-{y}", "dmx-y", "dm:x-y}"]) expect(dm.match(name)).toBeUndefined();
    const suffixed = compileChannelPattern("files:{name}.json");
    expect(suffixed.match("files:a.json")).toEqual({ name: "a" });
    expect(suffixed.match("files:a.json.json")).toBeUndefined();
    expect(compileChannelPattern("{kind}:{id}").match("orders:7")).toEqual({ kind: "orders", id: "7" });
    expect(compileChannelPattern("lobby").match("lobby")).toEqual({});
    expect(compileChannelPattern("lobby").match("lobby2")).toBeUndefined();
  });

  it("ambiguous patterns are refused at define()", async () => {
    expect(() => compileChannelPattern("{a}{b}")).toThrow(ConfigError);
    expect(() => compileChannelPattern("x:{a}{b}:y")).toThrow(ConfigError);
    expect(() => compileChannelPattern("{a}:{a}")).toThrow(ConfigError);
    const h = await app();
    expect(() => h.auth.channel("dm:{a}{b}", () => true)).toThrow(ConfigError);
  });

  it("matching takes one step per character at most, whatever the name (no backtracking)", () => {
    const hostile = [
      ["dm:{a}-{b}", `dm:${"-".repeat(90_000)}:`],
      ["dm:{a}-{b}", `dm:${"a-".repeat(45_000)}:`],
      ["x{a}ab{b}abc{c}", `x${"ab".repeat(45_000)}`],
      ["{a}.{b}.{c}.{d}", `${".".repeat(90_000)}`],
      ["{a}--{b}", `${"-".repeat(90_000)}x`],
    ] as const;
    for (const [pattern, name] of hostile) {
      const meter = { steps: 0 };
      expect(compileChannelPattern(pattern).match(name, meter)).toBeUndefined();
      expect(meter.steps).toBeLessThanOrEqual(name.length + 1);
    }
  });

  it("names over 200 characters are refused before any matching: join, leave, and channelAuthHandler (400)", async () => {
    const h = await app();
    let asked = 0;
    h.auth.channel("dm:{a}-{b}", () => ++asked > 0);
    h.app.post("/pusher/auth", h.auth.channelAuthHandler());
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const long = `dm:${"-".repeat(90_000)}:`;
    const res = await h.request("/pusher/auth", { method: "POST", cookie, body: new URLSearchParams({ socket_id: socket.id!, channel_name: long }) });
    expect(res.status).toBe(400);
    const over = `dm:a-${"b".repeat(196)}`;
    expect(over).toHaveLength(201);
    expect(await join(socket, { channel: over })).toEqual(refused("channel_unknown"));
    expect(await leave(socket, over)).toEqual(refused("channel_unknown"));
    expect(asked).toBe(0);
    expect(await join(socket, { channel: over.slice(0, 200) })).toEqual({ ok: true });
  });
});

describe("many channels on one socket", () => {
  it("a join never copies the socket's channel list", async () => {
    const h = await app();
    const socket = await h.connect({ cookie: await h.login("alice") });
    expect(await join(socket, { channel: "feeds:0" })).toEqual({ ok: true });
    expect(await join(socket, { channel: "presence:room:0" })).toMatchObject({ ok: true });
    const data = serverSocket(h, socket.id).data as { channels: object; presence: object };
    const { channels, presence } = data;
    for (let i = 1; i <= 20; i++) {
      expect(await join(socket, { channel: `feeds:${i}` })).toEqual({ ok: true });
      expect(await join(socket, { channel: `presence:room:${i}` })).toMatchObject({ ok: true });
    }
    expect(data.channels).toBe(channels);
    expect(data.presence).toBe(presence);
    expect(Object.keys(channels)).toHaveLength(42);
  });

  it("maxChannelsPerSocket refuses more with too_many_channels, even when they are asked for all at once", async () => {
    const h = await app({ bridge: { maxChannelsPerSocket: 3 } });
    const socket = await h.connect({ cookie: await h.login("alice") });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => join(socket, { channel: `feeds:${i}` })));
    expect(answers.filter((a) => a.ok)).toHaveLength(3);
    expect(answers.filter((a) => !a.ok)).toEqual(Array(7).fill(refused("too_many_channels")));
    const joined = ((await socket.emitWithAck("whoami")) as WhoAmI).rooms.filter((room) => room.startsWith("feeds:"));
    expect(joined).toHaveLength(3);
    // Already in: still fine. Leaving makes room for another.
    expect(await join(socket, { channel: joined[0] })).toEqual({ ok: true });
    expect(await join(socket, { channel: "feeds:99" })).toEqual(refused("too_many_channels"));
    expect(await leave(socket, joined[0]!)).toEqual({ ok: true });
    expect(await join(socket, { channel: "feeds:99" })).toEqual({ ok: true });
    // A channel the app took the socket out of by hand no longer counts.
    serverSocket(h, socket.id).leave(joined[1]!);
    expect(await join(socket, { channel: "feeds:100" })).toEqual({ ok: true });
  });

  it("a repeated join answers ok without asking authorize, announcing the member again, or asking for the members", async () => {
    const h = await app();
    let asked = 0;
    h.auth.channel("presence:club:{id}", (user) => (++asked, user ? { info: { name: user.name } } : false));
    const alice = await h.connect({ cookie: await h.login("alice") });
    const bob = await h.connect({ cookie: await h.login("bob") });
    expect(await join(bob, { channel: "presence:club:1" })).toMatchObject({ ok: true });
    const announced: unknown[] = [];
    bob.on("presence:join", (event) => announced.push(event));
    // Asked twice at once, then once more after.
    const [first, same] = await Promise.all([join(alice, { channel: "presence:club:1" }), join(alice, { channel: "presence:club:1" })]);
    expect(first!.members).toHaveLength(2);
    expect(same).toEqual(first);
    // Once in, the members came with the first answer, and every change since as presence events.
    expect(await join(alice, { channel: "presence:club:1" })).toEqual({ ok: true });
    expect(asked).toBe(2);
    await bob.emitWithAck("whoami");
    expect(announced).toEqual([{ channel: "presence:club:1", member: { userId: "1", info: { name: "Alice" } } }]);
  });
});

describe("when other nodes do not answer", () => {
  /** Two nodes; the returned function makes node B stop answering cluster requests (fetchSockets times out on A). */
  async function cluster() {
    // The wait for the silent node is requestsTimeout; 600 ms still leaves the healthy answers a wide margin.
    const a = await app({ redisAdapter: true, requestsTimeout: 600 });
    const b = await app({ redisAdapter: true, requestsTimeout: 600, prefix: a.prefix });
    const silence = () => {
      const adapter = b.io.of("/").adapter as unknown as { subClient: Redis; redisListeners: Map<string, (...args: any[]) => void> };
      adapter.subClient.off("messageBuffer", adapter.redisListeners.get("messageBuffer")!);
    };
    return { a, b, silence };
  }

  it("auth:leave of a presence channel answers cluster_unavailable, and nothing crashes", async () => {
    const { a, silence } = await cluster();
    const alice = await a.connect({ cookie: await a.login("alice") });
    expect(await join(alice, { channel: "presence:room:1" })).toMatchObject({ ok: true });
    silence();
    const left = nextEvent(alice, "auth:left");
    expect(await leave(alice, "presence:room:1")).toEqual(refused("cluster_unavailable"));
    expect(await left).toEqual({ channel: "presence:room:1" });
    expect(((await alice.emitWithAck("whoami")) as WhoAmI).rooms).not.toContain("presence:room:1");
    expect(leaks).toEqual([]);
  });

  it("auth:join of a presence channel answers cluster_unavailable and leaves the socket out, and nothing crashes", async () => {
    const { a, b, silence } = await cluster();
    const bob = await b.connect({ cookie: await b.login("bob") });
    expect(await join(bob, { channel: "presence:room:2" })).toMatchObject({ ok: true });
    const announced: unknown[] = [];
    bob.on("presence:join", (event) => announced.push(event));
    const alice = await a.connect({ cookie: await a.login("alice") });
    silence();
    expect(await join(alice, { channel: "presence:room:2" })).toEqual(refused("cluster_unavailable"));
    const { rooms, data } = (await alice.emitWithAck("whoami")) as WhoAmI & { data: { channels?: object; presence?: object } };
    expect(rooms).not.toContain("presence:room:2");
    expect(data.channels ?? {}).toEqual({});
    expect(data.presence ?? {}).toEqual({});
    await bob.emitWithAck("whoami");
    expect(announced).toEqual([]);
    expect(leaks).toEqual([]);
  });
});

describe("what presence tells the members", () => {
  it("only the user's id and the app's info, even when Passport serializes the whole user", async () => {
    const h = await app({
      replaceDeserializer: true,
      passport: (passport, users) => {
        // An object serializer, as in Socket.IO's own Passport example.
        (passport as unknown as { _serializers: unknown[] })._serializers.length = 0;
        passport.serializeUser((user, done) => done(null, user));
        passport.deserializeUser((user: User, done) => done(null, users.get(user.id) ?? false));
      },
    });
    const alice = await h.connect({ cookie: await h.login("alice") });
    const bob = await h.connect({ cookie: await h.login("bob") });
    const ids = await Promise.all([alice, bob].map(async (s) => ((await s.emitWithAck("whoami")) as WhoAmI).data.userId as string));
    const seen: unknown[] = [await join(alice, { channel: "presence:room:3" })];
    const joined = nextEvent(alice, "presence:join");
    seen.push(await join(bob, { channel: "presence:room:3" }), await joined);
    const gone = nextEvent(alice, "presence:leave");
    bob.disconnect();
    seen.push(await gone);
    const members = seen.flatMap((s) => (s as { members?: unknown[]; member?: unknown }).members ?? [(s as { member: unknown }).member]);
    expect(members).toHaveLength(5);
    for (const member of members) {
      expect(Object.keys(member as object).sort()).toEqual(["info", "userId"]);
      expect(ids).toContain((member as { userId: string }).userId);
    }
    // Nothing of the user beyond the id and the info the app chose (its name).
    expect(JSON.stringify(seen)).not.toMatch(/username|role|alice|bob/);
  });
});
