/**
 * A real PostgreSQL server for the tests, started the way redis-server.ts starts Redis: Debian's `postgresql`
 * package (or PG_BIN, or initdb on PATH), `initdb` into a temp dir, a free loopback port, its Unix socket in
 * that dir, no system service. Stopped by the postmaster's own pid (from postmaster.pid), then removed.
 *
 * As root, initdb refuses to run, so initdb and the server run as the `postgres` user (`runuser -u postgres --`).
 * runuser forks and waits: signalling runuser would not reach the server, so every stop signals the postmaster.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./redis-server.js";

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  url: string;
  port: number;
  /** The server's major version, e.g. "15". */
  version: string;
  /** The postmaster's pid, while it runs. */
  pid(): number | undefined;
  /**
   * Stops the server: "fast" (SIGINT: clients are told "terminating connection due to administrator command",
   * a clean shutdown) or "immediate" (SIGQUIT: like a crash, recovered from the WAL on restart). Resolves when
   * the postmaster has exited.
   */
  stop(options?: { mode?: "fast" | "immediate" }): Promise<void>;
  /** Starts it again on the same port and data directory (after stop); resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

const INSTALL_HINT =
  "PostgreSQL's server binaries (initdb, postgres) were not found. The PostgreSQL tests start a real server " +
  "of their own: install it (Debian/Ubuntu: `sudo apt-get install postgresql`, which puts them under " +
  "/usr/lib/postgresql/<version>/bin; macOS: `brew install postgresql@15`), or set PG_BIN to the directory " +
  "that holds initdb and postgres. No running service or database is needed.";

/** The directory of initdb and postgres ("" when they are on PATH), or undefined. */
export function postgresBinDir(): string | undefined {
  const has = (dir: string) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "postgres"));
  if (process.env.PG_BIN) return has(process.env.PG_BIN) ? process.env.PG_BIN : undefined;
  const debian = "/usr/lib/postgresql";
  const versions = existsSync(debian)
    ? readdirSync(debian)
        .filter((v) => has(join(debian, v, "bin")))
        .sort((x, y) => Number(y) - Number(x))
    : [];
  if (versions[0]) return join(debian, versions[0], "bin");
  return spawnSync("initdb", ["--version"]).error ? undefined : "";
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error(INSTALL_HINT);
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresUser() : undefined;
  /** A command of PostgreSQL's, as the postgres user when we are root. */
  const command = (name: string, args: string[]): [string, string[]] => {
    const file = bin ? join(bin, name) : name;
    return owner ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
  };

  const dir = mkdtempSync(join(tmpdir(), "psb-pg-"));
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    if (spawnSync("runuser", ["-u", "postgres", "--", "test", "-w", dir]).status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`The postgres user cannot write to ${dir}: set TMPDIR to a directory it can reach (e.g. /tmp).`);
    }
  }
  const data = join(dir, "data");
  const port = await freePort();

  const [initdb, initArgs] = command("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"]);
  const init = spawnSync(initdb, initArgs, { encoding: "utf8" });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.error?.message}):\n${init.stdout}${init.stderr}`);
  }
  const version = readFileSync(join(data, "PG_VERSION"), "utf8").trim();

  let child: ChildProcess | undefined;
  let postmaster: number | undefined;
  const readPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  // If the test process exits first, take the server and its directory with it.
  const onExit = () => {
    if (postmaster) signal(postmaster, "SIGQUIT");
    rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", onExit);

  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const [postgres, args] = command("postgres", [
        "-D", data,
        "-p", String(port),
        "-k", dir,
        "-c", "listen_addresses=127.0.0.1",
        // A throwaway server: no flushing to the disk, which only an OS crash would need. Commits still reach the
        // OS before they return (synchronous_commit stays on), so an immediate stop loses nothing committed.
        "-c", "fsync=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=200",
      ]);
      const proc = spawn(postgres, args, { stdio: ["ignore", "pipe", "pipe"] });
      child = proc;
      let output = "";
      const timer = setTimeout(() => fail(new Error(`postgres was not ready within 20 s:\n${output}`)), 20_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("database system is ready to accept connections")) {
          clearTimeout(timer);
          proc.stderr?.off("data", onData);
          proc.stderr?.resume();
          postmaster = readPid();
          if (postmaster) resolve();
          else fail(new Error(`postgres is ready but wrote no postmaster.pid:\n${output}`));
        }
      };
      proc.stderr?.on("data", onData);
      proc.stdout?.resume();
      proc.once("error", fail);
      proc.once("exit", (code) => fail(new Error(`postgres exited (${code}) before it was ready:\n${output}`)));
    });

  const stop = async (mode: "fast" | "immediate" = "fast") => {
    const pid = postmaster ?? readPid();
    const proc = child;
    if (!pid) return;
    const exited =
      proc && proc.exitCode === null && proc.signalCode === null
        ? new Promise<void>((resolve) => proc.once("exit", () => resolve()))
        : Promise.resolve();
    signal(pid, mode === "fast" ? "SIGINT" : "SIGQUIT");
    await exited;
    // runuser has exited with its child; make sure the postmaster itself is gone before a restart.
    for (let i = 0; i < 200 && alive(pid); i++) await sleep(25);
    postmaster = undefined;
  };

  await launch();
  const server: PostgresServer = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    version,
    pid: () => postmaster,
    stop: ({ mode } = {}) => stop(mode),
    restart: launch,
    async close() {
      await stop("fast");
      process.off("exit", onExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  const uid = id("-u");
  const gid = id("-g");
  if (!uid || !gid) {
    throw new Error(
      "Running as root, the PostgreSQL tests run initdb and postgres as the `postgres` user (initdb refuses root), " +
        "and there is no such user. Debian's `postgresql` package creates it; or run the tests as another user.",
    );
  }
  if (spawnSync("runuser", ["--help"]).error) throw new Error("Running as root, the PostgreSQL tests need `runuser` (util-linux).");
  return { uid, gid };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
