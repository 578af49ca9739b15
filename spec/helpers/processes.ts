/** Child processes that tests start: a server is ready once its URLs answer; its output explains a failure. */
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/** Resolves once every URL answers an HTTP request; rejects, with the child's output, if it exits or times out. */
export async function untilServing(child: ChildProcess, urls: string[], what: string, timeoutMs = 15_000): Promise<void> {
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      try {
        await (await fetch(url)).body?.cancel();
        break;
      } catch {
        const exited = child.exitCode !== null || child.signalCode !== null;
        if (exited || Date.now() > deadline) throw new Error(`${what} did not start:\n${output}`);
        await sleep(100);
      }
    }
  }
}
