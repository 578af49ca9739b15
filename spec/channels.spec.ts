/**
 * Private and presence channels, and Pusher-style signed tickets: joins decided by the app's authorize, members
 * seen across two nodes, tickets bound to one socket, and access re-checked when it is gone.
 */
import { describe, expect, it } from "vitest";
import { CHANNEL_REFUSALS, type ChannelRefusalCode } from "../lib/errors.js";
import { ConfigError } from "../lib/index.js";
import { dropWhileSessionEnds, harnessPerTest, nextEvent, type Harness, type HarnessOptions } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";

const start = harnessPerTest();
failOnLeaks();
const SECRET = "channel secret, 32 bytes at least!";
/** A refused join or leave: its code, and the sentence that goes with it. */
const refused = (code: ChannelRefusalCode) => ({ ok: false, code, message: CHANNEL_REFUSALS[code] });

/** Orders and who owns them, as the app's database would have it. */
const owners = new Map([
  ["1", "1"],
  ["2", "2"],
]);

async function app(options: HarnessOptions = {}) {
  const h = await start({ ...options, bridge: { channelSecret: SECRET, ...options.bridge } });
  h.auth
    .channel("orders:{orderId}", (user, { orderId }) => user !== undefined && owners.get(orderId!) === user.id)
    .channel("presence:room:{roomId}", (user) => (user ? { info: { name: user.name } } : false));
  return h;
}
const join = (socket: { emitWithAck(ev: string, payload: unknown): Promise<unknown> }, payload: unknown) =>
  socket.emitWithAck("auth:join", payload) as Promise<{ ok: boolean; code?: string; members?: unknown[] }>;

describe("private channels", () => {
  it("a user joins only their own order's channel; broadcasts to it reach them", async () => {
    const h = await app();
    const alice = await h.connect({ cookie: await h.login("alice") });
    expect(await join(alice, { channel: "orders:1" })).toEqual({ ok: true });
    expect(await join(alice, { channel: "orders:2" })).toEqual(refused("channel_forbidden"));
    expect(await join(alice, { channel: "invoices:1" })).toEqual(refused("channel_unknown"));
    expect(await join(alice, { channel: "user:2" })).toEqual(refused("channel_reserved"));
    expect(await join(alice, {})).toEqual(refused("channel_unknown"));
    const news = nextEvent(alice, "order");
    h.io.to("orders:1").emit("order", "shipped");
    expect(await news).toBe("shipped");
  });

  it("leave() takes a user's sockets out on every node; refresh() re-checks access", async () => {
    const a = await app({ redisAdapter: true });
    const b = await app({ redisAdapter: true, prefix: a.prefix });
    const cookie = await a.login("alice");
    const onA = await a.connect({ cookie });
    const onB = await b.connect({ cookie });
    for (const socket of [onA, onB]) expect(await join(socket, { channel: "orders:1" })).toEqual({ ok: true });

    const left = Promise.all([nextEvent(onA, "auth:left"), nextEvent(onB, "auth:left")]);
    expect(await a.auth.leave("1", "orders:1")).toBe(2);
    expect(await left).toEqual([{ channel: "orders:1" }, { channel: "orders:1" }]);

    expect(await join(onA, { channel: "orders:1" })).toEqual({ ok: true });
    owners.set("1", "2");
    try {
      const lost = nextEvent(onA, "auth:left");
      await a.auth.refresh("1");
      expect(await lost).toEqual({ channel: "orders:1" });
      expect(a.io.of("/").adapter.rooms.get("orders:1")).toBeUndefined();
    } finally {
      owners.set("1", "1");
    }
  });
});

