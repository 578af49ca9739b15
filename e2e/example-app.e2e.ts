/**
 * The example app in a real browser (Debian's Chromium through playwright-core): the login form, cookies,
 * tabs, logout in one tab seen in another, a cross-origin page, long-polling and expiry; whispers, a long
 * conversation, a refusal after a restart and a session-store outage, as a person sees them. Each scenario runs
 * in fresh browser contexts against an app started here on a free port.
 *
 * The page runs on the library's client half (`withAuth` from passport-socketio-bridge/client, served by the app
 * as the installed dist/client.js): scenario 1 checks that the page's socket is driven by that very module; the
 * outage scenario, that its refusals are retried by the helper's backoff; the ending and the refusal after a
 * restart, that nothing reconnects afterwards.
 *
 * Screenshots go to e2e/.screenshots/, each taken once the test has checked what the page shows at that moment.
 * UPDATE_DOCS_SCREENSHOT=1 also writes the README's picture (docs/example-app.png) from scenario 6, and the
 * pictures of docs/example-app.md (docs/images/*.png: the page's <main> only, to keep them small).
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: the example app is plain JavaScript.
import { createApp } from "../example-app/app.js";
import { startDurableRedis, type DurableRedis } from "../spec/helpers/durable-redis.js";
import { launch } from "./browser.js";

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), ".screenshots");
const DOCS_SHOT = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "example-app.png");
const DOCS_IMAGES = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "images");
mkdirSync(SHOTS, { recursive: true });

/** A picture for docs/example-app.md: the page's <main>, in e2e/.screenshots/ (and docs/images/ when asked). */
async function docsShot(page: Page, name: string) {
  const path = join(SHOTS, `${name}.png`);
  await page.locator("main").screenshot({ path, animations: "disabled", caret: "hide" });
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    mkdirSync(DOCS_IMAGES, { recursive: true });
    copyFileSync(path, join(DOCS_IMAGES, `${name}.png`));
  }
}

/** What the person reads, with no trace of the server's insides (a stack, an error class, a file path). */
async function expectNoServerInsides(page: Page) {
  const text = await page.locator("body").innerText();
  expect(text).not.toMatch(/ at |Error\b|Stream isn't writeable|node_modules|\.js:\d+|\/work\/|[A-Z]:\\/);
}

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

type App = { server: HttpServer; close(): Promise<void> };
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The example app on a free port (or `port`); `stop` closes it before the end of the test. */
async function startApp(options: { sessionMaxAgeMs?: number; redisUrl?: string; port?: number } = {}) {
  const { port = 0, ...appOptions } = options;
  // Not the environment's DATABASE_URL: each scenario says which store it runs on.
  const app = (await createApp({ databaseUrl: "", ...appOptions, log: () => undefined })) as App;
  await listen(app.server, port);
  let closed: Promise<void> | undefined;
  const stop = () => (closed ??= app.close());
  cleanups.push(stop);
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, stop };
}

async function context(): Promise<BrowserContext> {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 640 } });
  cleanups.push(() => ctx.close());
  return ctx;
}

function listen(server: HttpServer, port = 0) {
  return new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
}

/** What the page said to the developer (console) and what the browser could not load. */
function watch(page: Page) {
  const seen = { warnings: [] as string[], errors: [] as string[], failed: [] as string[], modules: [] as string[] };
  page.on("console", (message) => {
    if (message.type() === "warning") seen.warnings.push(message.text());
    if (message.type() === "error") seen.errors.push(message.text());
  });
  page.on("response", (res) => {
    if (res.status() >= 400) seen.failed.push(`${res.status()} ${res.url()}`);
    if (res.url().includes("/vendor/")) seen.modules.push(`${res.status()} ${res.url()}`);
  });
  return seen;
}

async function send(page: Page, text: string) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

/** Resolves once the element's text contains `text`. */
async function sees(page: Page, selector: string, text: string, timeout = 5000) {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout });
}

