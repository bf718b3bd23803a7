// Loads a page in Debian's chromium (headless, driven by playwright-core) and copies
// the text of its #serial element to stdout as it grows, one line at a time. Ends
// (exit 0) once that text contains --until, exits 1 after --timeout seconds. The
// browser e2e test runs it in its network namespace with examples/v86/index.html.
//
//   node run-browser.mjs --url URL [--until V86-DONE] [--timeout 300]
//                        [--chromium /usr/bin/chromium] [--probe ws://...]
//
// With --probe, the page's own script opens a WebSocket to that URL instead (so the
// browser sends the page's origin, as any page could) and the result is printed as
// "probe: open" or "probe: refused"; then it exits 0.
//
// Runs as root in the tests, hence --no-sandbox.
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: a } = parseArgs({
  options: {
    url: { type: "string" },
    until: { type: "string", default: "V86-DONE" },
    timeout: { type: "string", default: "300" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    probe: { type: "string" },
  },
});
if (!a.url) {
  process.stderr.write("run-browser: --url is required\n");
  process.exit(2);
}
const deadline = Date.now() + Number(a.timeout) * 1000;
const browser = await chromium.launch({
  executablePath: a.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on("console", (m) => process.stdout.write(`console: ${m.text()}\n`));
  page.on("pageerror", (e) => process.stdout.write(`pageerror: ${e.message}\n`));
  await page.goto(a.url);
  if (a.probe) {
    const result = await page.evaluate(
      (url) =>
        new Promise((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => {
            ws.close();
            resolve("open");
          };
          ws.onerror = () => resolve("refused");
          setTimeout(() => resolve("timeout"), 20_000);
        }),
      a.probe,
    );
    process.stdout.write(`probe: ${result}\n`);
    await browser.close();
    process.exit(0);
  }
  let printed = 0;
  for (;;) {
    const text = (await page.textContent("#serial")) ?? "";
    const lines = text.split("\n");
    // the last line may still grow: print whole lines only
    for (; printed < lines.length - 1; printed++) process.stdout.write(`serial: ${lines[printed]}\n`);
    if (text.includes(a.until)) {
      code = 0;
      break;
    }
    if (Date.now() > deadline) {
      process.stdout.write(`run-browser: timed out after ${a.timeout} s\n`);
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
} finally {
  await browser.close();
}
process.exit(code);
