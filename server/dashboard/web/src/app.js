// The manager's desk. Reads the same HTTP API as every other client, with the token the manager
// signs in with; refreshes itself from the live feed.
import "leaflet/dist/leaflet.css";
import "./app.css";
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { api, query, session, ApiError } from "./api.js";
import { TeamMap, escapeHtml } from "./mapview.js";
import { drawCharts } from "./charts.js";

const $ = (id) => document.getElementById(id);
const DAY = 86_400_000;
const STATUSES = ["none", "call_back", "send_quote", "visit_again"];
const MAX_CHART_REPS = 20;

const desk = {
  me: null,
  config: null,
  reps: [],
  names: new Map(),
  map: null,
  live: null,
  weekStart: startOfWeek(new Date()),
  refreshTimer: null,
};

function startOfWeek(d) {
  const x = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const monday = (x.getDay() + 6) % 7;
  x.setDate(x.getDate() - monday);
  return x;
}
const isoDate = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const when = (ms) => new Date(ms).toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
const isManager = () => desk.me && desk.me.role !== "rep";
const nameOf = (id) => desk.names.get(id) || id;

function setList(el, items, empty) {
  el.replaceChildren(...(items.length ? items : [li(empty, "empty")]));
  el.dataset.state = "ready";
}
function li(html, cls) {
  const e = document.createElement("li");
  if (cls) e.className = cls;
  e.innerHTML = html;
  return e;
}

// --- sign-in -------------------------------------------------------------------------------------

async function showSignIn(message) {
  $("desk").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  try {
    desk.config = desk.config || (await api("/v1/dashboard/config", { auth: false }));
    $("demo-sign-in").hidden = !desk.config.demo_sign_in;
  } catch (e) {
    $("sign-in-error").textContent = `The server does not answer: ${e.message}`;
  }
}

async function signIn(token) {
  session.token = token.trim();
  try {
    desk.me = await api("/v1/me");
  } catch (e) {
    session.token = null;
    return showSignIn(e instanceof ApiError && e.status === 401 ? "That token is not valid (or has expired)." : e.message);
  }
  await openDesk();
}

function signOut(message) {
  if (desk.live) desk.live.abort();
  desk.live = null;
  session.token = null;
  desk.me = null;
  showSignIn(message);
}

// Any 401 while working means the token expired: back to sign-in, nothing half-shown.
async function guarded(what, f) {
  try {
    return await f();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signOut("Your session has expired: sign in again.");
    else console.error(what, e);
    return undefined;
  }
}

// --- the desk ------------------------------------------------------------------------------------

async function openDesk() {
  $("sign-in").hidden = true;
  $("desk").hidden = false;
  $("who").textContent = `${desk.me.user} (${desk.me.role}) · team ${desk.me.team}`;
  $("review-panel").hidden = !isManager();
  desk.config = desk.config || (await api("/v1/dashboard/config", { auth: false }));
  if (!desk.map) {
    desk.map = new TeamMap($("map"), {
      tileUrl: desk.config.tile_url,
      onCount: showCount,
      onCustomers: (points) => points.forEach((p) => desk.names.set(p.id, p.name)),
    });
  }
  $("day-date").value = isoDate(new Date());
  const territories = (await guarded("territories", () => desk.map.loadTerritories())) || [];
  const reps = new Set(isManager() ? territories.flatMap((t) => t.properties.reps || []) : [desk.me.user]);
  desk.reps = [...reps].sort();
  fillSelect($("filter-rep"), desk.reps, isManager() ? "whole team" : null);
  fillSelect($("day-rep"), desk.reps, "nobody");
  fillSelect($("calendar-rep"), desk.reps, null);
  fillSelect($("filter-territory"), territories.map((t) => t.properties.id), "all");
  fillSelect($("filter-status"), STATUSES, "any");
  await applyFilters();
  await refreshAll();
  startLive();
}

