/**
 * Collects what escapes the library during a spec file: unhandled rejections and uncaught exceptions. The
 * file fails if any was seen (Vitest would report them too, but not as this file's failure).
 */
import { afterAll, beforeAll, expect } from "vitest";

export function failOnLeaks(): unknown[] {
  const leaks: unknown[] = [];
  const onLeak = (err: unknown) => leaks.push(err);
  beforeAll(() => {
    process.on("unhandledRejection", onLeak);
    process.on("uncaughtException", onLeak);
  });
  afterAll(() => {
    process.off("unhandledRejection", onLeak);
    process.off("uncaughtException", onLeak);
    expect(leaks).toEqual([]);
  });
  return leaks;
}
