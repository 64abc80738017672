// The manager's desk in a real browser: Debian's chromium, driven by playwright-core, against a
// real `fieldsync serve` (seeded demo team, fresh sled directory, loopback port) and a real device
// (`fieldsync-device`) syncing as a rep. Every count the page shows is checked against the HTTP
// API, asked separately.
//
// FIELDSYNC_BIN, FIELDSYNC_DEVICE_BIN: the binaries; CHROMIUM: the browser (default
// /usr/bin/chromium); FIELDSYNC_ARTIFACTS: where the screenshot goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const SERVER_BIN = process.env.FIELDSYNC_BIN ?? "../../target/debug/fieldsync";
const DEVICE_BIN = process.env.FIELDSYNC_DEVICE_BIN ?? "../../target/debug/fieldsync-device";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.FIELDSYNC_ARTIFACTS ?? "../../target/browser";
const WORLD = "-180,-90,180,90";

// A server on a port of its own; resolves with its base URL once it listens.
function startServer(dataDir) {
  const child = spawn(SERVER_BIN, ["serve", "--data", dataDir, "--addr", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const base = new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`fieldsync serve exited (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`fieldsync serve did not start: ${stderr}`)), 60_000).unref();
  });
  return { child, base };
}

function token(dataDir, user, role) {
  return execFileSync(SERVER_BIN, ["token", "--data", dataDir, "--team", "demo", "--user", user, "--role", role]).toString().trim();
}

async function apiGet(base, tok, path) {
  const res = await fetch(base + path, { headers: { Authorization: `Bearer ${tok}` } });
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
  return res.json();
}

function device(base, store, tok, ...args) {
  const out = execFileSync(DEVICE_BIN, ["--store", store, "--server", base, "--token", tok, "--compact", ...args], { stdio: ["ignore", "pipe", "ignore"] });
  return JSON.parse(out.toString());
}

const pinCount = (page) => page.locator("#map path.pin").count();

// One click on the map's zoom control, then the map's answer for the new zoom.
async function zoomBy(page, step, expected) {
  await page.click(step > 0 ? ".leaflet-control-zoom-in" : ".leaflet-control-zoom-out");
  await page.waitForFunction((z) => {
    const c = document.querySelector("#pin-count").dataset;
    return c.state === "ready" && c.zoom === String(z);
  }, expected);
}

async function mapReady(page) {
  await page.waitForSelector("#pin-count[data-state=ready]");
  return Number(await page.getAttribute("#pin-count", "data-total"));
}

test("a manager signs in, reads the map, changes a filter, reviews a check-in and sees a rep's sync arrive live", async () => {
  const work = mkdtempSync(join(tmpdir(), "fieldsync-browser-"));
  const data = join(work, "data");
  const { child, base: started } = startServer(data);
  let browser;
  try {
    const base = await started;
    const maria = token(data, "maria", "manager");

    // 1. A fresh browser profile opens the dashboard: it offers the one-click demo sign-in.
    browser = await chromium.launchPersistentContext(join(work, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      viewport: { width: 1400, height: 1800 },
      // A manager of the Lyon team reads the desk in Paris time.
      timezoneId: "Europe/Paris",
      locale: "en-GB",
    });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const outside = [];
    page.on("request", (r) => { if (!r.url().startsWith(base)) outside.push(r.url()); });
    await page.goto(base + "/");
    await page.waitForSelector("#demo-sign-in:not([hidden])");

    // 2. Signing in shows the desk as maria, the manager.
    await page.click("#demo-sign-in");
    await page.waitForSelector("#desk:not([hidden])");
    assert.match(await page.textContent("#who"), /maria \(manager\) · team demo/);

    // 3. The whole region in view: every customer of the team is on the map, as the API counts
    // them, grouped — the pins and the groups' counts add up to the team.
    const all = await apiGet(base, maria, `/v1/map/customers?bbox=${WORLD}&max_points=5000`);
    assert.ok(all.total > 100, `the demo team has customers: ${all.total}`);
    assert.equal(await mapReady(page), all.total, "the page's count is the API's");
    const grouped = await page.$$eval("#map .cluster-icon", (els) => els.map((e) => Number(e.textContent)));
    assert.ok(grouped.length > 0, "zoomed out, customers are grouped");
    assert.equal((await pinCount(page)) + grouped.reduce((a, b) => a + b, 0), all.total, "pins and groups add up");

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-team.png"), fullPage: true });

    // 4. Zoomed in on the centre, the groups open into pins.
    const zoom = Number(await page.getAttribute("#pin-count", "data-zoom"));
    await zoomBy(page, +1, zoom + 1);
    await zoomBy(page, +1, zoom + 2);
    assert.equal(await page.getAttribute("#pin-count", "data-clusters"), "0", "no group left");
    const inView = Number(await page.getAttribute("#pin-count", "data-total"));
    assert.ok(inView > 0 && inView < all.total, `a part of the region: ${inView}`);
    assert.equal(await pinCount(page), inView, "one pin per customer in view");
    await zoomBy(page, -1, zoom + 1);
    await zoomBy(page, -1, zoom);

    // 5. Only tier A: the pins drop to the A customers, as the API counts them.
    const onlyA = await apiGet(base, maria, `/v1/map/customers?bbox=${WORLD}&max_points=5000&tier=A`);
    assert.ok(onlyA.total > 0 && onlyA.total < all.total, `some but not all are A: ${onlyA.total}`);
    await page.uncheck("input[name=tier][value=B]");
    await page.uncheck("input[name=tier][value=C]");
    await page.waitForFunction((n) => document.querySelectorAll("#map path.pin").length === n && document.querySelector("#pin-count").dataset.state === "ready", onlyA.total);
    assert.equal(await pinCount(page), onlyA.total);
    assert.equal(await page.locator("#map path.pin.tier-B, #map path.pin.tier-C").count(), 0, "no B or C pin is left");
    // And one rep's A customers only.
    const brunoA = await apiGet(base, maria, `/v1/map/customers?bbox=${WORLD}&max_points=5000&tier=A&rep=bruno`);
    await page.selectOption("#filter-rep", "bruno");
    await page.waitForFunction((n) => document.querySelectorAll("#map path.pin").length === n && document.querySelector("#pin-count").dataset.state === "ready", brunoA.total);
    assert.ok(brunoA.total < onlyA.total);

    // 6. The review queue lists what the API lists; approving one takes it off, here and there.
    const before = await apiGet(base, maria, "/v1/reviews/checkins?limit=500");
    assert.ok(before.total > 0, "the demo team has flagged check-ins");
    await page.waitForSelector("#reviews[data-state=ready]");
    assert.equal(Number(await page.getAttribute("#reviews", "data-total")), before.total);
    const first = page.locator("#reviews li.review").first();
    const checkinId = await first.getAttribute("data-checkin-id");
    const visitId = await first.getAttribute("data-visit-id");
    await first.locator("input").fill("Parked across the street: fine.");
    await first.locator("button.approve").click();
    await page.waitForSelector(`#reviews li[data-checkin-id="${checkinId}"]`, { state: "detached" });
    const after = await apiGet(base, maria, "/v1/reviews/checkins?limit=500");
    assert.equal(after.total, before.total - 1);
    assert.ok(!after.items.some((c) => c.checkin_id === checkinId), "the approved check-in left the queue");
    const visit = await apiGet(base, maria, `/v1/docs/${visitId}`);
    assert.equal(visit.doc.verification[checkinId].review.decision, "approved");
    assert.equal(visit.doc.verification[checkinId].review.by, "maria");

    // 7. The week calendar and today's table show the plan, as the calendar report has it.
    await page.selectOption("#calendar-rep", "bruno");
    await page.waitForSelector("#calendar[data-state=ready]");
    await page.waitForFunction(() => document.querySelectorAll("#calendar .visit").length > 0);
    assert.ok((await page.locator("#today tbody tr").count()) >= 5, "a row per rep today");

    // 8. A rep syncs a new visit from their phone: it appears in the live list without a reload.
    await page.waitForSelector("#live-status[data-state=open]");
    const bruno = token(data, "bruno", "rep");
    const store = join(work, "bruno-phone");
    device(base, store, bruno, "sync");
    const planned = device(base, store, bruno, "plan", "--customer", "cust-0001", "--start", "now", "--minutes", "30");
    const newVisit = planned.id ?? planned.visit?.id;
    assert.ok(newVisit, `the device printed the planned visit: ${JSON.stringify(planned)}`);
    device(base, store, bruno, "sync");
    await page.waitForSelector(`#live li[data-doc-id="${newVisit}"]`, { timeout: 15_000 });

    // 9. Nothing was fetched from outside the server, and the page raised no error.
    assert.deepEqual(outside, [], "no CDN, tiles or fonts from the internet");
    assert.deepEqual(errors, [], "no script error");

    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  } finally {
    await browser?.close();
    child.kill("SIGTERM");
    rmSync(work, { recursive: true, force: true });
  }
});
