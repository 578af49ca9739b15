/**
 * The ledger's one freshness rule, on a clock the spec owns: copies serve only live sessions, only while younger
 * than sessionCacheMs and before their expiry, only to newer data, never once ended; reads in flight are shared
 * only while younger than the read deadline and never across an ending. (The real-time, real-Redis cases of each
 * behaviour are in store-contract.spec.ts and session-truth.spec.ts.)
 */
import { describe, expect, it } from "vitest";
import { Ledger, type Clock } from "../lib/ledger.js";

class ManualClock implements Clock {
  constructor(private t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

function ledger() {
  const clock = new ManualClock();
  return { clock, ledger: new Ledger({ sessionCacheMs: 2000, storeTimeoutMs: 5000 }, clock) };
}

const record = (value: string, expires?: number) => ({ value, cookie: { expires: expires === undefined ? null : new Date(expires).toJSON() } });

describe("copies", () => {
  it("serve a live session until sessionCacheMs after the read, and nothing else", () => {
    const { clock, ledger: l } = ledger();
    l.keep("s1", record("a"), clock.now());
    expect(l.copyFor("s1")).toBeUndefined(); // not live here: nothing kept
    l.track("s1");
    l.keep("s1", record("a"), clock.now());
    expect(JSON.parse(l.copyFor("s1")!.json)).toMatchObject({ value: "a" });
    clock.advance(1999);
    expect(l.copyFor("s1")).toBeDefined();
    clock.advance(1);
    expect(l.copyFor("s1")).toBeUndefined();
  });

  it("change only to newer data, never once the session ended, and go with the last socket", () => {
    const { clock, ledger: l } = ledger();
    l.track("s1");
    const t0 = clock.now();
    l.keep("s1", record("new"), t0 + 10);
    l.keep("s1", record("older read"), t0);
    expect(JSON.parse(l.copyFor("s1")!.json).value).toBe("new");
    l.end("s1");
    expect(l.hasEnded("s1")).toBe(true);
    l.keep("s1", record("after the ending"), t0 + 20);
    expect(l.copyFor("s1")).toBeUndefined();
    l.forget("s1");
    l.track("s2");
    l.keep("s2", record("x"), clock.now());
    l.forget("s2");
    expect(l.copyFor("s2")).toBeUndefined();
  });

  it("never serve past the record's own expiry", () => {
    const { clock, ledger: l } = ledger();
    l.track("s1");
    l.keep("s1", record("a", clock.now() + 500), clock.now());
    clock.advance(499);
    expect(l.copyFor("s1")).toBeDefined();
    clock.advance(1);
    expect(l.copyFor("s1")).toBeUndefined();
  });
});

describe("reads in flight", () => {
  it("are joined while younger than storeTimeoutMs, then a new read begins", () => {
    const { clock, ledger: l } = ledger();
    const first = l.beginRead("s1", "w1");
    expect(l.readInFlight("s1")).toBe(first);
    clock.advance(4999);
    expect(l.readInFlight("s1")).toBe(first);
    clock.advance(1);
    expect(l.readInFlight("s1")).toBeUndefined();
    const second = l.beginRead("s1", "w2");
    l.endRead("s1", first);
    expect(l.readInFlight("s1")).toBe(second);
    l.endRead("s1", second);
    expect(l.readInFlight("s1")).toBeUndefined();
  });

  it("that an ending overtook are stale and never joined", () => {
    const { ledger: l } = ledger();
    const read = l.beginRead("s1", "w1");
    l.end("s1");
    expect(read.stale).toBe(true);
    expect(l.readInFlight("s1")).toBeUndefined();
  });
});

describe("renewals", () => {
  it("remember the latest expiry written per session", () => {
    const { clock, ledger: l } = ledger();
    expect(l.renewalOf("s1")).toBeUndefined();
    l.renewed("s1", clock.now() + 1000);
    l.renewed("s1", clock.now() + 3000);
    expect(l.renewalOf("s1")).toBe(clock.now() + 3000);
  });

  it("of a live session live in its facts, which its keeper sets", () => {
    const { clock, ledger: l } = ledger();
    const facts = l.track("s1");
    expect(facts).toMatchObject({ ended: false, expiresAt: undefined, renewedAt: clock.now() });
    facts.expiresAt = clock.now() + 60_000;
    expect(l.track("s1").expiresAt).toBe(clock.now() + 60_000);
    l.end("s1");
    expect(facts.ended).toBe(true);
  });
});