function fillSelect(select, values, anyLabel) {
  const keep = select.value;
  const options = [];
  if (anyLabel !== null) options.push(new Option(anyLabel, ""));
  for (const v of values) options.push(new Option(v, v));
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function filters() {
  const tiers = [...document.querySelectorAll("input[name=tier]:checked")].map((i) => i.value);
  return {
    tier: tiers.length === 3 ? undefined : tiers.length ? tiers.join(",") : "none",
    status: $("filter-status").value || undefined,
    rep: $("filter-rep").value || undefined,
    territory: $("filter-territory").value || undefined,
  };
}

async function applyFilters() {
  const f = filters();
  if (f.tier === "none") {
    // No tier ticked: nothing to show, and nothing to ask the server.
    desk.map.customers.clearLayers();
    desk.map.generation++;
    return showCount({ state: "ready", pins: 0, clusters: 0, total: 0 });
  }
  await desk.map.setFilters(f);
}

function showCount(c) {
  const el = $("pin-count");
  el.dataset.state = c.state;
  if (c.state === "ready") {
    el.dataset.pins = String(c.pins);
    el.dataset.clusters = String(c.clusters);
    el.dataset.total = String(c.total);
    el.dataset.zoom = String(c.zoom ?? "");
    el.textContent = `${c.total} customers in view` + (c.clusters ? ` (${c.pins} pins, ${c.clusters} groups — zoom in)` : "");
  } else if (c.state === "error") {
    el.textContent = `map: ${c.error.message}`;
  } else {
    el.textContent = "loading…";
  }
}

async function refreshAll() {
  await Promise.all([
    guarded("attention", refreshAttention),
    guarded("reviews", refreshReviews),
    guarded("calendar", refreshCalendar),
    guarded("today", refreshToday),
    guarded("day", refreshDay),
    guarded("charts", refreshCharts),
  ]);
}

// Changes come in bursts (a rep's sync carries many): one refresh a moment after the last.
function refreshSoon() {
  clearTimeout(desk.refreshTimer);
  desk.refreshTimer = setTimeout(() => {
    guarded("map", () => applyFilters());
    refreshAll();
  }, 800);
}

// --- attention -----------------------------------------------------------------------------------

async function refreshAttention() {
  const [overdue, visits, targets, reviews] = await Promise.all([
    api("/v1/plan/overdue"),
    api("/v1/reports/visits"),
    api("/v1/plan/targets").catch(() => null),
    isManager() ? api("/v1/reviews/checkins?limit=1") : Promise.resolve(null),
  ]);
  const items = [];
  if (reviews && reviews.total > 0) {
    items.push(li(`<span class="attention-kind">Check-ins</span>${reviews.total} flagged check-in${reviews.total > 1 ? "s" : ""} await your review`, "attention-flagged"));
  }
  for (const r of visits.per_rep) {
    if (r.planned >= 3 && r.completion_rate < 0.8) {
      items.push(li(`<span class="attention-kind">Behind plan</span>${escapeHtml(r.rep)}: ${r.completed} of ${r.planned} visits done (${Math.round(r.completion_rate * 100)}%), ${r.missed} missed`, "attention-behind"));
    }
  }
  for (const r of targets?.reps || []) {
    if (r.total.forecast_attainment < 1) {
      items.push(li(`<span class="attention-kind">Quota</span>${escapeHtml(r.rep)} is forecast at ${Math.round(r.total.forecast_attainment * 100)}% of quota`, "attention-quota"));
    }
  }
  const overdueA = overdue.filter((o) => o.tier === "A");
  for (const o of overdueA.slice(0, 8)) {
    const late = o.never_visited ? "never visited" : `${Math.round(o.days_overdue)} days past cadence`;
    items.push(li(`<span class="attention-kind">A overdue</span>${escapeHtml(nameOf(o.customer_id))} <span class="meta">${escapeHtml(o.owner_rep || "unassigned")} · ${late}</span>`, "attention-overdue"));
  }
  if (overdueA.length > 8) items.push(li(`<span class="meta">and ${overdueA.length - 8} more A customers overdue</span>`));
  setList($("attention"), items, "Nothing needs you right now.");
}

// --- review queue --------------------------------------------------------------------------------

async function refreshReviews() {
  if (!isManager()) return;
  const page = await api("/v1/reviews/checkins?limit=50");
  $("review-count").textContent = page.total ? String(page.total) : "";
  $("reviews").dataset.total = String(page.total);
  const items = page.items.map((c) => {
    const e = li(
      `<div><strong>${escapeHtml(nameOf(c.customer_id))}</strong> · ${escapeHtml(c.rep)}</div>` +
        `<div class="meta">${when(c.device_time_ms)} · ${escapeHtml(c.status)}: ${escapeHtml(c.codes.join(", "))}</div>` +
        `<input type="text" maxlength="500" placeholder="comment for ${escapeHtml(c.rep)}" aria-label="comment">` +
        `<div class="actions"><button type="button" class="approve">Approve</button><button type="button" class="reject">Reject</button><span class="error"></span></div>`,
      "review",
    );
    e.dataset.visitId = c.visit_id;
    e.dataset.checkinId = c.checkin_id;
    for (const decision of ["approved", "rejected"]) {
      e.querySelector(decision === "approved" ? ".approve" : ".reject").addEventListener("click", () => review(e, c, decision));
    }
    return e;
  });
  setList($("reviews"), items, "No check-in waits for review.");
}

async function review(item, c, decision) {
  const comment = item.querySelector("input").value;
  item.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    await api("/v1/reviews/checkins", { method: "POST", body: { visit_id: c.visit_id, checkin_id: c.checkin_id, decision, comment } });
    item.remove();
    const left = Math.max(0, Number($("reviews").dataset.total || 1) - 1);
    $("reviews").dataset.total = String(left);
    $("review-count").textContent = left ? String(left) : "";
    if (!$("reviews").children.length) setList($("reviews"), [], "No check-in waits for review.");
    guarded("attention", refreshAttention);
  } catch (e) {
    item.querySelector(".error").textContent = e.message;
    item.querySelectorAll("button").forEach((b) => (b.disabled = false));
    if (e instanceof ApiError && e.status === 401) signOut("Your session has expired: sign in again.");
  }
}

