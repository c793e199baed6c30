// The console in headless Chromium (run by tests/console.rs, which starts the daemon):
// sign in, the journeys list, the welcome journey's counts changing as events are posted,
// a contact, a message preview, pause and resume; axe-core on every page (no serious or
// critical violation) and a screenshot of each (in $OUT). Waits are for conditions the page
// reaches (playwright's waitFor…), never for time.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const BASE = process.env.BASE;
const ADMIN = process.env.ADMIN;
const OUT = process.env.OUT;
const JOURNEY = "welcome_promo";
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(OUT, { recursive: true });

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}

async function api(method, path, body) {
  const r = await fetch(BASE + path, {
    method,
    headers: { "authorization": "Bearer " + ADMIN, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) { fail(`${method} ${path}: ${r.status} ${await r.text()}`); }
  return r.json();
}

async function signUp(id) {
  await api("PUT", `/v1/contacts/${id}`, { email: `${id}@example.com`, first_name: "Ann" });
  await api("POST", "/v1/events", {
    contact: id, type: "form_compiled", properties: { formName: "addUser" }, context: "web",
  });
}

// axe-core in the page (evaluated through the DevTools protocol: the page's CSP, which
// allows no inline script, stays on).
async function accessible(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) { fail(`${name}: axe-core found ${JSON.stringify(bad)}`); }
  console.log(`${name}: axe-core ok (${result.length} minor)`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));

  // Without a session: the sign-in page.
  await page.goto(BASE + "/");
  if (!page.url().includes("/sign-in")) { fail("not sent to the sign-in page: " + page.url()); }
  await accessible(page, "sign-in");
  await shot(page, "sign-in");
  await page.getByLabel(/Token/).fill(ADMIN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(BASE + "/");
  await page.getByRole("link", { name: JOURNEY }).waitFor();
  await accessible(page, "journeys");
  await shot(page, "journeys");

  // The journey: counts change as a scenario of events is posted.
  await page.getByRole("link", { name: JOURNEY }).click();
  await page.waitForURL(`${BASE}/journeys/${JOURNEY}`);
  const entered = async () => Number(await page.locator('[data-total="entered"]').textContent());
  const before = await entered();
  for (const id of ["b1", "b2", "b3"]) { await signUp(id); }
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-total="entered"]').textContent) === n,
    before + 3, { timeout: 30000 });
  // Each waits in the check: the step's row says so, and the graph follows.
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('#steps [data-k="waiting"]')];
    return cells.reduce((s, c) => s + Number(c.textContent), 0) >= 3;
  }, null, { timeout: 30000 });
  await page.waitForFunction(() => /waiting [1-9]/.test(document.querySelector("figure.graph-box").textContent),
    null, { timeout: 30000 });
  // The welcome emails' deliveries reach the messages' table.
  await page.waitForFunction(() => {
    const cell = document.querySelector('#messages tr[data-message="welcome"] [data-k="delivered"]');
    return cell && Number(cell.textContent) >= 3;
  }, null, { timeout: 30000 });
  await accessible(page, "journey");
  await shot(page, "journey");

  // Pause and resume.
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByRole("button", { name: "Resume" }).waitFor();
  if (!(await page.locator(".badge.paused").isVisible())) { fail("no paused badge"); }
  await shot(page, "journey-paused");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByRole("button", { name: "Pause" }).waitFor();

  // A contact, found by email.
  await page.goto(BASE + "/contacts");
  await page.getByLabel("Id or email").fill("b1@example.com");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: "b1" }).click();
  await page.getByRole("heading", { name: "Contact b1" }).waitFor();
  await page.getByRole("cell", { name: /check clicked|welcome/ }).first().waitFor();
  await accessible(page, "contact");
  await shot(page, "contact");

  // A message preview for the contact.
  await page.goto(`${BASE}/journeys/${JOURNEY}/messages/welcome`);
  await page.getByLabel("Contact id").fill("b1");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator("#preview-subject").waitFor();
  const subject = await page.locator("#preview-subject").textContent();
  if (!subject.includes("Welcome to Maison, Ann")) { fail("preview subject: " + subject); }
  const sandbox = await page.locator("iframe").getAttribute("sandbox");
  if (sandbox !== "") { fail("the preview iframe is not sandboxed: " + sandbox); }
  // The frame's document is in an opaque origin: the console's cannot reach into it.
  const reachable = await page.evaluate(() => {
    try { return document.querySelector("iframe").contentDocument !== null; } catch (e) { return false; }
  });
  if (reachable) { fail("the preview frame shares the console's origin"); }
  await accessible(page, "message");
  await shot(page, "message");

  // Segments.
  await page.goto(BASE + "/segments");
  await accessible(page, "segments");
  await shot(page, "segments");

  // The domain trend.
  await page.goto(BASE + "/trends");
  await page.getByRole("heading", { name: /Domain trend/ }).waitFor();
  await accessible(page, "trends");
  await shot(page, "trends");

  // At phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 800 });
  for (const path of ["/", `/journeys/${JOURNEY}`, "/contacts/b1"]) {
    await page.goto(BASE + path);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 380) { fail(`${path} is ${wide}px wide at phone width`); }
  }
  await page.goto(`${BASE}/journeys/${JOURNEY}`);
  await shot(page, "journey-phone");
  if (errors.length) { fail("script errors: " + errors.join("; ")); }
  console.log("browser test ok; screenshots in " + OUT);
} finally {
  await browser.close();
}
