/**
 * Channel names: which ones a client may ever name (length, and never a room Socket.IO or the bridge keeps for
 * itself), and the patterns `auth.channel()` declares, matched in one forward pass.
 */
import type { Server } from "socket.io";
import { ConfigError } from "./errors.js";
import { namespacesOf } from "./seams.js";
import { MAX_CHANNEL_LENGTH } from "./protocol.js";
import { isReservedRoom, sessionRoom, userRoom } from "./identity.js";
import type { AnySocket } from "./types.js";

/** Whether a client could name this channel (protocol.ts's length limit): a join or leave, a ticket request, signChannel. */
export const isChannelName = (name: unknown): name is string => typeof name === "string" && name !== "" && name.length <= MAX_CHANNEL_LENGTH;

/**
 * The shape of a Socket.IO socket id, each of which is a room its socket alone is in: socket.io's base64id
 * (15 random bytes as base64url, 20 characters), or for an Engine.IO v3 client (`allowEIO3`) the Engine.IO id,
 * prefixed with `<namespace>#` outside the main namespace.
 */
const SOCKET_ID = /^(?:\/[^#]*#)?[\w-]{20}$/;
const RESERVED_PREFIXES = [userRoom(""), sessionRoom("")];

/**
 * Whether `name` is, or could become, a room the bridge or Socket.IO keeps: a `user:` or `session:` room, a
 * name shaped like a socket id, or the id of a socket on this node (an app's own `engine.generateId`). A
 * socket in such a room would receive what is sent to one user, one session or one socket.
 */
export function isReservedChannel(io: Server, socket: AnySocket, name: string): boolean {
  if (isReservedRoom(socket, name) || SOCKET_ID.test(name)) return true;
  for (const nsp of namespacesOf(io)) if (nsp.sockets.has(name)) return true;
  return false;
}

/** Whether `name` is reserved whoever asks: what `signChannel` and ticket requests check (no socket at hand). */
export function isReservedName(name: string): boolean {
  return SOCKET_ID.test(name) || RESERVED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** A compiled channel pattern: `names` of its `{params}`, and a matcher linear in the name's length. */
export interface ChannelPattern {
  readonly names: readonly string[];
  /** The params of `name`, or undefined if it does not match. `meter.steps` counts the name's positions visited. */
  match(name: string, meter?: { steps: number }): Record<string, string> | undefined;
}

/**
 * Compiles `"dm:{a}-{b}"`: literals, and `{params}` that are non-empty, hold no `:`, `{` or `}`, and never
 * hold the literal that follows them. So each param ends where its literal first appears, and matching is one
 * forward pass with no backtracking (a regex of `([^:]+)-([^:]+)` was quadratic on a long non-matching name).
 * Two params with nothing between them could split a name many ways: a ConfigError, as is a repeated name,
 * and a pattern that could only match reserved names (`user:{id}`, or a socket id's shape).
 */
export function compileChannelPattern(pattern: string): ChannelPattern {
  // Even indexes are literals (maybe empty), odd ones `{param}`s.
  const parts = pattern.split(/(\{\w+\})/);
  const head = parts[0]!;
  if (RESERVED_PREFIXES.some((prefix) => head.startsWith(prefix)) || (parts.length === 1 && SOCKET_ID.test(pattern))) {
    throw new ConfigError(
      `Channel pattern "${pattern}" could only name rooms the bridge or Socket.IO keeps (user:, session:, or a socket id), ` +
        'which clients may never join. Give it a prefix of its own, as in "orders:{orderId}".',
    );
  }
  const params: Array<{ name: string; next: string }> = [];
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i]!.slice(1, -1);
    if (i > 1 && parts[i - 1] === "") {
      throw new ConfigError(`Channel pattern "${pattern}" puts two parameters side by side; separate them with a literal, as in "{a}-{b}".`);
    }
    if (params.some((param) => param.name === name)) throw new ConfigError(`Channel pattern "${pattern}" names {${name}} twice.`);
    params.push({ name, next: parts[i + 1]! });
  }
  const names = params.map((param) => param.name);
  return {
    names,
    match(channel, meter = { steps: 0 }) {
      if (!channel.startsWith(head)) return undefined;
      let pos = head.length;
      const values: string[] = [];
      for (const { next } of params) {
        const start = pos;
        // Checking the literal first lets it begin with a character a param may not hold (":").
        while (pos < channel.length && !(next !== "" && channel.startsWith(next, pos))) {
          meter.steps++;
          if (PARAM_FORBIDS.has(channel.charCodeAt(pos))) return undefined;
          pos++;
        }
        if (pos === start || (next !== "" && pos === channel.length)) return undefined;
        values.push(channel.slice(start, pos));
        pos += next.length;
      }
      if (pos !== channel.length) return undefined;
      return Object.fromEntries(names.map((name, i) => [name, values[i]!]));
    },
  };
}
const PARAM_FORBIDS = new Set([":", "{", "}"].map((c) => c.charCodeAt(0)));
