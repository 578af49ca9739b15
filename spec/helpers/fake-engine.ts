/**
 * A fake Engine.IO connection for in-process handshakes (no network): a real IncomingMessage with the given
 * headers, handed to Socket.IO's own `onconnection`, which then runs its real namespace flow on a CONNECT
 * packet. Used by spec/cost-handshake.spec.ts and bench/handshake.ts.
 */
import { EventEmitter } from "node:events";
import { IncomingMessage } from "node:http";

const PEER = { remoteAddress: "127.0.0.1", encrypted: false, readableHighWaterMark: 16384 };
let connections = 0;

export class FakeConnection extends EventEmitter {
  readonly id = `fake${++connections}`;
  readyState = "open";
  readonly protocol = 4;
  readonly transport = { name: "websocket", writable: true };
  readonly remoteAddress = "127.0.0.1";
  /** Told whether the namespace CONNECT was answered with CONNECT (true) or CONNECT_ERROR (false). */
  answered: (ok: boolean) => void = () => undefined;
  /** The CONNECT_ERROR's payload, once refused. */
  refusal: { message: string; data?: { code?: string; reason?: string } } | undefined;

  constructor(readonly request: IncomingMessage) {
    super();
  }

  write(packet: unknown) {
    if (typeof packet !== "string" || (packet[0] !== "0" && packet[0] !== "4")) return;
    if (packet[0] === "4") this.refusal = JSON.parse(packet.slice(1));
    this.answered(packet[0] === "0");
  }

  close() {
    if (this.readyState !== "open") return;
    this.readyState = "closed";
    process.nextTick(() => this.emit("close", "forced close"));
  }

  end() {
    this.readyState = "closed";
    this.emit("close", "transport close");
  }
}

/** A WebSocket handshake request to the Socket.IO path with these headers, as Engine.IO hands it on. */
export function handshakeRequest(headers: Record<string, string>): IncomingMessage {
  const req = new IncomingMessage(PEER as never);
  req.method = "GET";
  req.url = "/socket.io/?EIO=4&transport=websocket";
  req.headers = headers;
  (req as unknown as { _query: Record<string, string> })._query = { EIO: "4", transport: "websocket" };
  return req;
}

/** Opens `conn` on `io` and sends the CONNECT to "/". */
export function openConnection(io: unknown, conn: FakeConnection): void {
  (io as { onconnection(conn: unknown): void }).onconnection(conn);
  conn.emit("data", "0");
}
