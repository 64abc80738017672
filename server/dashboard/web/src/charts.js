// The report charts: Chart.js with only the parts drawn here registered, so the bundle stays small.
import { Chart, BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip } from "chart.js";

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = "system-ui, sans-serif";

const TIER = { A: "#c0392b", B: "#e67e22", C: "#2980b9" };
const charts = new Map();

function draw(id, config) {
  const old = charts.get(id);
  if (old) old.destroy();
  const canvas = document.getElementById(id);
  canvas.dataset.ready = "true";
  charts.set(id, new Chart(canvas, config));
}

const percent = { y: { beginAtZero: true, ticks: { callback: (v) => `${v}%` } } };
const pct = (x) => Math.round((x || 0) * 1000) / 10;

/// `perRep`: [{rep, visits, customers, effort}] (one rep's reports each); `team`: the team's reports.
export function drawCharts({ perRep, team }) {
  const reps = perRep.map((r) => r.rep);
  draw("chart-completion", {
    type: "bar",
    data: { labels: reps, datasets: [{ label: "completed", data: perRep.map((r) => pct(r.visits?.completion_rate)), backgroundColor: "#27ae60" }] },
    options: { scales: percent, plugins: { legend: { display: false } } },
  });
  draw("chart-coverage", {
    type: "bar",
    data: { labels: reps, datasets: [{ label: "A coverage", data: perRep.map((r) => pct(r.customers?.a_coverage)), backgroundColor: TIER.A }] },
    options: { scales: percent, plugins: { legend: { display: false } } },
  });
  draw("chart-focus", {
    type: "bar",
    data: {
      labels: reps,
      datasets: [
        { type: "bar", label: "focus share", data: perRep.map((r) => pct(r.effort?.focus_share)), backgroundColor: "#2d6cdf" },
        { type: "line", label: "target", data: perRep.map((r) => pct(r.effort?.focus_target)), borderColor: "#c0392b", pointRadius: 0 },
      ],
    },
    options: { scales: { y: { ...percent.y, max: 100 } } },
  });
  const funnel = team.customers?.funnel || [];
  draw("chart-funnel", {
    type: "bar",
    data: { labels: funnel.map((s) => s.stage), datasets: [{ label: "customers", data: funnel.map((s) => s.customers), backgroundColor: "#8e44ad" }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
  const rows = (team.effort?.attainment || []).filter((a) => a.rep);
  const attReps = [...new Set(rows.map((a) => a.rep))];
  draw("chart-attainment", {
    type: "bar",
    data: {
      labels: attReps,
      datasets: ["A", "B", "C"].map((t) => ({
        label: t, backgroundColor: TIER[t],
        data: attReps.map((rep) => pct(rows.find((a) => a.rep === rep && a.tier === t)?.attainment)),
      })),
    },
    options: { scales: percent },
  });
  const byTerritory = team.effort?.by_territory || {};
  const territories = Object.keys(byTerritory);
  draw("chart-return", {
    type: "bar",
    data: { labels: territories, datasets: [{ label: "won value per visit hour", data: territories.map((t) => byTerritory[t].value_per_visit_hour), backgroundColor: "#16a085" }] },
    options: { plugins: { legend: { display: false } } },
  });
}
