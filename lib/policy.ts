/**
 * Policy: decide, for each socket, whether it is admitted with its user, admitted as anonymous, or refused,
 * running the app's onAccept and onReject hooks. The expensive part, reading the session and deserializing
 * the user, happens once per client connection: the namespaces a client joins over one connection share
 * `socket.request`, and the handshake result is kept on it. The hooks run for every socket, so they can
 * decide per namespace.
 */
import type { IncomingMessage } from "node:http";
import createDebug from "debug";
import { RefusalError } from "./errors.js";
import type { Handshake, Identity } from "./handshake.js";
import type { ResolvedOptions } from "./options.js";
import { Security } from "./security.js";
import { presentedToken, type Tokens } from "./tokens.js";
import type { AnySocket } from "./types.js";

const debug = createDebug("passport-socketio-bridge:policy");

/** Refusals that mean "nobody is logged in", which `allowAnonymous` turns into anonymous admissions. */
const NOBODY = new Set(["session_missing", "unauthenticated", "user_not_found"]);

/** An admitted socket: with an identity, or anonymous (`identity` undefined). */
export interface Admission {
  identity: Identity | undefined;
  /** When the handshake behind this admission started (a revocation after it must still reach the socket). */
  since: number;
}

interface Handshaken {
  identity: Promise<Identity>;
  since: number;
}

export class Gate<TUser> {
  private readonly handshakes = new WeakMap<IncomingMessage, Handshaken>();

  private readonly security: Security;

  constructor(
    private readonly options: ResolvedOptions<TUser>,
    private readonly handshake: Handshake,
    private readonly tokens: Tokens,
  ) {
    this.security = new Security(options.security);
  }

  async admit(socket: AnySocket): Promise<Admission> {
    const { allowAnonymous, onAccept, onReject } = this.options;
    const { identity: pending, since } = this.handshakeOf(socket);
    let refusal: RefusalError;
    try {
      const identity = await pending;
      try {
        // (CSRF protects cookie sessions; a token is a credential no other site's page holds.)
        if (identity.sessionId !== undefined) this.security.checkCsrf(socket);
        await onAccept?.(socket, identity.user as TUser);
        return { identity, since };
      } catch (err) {
        refusal = RefusalError.from(err);
        debug("onAccept refused %s in %s: %s", identity.userId, socket.nsp.name, refusal.code);
      }
    } catch (err) {
      refusal = err as RefusalError;
      if (allowAnonymous && NOBODY.has(refusal.code)) return { identity: undefined, since };
    }
    if (onReject) {
      let admitAnonymous: unknown;
      try {
        admitAnonymous = await onReject(socket, refusal);
      } catch (err) {
        refusal = RefusalError.from(err);
      }
      if (admitAnonymous === true) return { identity: undefined, since };
    }
    debug("refused %s in %s: %s", socket.id, socket.nsp.name, refusal.code);
    this.security.refused(socket.request, refusal);
    throw refusal;
  }

  /** The session, or else (with `strategies`) a token the first socket of the connection presented. */
  private async authenticate(socket: AnySocket): Promise<Identity> {
    try {
      return await this.handshake.authenticate(socket.request);
    } catch (refusal) {
      const token =
        this.tokens.enabled && (refusal as RefusalError).code === "session_missing"
          ? presentedToken(socket.request, socket.handshake.auth)
          : undefined;
      if (!token) throw refusal;
      return this.tokens.authenticate(socket.request, token);
    }
  }

  /** Forgets the connection's handshake: the next namespace it joins reads the session again. */
  forget(req: IncomingMessage): void {
    this.handshakes.delete(req);
  }

  /**
   * The connection's handshake, started by its first namespace and shared by the others. Failures that a
   * retry could fix (`reconnect: true`) are not kept, so a retry on the same connection tries again.
   */
  private handshakeOf(socket: AnySocket): Handshaken {
    const req = socket.request;
    let handshaken = this.handshakes.get(req);
    if (!handshaken) {
      // Origin and failure limits are decided from the request alone, before the store is read.
      const identity = this.security.screen(req).then((decided) => {
        const authenticated = this.authenticate(socket);
        authenticated.then(decided, decided);
        return authenticated;
      });
      handshaken = { identity, since: Date.now() };
      const kept = handshaken;
      this.handshakes.set(req, kept);
      kept.identity.catch((err: RefusalError) => {
        if (err.reconnect && this.handshakes.get(req) === kept) this.forget(req);
      });
    }
    return handshaken;
  }
}