async function logIn(page: Page, url: string, username: string, password: string, path = "/") {
  await page.goto(url + path);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForURL(`${url}/`), page.getByRole("button", { name: "Log in" }).click()]);
}

/** Alice signed in with two tabs of one browser context, and Bob in a context of his own, all connected. */
async function aliceInTwoTabsAndBob(url: string) {
  const alice = await context();
  const tab1 = await alice.newPage();
  await logIn(tab1, url, "alice", "wonderland");
  const tab2 = await alice.newPage();
  await tab2.goto(url);
  await sees(tab2, "#status", "connected as Alice");
  const bob = await (await context()).newPage();
  await logIn(bob, url, "bob", "builder");
  await sees(bob, "#status", "connected as Bob");
  return { tab1, tab2, bob };
}

/** When the page started each Engine.IO connection (its first request, with no sid yet): one per handshake. */
/** The app on a Redis that can be stopped and started again, and Alice logged in and connected. */
async function aliceOnARedisOfHerOwn() {
  const redis: DurableRedis = await startDurableRedis();
  cleanups.push(() => redis.close());
  const { url } = await startApp({ redisUrl: redis.url });
  const page = await (await context()).newPage();
  const seen = watch(page);
  await logIn(page, url, "alice", "wonderland");
  await sees(page, "#status", "connected as Alice");
  return { redis, url, page, seen };
}

function handshakes(page: Page): number[] {
  const at: number[] = [];
  page.on("request", (req) => {
    const url = new URL(req.url());
    if (url.pathname === "/socket.io/" && url.searchParams.has("EIO") && !url.searchParams.has("sid")) at.push(Date.now());
  });
  return at;
}

type AuthEntry = { at: number; state?: string; refused?: string; reconnect?: boolean };
/** Records what the page's SocketAuth (window.exampleAuth) reports from now on: states and refusals, with times. */
async function recordAuth(page: Page): Promise<() => Promise<AuthEntry[]>> {
  await page.evaluate(() => {
    type Auth = { on(event: string, listener: (value: never) => void): void };
    const w = window as unknown as { exampleAuth: Auth; authLog: AuthEntry[] };
    w.authLog = [];
    w.exampleAuth.on("state", (state: string) => w.authLog.push({ at: Date.now(), state }));
    w.exampleAuth.on("refused", ({ code, reconnect }: { code: string; reconnect: boolean }) =>
      w.authLog.push({ at: Date.now(), refused: code, reconnect }),
    );
  });
  return () => page.evaluate(() => (window as unknown as { authLog: AuthEntry[] }).authLog);
}

const authState = (page: Page) => page.evaluate(() => (window as unknown as { exampleAuth: { state: string } }).exampleAuth.state);

const socketConnected = (page: Page) => page.evaluate(() => (window as unknown as { exampleSocket?: { connected: boolean } }).exampleSocket?.connected ?? false);

