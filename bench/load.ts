/**
 * The load generator, a process of its own: logs users in over HTTP, opens Socket.IO connections with their
 * cookies, sends events, and times what it sees. Driven by bench/run.ts over IPC.
 */
import { performance } from "node:perf_hooks";
import { io, type Socket } from "socket.io-client";

export type LoadCommand =
  | { type: "login"; url: string; count: number }
  | { type: "connect"; url: string; cookies: string[]; transport: Transport; total: number; concurrency: number; rate?: number }
  | { type: "events"; count: number }
  | { type: "disconnect" }
  | { type: "logout-latency"; loginUrl: string; socketUrl: string; cookies: string[]; concurrency: number }
  | { type: "stop" };

export type Transport = "websocket" | "polling";

let held: Socket[] = [];

function open(url: string, cookie: string | undefined, transport: Transport): Promise<{ socket: Socket; ms: number }> {
  const started = performance.now();
  const socket = io(url, {
    forceNew: true,
    reconnection: false,
    transports: [transport],
    extraHeaders: cookie ? { cookie } : {},
    timeout: 60_000,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve({ socket, ms: performance.now() - started }));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Runs `work` for 0..total-1, `concurrency` at a time. */
async function pool(total: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) await work(next++);
    }),
  );
}

function sleepUntil(at: number): Promise<void> {
  const ms = at - performance.now();
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

async function login(url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  await pool(count, 20, async (i) => {
    const res = await fetch(`${url}/login`, { method: "POST", body: new URLSearchParams({ username: `user-${i}`, password: "x" }) });
    cookies[i] = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  });
  return cookies;
}

async function handle(command: LoadCommand): Promise<unknown> {
  switch (command.type) {
    case "login":
      return login(command.url, command.count);
    case "connect": {
      const latencies: number[] = [];
      let failures = 0;
      const started = performance.now();
      const { rate } = command;
      await pool(command.total, command.concurrency, async (i) => {
        // Paced (`rate` handshakes per second): each starts at its own time, whatever the server's speed.
        if (rate) await sleepUntil(started + (i * 1000) / rate);
        try {
          const { socket, ms } = await open(command.url, command.cookies[i % command.cookies.length], command.transport);
          held.push(socket);
          latencies.push(ms);
        } catch {
          failures++;
        }
      });
      return { latencies, failures, wallMs: performance.now() - started };
    }
    case "events": {
      let sent = 0;
      await Promise.all(
        held.map(async (socket) => {
          while (sent < command.count) {
            sent++;
            await socket.timeout(30_000).emitWithAck("ping");
          }
        }),
      );
      return { sent };
    }
    case "disconnect": {
      for (const socket of held) socket.disconnect();
      held = [];
      return {};
    }
    case "logout-latency": {
      // One socket per session on one node; each session logged out through the other node.
      const sockets = await Promise.all(command.cookies.map((cookie) => open(command.socketUrl, cookie, "websocket")));
      const latencies: number[] = [];
      await pool(command.cookies.length, command.concurrency, async (i) => {
        const { socket } = sockets[i]!;
        const ended = new Promise<void>((resolve) => socket.once("disconnect", () => resolve()));
        const started = performance.now();
        await fetch(`${command.loginUrl}/logout`, { method: "POST", headers: { cookie: command.cookies[i]! } });
        await ended;
        latencies.push(performance.now() - started);
      });
      return { latencies };
    }
    case "stop":
      process.exit(0);
  }
}

process.on("message", (command: LoadCommand) => {
  handle(command).then(
    (result) => process.send!({ ok: true, result }),
    (err: Error) => process.send!({ ok: false, error: err.message }),
  );
});
process.send!({ type: "ready" });
