/**
 * Counts the commands Redis really executes for one store (its key prefix), through MONITOR.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, inject } from "vitest";

export interface StoreMonitor {
  /** Waits until Redis has reported everything executed so far, then returns and clears the commands seen. */
  take(): Promise<string[][]>;
  /** take(), with the time (ms) Redis executed each command at. */
  takeTimed(): Promise<Array<{ at: number; command: string[] }>>;
  /** take(), reduced to `{ GET: n, SET: n, ... }`. */
  counts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export async function monitorStore(prefix: string, url = inject("redisUrl")): Promise<StoreMonitor> {
  // What client.monitor() does, but with an error listener from the start: when other tests' commands arrive
  // in the same read as MONITOR's "OK", ioredis reports them ("Command queue state error") before it knows it
  // is monitoring. Those come before our first marker and would not count anyway; any later error fails take().
  const monitor = new Redis(url, { monitor: true });
  let failure: Error | undefined;
  let failStart: ((err: Error) => void) | undefined;
  monitor.on("error", (err: Error) => {
    if ((monitor.status as string) !== "monitoring" && /Command queue state error/.test(err.message)) return;
    failure ??= err;
    failStart?.(err);
  });
  if ((monitor.status as string) !== "monitoring") {
    await new Promise((resolve, reject) => {
      failStart = reject;
      monitor.once("monitoring", resolve);
    });
  }
  const probe = new Redis(url);
  let seen: Array<{ at: number; command: string[] }> = [];
  const waiting = new Map<string, () => void>();
  monitor.on("monitor", (time: string, args: string[]) => {
    if (args[0]?.toLowerCase() === "echo" && args[1] && waiting.has(args[1])) {
      waiting.get(args[1])!();
      waiting.delete(args[1]);
    } else if (args.slice(1).some((arg) => String(arg).startsWith(prefix))) {
      seen.push({ at: Number(time) * 1000, command: [args[0]!.toUpperCase(), ...args.slice(1)] });
    }
  });
  // MONITOR starts reporting asynchronously; wait for a first marker so nothing is missed.
  const flush = async () => {
    const marker = `monitor-marker:${randomUUID()}`;
    const reported = new Promise<void>((resolve) => waiting.set(marker, resolve));
    await probe.echo(marker);
    await reported;
  };
  await flush();
  seen = [];
  const takeTimed = async () => {
    await flush();
    if (failure) throw failure;
    const commands = seen;
    seen = [];
    return commands;
  };
  const take = async () => (await takeTimed()).map(({ command }) => command);
  return {
    take,
    takeTimed,
    async counts() {
      const counts: Record<string, number> = {};
      for (const [name] of await take()) counts[name!] = (counts[name!] ?? 0) + 1;
      return counts;
    },
    async close() {
      monitor.disconnect();
      probe.disconnect();
    },
  };
}

/** A monitor factory for one spec file: every monitor it opens is closed after its test. */
export function monitorPerTest(): (prefix: string) => Promise<StoreMonitor> {
  const open: StoreMonitor[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });
  return async (prefix) => {
    const m = await monitorStore(prefix);
    open.push(m);
    return m;
  };
}