describe("the example app in Chromium", () => {
  it("1. the login form signs alice in, and the page shows who the socket belongs to", async () => {
    const url = (await startApp()).url;
    const page = await (await context()).newPage();
    const seen = watch(page);
    await page.goto(url);
    // The form is found by its labels, and its first field gets the focus.
    await page.waitForFunction(() => document.activeElement?.id === "username", undefined, { timeout: 5000 });
    expect(await page.getByRole("heading", { name: "Log in" }).isVisible()).toBe(true);
    expect(await page.getByRole("button", { name: "Log in" }).isVisible()).toBe(true);
    expect(await page.locator(".hint").first().innerText()).toBe("Try alice / wonderland or bob / builder.");
    expect(await page.locator("#chat").isHidden()).toBe(true);
    expect(await page.locator("#login-error").isHidden()).toBe(true);
    await docsShot(page, "login");
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
    await sees(page, "#online", "Alice");
    // The page has an icon: nothing failed to load, nothing went to the console as an error.
    const icon = await page.evaluate(async () => {
      const link = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
      return link ? { href: link.href, status: (await fetch(link.href)).status } : null;
    });
    expect(icon).toEqual({ href: `${url}/favicon.svg`, status: 200 });
    // The page's socket is driven by the library's client half, imported from the URL the app serves it at: the
    // same module instance (a string, so that the test runner leaves the browser's import() alone).
    // (Fetched by the login page too: the later loads may be revalidations, 304.)
    expect(seen.modules[0]).toBe(`200 ${url}/vendor/passport-socketio-bridge/client.js`);
    for (const load of seen.modules) expect(load).toMatch(/^(200|304) .*\/vendor\/passport-socketio-bridge\/client\.js$/);
    const helper = await page.evaluate(`import("/vendor/passport-socketio-bridge/client.js").then(({ SocketAuth }) => ({
      ours: window.exampleAuth instanceof SocketAuth,
      socket: window.exampleAuth.socket === window.exampleSocket,
      state: window.exampleAuth.state,
    }))`);
    expect(helper).toEqual({ ours: true, socket: true, state: "connected" });
    expect(seen.failed).toEqual([]);
    expect(seen.errors).toEqual([]);
    await page.screenshot({ path: join(SHOTS, "1-connected-as-alice.png") });
  });

  it("2. a second tab connects too; bob's chat message reaches both of alice's tabs with the name the server set", async () => {
    const { tab1, tab2, bob } = await aliceInTwoTabsAndBob((await startApp()).url);
    await sees(tab1, "#online", "Bob");

    await bob.getByLabel("Message", { exact: true }).fill("hello Alice");
    await bob.getByRole("button", { name: "Send" }).click();
    for (const tab of [tab1, tab2]) await sees(tab, "#messages", "Bob: hello Alice");
    await tab1.getByLabel("Message", { exact: true }).fill("Hi Bob!");
    await tab1.getByRole("button", { name: "Send" }).click();
    await sees(bob, "#messages", "Alice: Hi Bob!");
    await sees(bob, "#status", "connected as Bob");
    expect(await bob.locator("#messages li").allInnerTexts()).toEqual([
      expect.stringMatching(/^\d{1,2}:\d{2}.* Bob: hello Alice$/),
      expect.stringMatching(/^\d{1,2}:\d{2}.* Alice: Hi Bob!$/),
    ]);
    expect((await bob.locator("#online li").allInnerTexts()).sort()).toEqual(["Alice", "Bob"]);
    expect(await bob.locator("#notice").isHidden()).toBe(true);
    expect(await bob.getByRole("button", { name: "Send" }).isEnabled()).toBe(true);
    expect(await bob.getByRole("button", { name: "Log out", exact: true }).isVisible()).toBe(true);
    await bob.screenshot({ path: join(SHOTS, "2-chat.png") });
    await docsShot(bob, "chat");
  });

  it("3. logout in alice's first tab ends her second tab's socket within 2 s, with a notice; bob stays", async () => {
    const { tab1, tab2, bob } = await aliceInTwoTabsAndBob((await startApp()).url);
    const tab2Handshakes = handshakes(tab2);

    const started = Date.now();
    await tab1.getByRole("button", { name: "Log out", exact: true }).click();
    await sees(tab2, "#notice", "You were logged out.", 2000);
    const endedAt = Date.now();
    // The chat form is gone; focus moves to the way back in.
    expect(await tab2.locator("#send").isHidden()).toBe(true);
    expect(await tab2.evaluate(() => document.activeElement?.id)).toBe("again");
    await tab2.waitForFunction(() => !(window as unknown as { exampleSocket: { connected: boolean } }).exampleSocket.connected, undefined, {
      timeout: Math.max(1, 2000 - (Date.now() - started)),
    });
    expect(Date.now() - started).toBeLessThan(2000);
    // What the tab shows now: the notice and its way back in, and nothing that no longer works.
    expect((await tab2.locator("#notice").innerText()).trim()).toBe("You were logged out. Log in again");
    expect(await tab2.getByRole("link", { name: "Log in again" }).isVisible()).toBe(true);
    expect(await tab2.getByRole("button", { name: "Log out", exact: true }).isHidden()).toBe(true);
    expect(await tab2.locator("#send-error").isHidden()).toBe(true);
    await sees(tab2, "#status", "Disconnected.");
    await tab2.screenshot({ path: join(SHOTS, "3-logged-out-in-another-tab.png") });
    await docsShot(tab2, "logged-out-elsewhere");

    // The first tab is back at the login form; bob is still connected, and sees alice leave.
    await tab1.getByLabel("Username").waitFor();
    expect(await socketConnected(bob)).toBe(true);
    await bob.locator("#online").filter({ hasNotText: "Alice" }).waitFor();
    await bob.getByLabel("Message", { exact: true }).fill("still here");
    await bob.getByRole("button", { name: "Send" }).click();
    await sees(bob, "#messages", "Bob: still here");

    // After an ending nothing reconnects: past any retry's first delay (0.5–1.5 s), no new handshake from tab 2.
    await sleep(Math.max(0, endedAt + 1600 - Date.now()));
    expect(tab2Handshakes).toEqual([]);
    expect(await authState(tab2)).toBe("ended");
  });

  it("4. a page from another origin, with alice's cookies, is refused with origin_not_allowed", async () => {
    const url = (await startApp()).url;
    const evil = createServer((_req, res) => {
      res.setHeader("content-type", "text/html");
      res.end(`<!doctype html><title>elsewhere</title><p id="out">connecting</p>
<script src="${url}/socket.io/socket.io.min.js"></script>
<script>
  const socket = io(${JSON.stringify(url)}, { withCredentials: true, transports: ["websocket"] });
  socket.on("connect", () => (document.getElementById("out").textContent = "connected"));
  socket.on("connect_error", (err) => (document.getElementById("out").textContent = "refused: " + (err.data && err.data.code)));
</script>`);
    });
    await listen(evil);
    cleanups.push(() => new Promise((resolve) => evil.close(resolve)));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;

    const ctx = await context();
    const page = await ctx.newPage();
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
    // Same host, another port: the browser sends alice's cookie along. Only the Origin check stands between.
    expect((await ctx.cookies(url)).map((c) => c.name)).toContain("connect.sid");
    const attack = await ctx.newPage();
    await attack.goto(evilUrl);
    await sees(attack, "#out", "refused: origin_not_allowed");
  });

  it("5. a long-polling page works end to end; after the session expired, a reload shows the login form", async () => {
    const url = (await startApp({ sessionMaxAgeMs: 4000 })).url;
    const page = await (await context()).newPage();
    await logIn(page, url, "alice", "wonderland");
    await page.goto(`${url}/?transport=polling`);
    await sees(page, "#status", "connected as Alice");
    expect(await page.evaluate(() => (window as unknown as { exampleSocket: { io: { engine: { transport: { name: string } } } } }).exampleSocket.io.engine.transport.name)).toBe("polling");
    await page.getByLabel("Message", { exact: true }).fill("over long-polling");
    await page.getByRole("button", { name: "Send" }).click();
    await sees(page, "#messages", "Alice: over long-polling");

    await sees(page, "#notice", "Your session expired.", 8000);
    expect(await socketConnected(page)).toBe(false);
    await page.reload();
    await page.getByLabel("Username").waitFor();
    expect(await page.locator("#chat").isHidden()).toBe(true);
    await sleep(0);
  });

  it("6. a whisper is confirmed to its sender, one to an unknown user says so; messages show the server's time", async () => {
    const url = (await startApp()).url;
    const alice = await (await context()).newPage();
    await logIn(alice, url, "alice", "wonderland");
    const bob = await (await context()).newPage();
    await logIn(bob, url, "bob", "builder");
    await sees(alice, "#online", "Bob");

    await send(bob, "hello Alice");
    await sees(alice, "#messages", "Bob: hello Alice");
    await send(alice, "Hi Bob! Lunch at noon?");
    await send(alice, "@bob don't tell the others");
    await sees(alice, "#messages", "To Bob (privately): don't tell the others");
    await sees(bob, "#messages", "Alice (privately): don't tell the others");
    // Sent: the field is empty again.
    expect(await alice.getByLabel("Message", { exact: true }).inputValue()).toBe("");

    // Every message carries the time the server stamped on it.
    const times = await alice.locator("#messages time").evaluateAll((els) => els.map((el) => [el.getAttribute("datetime"), el.textContent]));
    expect(times).toHaveLength(3);
    for (const [datetime, text] of times) {
      expect(Math.abs(Date.parse(datetime!) - Date.now())).toBeLessThan(60_000);
      expect(text).toMatch(/^\d{1,2}:\d{2}/);
    }
    await alice.screenshot({ path: join(SHOTS, "6-whisper-confirmed.png"), fullPage: true });
    if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(join(SHOTS, "6-whisper-confirmed.png"), DOCS_SHOT);

    // A whisper to nobody: said so next to the field, which keeps the text to fix it; nothing reaches bob.
    await send(alice, "@zed are you there?");
    await sees(alice, "#send-error", "There is no user called “zed”.");
    expect(await alice.getByLabel("Message", { exact: true }).inputValue()).toBe("@zed are you there?");
    await alice.getByLabel("Message", { exact: true }).fill("@bob are you there?");
    expect(await alice.locator("#send-error").isHidden()).toBe(true);
    await alice.getByRole("button", { name: "Send" }).click();
    await sees(bob, "#messages", "Alice (privately): are you there?");
    expect(await bob.locator("#messages").textContent()).not.toContain("zed");
  });

  it("7. a long conversation scrolls inside the message list; the page does not grow", async () => {
    const url = (await startApp()).url;
    const page = await (await context()).newPage();
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
    const height = () => page.evaluate(() => document.documentElement.scrollHeight);
    const before = await height();
    for (let i = 1; i <= 40; i++) await send(page, `line ${i}`);
    await sees(page, "#messages", "Alice: line 40");
    expect(await height()).toBe(before);
    const list = await page.locator("#messages").evaluate((el) => ({ scrollHeight: el.scrollHeight, clientHeight: el.clientHeight, scrollTop: el.scrollTop }));
    expect(list.scrollHeight).toBeGreaterThan(list.clientHeight * 2);
    // It follows the conversation: the newest line is in view.
    expect(list.scrollTop + list.clientHeight).toBeGreaterThanOrEqual(list.scrollHeight - 2);
    const [box, last] = [await page.locator("#messages").boundingBox(), await page.locator("#messages li").last().boundingBox()];
    expect(last!.y + last!.height).toBeLessThanOrEqual(box!.y + box!.height);
  });

  it("8. a refusal reads as a sentence with a way back in; the code goes to the console; Send waits, the text stays", async () => {
    // Sessions in memory, and the server restarts: alice's page comes back to a server that never heard of her
    // session (session_missing, reason unknown_session, reconnect false).
    const first = await startApp();
    const port = Number(new URL(first.url).port);
    const page = await (await context()).newPage();
    const seen = watch(page);
    await logIn(page, first.url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");

    await first.stop();
    await sees(page, "#status", "Connection lost, reconnecting…");
    const field = page.getByLabel("Message", { exact: true });
    const sendButton = page.getByRole("button", { name: "Send" });
    await field.fill("words typed while the server was away");
    expect(await sendButton.isDisabled()).toBe(true);
    await field.press("Enter");

    const pageHandshakes = handshakes(page);
    const { url } = await startApp({ port });
    await sees(page, "#notice", "Your session has ended.", 10_000);
    const refusedAt = Date.now();
    const handshakesBefore = pageHandshakes.length;
    const notice = (await page.locator("#notice").innerText()).trim();
    expect(notice).toBe("Your session has ended. Log in again");
    expect(notice).not.toMatch(/session_missing|unknown_session|cookie/);
    expect(await page.getByRole("link", { name: "Log in again" }).getAttribute("href")).toBe("/");
    await sees(page, "#status", "Not connected.");
    // Nothing was sent, nothing was lost.
    expect(await sendButton.isDisabled()).toBe(true);
    expect(await field.inputValue()).toBe("words typed while the server was away");
    expect(await page.locator("#messages li").count()).toBe(0);
    // The developer's sentence is in the console.
    expect(seen.warnings.join("\n")).toMatch(/refused the connection: session_missing \(unknown_session\)\. The session cookie names a session the store does not have/);
    await page.screenshot({ path: join(SHOTS, "8-refused-after-restart.png") });
    // A refusal that retrying cannot help stops for good: no handshake after it (past a backoff's first delay).
    await sleep(Math.max(0, refusedAt + 1600 - Date.now()));
    expect(pageHandshakes.length).toBe(handshakesBefore);
    expect(await authState(page)).toBe("refused");

    await page.getByRole("link", { name: "Log in again" }).click();
    await page.getByLabel("Username").waitFor();
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
  });

  it("9. a session-store outage: a notice while reconnecting is refused, gone once the socket connects again", async () => {
    const { redis, url, page, seen } = await aliceOnARedisOfHerOwn();
    // Past the bridge's session cache (sessionCacheMs, 2 s): a new handshake has to read the store.
    await sleep(2500);
    const authLog = await recordAuth(page);
    const pageHandshakes = handshakes(page);

    await redis.kill();
    // The connection drops (a network blip); the client reconnects by itself, and its handshake finds no store.
    await page.evaluate(() => (window as unknown as { exampleSocket: { io: { engine: { close(): void } } } }).exampleSocket.io.engine.close());
    await sees(page, "#notice", "The server cannot reach its session store right now. Trying again…", 15_000);
    expect(await page.getByRole("link", { name: "Log in again" }).isHidden()).toBe(true);
    expect(await page.getByRole("button", { name: "Send" }).isDisabled()).toBe(true);
    expect(seen.warnings.join("\n")).toMatch(/refused the connection: store_unavailable\. The session store is unavailable/);
    expect(await page.getByRole("button", { name: "Log out", exact: true }).isVisible()).toBe(true);
    await page.screenshot({ path: join(SHOTS, "9-store-outage.png") });
    await docsShot(page, "store-down-live");

    await redis.restart();
    await page.locator("#notice").waitFor({ state: "hidden", timeout: 20_000 });
    await sees(page, "#status", "connected as Alice");
    expect(await socketConnected(page)).toBe(true);
    await send(page, "back again");
    await sees(page, "#messages", "Alice: back again");

    // The page's SocketAuth did it: it reported each refusal (store_unavailable, reconnect: true) and connected
    // again after its backoff (1 s, doubling, each wait a random 50–100% of it). One handshake for the reconnect
    // after the blip, then exactly one more per refusal, none sooner than the backoff allows.
    const log = await authLog();
    const refusals = log.filter((entry) => entry.refused);
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    for (const refusal of refusals) expect(refusal).toMatchObject({ refused: "store_unavailable", reconnect: true });
    expect(log.filter((entry) => entry.state).map((entry) => entry.state)).toEqual(["connecting", "connected"]);
    expect(pageHandshakes).toHaveLength(refusals.length + 1);
    const delays = refusals.map((refusal, i) => pageHandshakes[i + 1]! - refusal.at);
    delays.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(0.45 * 1000 * 2 ** i);
      expect(delay).toBeLessThan(1000 * 2 ** i + 800);
    });
  });

  it("10. a reload while the session store is down: the page at once, a sentence and no stack trace; a login gets a friendly page", async () => {
    const { redis, url, page, seen } = await aliceOnARedisOfHerOwn();

    await redis.kill();
    // The page and its files come before the session: they load, and /api/me says at once what is wrong (503).
    const started = Date.now();
    const reloaded = await page.reload();
    expect(reloaded?.status()).toBe(200);
    await sees(page, "#unavailable", "The server cannot reach its session store right now. Try again in a moment.");
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await page.locator("#unavailable").innerText()).trim()).toBe(
      "The server cannot reach its session store right now. Try again in a moment. Reload",
    );
    expect(await page.getByRole("link", { name: "Reload" }).isVisible()).toBe(true);
    expect(await page.locator("#chat").isHidden()).toBe(true);
    expect(await page.locator("#login").isHidden()).toBe(true);
    await expectNoServerInsides(page);
    expect(seen.failed).toEqual([`503 ${url}/api/me`]);
    expect(seen.warnings.join("\n")).toMatch(/GET \/api\/me failed: HTTP 503 \(store_unavailable\)/);
    await docsShot(page, "store-down");

    // Someone without a session gets the login form (no cookie, no store read), and logging in gets a page, not a trace.
    const other = await (await context()).newPage();
    await other.goto(url);
    await other.getByLabel("Username").fill("bob");
    await other.getByLabel("Password").fill("builder");
    const [answer] = await Promise.all([other.waitForResponse(`${url}/login`), other.getByRole("button", { name: "Log in" }).click()]);
    expect(answer.status()).toBe(503);
    await sees(other, "main", "The server cannot reach its session store right now. Try again in a moment.");
    expect(await other.getByRole("link", { name: "Back to the chat" }).getAttribute("href")).toBe("/");
    await expectNoServerInsides(other);

    // Redis is back (once the app's client has reconnected: it retries every 2 s by then), and the same reload
    // link brings the chat back. Asked with Alice's cookie: without one, /api/me never reads the store and
    // answers 200 at once, so it would say nothing about the store.
    await redis.restart();
    const asAlice = page.context().request;
    await expect.poll(async () => (await asAlice.get(`${url}/api/me`)).status(), { timeout: 15_000, interval: 200 }).toBe(200);
    await page.getByRole("link", { name: "Reload" }).click();
    await sees(page, "#status", "connected as Alice", 10_000);
    expect(await page.locator("#unavailable").isHidden()).toBe(true);
  });

  it("11. with the login cookie gone, the refusal reads in plain words, the old error goes, and only Log in again is offered", async () => {
    const { url } = await startApp();
    const ctx = await context();
    const page = await ctx.newPage();
    const seen = watch(page);
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
    // An error next to the field, from before.
    await send(page, "@zed hello?");
    await sees(page, "#send-error", "There is no user called “zed”.");

    // The browser forgets the cookie (cleared by the person, say), and the connection drops and comes back.
    await ctx.clearCookies();
    await page.evaluate(() => (window as unknown as { exampleSocket: { io: { engine: { close(): void } } } }).exampleSocket.io.engine.close());
    await sees(page, "#notice", "You are no longer logged in", 10_000);
    expect((await page.locator("#notice").innerText()).trim()).toBe(
      "You are no longer logged in: this browser has forgotten your login. Log in again",
    );
    expect(await page.getByRole("link", { name: "Log in again" }).isVisible()).toBe(true);
    expect(await page.getByRole("button", { name: "Log out", exact: true }).isHidden()).toBe(true);
    expect(await page.locator("#send-error").isHidden()).toBe(true);
    expect(await page.getByRole("button", { name: "Send" }).isDisabled()).toBe(true);
    await sees(page, "#status", "Not connected.");
    expect(seen.warnings.join("\n")).toMatch(/refused the connection: session_missing \(no_cookie\)\. No session cookie came/);
    await docsShot(page, "refused");

    await page.getByRole("link", { name: "Log in again" }).click();
    await page.getByLabel("Username").waitFor();
  });
});