// --- calendar and today --------------------------------------------------------------------------

async function refreshCalendar() {
  const rep = $("calendar-rep").value;
  if (!rep) return;
  const from = desk.weekStart.getTime();
  const to = new Date(desk.weekStart.getFullYear(), desk.weekStart.getMonth(), desk.weekStart.getDate() + 7).getTime();
  $("week-label").textContent = `${desk.weekStart.toLocaleDateString([], { day: "numeric", month: "short" })} – ${new Date(to - DAY).toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" })}`;
  const cal = await api(`/v1/reports/calendar${query({ rep, from_ms: from, to_ms: to })}`);
  const days = [];
  const today = isoDate(new Date());
  for (let i = 0; i < 7; i++) {
    const d = new Date(desk.weekStart.getFullYear(), desk.weekStart.getMonth(), desk.weekStart.getDate() + i);
    const col = document.createElement("div");
    col.className = `day${isoDate(d) === today ? " is-today" : ""}`;
    col.dataset.date = isoDate(d);
    col.innerHTML = `<h3>${d.toLocaleDateString([], { weekday: "short", day: "numeric" })}</h3>`;
    days.push(col);
  }
  for (const e of cal.entries) {
    const start = new Date(e.planned_start_ms);
    const col = days.find((c) => c.dataset.date === isoDate(start));
    if (!col) continue;
    if (e.customer_name) desk.names.set(e.customer_id, e.customer_name);
    const v = document.createElement("span");
    v.className = `visit ${e.status}${e.flagged ? " flagged" : ""}`;
    v.dataset.visitId = e.visit_id;
    v.textContent = `${time(e.planned_start_ms)} ${e.customer_name || e.customer_id}${e.tier ? ` (${e.tier})` : ""}`;
    v.title = `${e.status.replace("_", " ")}${e.flagged ? " · a check-in was flagged" : ""}`;
    col.append(v);
  }
  $("calendar").replaceChildren(...days);
  $("calendar").dataset.state = "ready";
  $("calendar").dataset.entries = String(cal.entries.length);
}

async function refreshToday() {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const cal = await api(`/v1/reports/calendar${query({ from_ms: start.getTime(), to_ms: start.getTime() + DAY })}`);
  const rows = desk.reps.map((rep) => {
    const mine = cal.entries.filter((e) => e.rep === rep);
    const count = (...s) => mine.filter((e) => s.includes(e.status)).length;
    const tr = document.createElement("tr");
    tr.dataset.rep = rep;
    tr.innerHTML = `<td>${escapeHtml(rep)}</td><td>${mine.length - count("cancelled")}</td><td>${count("done", "remote")}</td><td>${count("missed")}</td>` +
      `<td>${mine.filter((e) => e.flagged).length}</td><td><button type="button">show day</button></td>`;
    tr.querySelector("button").addEventListener("click", () => {
      $("day-rep").value = rep;
      $("day-date").value = isoDate(new Date());
      refreshDay();
    });
    return tr;
  });
  $("today").tBodies[0].replaceChildren(...rows);
}

