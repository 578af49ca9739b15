/**
 * Seeded generation of hostile handshakes, and raw Engine.IO / Socket.IO clients that send them exactly as
 * generated (socket.io-client would normalize or refuse some of them). Re-run a failing case with the same
 * FUZZ_SEED.
 */
import type { IncomingHttpHeaders } from "node:http";
import signature from "cookie-signature";
import WebSocket from "ws";

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => next() < p;
  const string = (length: number, alphabet: string) => Array.from({ length }, () => alphabet[int(alphabet.length)]).join("");
  return { next, int, pick, chance, string };
}
export type Random = ReturnType<typeof prng>;

export interface FuzzCase {
  transport: "websocket" | "polling";
  headers: Record<string, string>;
  query: Record<string, string>;
  /** The CONNECT packet's payload, as raw JSON text (so `__proto__` keys travel as written). */
  auth: string | undefined;
  kind: string;
}

/** What the generator knows of the app: a real session (that must never be reachable) and its secret. */
export interface FuzzTarget {
  url: string;
  sessionId: string;
  secret: string;
  cookieName: string;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_";
const PUNCT = ";=,\"'\\ %\t:/.{}[]()<>@!$&*";
// (No control characters: Node refuses to send them, as browsers do.)
const UNICODE = ["é", "ß", "漢字", "😀", "\u202e", "\ufeff", "ﬀ", "İ", "\u00ff", "Ω", "🔑"];
/** Engine.IO's own parameters, which are not the bridge's to judge. */
const ENGINE_PARAMS = new Set(["sid", "EIO", "transport", "t", "b64", "j"]);

export function generate(r: Random, target: FuzzTarget): FuzzCase {
  const { sessionId: sid, secret, cookieName } = target;
  const signed = `s:${signature.sign(sid, secret)}`;
  const enc = encodeURIComponent;
  const headers: Record<string, string> = {};
  const query: Record<string, string> = {};
  let auth: string | undefined;

  const cookies: Record<string, () => string> = {
    malformed: () => r.string(1 + r.int(60), `${PUNCT}abc${cookieName}`),
    oversized: () => `${cookieName}=${enc(`s:${sid}.`)}${r.string(4000 + r.int(8000), B64)}`,
    // The real signed cookie may come along, but never first: express-session takes the first.
    duplicated: () => {
      const forged = [`${cookieName}=${enc(`s:${sid}.${r.string(43, B64)}`)}`, `${cookieName}=${enc(`s:${r.string(32, B64)}.x`)}`, `${cookieName}=`];
      const first = forged.splice(r.int(forged.length), 1)[0]!;
      const rest = [...forged, ...(r.chance(0.5) ? [`${cookieName}=${enc(signed)}`] : [])].sort(() => r.next() - 0.5);
      return [first, ...rest].join("; ");
    },
    unicode: () => utf8AsLatin1(`${cookieName}=${Array.from({ length: 1 + r.int(8) }, () => r.pick(UNICODE)).join("")}`),
    "random signature": () => `${cookieName}=${enc(`s:${sid}.${r.string(r.int(60), B64)}`)}`,
    "truncated signature": () => `${cookieName}=${enc(signed.slice(0, 2 + r.int(signed.length - 3)))}`,
    "other secret": () => `${cookieName}=${enc(`s:${signature.sign(sid, r.string(16, B64))}`)}`,
    "unsigned id": () => `${cookieName}=${sid}`,
    "signed, under another name": () => `${r.pick(["sid", "session", "connect_sid", "x"])}=${enc(signed)}`,
    "signed id of nothing": () => `${cookieName}=${enc(`s:${signature.sign(r.string(32, B64), secret)}`)}`,
    none: () => "",
  };
  const cookieKind = r.pick(Object.keys(cookies));
  const cookie = cookies[cookieKind]!();
  if (cookie) headers.cookie = cookie;

  const smuggle = r.pick(["none", "query", "auth", "both"]);
  if (smuggle === "query" || smuggle === "both") {
    for (const key of ["session_id", "sessionID", "sessionId", cookieName, "token"]) {
      if (r.chance(0.5) && !ENGINE_PARAMS.has(key)) query[key] = r.chance(0.5) ? sid : signed;
    }
  }
  auth = r.pick([undefined, randomAuth(r, sid, signed)]);
  if (smuggle === "auth" || smuggle === "both") auth = JSON.stringify({ sid, session_id: sid, sessionId: sid, cookie: `${cookieName}=${enc(signed)}` });

  const origin = r.pick(["none", "none", "random", "hostile", "same"]);
  if (origin === "random") headers.origin = r.pick([r.string(r.int(30), `${B64}:/.`), "null", "", utf8AsLatin1(r.pick(UNICODE))]);
  if (origin === "hostile") {
    const port = new URL(target.url).port;
    headers.origin = r.pick([
      "https://evil.example",
      `http://evil.127.0.0.1:${port}`,
      `http://127.0.0.1:${port}.evil.example`,
      `https://127.0.0.1:${port}`,
      `file://`,
      "null",
    ]);
  }
  if (origin === "same") headers.origin = target.url;
  // Forwarding headers, for the app that trusts a proxy.
  if (r.chance(0.3)) {
    headers["x-forwarded-for"] = r.pick(["203.0.113.7", "1.1.1.1, 203.0.113.7", r.string(r.int(40), `${B64}.:, `), "::1", "fe80::1"]);
    headers["x-forwarded-proto"] = r.pick(["http", "https", "foo", "", "https, http", "javascript"]);
    headers["x-forwarded-host"] = r.pick([new URL(target.url).host, "evil.example", "", r.string(r.int(30), `${B64}.:[]@`)]);
  }

  return {
    transport: r.pick(["websocket", "polling"] as const),
    headers,
    query,
    auth,
    kind: `${cookieKind} / smuggled in ${smuggle} / origin ${origin}`,
  };
}

/**
 * Random JSON objects for the CONNECT payload, prototype-pollution shapes included. (Socket.IO itself closes
 * the connection on a payload that is not an object, before any middleware: not the bridge's to answer.)
 */
function randomAuth(r: Random, sid: string, signed: string): string {
  const shapes = [
    () => '{"__proto__":{"admin":true,"user":{"id":"1"}}}',
    () => '{"constructor":{"prototype":{"isAdmin":true}}}',
    () => `{"__proto__":{"sessionID":"${sid}"},"session":{"passport":{"user":"1"}}}`,
    () => JSON.stringify({ user: { id: "1" }, passport: { user: "1" }, token: signed }),
    () => JSON.stringify({ [r.string(1 + r.int(10), B64)]: r.string(r.int(100), B64) }),
    () => JSON.stringify({ list: Array.from({ length: r.int(10) }, () => r.int(1e6)) }),
    () => JSON.stringify({ nested: nest(r, 20) }),
    () => JSON.stringify({ csrf: r.string(r.int(50), B64), pid: r.string(10, B64), offset: "0-0" }),
    () => "{}",
  ];
  return r.pick(shapes)();
}

function nest(r: Random, depth: number): unknown {
  return depth === 0 || r.chance(0.2) ? r.string(5, B64) : { [r.string(3, B64)]: nest(r, depth - 1) };
}

/** HTTP headers carry bytes; Node writes a string's code units as latin1, so UTF-8 goes through as bytes. */
function utf8AsLatin1(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

export interface Outcome {
  admitted: boolean;
  code: string | undefined;
  detail: string;
}

/** Sends one case as a raw handshake plus CONNECT to "/", and reports what came back. */
export function send(url: string, c: FuzzCase, timeoutMs = 10_000): Promise<Outcome> {
  const params = new URLSearchParams({ ...c.query, EIO: "4", transport: c.transport });
  const connect = `40${c.auth ?? ""}`;
  const attempt = (c.transport === "websocket" ? viaWebSocket(url, params, c.headers, connect) : viaPolling(url, params, c.headers, connect)).catch(
    (err: Error) => ({ admitted: false, code: undefined, detail: `client error ${err.message}` }),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ admitted: false, code: undefined, detail: "no answer" }), timeoutMs);
  });
  return Promise.race([attempt, timeout]).finally(() => clearTimeout(timer));
}

