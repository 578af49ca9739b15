/**
 * A raw Engine.IO connection over `ws`, speaking Socket.IO's packets by hand: it can do what socket.io-client
 * never does, such as keeping its connection open with no namespace connected (it answers pings) and
 * CONNECTing a namespace again later, as often as it likes.
 */
import WebSocket from "ws";

export type ConnectAnswer = { ok: true; sid: string; pid?: string } | { ok: false; message: string; data: { code: string; reconnect: boolean } };

export interface RawConnection {
  /** Sends a namespace CONNECT (with `auth`) and resolves with the server's answer. */
  connect(namespace?: string, auth?: Record<string, unknown>): Promise<ConnectAnswer>;
  /** Disconnects a namespace; the Engine.IO connection stays open. */
  leave(namespace?: string): void;
  /** Every event received, as [namespace, name, ...args]. */
  events: unknown[][];
  /** Namespaces the server disconnected (DISCONNECT packets received). */
  disconnected: string[];
  /** Whether the Engine.IO connection is still open. */
  readonly open: boolean;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
  close(): void;
}

export async function rawConnection(url: string, headers: Record<string, string> = {}): Promise<RawConnection> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, { headers });
  const events: unknown[][] = [];
  const disconnected: string[] = [];
  const waiting = new Map<string, (answer: ConnectAnswer) => void>();
  let open = false;
  const closed = new Promise<void>((resolve) => ws.on("close", () => resolve()));
  ws.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once("message", (raw) => (String(raw).startsWith("0") ? resolve() : reject(new Error(`no open packet: ${String(raw)}`))));
    ws.once("error", reject);
  });
  open = true;
  void closed.then(() => (open = false));
  ws.on("message", (raw) => {
    const text = String(raw);
    if (text === "2") return ws.send("3");
    if (!text.startsWith("4")) return;
    // Socket.IO packet: type digit, then "/nsp," unless it is the main namespace, then JSON.
    const type = text[1];
    let rest = text.slice(2);
    let namespace = "/";
    if (rest.startsWith("/")) {
      const comma = rest.indexOf(",");
      namespace = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? "" : rest.slice(comma + 1);
    }
    const body = rest ? (JSON.parse(rest) as unknown) : undefined;
    if (type === "0") waiting.get(namespace)?.({ ok: true, ...(body as { sid: string; pid?: string }) });
    else if (type === "4") waiting.get(namespace)?.({ ok: false, ...(body as { message: string; data: { code: string; reconnect: boolean } }) });
    else if (type === "1") disconnected.push(namespace);
    else if (type === "2") events.push([namespace, ...(body as unknown[])]);
    if (type === "0" || type === "4") waiting.delete(namespace);
  });
  const prefix = (namespace: string) => (namespace === "/" ? "" : `${namespace},`);
  return {
    connect(namespace = "/", auth) {
      return new Promise((resolve, reject) => {
        if (!open) return reject(new Error("the connection is closed"));
        waiting.set(namespace, resolve);
        void closed.then(() => reject(new Error("the server closed the connection")));
        ws.send(`40${prefix(namespace)}${auth ? JSON.stringify(auth) : ""}`);
      });
    },
    leave(namespace = "/") {
      ws.send(`41${prefix(namespace)}`);
    },
    events,
    disconnected,
    get open() {
      return open;
    },
    closed,
    close() {
      ws.close();
    },
  };
}
