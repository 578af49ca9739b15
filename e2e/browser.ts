/**
 * Debian's Chromium, driven by playwright-core (which never downloads a browser). CHROMIUM_PATH overrides
 * where it is; a browser that cannot start fails the suite.
 */
import { execFileSync } from "node:child_process";
import { chromium, type Browser } from "playwright-core";

export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
    } catch {
      // try the next name
    }
  }
  throw new Error(
    "No Chromium found for the end-to-end tests. Install Debian's package (`sudo apt-get install chromium`) " +
      "or set CHROMIUM_PATH to a Chromium or Chrome binary.",
  );
}

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // The flags Debian's Chromium needs in a container without a network beyond loopback.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}