function outcomeOf(packet: string): Outcome {
  if (packet.startsWith("40")) return { admitted: true, code: undefined, detail: packet };
  if (packet.startsWith("44")) {
    const { data } = JSON.parse(packet.slice(2)) as { data?: { code?: string } };
    return { admitted: false, code: data?.code, detail: packet };
  }
  return { admitted: false, code: undefined, detail: `unexpected packet ${packet.slice(0, 80)}` };
}

function viaWebSocket(url: string, params: URLSearchParams, headers: Record<string, string>, connect: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?${params}`, { headers });
    const done = (outcome: Outcome) => {
      ws.removeAllListeners();
      ws.on("error", () => undefined);
      ws.terminate();
      resolve(outcome);
    };
    ws.on("unexpected-response", (_req, res) => done({ admitted: false, code: undefined, detail: `HTTP ${res.statusCode}` }));
    ws.on("error", (err) => done({ admitted: false, code: undefined, detail: `error ${err.message}` }));
    ws.on("message", (raw) => {
      const message = String(raw);
      if (message.startsWith("0")) ws.send(connect);
      else if (message.startsWith("4")) done(outcomeOf(message));
    });
  });
}

async function viaPolling(url: string, params: URLSearchParams, headers: Record<string, string>, connect: string): Promise<Outcome> {
  const base = `${url}/socket.io/?${params}`;
  const request = (target: string, init: { method?: string; body?: string } = {}) =>
    rawRequest(target, { ...init, headers });
  const open = await request(base);
  if (open.status !== 200) return { admitted: false, code: undefined, detail: `HTTP ${open.status}` };
  const { sid } = JSON.parse(open.body.slice(1)) as { sid: string };
  await request(`${base}&sid=${sid}`, { method: "POST", body: connect });
  const answer = await request(`${base}&sid=${sid}`);
  // One poll can carry several packets, separated by \x1e.
  const packet = answer.body.split("\x1e").find((p) => p.startsWith("4")) ?? answer.body;
  return outcomeOf(packet);
}

/** A plain HTTP request through node:http, which sends header bytes as given (fetch would refuse some). */
async function rawRequest(
  target: string,
  { method = "GET", body, headers }: { method?: string; body?: string; headers: Record<string, string> },
): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const { request } = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = request(target, { method, headers: { ...headers, ...(body ? { "content-type": "text/plain;charset=UTF-8" } : {}) }, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
