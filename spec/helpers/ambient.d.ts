// passport-http-bearer ships no types, and @types/passport-http-bearer drags in Koa's, which do not check.
declare module "passport-http-bearer" {
  export class Strategy {
    name: string;
    constructor(verify: (token: string, done: (err: unknown, user?: unknown) => void) => void);
    authenticate(req: unknown, options?: unknown): void;
  }
}
