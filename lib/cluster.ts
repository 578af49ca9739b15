/**
 * Cluster-wide commands: run a named handler on this node and on every other Socket.IO node the adapter
 * reaches (through `serverSideEmit` with acknowledgements), and collect each node's answer. On the default
 * in-memory adapter there are no other nodes, and serverSideEmit would only print a warning, so the command
 * runs locally alone.
 */
import { EventEmitter } from "node:events";
import createDebug from "debug";
import type { Server } from "socket.io";
import { DeadlineError, within } from "./deadline.js";
import { requestsTimeoutOf } from "./seams.js";
import { ClusterError } from "./errors.js";

const debug = createDebug("passport-socketio-bridge:cluster");

const EVENT = "passport-socketio-bridge:command";
const DEFAULT_REQUESTS_TIMEOUT_MS = 5000;

type Handlers = Record<string, (payload: any) => unknown>;

interface Command {
  name: string;
  payload: unknown;
}

export class Cluster<H extends Handlers> {
  constructor(
    private readonly io: Server,
    private readonly handlers: H,
  ) {
    io.on(EVENT, (command: Command, ack?: (answer: unknown) => void) => {
      this.runLocal(command).then(
        (answer) => ack?.(answer),
        (err: unknown) => {
          debug("command %s failed on this node: %O", command?.name, err);
          ack?.(null);
        },
      );
    });
  }

  /**
   * Runs `name` on every node and resolves with every node's answer, this node's first. Rejects with this
   * node's error, or with a ClusterError (holding the answers that did arrive) when a node does not answer
   * within the adapter's `requestsTimeout`; either way every node has been asked.
   */
  async run<K extends keyof H & string>(
    name: K,
    payload: Parameters<H[K]>[0],
    { timeoutMs }: { timeoutMs?: number } = {},
  ): Promise<Awaited<ReturnType<H[K]>>[]> {
    type Answer = Awaited<ReturnType<H[K]>>;
    const command: Command = { name, payload };
    const [local, remote] = await Promise.allSettled([
      this.runLocal(command),
      this.clustered() ? this.runRemote(command, timeoutMs) : Promise.resolve([]),
    ]);
    if (local.status === "rejected") throw local.reason;
    if (remote.status === "rejected") throw remote.reason;
    return [local.value, ...remote.value] as Answer[];
  }

  /** Runs `name` here and sends it to every other node without waiting for them (one publish, no replies). */
  tell<K extends keyof H & string>(name: K, payload: Parameters<H[K]>[0]): Promise<Awaited<ReturnType<H[K]>>> {
    const command: Command = { name, payload };
    if (this.clustered()) this.io.serverSideEmit(EVENT, command);
    return this.runLocal(command) as Promise<Awaited<ReturnType<H[K]>>>;
  }

  /** Runs `name` on this node only. */
  here<K extends keyof H & string>(name: K, payload: Parameters<H[K]>[0]): Promise<Awaited<ReturnType<H[K]>>> {
    return this.runLocal({ name, payload }) as Promise<Awaited<ReturnType<H[K]>>>;
  }

  private async runLocal(command: Command): Promise<unknown> {
    const handler = Object.hasOwn(this.handlers, command?.name) ? this.handlers[command.name] : undefined;
    if (!handler) throw new Error(`unknown cluster command ${String(command?.name)}`);
    return handler(command.payload);
  }

  private async runRemote(command: Command, timeoutMs?: number): Promise<unknown[]> {
    // Some adapters swallow their own errors (a Redis outage) and never call back: keep our own deadline.
    const ms = timeoutMs ?? (requestsTimeoutOf(this.io) ?? DEFAULT_REQUESTS_TIMEOUT_MS) + 1000;
    let answers: unknown[] = [];
    try {
      return await within<unknown[]>(ms, (done) =>
        this.io.serverSideEmit(EVENT, command, (err: (Error & { responses?: unknown[] }) | null, all: unknown[]) => {
          answers = err?.responses ?? all ?? [];
          done(err, all);
        }),
      );
    } catch (cause) {
      // Our own deadline, past the adapter's requestsTimeout: the adapter never called back at all.
      const adapterSilent = timeoutMs === undefined && cause instanceof DeadlineError;
      throw new ClusterError(command.name, { cause, answers, adapterSilent });
    }
  }

  /** True when the adapter reaches other nodes, i.e. it implements serverSideEmit itself. */
  private clustered(): boolean {
    let proto: object | null = Object.getPrototypeOf(this.io.of("/").adapter);
    while (proto && !Object.hasOwn(proto, "serverSideEmit")) proto = Object.getPrototypeOf(proto);
    // Socket.IO's in-memory Adapter extends EventEmitter directly and only warns in serverSideEmit.
    return proto !== null && Object.getPrototypeOf(proto) !== EventEmitter.prototype;
  }
}
