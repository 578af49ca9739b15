/**
 * Reading a raw `Cookie` header the way express-session's parser (`cookie`) does: `name=value` pairs split
 * on `;`, surrounding quotes dropped, values URI-decoded when they decode. Engine.IO requests are raw Node
 * requests, so nothing upstream has parsed them.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Every `[name, value]` pair of a Cookie header, in order, duplicates included. Never throws. */
export function cookiePairs(header: string | undefined): Array<[string, string]> {
  if (typeof header !== "string" || header === "") return [];
  const pairs: Array<[string, string]> = [];
  for (const part of header.split(";")) {
    const pair = pairOf(part);
    if (pair) pairs.push(pair);
  }
  return pairs;
}

/** One `name=value` part of a Cookie header, or undefined when it is not a pair. */
function pairOf(part: string): [string, string] | undefined {
  const eq = part.indexOf("=");
  if (eq === -1) return undefined;
  const name = part.slice(0, eq).trim();
  if (name === "") return undefined;
  let value = part.slice(eq + 1).trim();
  if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return [name, decode(value)];
}

/**
 * The value of the header's one cookie named `name`, read exactly as express-session's parser (`cookie`) reads it;
 * undefined when the header has anything but printable ASCII (where `trim()` and `cookie` strip differently) or
 * the name more than once (where parsers differ on which counts). For shortcuts that must see what it saw.
 */
export function soleCookie(header: string | undefined, name: string): string | undefined {
  if (!plainHeader(header)) return undefined;
  let found: string | undefined;
  for (const part of header.split(";")) {
    const pair = pairOf(part);
    if (pair?.[0] !== name) continue;
    if (found !== undefined) return undefined;
    found = pair[1];
  }
  return found;
}

/** Printable ASCII only (no tab, no control characters, nothing above 0x7E). */
const PRINTABLE = /^[\x20-\x7e]*$/;

/** Whether `header` is printable ASCII, which every parser splits alike. */
export function plainHeader(header: string | undefined): header is string {
  return typeof header === "string" && PRINTABLE.test(header);
}

/**
 * Whether one of the header's signed cookies (`s:<id>.<signature>`) claims session `id`, signature unchecked.
 * express-session has checked the one it used; this only tells a loaded session (its id is claimed) from one
 * it generated because the cookie was missing, forged or pointed at nothing.
 */
export function claimsSessionId(header: string | undefined, id: unknown): boolean {
  if (typeof header !== "string" || typeof id !== "string" || id === "") return false;
  // The usual header says so verbatim (a generated id is random, so it never does); others are parsed.
  if (spelledSigned(header, id)) return true;
  for (const [, value] of cookiePairs(header)) {
    if (value.startsWith("s:") && value.lastIndexOf(".") === 2 + id.length && value.startsWith(id, 2)) return true;
  }
  return false;
}

/** Whether `header` contains `=s%3A<id>.` or `=s:<id>.` (found without building either string). */
function spelledSigned(header: string, id: string): boolean {
  for (let at = header.indexOf(id); at !== -1; at = header.indexOf(id, at + 1)) {
    if (header.charCodeAt(at + id.length) !== 46 /* . */) continue;
    if ((at >= 5 && header.startsWith("=s%3A", at - 5)) || (at >= 3 && header.startsWith("=s:", at - 3))) return true;
  }
  return false;
}

function decode(value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The value of a cookie signed the way express-session and cookie-parser sign (`<value>.<HMAC-SHA256,
 * base64, unpadded>`), if one of `secrets` signed it; false otherwise. Constant-time comparison.
 */
export function unsign(signed: string, secrets: readonly string[]): string | false {
  const dot = signed.lastIndexOf(".");
  if (dot < 0) return false;
  const value = signed.slice(0, dot);
  const presented = Buffer.from(signed);
  for (const secret of secrets) {
    const expected = Buffer.from(`${value}.${createHmac("sha256", secret).update(value).digest("base64").replace(/=+$/, "")}`);
    if (expected.length === presented.length && timingSafeEqual(expected, presented)) return value;
  }
  return false;
}
