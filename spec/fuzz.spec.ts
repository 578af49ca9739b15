/**
 * Fuzzed handshakes: at least 10,000 hostile handshakes, generated from a seed (FUZZ_SEED, FUZZ_COUNT to
 * change them), sent raw over WebSocket and long-polling. None may be admitted, each must be refused with a
 * known code, nothing may crash or leak a rejection, and a real session must still connect afterwards.
 */
import { Worker } from "node:worker_threads";
import { describe, expect, it, onTestFinished } from "vitest";
import { generate, prng, send, type FuzzCase, type Outcome } from "./helpers/fuzz.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { SECRET, harnessPerTest, sessionIdOf, type WhoAmI } from "./helpers/harness.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const COUNT = Number(process.env.FUZZ_COUNT ?? 10_000);
const CONCURRENCY = 32;
const KNOWN = new Set(["session_missing", "origin_not_allowed", "csrf_mismatch", "too_many_attempts"]);

const start = harnessPerTest();
// Nothing here may leak a rejection or an exception out of the library.
const leaks = failOnLeaks();

/** Runs `work` over `items`, `limit` at a time, keeping the results in order. */
async function pool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!);
      }
    }),
  );
  return results;
}

/**
 * The client half of every handshake (its sockets, requests and parsing), sent from a worker thread with the
 * same `send`: the servers and the library stay in this thread, where leaks and pollution are watched, and the
 * two halves run on two cores instead of one.
 */
function clientThread(): { send: (url: string, c: FuzzCase) => Promise<Outcome>; close: () => Promise<void> } {
  const source = `
    const { parentPort, workerData } = require("node:worker_threads");
    import(workerData.tsx)
      .then(({ tsImport }) => tsImport(workerData.helper, workerData.helper))
      .then(({ send }) => parentPort.on("message", ({ id, url, c }) => send(url, c).then((outcome) => parentPort.postMessage({ id, outcome }))));
  `;
  const workerData = {
    tsx: import.meta.resolve("tsx/esm/api"),
    helper: new URL("./helpers/fuzz.ts", import.meta.url).href,
  };
  const worker = new Worker(source, { eval: true, workerData });
  const waiting = new Map<number, (outcome: Outcome) => void>();
  let failed: Error | undefined;
  worker.on("message", ({ id, outcome }: { id: number; outcome: Outcome }) => {
    waiting.get(id)?.(outcome);
    waiting.delete(id);
  });
  // A worker that dies answers every case it holds, and every later one, as a client error: none is admitted,
  // none has a known code, so the assertions below fail and say why.
  const fail = (err: Error) => {
    failed = err;
    for (const resolve of waiting.values()) resolve({ admitted: false, code: undefined, detail: `client thread: ${err.message}` });
    waiting.clear();
  };
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`exited with ${code}`)));
  let next = 0;
  return {
    send: (url, c) =>
      failed
        ? Promise.resolve({ admitted: false, code: undefined, detail: `client thread: ${failed.message}` })
        : new Promise((resolve) => {
            waiting.set(next, resolve);
            worker.postMessage({ id: next++, url, c });
          }),
    close: async () => void (await worker.terminate()),
  };
}

describe(`fuzzed handshakes (FUZZ_SEED=${SEED})`, () => {
  it(`refuses ${COUNT} hostile handshakes with known codes, and admits none`, { timeout: 120_000 }, async () => {
    // Started first: it loads while the apps start.
    const client = clientThread();
    onTestFinished(() => client.close());
    // Half the cases go to an app with every guard on: CSRF, a trusted proxy, the failure limit.
    const plain = await start();
    const guarded = await start({ prefix: plain.prefix, bridge: { csrf: true, trustProxy: true, failureLimit: 1_000_000 } });
    const cookie = await plain.login("alice");
    const random = prng(SEED);
    const target = { url: plain.url, sessionId: sessionIdOf(cookie), secret: SECRET, cookieName: "connect.sid" };
    const cases = Array.from({ length: COUNT }, () => generate(random, target));
    const urlOf = (i: number) => (i % 2 ? guarded.url : plain.url);
    // The oracle can tell an admission: the real cookie, sent the same raw way, is admitted.
    const control = await send(plain.url, { transport: "websocket", headers: { cookie }, query: {}, auth: undefined, kind: "control" });
    expect(control.admitted).toBe(true);

    const started = Date.now();
    const outcomes = await pool(cases.map((c, i) => [c, i] as const), CONCURRENCY, ([c, i]) => client.send(urlOf(i), c));
    const seconds = (Date.now() - started) / 1000;

    const tally = new Map<string, number>();
    for (const outcome of outcomes) tally.set(outcome.code ?? "(none)", (tally.get(outcome.code ?? "(none)") ?? 0) + 1);
    console.log(`fuzz: ${COUNT} handshakes in ${seconds.toFixed(1)} s, seed ${SEED}:`, Object.fromEntries(tally));

    const describe = (o: Outcome, i: number) => ({ case: i, kind: cases[i]!.kind, transport: cases[i]!.transport, detail: o.detail.slice(0, 200) });
    expect(outcomes.map(describe).filter((_, i) => outcomes[i]!.admitted)).toEqual([]);
    expect(outcomes.map(describe).filter((_, i) => !KNOWN.has(outcomes[i]!.code ?? "")).slice(0, 5)).toEqual([]);
    expect(leaks).toEqual([]);

    // No prototype was polluted by the payloads.
    const probe = {} as Record<string, unknown>;
    expect([probe.admin, probe.isAdmin, probe.user, probe.sessionID]).toEqual([undefined, undefined, undefined, undefined]);

    // The real session still connects.
    const socket = await plain.connect({ cookie });
    expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Alice" });
  });
});
