/**
 * The example app in a real browser (Debian's Chromium through playwright-core): the login form, cookies,
 * tabs, logout in one tab seen in another, a cross-origin page, long-polling and expiry. Each scenario runs
 * in fresh browser contexts against an app started here on a free port.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: the example app is plain JavaScript.
import { createApp } from "../example-app/app.js";
import { launch } from "./browser.js";

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), ".screenshots");
mkdirSync(SHOTS, { recursive: true });

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

async function startApp(options: { sessionMaxAgeMs?: number } = {}) {
  const app = (await createApp({ ...options, log: () => undefined })) as App;
  await listen(app.server);
  cleanups.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function context(): Promise<BrowserContext> {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 640 } });
  cleanups.push(() => ctx.close());
  return ctx;
}

function listen(server: HttpServer) {
  return new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
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

const socketConnected = (page: Page) => page.evaluate(() => (window as unknown as { exampleSocket?: { connected: boolean } }).exampleSocket?.connected ?? false);

describe("the example app in Chromium", () => {
  it("1. the login form signs alice in, and the page shows who the socket belongs to", async () => {
    const url = await startApp();
    const page = await (await context()).newPage();
    await page.goto(url);
    // The form is found by its labels, and its first field gets the focus.
    await page.waitForFunction(() => document.activeElement?.id === "username", undefined, { timeout: 5000 });
    await logIn(page, url, "alice", "wonderland");
    await sees(page, "#status", "connected as Alice");
    await sees(page, "#online", "Alice");
    await page.screenshot({ path: join(SHOTS, "1-connected-as-alice.png") });
  });

  it("2. a second tab connects too; bob's chat message reaches both of alice's tabs with the name the server set", async () => {
    const { tab1, tab2, bob } = await aliceInTwoTabsAndBob(await startApp());
    await sees(tab1, "#online", "Bob");

    await bob.getByLabel("Message", { exact: true }).fill("hello Alice");
    await bob.getByRole("button", { name: "Send" }).click();
    for (const tab of [tab1, tab2]) await sees(tab, "#messages", "Bob: hello Alice");
    await tab1.getByLabel("Message", { exact: true }).fill("Hi Bob!");
    await tab1.getByRole("button", { name: "Send" }).click();
    await sees(bob, "#messages", "Alice: Hi Bob!");
    await bob.screenshot({ path: join(SHOTS, "2-chat.png") });
  });

  it("3. logout in alice's first tab ends her second tab's socket within 2 s, with a notice; bob stays", async () => {
    const { tab1, tab2, bob } = await aliceInTwoTabsAndBob(await startApp());

    const started = Date.now();
    await tab1.getByRole("button", { name: "Log out" }).click();
    await sees(tab2, "#notice", "You were logged out.", 2000);
    // The chat form is gone; focus moves to the way back in.
    expect(await tab2.locator("#send").isHidden()).toBe(true);
    expect(await tab2.evaluate(() => document.activeElement?.id)).toBe("again");
    await tab2.waitForFunction(() => !(window as unknown as { exampleSocket: { connected: boolean } }).exampleSocket.connected, undefined, {
      timeout: Math.max(1, 2000 - (Date.now() - started)),
    });
    expect(Date.now() - started).toBeLessThan(2000);
    await tab2.screenshot({ path: join(SHOTS, "3-logged-out-in-another-tab.png") });

    // The first tab is back at the login form; bob is still connected, and sees alice leave.
    await tab1.getByLabel("Username").waitFor();
    expect(await socketConnected(bob)).toBe(true);
    await bob.locator("#online").filter({ hasNotText: "Alice" }).waitFor();
    await bob.getByLabel("Message", { exact: true }).fill("still here");
    await bob.getByRole("button", { name: "Send" }).click();
    await sees(bob, "#messages", "Bob: still here");
  });

  it("4. a page from another origin, with alice's cookies, is refused with origin_not_allowed", async () => {
    const url = await startApp();
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
    const url = await startApp({ sessionMaxAgeMs: 4000 });
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
});
