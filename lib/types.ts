/**
 * Public types, and the module augmentation that types `socket.request` the way Passport and
 * express-session type Express's `req`. Apps type their user once, the Passport way:
 *
 *   declare global { namespace Express { interface User { id: string; name: string } } }
 *
 * and `socket.request.user` is that type everywhere, with no cast.
 */
import type { IncomingMessage } from "node:http";
import type { Session, SessionData } from "express-session";
import type { Socket } from "socket.io";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // Declared exactly as @types/passport does, so the two merge; apps add their fields here.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User {}
    interface AuthenticatedRequest {
      user: User;
    }
  }
}

// Each member is declared identically to @types/passport and @types/express-session on Express's
// Request, which extends IncomingMessage: TypeScript rejects non-identical twins (TS2320).
declare module "http" {
  interface IncomingMessage {
    user?: Express.User | undefined;
    session: Session & Partial<SessionData>;
    sessionID: string;
    isAuthenticated(): this is Express.AuthenticatedRequest;
  }
}

/** The app's express-session middleware (or any `(req, res, next)` middleware that behaves like it). */
export type SessionMiddleware = (req: any, res: any, next: (err?: any) => void) => void;

/** The parts of a Passport `Authenticator` the bridge uses. `passport` itself satisfies it. */
export interface PassportLike {
  session(...args: any[]): any;
  deserializeUser(...args: any[]): any;
  serializeUser(...args: any[]): any;
  authenticate(...args: any[]): any;
}

/** Passport's serialized user, as stored in `req.session.passport.user`. */
export type UserId = string | number;

/** Any Socket.IO socket, whatever the app's event maps. */
export type AnySocket = Socket<any, any, any, any>;

/** What the bridge keeps in `socket.data`, so sockets fetched from other nodes can be identified. */
export interface BridgeSocketData {
  /** Passport's serialized user id, as a string (the `user:<id>` room name without its prefix). */
  userId?: string;
  /** The express-session id the socket was authenticated with. */
  sessionId?: string;
}

/**
 * A request as the bridge, express-session and Passport handle it: Node's, plus what those middlewares put on
 * it by name (`req[userProperty]`, Passport's `_userProperty`). The one request type of lib/.
 */
export type BridgeRequest = IncomingMessage & { _userProperty?: string; [key: string]: unknown };
