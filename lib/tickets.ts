/**
 * Channel tickets: an HMAC-SHA256 with `channelSecret` over every field, framed and versioned, as hex, so that a
 * ticket admits one socket id to one channel (with its data) and nothing else; `<expiresAtMs>.<hex>` for a
 * ticket with an expiry.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { ConfigError } from "./errors.js";
import type { ChannelRefusalCode } from "./protocol.js";

/** Signed into every ticket: tickets of another format (v1 signed `socketId:channel[:data]` unframed) never verify. */
const TICKET_VERSION = "psb-ticket-v2";
/** `<hexmac>`, or `<expiresAtMs>.<hexmac>` for a ticket with an expiry. Bounded, so it cannot backtrack. */
const TICKET_FORMAT = /^(?:([1-9]\d{0,15})\.)?([0-9a-f]{64})$/;

/** A ticket for `socketId` to join `channel` (with `data`), valid for `expiresInMs` when given. */
export function signTicket(secret: string, socketId: string, channel: string, data?: string, expiresInMs?: number): string {
  let expiresAt: number | undefined;
  if (expiresInMs !== undefined) {
    expiresAt = typeof expiresInMs === "number" && expiresInMs > 0 ? Date.now() + Math.ceil(expiresInMs) : Number.NaN;
    if (!Number.isSafeInteger(expiresAt)) throw new ConfigError("`expiresInMs` must be a positive, finite number of milliseconds.");
  }
  const mac = macOf(secret, socketId, channel, data, expiresAt);
  return expiresAt === undefined ? mac : `${expiresAt}.${mac}`;
}

/** Why a presented ticket does not admit `socketId` to `channel` with `data`; undefined when it does. */
export function ticketRefusal(
  secret: string | undefined,
  ticket: string,
  socketId: string,
  channel: string,
  data: string | undefined,
): ChannelRefusalCode | undefined {
  const parts = TICKET_FORMAT.exec(ticket);
  if (!secret || !parts) return "ticket_invalid";
  const expiresAt = parts[1] === undefined ? undefined : Number(parts[1]);
  const expected = Buffer.from(macOf(secret, socketId, channel, data, expiresAt), "hex");
  if (!timingSafeEqual(expected, Buffer.from(parts[2]!, "hex"))) return "ticket_invalid";
  // Only a genuine ticket is told it expired.
  return expiresAt !== undefined && expiresAt <= Date.now() ? "ticket_expired" : undefined;
}

/** `<hexmac>` over the JSON array of every field: no field can run into the next, whatever it holds. */
function macOf(secret: string, socketId: string, channel: string, data: string | undefined, expiresAt: number | undefined): string {
  return createHmac("sha256", secret)
    .update(JSON.stringify([TICKET_VERSION, socketId, channel, data ?? null, expiresAt ?? null]))
    .digest("hex");
}
