/** Setup mistakes fail at bridge(), with a ConfigError that says what to change. */
import session from "express-session";
import { Passport } from "passport";
import { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import { bridge, ConfigError } from "../lib/index.js";

const sessionMiddleware = session({ secret: "s", resave: false, saveUninitialized: false });
const passport = new Passport();

function setupError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("invalid_config");
    return err as ConfigError;
  }
  throw new Error("bridge() accepted a broken setup");
}

describe("bridge() setup checks", () => {
  it.each([
    ["no options", undefined, /needs an options object/],
    ["no session", { passport }, /`session` option must be your express-session middleware/],
    ["the session factory instead of its middleware", { session, passport }, /not the `session` function itself/],
    ["a misspelt option", { session: sessionMiddleware, passport, alowAnonymous: true }, /Unknown option "alowAnonymous"/],
    ["a passport that is not an Authenticator", { session: sessionMiddleware, passport: {} }, /Passport Authenticator/],
    ["a zero storeTimeoutMs", { session: sessionMiddleware, passport, storeTimeoutMs: 0 }, /storeTimeoutMs/],
    ["a hook that is not a function", { session: sessionMiddleware, passport, onAccept: "yes" }, /`onAccept` must be a function/],
    ["an empty userProperty", { session: sessionMiddleware, passport, userProperty: "" }, /userProperty/],
    ["a strategy Passport does not know", { session: sessionMiddleware, passport, strategies: ["jwt"] }, /No Passport strategy is registered as "jwt"/],
    ["a short channelSecret", { session: sessionMiddleware, passport, channelSecret: "short" }, /channelSecret/],
    ["a bad trustProxy", { session: sessionMiddleware, passport, trustProxy: "yes" }, /trustProxy/],
    ["an origin that is not one", { session: sessionMiddleware, passport, origins: ["https://app.example/path"] }, /is not an origin/],
  ])("refuses %s", (_name, options, message) => {
    expect(setupError(() => bridge(new Server(), options as never)).message).toMatch(message);
  });

  it("refuses something that is not a Socket.IO server", () => {
    expect(setupError(() => bridge({} as never, { session: sessionMiddleware, passport })).message).toMatch(/Socket\.IO Server/);
  });

  it("refuses a second bridge on the same server", () => {
    const io = new Server();
    bridge(io, { session: sessionMiddleware, passport });
    expect(setupError(() => bridge(io, { session: sessionMiddleware, passport })).message).toMatch(/already called/);
  });

  it("warns when the session cookie path does not cover the Socket.IO path", async () => {
    const warnings: Array<Error & { code?: string }> = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const scoped = session({ secret: "s", resave: false, saveUninitialized: false, cookie: { path: "/app" } });
      bridge(new Server(), { session: scoped, passport });
      // A path that covers it is fine, including a custom Socket.IO path.
      bridge(new Server({ path: "/app/socket.io" }), { session: scoped, passport });
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.map((w) => [w.code, w.message])).toEqual([
      ["PSB_SESSION_SKIPPED", expect.stringContaining('skipped a request to the Socket.IO path "/socket.io/"')],
    ]);
  });

  it("refuses a session middleware without a secret", () => {
    const secretless = session({ resave: false, saveUninitialized: false } as never);
    expect(setupError(() => bridge(new Server(), { session: secretless, passport })).message).toMatch(/secret/);
  });
});
