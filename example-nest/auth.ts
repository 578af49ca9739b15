/**
 * Session login the NestJS way: @nestjs/passport's local strategy and session serializer, and a guard that
 * logs the user in (so the session cookie carries them to the socket).
 *
 * The chat page's forms (a browser asking for HTML) get redirects, as from the Express example app: to `/` after
 * logging in or out, to `/?error=login` after a wrong password. API clients (fetch, curl) get JSON: 201 with the
 * user, 401, and 204 after logout.
 */
import {
  Catch,
  Controller,
  Get,
  Injectable,
  Post,
  Req,
  Res,
  UnauthorizedException,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type ExceptionFilter,
  type ExecutionContext,
} from "@nestjs/common";
import { AuthGuard, PassportSerializer, PassportStrategy } from "@nestjs/passport";
import type { Request, Response } from "express";
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

/** A browser's form post (it prefers HTML), rather than fetch or curl (which accept anything, or JSON). */
const fromPage = (req: Request) => req.accepts(["json", "html"]) === "html";

/** A wrong username or password: the page shows its error, an API client gets Nest's 401. */
@Catch(UnauthorizedException)
class LoginFailedFilter implements ExceptionFilter {
  catch(exception: UnauthorizedException, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    if (fromPage(http.getRequest<Request>())) res.redirect(303, "/?error=login");
    else res.status(exception.getStatus()).json(exception.getResponse());
  }
}

@Controller()
export class AuthController {
  @Post("login")
  @UseGuards(LocalAuthGuard)
  @UseFilters(LoginFailedFilter)
  login(@Req() req: Request, @Res() res: Response): void {
    if (fromPage(req)) res.redirect(303, "/");
    else res.status(201).json(req.user);
  }

  @Post("logout")
  logout(@Req() req: Request, @Res() res: Response): void {
    // Passport saves, then regenerates the session: the bridge ends its sockets on every node.
    req.logout((err) => {
      if (err) res.status(500).json({ message: "Logging out failed; try again." });
      else if (fromPage(req)) res.redirect(303, "/");
      else res.status(204).end();
    });
  }

  /** The page asks who is logged in (null: show the login form). */
  @Get("api/me")
  apiMe(@Req() req: Request) {
    return { user: req.user ?? null };
  }

  @Get("me")
  me(@Req() req: Request) {
    return { user: req.user ?? null };
  }
}