async function refreshDay() {
  const shown = await desk.map.showDay($("day-rep").value, $("day-date").value);
  $("map").dataset.dayCheckins = String(shown.checkins);
  $("map").dataset.dayRoute = String(shown.route);
}

// --- charts --------------------------------------------------------------------------------------

async function refreshCharts() {
  const reps = desk.reps.slice(0, MAX_CHART_REPS);
  const one = (path, rep) => api(`${path}${query({ rep })}`).catch(() => null);
  // The team's visit report already splits by rep; coverage and focus are asked per rep.
  const [visits, customers, effort, ...perRep] = await Promise.all([
    one("/v1/reports/visits"),
    one("/v1/reports/customers"),
    one("/v1/reports/effort"),
    ...reps.map(async (rep) => ({
      rep,
      customers: await one("/v1/reports/customers", rep),
      effort: await one("/v1/reports/effort", rep),
    })),
  ]);
  for (const r of perRep) r.visits = visits?.per_rep?.find((v) => v.rep === r.rep);
  drawCharts({ perRep, team: { visits, customers, effort } });
}

// --- live ----------------------------------------------------------------------------------------

function startLive() {
  if (desk.live) desk.live.abort();
  const controller = new AbortController();
  desk.live = controller;
  const status = (s, text) => { $("live-status").dataset.state = s; $("live-status").textContent = `live: ${text}`; };
  status("connecting", "connecting");
  // fetch-event-source rather than EventSource: it sends the bearer token as a header (never in a
  // URL, where logs keep it) and resumes with Last-Event-ID after a drop.
  fetchEventSource("/v1/live", {
    headers: { Authorization: `Bearer ${session.token}` },
    signal: controller.signal,
    openWhenHidden: true,
    async onopen(res) {
      if (res.status === 401) throw new ApiError(401, null);
      if (!res.ok) throw new Error(`live feed: HTTP ${res.status}`);
      status("open", "on");
    },
    onmessage(ev) {
      if (ev.event !== "change") return;
      let c;
      try { c = JSON.parse(ev.data); } catch { return; }
      const item = li(`${escapeHtml(c.line)} <span class="meta">${escapeHtml(c.by)} · #${c.seq}</span>`);
      item.dataset.docId = c.doc_id;
      item.dataset.seq = String(c.seq);
      const list = $("live");
      list.querySelector(".empty")?.remove();
      list.prepend(item);
      while (list.children.length > 50) list.lastChild.remove();
      refreshSoon();
    },
    onerror(err) {
      if (err instanceof ApiError) {
        signOut("Your session has expired: sign in again.");
        throw err;
      }
      status("error", "reconnecting");
      return 3000;
    },
  }).catch(() => {});
  setList($("live"), [], "Changes your team syncs appear here.");
}

// --- wiring --------------------------------------------------------------------------------------

function wire() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token-input").value);
  });
  $("demo-sign-in").addEventListener("click", async () => {
    try {
      const r = await api("/v1/dev/sign-in", { method: "POST", auth: false });
      await signIn(r.token);
    } catch (e) {
      $("sign-in-error").textContent = e.message;
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("filters").addEventListener("change", (e) => {
    if (e.target.id === "day-rep" || e.target.id === "day-date") guarded("day", refreshDay);
    else guarded("map", applyFilters);
  });
  $("calendar-rep").addEventListener("change", () => guarded("calendar", refreshCalendar));
  for (const [id, days] of [["week-prev", -7], ["week-next", 7]]) {
    $(id).addEventListener("click", () => {
      desk.weekStart = new Date(desk.weekStart.getFullYear(), desk.weekStart.getMonth(), desk.weekStart.getDate() + days);
      guarded("calendar", refreshCalendar);
    });
  }
}

wire();
if (session.token) signIn(session.token);
else showSignIn();
