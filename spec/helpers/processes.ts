/**
 * Child processes that tests start: a server is ready once its URLs answer (its output explains a failure);
 * their process tree, as /proc and ps show it; and logging in to the example app they serve.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "vitest";
import { cookieFrom } from "./harness.js";

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

/** The pids of every process below `pid` (children, theirs, and so on). */
export function descendants(pid: number): number[] {
  const rows = execFileSync("ps", ["-e", "-o", "pid=,ppid="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  for (let level = [pid]; level.length; ) {
    level = rows.filter(([, ppid]) => level.includes(ppid)).map(([child]) => child);
    found.push(...level);
  }
  return found;
}

/** A file of /proc/<pid>/, or "" once the process is gone. */
function procFile(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
}

/** Running (a zombie, gone but not yet reaped, does not count). */
export const alive = (pid: number) => procFile(pid, "stat") !== "" && !/^\d+ \(.*\) Z/.test(procFile(pid, "stat"));
export const parentOf = (pid: number) => Number(procFile(pid, "stat").replace(/^.*\) /, "").split(" ")[1]);
export const commandOf = (pid: number) => procFile(pid, "cmdline").split("\0").join(" ");

/** Logs in to the example app through its form (a redirect to "/"); resolves with the session's Cookie header. */
export async function exampleLogin(url: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username, password }), redirect: "manual" });
  expect(res.headers.get("location")).toBe("/");
  return cookieFrom(res);
}
