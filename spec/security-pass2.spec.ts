/**
 * The second security pass (endings, writes and admissions): every namespace hears its ending; a user object is
 * not an id; revalidation spreads out; a write through a node reaches its held handshakes at once; a write that
 * removes or changes the session's user ends its sockets everywhere; an admission that never finishes pins
 * nothing. Real Redis, real clients; two nodes on the Redis adapter where a node is involved.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { harnessPerTest, nextEvent, type Harness, type HarnessOptions } from "./helpers/harness.js";
import { monitorPerTest } from "./helpers/monitor.js";
import { rawConnection } from "./helpers/raw-engine.js";

const start = harnessPerTest();
const monitorStore = monitorPerTest();

async function cluster(options: HarnessOptions = {}) {
  const a = await start({ redisAdapter: true, ...options });
  const b = await start({ redisAdapter: true, prefix: a.prefix, ...options });
  return [a, b] as const;
}

/** A main-namespace socket and a `/chat` one over one Engine.IO connection. */
async function twoNamespaces(h: Harness, cookie: string) {
  h.io.of("/chat");
  const main = h.client({ cookie, transport: "websocket" });
  await nextEvent(main, "connect");
  const chat = main.io.socket("/chat");
  await nextEvent(chat, "connect");
  return { main, chat };
}

describe("endings reach every namespace of a connection", () => {
  it("on logout, each namespace socket of the session gets auth:ended before the connection closes", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const { main, chat } = await twoNamespaces(h, cookie);
    const heard = Promise.all([nextEvent(main, "auth:ended"), nextEvent(chat, "auth:ended")]);
    await h.request("/logout", { method: "POST", cookie });
    expect(await heard).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
  });
});

describe("user ids given as objects", () => {
  it("userRoom, disconnectUser, isOnline, refresh and leave throw a TypeError for a user object", async () => {
    const h = await start();
    const user = h.users.get("1")!;
    expect(() => h.auth.userRoom(user as never)).toThrow(TypeError);
    await expect(h.auth.disconnectUser(user as never)).rejects.toThrow(TypeError);
    await expect(h.auth.isOnline(user as never)).rejects.toThrow(TypeError);
    await expect(h.auth.refresh(user as never)).rejects.toThrow(TypeError);
    await expect(h.auth.leave(user as never, "orders:1")).rejects.toThrow(TypeError);
    expect(h.auth.userRoom(1)).toBe("user:1");
  });
});

describe("revalidation is spread out", () => {
  it("sessions that connected in one storm are not re-read in the same instant", async () => {
    const h = await start({ bridge: { revalidateEveryMs: 2000, keepAliveMs: false } });
    const cookies = await Promise.all(Array.from({ length: 24 }, (_, i) => h.login(i % 2 ? "alice" : "bob")));
    const monitor = await monitorStore(h.prefix);
    await h.connectSessions(cookies, cookies.length, () => "websocket");
    const gets = async () => (await monitor.takeTimed()).filter(({ command }) => command[0] === "GET").map(({ at }) => at);
    const handshakes = await gets();
    await sleep(2100);
    const reads = await gets();
    expect(reads).toHaveLength(cookies.length);
    // Without jitter the first revalidations land as close together as the handshakes did; with it they spread
    // over a quarter of the interval (500 ms), and none comes later than the interval.
    const spread = (times: number[]) => Math.max(...times) - Math.min(...times);
    expect(spread(reads)).toBeGreaterThan(spread(handshakes) + 150);
    expect(Math.max(...reads) - Math.max(...handshakes)).toBeLessThanOrEqual(2000 + 100);
  });
});

describe("writes through a node", () => {
  it("a flag dropped over HTTP is not honoured on the live connection's next namespace", async () => {
    const h = await start();
    h.app.post("/grant", (req, res) => {
      (req.session as unknown as Record<string, unknown>).canChat = true;
      res.sendStatus(204);
    });
    h.app.post("/revoke", (req, res) => {
      delete (req.session as unknown as Record<string, unknown>).canChat;
      res.sendStatus(204);
    });
    h.io.of("/chat").use((socket, next) =>
      next((socket.request.session as unknown as Record<string, unknown>).canChat ? undefined : new Error("no chat for you")),
    );
    const cookie = await h.login("alice");
    await h.request("/grant", { method: "POST", cookie });
    const main = h.client({ cookie, transport: "websocket" });
    await nextEvent(main, "connect");
    await h.request("/revoke", { method: "POST", cookie });
    // Well within sessionCacheMs (2 s): the connection's handshake is still held for its next namespace.
    const chat = main.io.socket("/chat");
    const refused = await nextEvent<Error>(chat, "connect_error");
    expect(refused.message).toBe("no chat for you");
  });

  for (const [what, change] of [
    ["deletes req.session.passport (a logout that keeps the session)", (s: Record<string, any>) => delete s.passport],
    ["deletes the user only (Passport 0.5's logout)", (s: Record<string, any>) => delete s.passport.user],
    ["puts another user in place", (s: Record<string, any>) => (s.passport.user = "2")],
  ] as const) {
    it(`a write on node A that ${what} ends the session's sockets on both nodes as a logout`, async () => {
      const [a, b] = await cluster();
      a.app.post("/change", (req, res) => {
        change(req.session as unknown as Record<string, any>);
        res.sendStatus(204);
      });
      const alice = await a.login("alice");
      const bob = await a.login("bob");
      const [onA, onB, bobB] = await Promise.all([
        a.connect({ cookie: alice }),
        b.connect({ cookie: alice }),
        b.connect({ cookie: bob }),
      ]);
      const since = Date.now();
      const ended = Promise.all([nextEvent(onA, "auth:ended"), nextEvent(onB, "auth:ended")]);
      expect((await a.request("/change", { method: "POST", cookie: alice })).status).toBe(204);
      expect(await ended).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
      expect(Date.now() - since).toBeLessThan(1000);
      await sleep(100);
      expect(bobB.connected).toBe(true);
    });
  }

  it("a write that keeps the user ends nothing", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    await h.request("/visit", { method: "POST", cookie });
    await h.request("/visit", { method: "POST", cookie });
    await sleep(200);
    expect(socket.connected).toBe(true);
  });
});

describe("an admission that never finishes", () => {
  it("pins no ending once it waited storeTimeoutMs, and still learns of its own session's logout", async () => {
    const h = await start({ bridge: { storeTimeoutMs: 300 } });
    // An app middleware after the bridge that holds the socket (say, waiting on a service that hangs).
    const held: Array<() => void> = [];
    h.io.of("/stuck").use((_socket, next) => void held.push(() => next()));
    const cookie = await h.login("alice");
    const raw = await rawConnection(h.url, { cookie });
    const answer = raw.connect("/stuck");
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const endings = () => (h.auth as unknown as { ledger: { endings: { size: number } } }).ledger.endings.size;

    await sleep(400);
    for (let i = 0; i < 200; i++) await h.request("/logout", { method: "POST" });
    // (The endings are private: their count is the memory this bounds.)
    expect(endings()).toBe(0);

    await h.request("/logout", { method: "POST", cookie });
    held[0]!();
    expect(await answer).toMatchObject({ ok: true });
    await vi.waitFor(() => expect(raw.events).toContainEqual(["/stuck", "auth:ended", { code: "logged_out" }]));
    raw.close();
  });
});
