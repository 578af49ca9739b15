/**
 * Process warnings that a spec causes on purpose: recorded for its assertions, and kept out of the run's
 * output (Node prints warnings through a 'warning' listener of its own, set aside meanwhile).
 */
import { afterEach, beforeEach } from "vitest";

export type Warnings = Array<[code: string | undefined, message: string]>;

/** The warnings of the running test; emptied before each test. */
export function captureWarnings(): Warnings {
  const warnings: Warnings = [];
  const record = (warning: Error & { code?: string }) => void warnings.push([warning.code, warning.message]);
  let printers: Array<(...args: any[]) => void> = [];
  beforeEach(() => {
    warnings.length = 0;
    printers = process.listeners("warning");
    process.removeAllListeners("warning");
    process.on("warning", record);
  });
  afterEach(async () => {
    // Warnings are emitted on a later tick: let those of the test's last step arrive first.
    await new Promise((resolve) => setImmediate(resolve));
    process.off("warning", record);
    for (const printer of printers) process.on("warning", printer);
  });
  return warnings;
}
