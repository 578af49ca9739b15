/**
 * Policy: decide, once per client connection, whether it is admitted with its user, admitted as
 * anonymous, or refused, running the app's onAccept and onReject hooks. The decision is shared by every
 * namespace the client joins over that connection, because they share `socket.request`, and with it the
 * user.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { RefusalError } from "./errors.js";
import type { Handshake, Identity } from "./handshake.js";
import type { ResolvedOptions } from "./options.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:policy");

/** Refusals that mean "nobody is logged in", which `allowAnonymous` turns into anonymous admissions. */
const NOBODY = new Set(["session_missing", "unauthenticated", "user_not_found"]);

/** An admitted connection: with an identity, or anonymous (`identity` undefined). */
export interface Admission {
  identity: Identity | undefined;
}

export class Gate<TUser> {
  private readonly decisions = new WeakMap<IncomingMessage, Promise<Admission>>();

  constructor(
    private readonly options: ResolvedOptions<TUser>,
    private readonly handshake: Handshake,
  ) {}

  /**
   * The connection's admission, decided at its first namespace and reused by the others. Refusals that a
   * retry could fix (`reconnect: true`) are not remembered, so a retry on the same connection tries again.
   */
  admit(socket: AnySocket): Promise<Admission> {
    const req = socket.request;
    let decision = this.decisions.get(req);
    if (!decision) {
      decision = this.decide(socket);
      this.decisions.set(req, decision);
      decision.catch((err: RefusalError) => {
        if (err.reconnect) this.forget(req);
      });
    }
    return decision;
  }

  /** Drops the remembered decision, so the next namespace joined over this connection is decided afresh. */
  forget(req: IncomingMessage): void {
    this.decisions.delete(req);
    const request = req as unknown as Record<string, unknown>;
    // express-session skips requests that already carry a session; clear what the handshake attached.
    delete request.session;
    delete request.sessionID;
    delete request[this.options.userProperty];
  }

  private async decide(socket: AnySocket): Promise<Admission> {
    const { allowAnonymous, onAccept, onReject, userProperty } = this.options;
    let refusal: RefusalError;
    try {
      const identity = await this.handshake.authenticate(socket.request);
      try {
        await onAccept?.(socket, identity.user as TUser);
        return { identity };
      } catch (err) {
        refusal = RefusalError.from(err);
        debug("onAccept refused %s: %s", identity.userId, refusal.code);
      }
    } catch (err) {
      refusal = err as RefusalError;
      if (allowAnonymous && NOBODY.has(refusal.code)) return { identity: undefined };
    }
    // The user, if any, must not stay visible on a socket that is refused or admitted as anonymous.
    delete (socket.request as IncomingMessage & Record<string, unknown>)[userProperty];
    if (onReject) {
      let admitAnonymous: unknown;
      try {
        admitAnonymous = await onReject(socket, refusal);
      } catch (err) {
        refusal = RefusalError.from(err);
      }
      if (admitAnonymous === true) return { identity: undefined };
    }
    debug("refused %s: %s", socket.id, refusal.code);
    throw refusal;
  }
}
