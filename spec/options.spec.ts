/** Setup mistakes fail at bridge(), with a ConfigError that says what to change. */
import session from "express-session";
import { Passport } from "passport";
import { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import { bridge } from "../lib/index.js";
import { setupError } from "./helpers/harness.js";
import { captureWarnings } from "./helpers/warnings.js";

const warnings = captureWarnings();

const sessionMiddleware = session({ secret: "s", resave: false, saveUninitialized: false });
const passport = new Passport();


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

  it.each([
    ["endedEvent", { endedEvent: "session:over" }, /`endedEvent` option was removed.*always sends `auth:ended`.*listen to `auth:ended`/],
    ["maxFailuresPerMinute", { maxFailuresPerMinute: 5 }, /`maxFailuresPerMinute` was renamed: write `failureLimit: n`/],
    ["failureLimiter", { failureLimiter: { failures: () => 0, fail: () => 0 } }, /write `failureLimit: \{ perMinute: n, limiter: yourLimiter \}`/],
  ])("refuses the removed option %s, saying what to write instead", (_name, removed, message) => {
    const error = setupError(() => bridge(new Server(), { session: sessionMiddleware, passport, ...removed } as never));
    expect(error).toMatchObject({ name: "ConfigError", code: "invalid_config" });
    expect(error.message).toMatch(message);
  });

  it.each<[string, unknown]>([
    ["zero", 0],
    ["a fraction", 1.5],
    ["an object without perMinute", { limiter: { failures: () => 0, fail: () => 0 } }],
    ["a limiter without fail()", { perMinute: 3, limiter: { failures: () => 0 } }],
    ["null", null],
  ])("refuses a failureLimit that is %s", (_name, failureLimit) => {
    expect(setupError(() => bridge(new Server(), { session: sessionMiddleware, passport, failureLimit } as never)).message).toMatch(
      /`failureLimit(\.limiter)?` must/,
    );
  });

  it("refuses an allowAnonymous that is neither a boolean nor a function", () => {
    expect(setupError(() => bridge(new Server(), { session: sessionMiddleware, passport, allowAnonymous: "yes" } as never)).message).toMatch(
      /`allowAnonymous` must be true, false, or a function/,
    );
  });

  it("takes allowAnonymous as a function without a session, as it takes true", () => {
    expect(() => bridge(new Server(), { passport, allowAnonymous: () => true })).not.toThrow();
  });

  it("refuses something that is not a Socket.IO server", () => {
    expect(setupError(() => bridge({} as never, { session: sessionMiddleware, passport })).message).toMatch(/Socket\.IO Server/);
  });

  it("refuses a second bridge on the same server", () => {
    const io = new Server();
    bridge(io, { session: sessionMiddleware, passport });
    expect(setupError(() => bridge(io, { session: sessionMiddleware, passport })).message).toMatch(/already called/);
  });

  it("warns when the session store is disconnected at startup", async () => {
    const store = new session.MemoryStore();
    const disconnected = session({ secret: "s", resave: false, saveUninitialized: false, store });
    store.emit("disconnect");
    bridge(new Server(), { session: disconnected, passport });
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([
      ["PSB_SESSION_SKIPPED", expect.stringContaining("its store reported itself disconnected")],
    ]);
  });

  it("refuses a session middleware without a secret", () => {
    // express-session deprecates a missing secret (on purpose here). depd prints unless the process has a
    // "deprecation" listener, which then gets it instead: keep the run's output clean, and check it came.
    const deprecations: Error[] = [];
    const onDeprecation = (err: Error) => deprecations.push(err);
    process.on("deprecation", onDeprecation);
    const secretless = session({ resave: false, saveUninitialized: false } as never);
    process.off("deprecation", onDeprecation);
    expect(deprecations.map((d) => d.message)).toEqual([expect.stringMatching(/req\.secret/)]);
    expect(setupError(() => bridge(new Server(), { session: secretless, passport })).message).toMatch(/secret/);
  });
});
