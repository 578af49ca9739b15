/**
 * Session login the NestJS way: @nestjs/passport's local strategy and session serializer, and a guard that
 * logs the user in (so the session cookie carries them to the socket).
 */
import { Controller, Get, HttpCode, Injectable, Post, Req, UseGuards, type ExecutionContext } from "@nestjs/common";
import { AuthGuard, PassportSerializer, PassportStrategy } from "@nestjs/passport";
import type { IncomingMessage } from "node:http";
import { Strategy } from "passport-local";
import { USERS, verify, type User } from "./users.js";

@Injectable()
export class LocalStrategy extends PassportStrategy(Strategy) {
  validate(username: string, password: string): User | false {
    return verify(username, password) ?? false;
  }
}

@Injectable()
export class SessionSerializer extends PassportSerializer {
  serializeUser(user: User, done: (err: unknown, id?: string) => void): void {
    done(null, user.id);
  }
  deserializeUser(id: string, done: (err: unknown, user?: User | false) => void): void {
    done(null, USERS.get(id) ?? false);
  }
}

/** AuthGuard('local') that also starts the login session. */
@Injectable()
export class LocalAuthGuard extends AuthGuard("local") {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const ok = (await super.canActivate(context)) as boolean;
    await super.logIn(context.switchToHttp().getRequest());
    return ok;
  }
}

/** What Passport puts on a request (typed here rather than through Express's Request). */
type Request = IncomingMessage & { user?: unknown; logout(done: (err?: unknown) => void): void };

@Controller()
export class AuthController {
  @Post("login")
  @UseGuards(LocalAuthGuard)
  login(@Req() req: Request) {
    return req.user;
  }

  @Post("logout")
  @HttpCode(204)
  logout(@Req() req: Request): Promise<void> {
    // Passport saves, then regenerates the session: the bridge ends its sockets on every node.
    return new Promise((resolve, reject) => req.logout((err) => (err ? reject(err) : resolve())));
  }

  @Get("me")
  me(@Req() req: Request) {
    return { user: req.user ?? null };
  }
}
