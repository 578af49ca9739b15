/**
 * Helpers shared by the specs of live sockets: two nodes of one app, a socket's ending, whoami.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Session } from "express-session";
import type { Socket as ClientSocket } from "socket.io-client";
import { expect } from "vitest";
import { nextEvent, type Harness, type HarnessOptions, type WhoAmI } from "./harness.js";

/** Two nodes of one app on the Redis adapter, sharing the store's key prefix. */
export async function twoNodes(start: (options?: HarnessOptions) => Promise<Harness>, options: HarnessOptions = {}) {
  const a = await start({ redisAdapter: true, ...options });
  const b = await start({ redisAdapter: true, prefix: a.prefix, ...options });
  return [a, b] as const;
}

/** Resolves with the `auth:ended` payload and the ms it took from `since`, once the socket is also disconnected. */
export function ending(socket: ClientSocket, since = Date.now()) {
  const notice = nextEvent<{ code: string }>(socket, "auth:ended", 10_000);
  const gone = nextEvent<string>(socket, "disconnect", 10_000);
  return Promise.all([notice, gone]).then(([payload, reason]) => ({ ...payload, reason, ms: Date.now() - since }));
}

export const whoami = (socket: ClientSocket) => socket.timeout(5000).emitWithAck("whoami") as Promise<WhoAmI>;

/** "bump": reload, count, touch and save socket.request.session, express-session's own Session. */
export function bumpThroughSession(io: Harness["io"]): void {
  io.on("connection", (socket) => {
    socket.on("bump", (ack: (answer: unknown) => void) => {
      const session = socket.request.session;
      session.reload((err) => {
        if (err) return ack({ error: String(err) });
        const fresh = socket.request.session;
        fresh.count = (fresh.count ?? 0) + 1;
        fresh.touch();
        fresh.save((saveErr) => ack({ error: saveErr ? String(saveErr) : null, isSession: fresh instanceof Session }));
      });
    });
  });
}

/**
 * "increment": withSession() reads the count, runs `work`, then writes count + 1 (a lost update shows as a
 * repeated answer); answers the count, or `{ error: code }`.
 */
export function incrementer(h: Harness, work: () => Promise<unknown> = () => sleep(1)): void {
  h.io.on("connection", (socket) => {
    socket.on("increment", (ack: (n: unknown) => void) => {
      h.auth
        .withSession(socket, async (session) => {
          const count = (session.count ?? 0) + 1;
          await work();
          session.count = count;
          return count;
        })
        .then(ack, (err: { code: string }) => ack({ error: err.code }));
    });
  });
}

/**
 * With `rolling` 1 s sessions: a socket on `node`, and a request through `renewer` at 0.6 s, which moves the
 * socket's end to the renewed expiry (still connected past the first end; ended 1 to 2 s after the renewal).
 */
export async function expectRollingRenewal(node: Harness, renewer: Harness): Promise<void> {
  const loggedIn = Date.now();
  const cookie = await node.login("alice");
  const socket = await node.connect({ cookie });
  const ended = ending(socket, loggedIn);
  await sleep(600 - (Date.now() - loggedIn));
  const renewed = Date.now() - loggedIn;
  await renewer.request("/me", { cookie });
  // Past the end before the renewal.
  await sleep(1250 - (Date.now() - loggedIn));
  expect(socket.connected).toBe(true);
  const end = await ended;
  expect(end.code).toBe("session_expired");
  expect(end.ms).toBeGreaterThanOrEqual(renewed + 1000);
  expect(end.ms).toBeLessThan(renewed + 2000);
}

/**
 * socket.request.session is express-session's own Session: two "bump"s from a socket (reload, count, touch,
 * save) land, and HTTP sees the count.
 */
export async function expectSessionRoundTrip(h: Harness): Promise<void> {
  bumpThroughSession(h.io);
  const cookie = await h.login("bob");
  const socket = await h.connect({ cookie });
  expect(await socket.emitWithAck("bump")).toEqual({ error: null, isSession: true });
  expect(await socket.emitWithAck("bump")).toEqual({ error: null, isSession: true });
  const http = (await (await h.request("/me", { cookie })).json()) as { session: { count: number } };
  expect(http.session.count).toBe(2);
}