describe("what a client cannot do with channels", () => {
  it("auth:leave never takes a socket out of its own, user or session rooms, so logout still reaches it", async () => {
    const h = await app();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const rooms = (await socket.emitWithAck("whoami") as { rooms: string[] }).rooms;
    for (const room of [...rooms, socket.id!]) await socket.emitWithAck("auth:leave", { channel: room });
    expect(((await socket.emitWithAck("whoami")) as { rooms: string[] }).rooms).toEqual(rooms);
    // A channel it joined, it may leave.
    expect(await join(socket, { channel: "feeds:7", auth: h.auth.signChannel(socket.id!, "feeds:7") })).toEqual({ ok: true });
    const left = nextEvent(socket, "auth:left");
    await socket.emitWithAck("auth:leave", { channel: "feeds:7" });
    expect(await left).toEqual({ channel: "feeds:7" });
    const ended = nextEvent(socket, "auth:ended");
    await h.request("/logout", { method: "POST", cookie });
    expect(await ended).toEqual({ code: "logged_out" });
  });

  it("a re-check never takes a socket out of its user or session room, however broad a pattern", async () => {
    const h = await app();
    h.auth.channel("{kind}:{id}", () => false);
    const socket = await h.connect({ cookie: await h.login("alice") });
    const rooms = ((await socket.emitWithAck("whoami")) as { rooms: string[] }).rooms;
    expect(rooms).toEqual(expect.arrayContaining(["user:1"]));
    expect(await h.auth.refresh("1")).toBe(1);
    expect(((await socket.emitWithAck("whoami")) as { rooms: string[] }).rooms).toEqual(rooms);
  });

  it("a recovered connection that comes back as someone else (here: anonymous) is a fresh connection, in none of its channels", async () => {
    const h = await app({ io: { connectionStateRecovery: { maxDisconnectionDuration: 10_000 } }, bridge: { allowAnonymous: true } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    expect(await join(socket, { channel: "orders:1" })).toEqual({ ok: true });
    expect(await join(socket, { channel: "feeds:7", auth: h.auth.signChannel(socket.id!, "feeds:7") })).toEqual({ ok: true });
    await dropWhileSessionEnds(h, socket, cookie);
    await nextEvent(socket, "connect");
    // Not recovered: the client's fresh-connection path (withAuth joins its channels again) runs.
    expect(socket.recovered).toBe(false);
    expect(((await socket.emitWithAck("whoami")) as { rooms: string[]; user: unknown }).rooms).toEqual([]);
    expect(h.io.of("/").adapter.rooms.get("orders:1")).toBeUndefined();
  });

  it("channelAuthHandler() finds the user where passport.initialize({ userProperty }) put it, and needs channelSecret", async () => {
    const h = await app({ userProperty: "account" });
    h.app.post("/pusher/auth", h.auth.channelAuthHandler());
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const res = await h.request("/pusher/auth", { method: "POST", cookie, body: new URLSearchParams({ socket_id: socket.id!, channel_name: "orders:1" }) });
    expect(res.status).toBe(200);
    const plain = await start();
    expect(() => plain.auth.channelAuthHandler()).toThrow(ConfigError);
  });
});

describe("presence channels", () => {
  it("report their members across two nodes, with join and leave events", async () => {
    const a = await app({ redisAdapter: true });
    const b = await app({ redisAdapter: true, prefix: a.prefix });
    const alice = await a.connect({ cookie: await a.login("alice") });
    const bob = await b.connect({ cookie: await b.login("bob") });
    expect(await join(alice, { channel: "presence:room:7" })).toEqual({ ok: true, members: [{ userId: "1", info: { name: "Alice" } }] });

    const joined = nextEvent(alice, "presence:join");
    const answer = await join(bob, { channel: "presence:room:7" });
    expect(answer.members).toEqual(expect.arrayContaining([{ userId: "1", info: { name: "Alice" } }, { userId: "2", info: { name: "Bob" } }]));
    expect(await joined).toEqual({ channel: "presence:room:7", member: { userId: "2", info: { name: "Bob" } } });

    // A second tab of alice is not news; her last one leaving is.
    const aliceAgain = await b.connect({ cookie: await a.login("alice") });
    let news = 0;
    bob.on("presence:join", () => news++);
    await join(aliceAgain, { channel: "presence:room:7" });
    const gone = nextEvent(bob, "presence:leave");
    aliceAgain.disconnect();
    alice.disconnect();
    expect(await gone).toEqual({ channel: "presence:room:7", member: { userId: "1", info: { name: "Alice" } } });
    expect(news).toBe(0);
  });
});

describe("presence when a node shuts down", () => {
  it("its members are not announced as leaving (its Redis is about to close)", async () => {
    const a = await app({ redisAdapter: true });
    const b = await app({ redisAdapter: true, prefix: a.prefix });
    const alice = await a.connect({ cookie: await a.login("alice") });
    const bob = await b.connect({ cookie: await b.login("bob") });
    await join(bob, { channel: "presence:room:8" });
    const joined = nextEvent(bob, "presence:join");
    await join(alice, { channel: "presence:room:8" });
    await joined;
    const leaves: unknown[] = [];
    bob.on("presence:leave", (event) => leaves.push(event));
    a.io.close();
    await nextEvent(alice, "disconnect");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(leaves).toEqual([]);
  });
});

describe("signed channel tickets", () => {
  async function twoSockets(h: Harness) {
    const cookie = await h.login("alice");
    return [await h.connect({ cookie }), await h.connect({ cookie })] as const;
  }

  it("a ticket admits the socket it was signed for, and no other", async () => {
    const h = await app();
    const [a, b] = await twoSockets(h);
    const ticket = h.auth.signChannel(a.id!, "feeds:42");
    expect(await join(b, { channel: "feeds:42", auth: ticket })).toEqual(refused("ticket_invalid"));
    expect(await join(a, { channel: "feeds:43", auth: ticket })).toEqual(refused("ticket_invalid"));
    const tampered = `${ticket.slice(0, -1)}${ticket.endsWith("0") ? "1" : "0"}`;
    expect(await join(a, { channel: "feeds:42", auth: tampered })).toEqual(refused("ticket_invalid"));
    expect(await join(a, { channel: "feeds:42", auth: ticket })).toEqual({ ok: true });
  });

  it("a presented ticket is checked even where authorize would admit", async () => {
    const h = await app();
    const [a] = await twoSockets(h);
    expect(await join(a, { channel: "orders:1", auth: "0".repeat(64) })).toEqual(refused("ticket_invalid"));
    expect(await join(a, { channel: "orders:1" })).toEqual({ ok: true });
  });

  it("a separate realtime service without sessions admits sockets to channels on the app's tickets", async () => {
    const web = await app();
    web.app.post("/pusher/auth", web.auth.channelAuthHandler());
    // The realtime service reads no sessions: anonymous sockets, channels only by ticket.
    const realtime = await start({ bridge: { session: undefined, allowAnonymous: true, channelSecret: SECRET } });
    const socket = await realtime.connect();
    expect((await socket.emitWithAck("whoami")) as { user: unknown }).toMatchObject({ user: null, isAuthenticated: false });
    const cookie = await web.login("alice");
    const ticketFor = async (channel: string) => {
      const res = await web.request("/pusher/auth", { method: "POST", cookie, body: new URLSearchParams({ socket_id: socket.id!, channel_name: channel }) });
      return [res.status, res.status === 200 ? ((await res.json()) as { auth: string }).auth : undefined] as const;
    };
    const [status, ticket] = await ticketFor("orders:1");
    expect(status).toBe(200);
    expect((await ticketFor("orders:2"))[0]).toBe(403);
    expect(await join(socket, { channel: "orders:1" })).toEqual(refused("channel_unknown"));
    expect(await join(socket, { channel: "orders:2", auth: ticket })).toEqual(refused("ticket_invalid"));
    expect(await join(socket, { channel: "orders:1", auth: ticket })).toEqual({ ok: true });
    const news = nextEvent(socket, "order");
    realtime.io.to("orders:1").emit("order", "packed");
    expect(await news).toBe("packed");
  });

  it("channelAuthHandler() issues Pusher-shaped tickets after the channel's check, and only to a logged-in user", async () => {
    const h = await app();
    h.app.post("/pusher/auth", h.auth.channelAuthHandler());
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ask = (channel: string, withCookie = true) =>
      h.request("/pusher/auth", {
        method: "POST",
        ...(withCookie ? { cookie } : {}),
        body: new URLSearchParams({ socket_id: socket.id!, channel_name: channel }),
      });
    expect((await ask("orders:1", false)).status).toBe(401);
    expect((await ask("orders:2")).status).toBe(403);
    expect((await ask("nothing:here")).status).toBe(404);

    const { auth } = (await (await ask("orders:1")).json()) as { auth: string };
    expect(await join(socket, { channel: "orders:1", auth })).toEqual({ ok: true });
    const presence = (await (await ask("presence:room:9")).json()) as { auth: string; channel_data: string };
    expect(JSON.parse(presence.channel_data)).toEqual({ info: { name: "Alice" } });
    expect(await join(socket, { channel: "presence:room:9", auth: presence.auth, data: presence.channel_data })).toMatchObject({
      ok: true,
      members: [{ userId: "1", info: { name: "Alice" } }],
    });
    // The presence data is signed too: changing it breaks the ticket.
    const other = await h.connect({ cookie });
    const forOther = (await (await h.request("/pusher/auth", { method: "POST", cookie, body: new URLSearchParams({ socket_id: other.id!, channel_name: "presence:room:9" }) })).json()) as { auth: string };
    expect(await join(other, { channel: "presence:room:9", auth: forOther.auth, data: JSON.stringify({ info: { name: "Mallory" } }) })).toEqual(refused("ticket_invalid"));
  });
});
