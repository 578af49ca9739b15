import { launch, chromiumPath } from "./browser.js";

/** Fails the whole suite when the browser cannot start, and names the browser it will drive. */
export default async function setup() {
  const browser = await launch().catch((err: Error) => {
    throw new Error(`Chromium at ${chromiumPath()} did not start: ${err.message}`);
  });
  console.log(`e2e: driving ${browser.browserType().name()} ${browser.version()} (${chromiumPath()})`);
  await browser.close();
}
