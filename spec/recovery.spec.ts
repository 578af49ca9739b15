/**
 * Connection-state recovery keeps only what belongs to exactly the identity that comes back. Socket.IO restores a
 * socket's rooms and data, and writes its missed packets, before any middleware runs; these specs play the
 * client's side with a raw Engine.IO connection, which presents any private id (`pid`) and offset it likes.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { harnessPerTest, type Harness } from "./helpers/harness.js";
import { rawConnection, type RawConnection } from "./helpers/raw-engine.js";

const start = harnessPerTest();
const recovery = { io: { connectionStateRecovery: { maxDisconnectionDuration: 10_000 } } };

/** The app's own rooms and data, given by role, as an app's `connection` handler would. */
function giveTeams(h: Harness): void {
  h.io.on("connection", (socket) => {
    const user = h.auth.user(socket);
    if (user?.id === "1") socket.join("staff");
    if (user?.id === "3") {
      socket.join("team:red");
      socket.data.team = "red";
    }
  });
}

/** A raw connection of `cookie` on `/`, its pid, and the offset of a broadcast to `room` it received. */
async function connectAndHear(h: Harness, cookie: string, room: string) {
  const conn = await rawConnection(h.url, { cookie });
  const answer = await conn.connect("/");
  if (!answer.ok || !answer.pid) throw new Error(`not admitted with a pid: ${JSON.stringify(answer)}`);
  h.io.to(room).emit("memo", "before");
  const offset = await vi.waitFor(() => {
    const heard = conn.events.find((event) => event[1] === "memo");
    if (!heard) throw new Error("no memo yet");
    return heard[heard.length - 1] as string;
  });
  return { conn, sid: answer.sid, pid: answer.pid, offset };
}

/** Closes the connection and waits until the server has persisted the socket for recovery. */
async function drop(h: Harness, conn: RawConnection): Promise<void> {
  conn.close();
  await vi.waitFor(() => expect(h.io.of("/").sockets.size).toBe(0));
}

const memos = (conn: RawConnection) => conn.events.filter((event) => event[1] === "memo").map((event) => event[2]);

describe("connection-state recovery as someone else", () => {
  it("a staff member logged out while away comes back anonymous with none of the staff's rooms, data or missed packets", async () => {
    const h = await start({ ...recovery, bridge: { allowAnonymous: true } });
    giveTeams(h);
    const cookie = await h.login("alice");
    const before = await connectAndHear(h, cookie, "staff");
    await drop(h, before.conn);
    expect((await h.request("/logout", { method: "POST", cookie })).status).toBe(204);
    h.io.to("staff").emit("memo", "while away");

    const again = await rawConnection(h.url, { cookie });
    const answer = await again.connect("/", { pid: before.pid, offset: before.offset });
    expect(answer).toMatchObject({ ok: true });
    // A new private id: the client knows it did not recover, and the old one resumes nothing through it.
    expect(answer.ok && answer.pid).not.toBe(before.pid);
    const socket = h.io.of("/").sockets.get(answer.ok ? answer.sid : "")!;
    expect(socket.recovered).toBe(false);
    expect([...socket.rooms]).toEqual([socket.id]);
    expect(socket.data).toEqual({});

    h.io.to("staff").emit("memo", "after");
    await sleep(100);
    expect(memos(again)).toEqual([]);
    expect(await h.auth.disconnectUser("1")).toBe(0);
    again.close();
  });

  it("bob presenting mallory's private id gets neither her room, her data nor her missed packets", async () => {
    const h = await start(recovery);
    giveTeams(h);
    const mallory = await h.login("carol");
    const before = await connectAndHear(h, mallory, "team:red");
    await drop(h, before.conn);
    h.io.to("team:red").emit("memo", "while away");

    const bob = await h.login("bob");
    const conn = await rawConnection(h.url, { cookie: bob });
    const answer = await conn.connect("/", { pid: before.pid, offset: before.offset });
    expect(answer.ok).toBe(true);
    const socket = h.io.of("/").sockets.get(answer.ok ? answer.sid : "")!;
    expect(socket.recovered).toBe(false);
    expect([...socket.rooms].filter((room) => room !== socket.id).sort()).toEqual(
      [`session:${socket.request.sessionID}`, "user:2"].sort(),
    );
    expect(socket.data).toEqual({ userId: "2", sessionId: socket.request.sessionID });
    await sleep(100);
    expect(memos(conn)).toEqual([]);
    conn.close();
  });

  it("a refused recovery writes none of the missed packets, and retrying it after a new login replays none", async () => {
    const h = await start(recovery);
    giveTeams(h);
    const cookie = await h.login("alice");
    const before = await connectAndHear(h, cookie, "staff");
    await drop(h, before.conn);
    await h.request("/logout", { method: "POST", cookie });
    h.io.to("staff").emit("memo", "while away");

    const refused = await rawConnection(h.url, { cookie });
    const answer = await refused.connect("/", { pid: before.pid, offset: before.offset });
    expect(answer).toMatchObject({ ok: false, data: { code: "session_missing" } });
    await sleep(100);
    expect(memos(refused)).toEqual([]);
    refused.close();

    // The same user in a new session is not the identity that missed them.
    const fresh = await h.login("alice");
    const retry = await rawConnection(h.url, { cookie: fresh });
    const retried = await retry.connect("/", { pid: before.pid, offset: before.offset });
    expect(retried.ok).toBe(true);
    expect(h.io.of("/").sockets.get(retried.ok ? retried.sid : "")!.recovered).toBe(false);
    await sleep(100);
    expect(memos(retry)).toEqual([]);
    retry.close();
  });
});

describe("connection-state recovery as the same identity", () => {
  it("keeps its rooms and data, and gets each missed packet once, after it is admitted", async () => {
    const h = await start(recovery);
    giveTeams(h);
    const cookie = await h.login("carol");
    const before = await connectAndHear(h, cookie, "team:red");
    await drop(h, before.conn);
    h.io.to("team:red").emit("memo", "while away");

    const conn = await rawConnection(h.url, { cookie });
    const answer = await conn.connect("/", { pid: before.pid, offset: before.offset });
    expect(answer).toMatchObject({ ok: true, pid: before.pid });
    const socket = h.io.of("/").sockets.get(answer.ok ? answer.sid : "")!;
    expect(socket.recovered).toBe(true);
    expect(socket.rooms.has("team:red")).toBe(true);
    expect(socket.data).toMatchObject({ team: "red", userId: "3" });
    await vi.waitFor(() => expect(memos(conn)).toEqual(["while away"]));
    await sleep(100);
    expect(memos(conn)).toEqual(["while away"]);
    conn.close();
  });
});
