// The team map: customers coloured by tier (clustered by the server when a view holds too many),
// territories as polygons, and one rep's day (planned route and check-ins). No tiles unless the
// server is configured with a tile URL: the territories give the shape of the area.
import L from "leaflet";
import { api, query } from "./api.js";

const TIER_COLOURS = { A: "#c0392b", B: "#e67e22", C: "#2980b9" };
const VERDICT_COLOURS = { verified: "#27ae60", flagged: "#f39c12", invalid: "#c0392b" };

export class TeamMap {
  constructor(element, { tileUrl, onCount, onCustomers }) {
    this.map = L.map(element, { zoomControl: true, attributionControl: !!tileUrl, minZoom: 3 });
    if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(this.map);
    this.territories = L.layerGroup().addTo(this.map);
    this.customers = L.layerGroup().addTo(this.map);
    this.day = L.layerGroup().addTo(this.map);
    this.filters = {};
    this.onCount = onCount;
    this.onCustomers = onCustomers;
    this.generation = 0;
    this.map.setView([45.764, 4.8357], 11);
    this.map.on("moveend", () => this.refresh());
  }

  async loadTerritories() {
    const fc = await api("/v1/map/territories");
    this.territories.clearLayers();
    const layer = L.geoJSON(fc, {
      style: { color: "#34495e", weight: 1.5, fillOpacity: 0.04, dashArray: "4 3" },
      onEachFeature: (f, l) => l.bindTooltip(f.properties.name || f.properties.id, { sticky: true }),
    });
    this.territories.addLayer(layer);
    const bounds = layer.getBounds();
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [10, 10] });
    return fc.features;
  }

  setFilters(filters) {
    this.filters = filters;
    return this.refresh();
  }

  bbox() {
    const b = this.map.getBounds();
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    const f = (v) => v.toFixed(6);
    return [f(clamp(b.getWest(), -180, 180)), f(clamp(b.getSouth(), -90, 90)), f(clamp(b.getEast(), -180, 180)), f(clamp(b.getNorth(), -90, 90))].join(",");
  }

  // Only the newest request's answer is drawn: a slow answer to an older view never replaces it.
  async refresh() {
    const generation = ++this.generation;
    this.onCount({ state: "loading" });
    const q = query({ bbox: this.bbox(), max_points: maxPoints(this.map.getZoom()), ...this.filters });
    let fc;
    try {
      fc = await api(`/v1/map/customers${q}`);
    } catch (e) {
      if (generation === this.generation) this.onCount({ state: "error", error: e });
      return;
    }
    if (generation !== this.generation) return;
    this.customers.clearLayers();
    let pins = 0, clusters = 0;
    const points = [];
    for (const f of fc.features) {
      const [lon, lat] = f.geometry.coordinates;
      const p = f.properties;
      if (p.cluster) {
        clusters++;
        const size = Math.round(Math.min(48, 22 + Math.sqrt(p.count) * 2));
        const icon = L.divIcon({ className: "cluster-icon", html: String(p.count), iconSize: [size, size] });
        L.marker([lat, lon], { icon, title: `${p.count} customers (A ${p.tiers.A}, B ${p.tiers.B}, C ${p.tiers.C})` })
          .on("click", () => this.map.setView([lat, lon], this.map.getZoom() + 2))
          .addTo(this.customers);
      } else {
        pins++;
        points.push(p);
        L.circleMarker([lat, lon], {
          radius: p.tier === "A" ? 7 : 5,
          color: "#fff", weight: 1, fillColor: TIER_COLOURS[p.tier] || "#7f8c8d", fillOpacity: 0.9,
          className: `pin tier-${p.tier || "none"}`,
        })
          .bindPopup(`<strong>${escapeHtml(p.name)}</strong><br>tier ${p.tier || "?"} · ${escapeHtml(p.opportunity_stage)}<br>` +
            `${escapeHtml(p.owner_rep || "unassigned")} · ${escapeHtml(p.follow_up_status)}`)
          .addTo(this.customers);
      }
    }
    this.onCustomers(points);
    this.onCount({ state: "ready", pins, clusters, total: fc.total, clustered: fc.clustered, zoom: this.map.getZoom() });
  }

  async showDay(rep, date) {
    this.day.clearLayers();
    if (!rep) return { checkins: 0, route: 0 };
    const fc = await api(`/v1/map/day${query({ rep, date, timezone: "Europe/Paris" })}`);
    let checkins = 0, route = 0;
    for (const f of fc.features) {
      if (f.geometry.type === "LineString") {
        route = f.geometry.coordinates.length;
        L.polyline(f.geometry.coordinates.map(([lon, lat]) => [lat, lon]), { color: "#2d6cdf", weight: 3, dashArray: "6 4", className: "route" })
          .addTo(this.day);
      } else if (f.properties.kind === "checkin") {
        checkins++;
        const [lon, lat] = f.geometry.coordinates;
        const status = f.properties.status || "pending";
        L.circleMarker([lat, lon], { radius: 6, color: "#000", weight: 2, fillColor: VERDICT_COLOURS[status] || "#fff", fillOpacity: 1, className: `checkin status-${status}` })
          .bindTooltip(`check-in ${new Date(f.properties.device_time_ms).toLocaleTimeString()} · ${status}${(f.properties.codes || []).length ? " · " + f.properties.codes.join(", ") : ""}`)
          .addTo(this.day);
      }
    }
    return { checkins, route };
  }
}

// Pins a view may hold before the server groups them: a city's worth when zoomed in, a few
// dozen groups when the whole region is in view.
export function maxPoints(zoom) {
  return zoom >= 12 ? 1000 : zoom >= 11 ? 250 : 100;
}

export function escapeHtml(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
