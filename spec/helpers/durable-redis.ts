/**
 * A redis-server of a test's own that it may crash and restart: loopback, a free port, and an append-only file
 * synced on every write, so what was written before a SIGKILL (the sessions) is there again after the restart,
 * as with a production Redis that persists. The suite's shared Redis (global-setup.ts) must not be killed.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis-server.js";

export interface DurableRedis {
  url: string;
  port: number;
  /** SIGKILL, like a crash. Resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

export async function startDurableRedis(): Promise<DurableRedis> {
  if (spawnSync("redis-server", ["--version"]).error) throw new Error("redis-server was not found on PATH.");
  const dir = mkdtempSync(join(tmpdir(), "psb-durable-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;

  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", ""];
      const proc = spawn("redis-server", [...args, "--appendonly", "yes", "--appendfsync", "always"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      let output = "";
      const timer = setTimeout(() => reject(new Error(`redis-server was not ready within 10 s:\n${output}`)), 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          proc.stdout?.off("data", onData);
          proc.stdout?.resume();
          resolve();
        }
      };
      proc.stdout?.on("data", onData);
      proc.stderr?.resume();
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
      });
    });

  const stop = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill(signal);
    });

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill: () => stop("SIGKILL"),
    restart: launch,
    async close() {
      await stop("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
