// borderlink console: the map. Leaflet (vendored; no tile server: the shipped boundaries are
// the base, drawn as vectors) shows the alerts in force: their CAP polygons and circles, and
// for an alert with only geocodes the US counties or states, or the Canadian census divisions
// or provinces, it names. Every shape has the classes "alert-shape sev-<severity>" (console.css gives each
// severity its colour and its line pattern, as in the legend); a click opens the alert.
// The alerts are fetched again whenever console.js says the ledger changed.

import { NORTH_AMERICA, drawBase, getJSON } from "./mapbase.js";

const L = window.L;
const element = document.getElementById("map");

// ----------------------------------------------------------------------------- the base

const regions = { state: new Map(), province: new Map() };
// US counties (by FIPS) and Canadian census divisions (by 4-digit SGC): each file is
// fetched the first time an alert names one of its areas.
const indexes = new Map(); // url -> Promise<Map(code -> feature)>

function indexRegions(features) {
  for (const feature of features) {
    const p = feature.properties;
    if (p.kind !== "region") continue;
    if (p.fips) regions.state.set(p.fips, feature);
    if (p.sgc) regions.province.set(p.sgc, feature);
  }
}

function boundaryIndex(url, key) {
  if (!indexes.has(url)) {
    const index = getJSON(url).then(
      (collection) => new Map(collection.features.map((f) => [f.properties[key], f])),
    );
    index.catch(() => indexes.delete(url)); // try again at the next change
    indexes.set(url, index);
  }
  return indexes.get(url);
}

// --------------------------------------------------------------------------- the alerts

function shapeStyle(p, extra = "") {
  const severity = String(p.severity || "Unknown").toLowerCase();
  return { className: `alert-shape sev-${severity} shape-${p.shape} ${extra}`.trim() };
}

function tooltip(p) {
  // Built as elements, never as HTML: the headline is the sender's text.
  const tip = document.createElement("div");
  tip.className = "map-tip";
  const title = document.createElement("strong");
  title.textContent = `${p.event} · ${p.severity}`;
  const headline = document.createElement("span");
  headline.textContent = p.headline;
  tip.append(title, headline);
  return tip;
}

function interactive(layer, p) {
  layer.bindTooltip(tooltip(p), { sticky: true });
  layer.on("click", () => window.location.assign(p.href));
  return layer;
}

async function namedAreas(p) {
  const found = [];
  if (p.fips.length > 0) {
    const index = await boundaryIndex(element.dataset.counties, "fips");
    for (const code of p.fips) if (index.has(code)) found.push([index.get(code), `fips-${code}`]);
  }
  for (const code of p.states) {
    if (regions.state.has(code)) found.push([regions.state.get(code), `state-${code}`]);
  }
  if (p.divisions.length > 0) {
    const index = await boundaryIndex(element.dataset.divisions, "sgc");
    for (const code of p.divisions) {
      if (index.has(code)) found.push([index.get(code), `sgc-${code}`]);
    }
  }
  for (const code of p.provinces) {
    if (regions.province.has(code)) found.push([regions.province.get(code), `sgc-${code}`]);
  }
  return found.map(([feature, key]) => L.geoJSON(feature, { style: shapeStyle(p, key) }));
}

async function alertLayers(collection) {
  const layers = [];
  // The server sends the most severe first; drawn last, it lies on top.
  for (const feature of collection.features.slice().reverse()) {
    const p = feature.properties;
    if (p.shape === "polygon") {
      layers.push(interactive(L.geoJSON(feature, { style: shapeStyle(p) }), p));
    } else if (p.shape === "circle") {
      const [lon, lat] = feature.geometry.coordinates;
      layers.push(interactive(L.circle([lat, lon], { radius: p.radius_m, ...shapeStyle(p) }), p));
    } else if (p.shape === "area") {
      for (const layer of await namedAreas(p)) layers.push(interactive(layer, p));
    }
  }
  return layers;
}

// ------------------------------------------------------------------------ the incidents

function incidentTip(p) {
  const tip = document.createElement("div");
  tip.className = "map-tip";
  const title = document.createElement("strong");
  title.textContent = `${p.type} · ${p.status} · ${p.priority}`;
  const notes = document.createElement("span");
  notes.textContent = [p.notes.en, p.notes.fr].filter(Boolean).join(" / ");
  const where = document.createElement("span");
  where.textContent = `${p.agency} ${p.incident_id} ${p.location}`.trim();
  tip.append(title, notes, where);
  return tip;
}

function incidentLayers(collection) {
  return collection.features.map((feature) => {
    const [lon, lat] = feature.geometry.coordinates;
    const p = feature.properties;
    const marker = L.circleMarker([lat, lon], {
      radius: 8,
      className: `incident-marker prio-${p.priority}`,
    });
    marker.bindTooltip(incidentTip(p), { sticky: true });
    return marker;
  });
}

const drawn = L.featureGroup();
let loading = null;
let again = false;

async function drawAlerts() {
  const layers = await alertLayers(await getJSON(element.dataset.alerts));
  const points = incidentLayers(await getJSON(element.dataset.incidents));
  drawn.clearLayers(); // only now, so a slow answer never leaves the map empty
  for (const layer of [...layers, ...points]) drawn.addLayer(layer);
  element.dataset.shapes = String(layers.length);
  element.dataset.incidentPoints = String(points.length);
  element.dataset.drawnAt = String(Date.now());
}

function reload() {
  if (loading !== null) {
    again = true; // one more pass when this one ends, for what changed meanwhile
    return;
  }
  loading = drawAlerts()
    .catch(() => {}) // the next change or the minute's refresh tries again
    .finally(() => {
      loading = null;
      if (again) {
        again = false;
        reload();
      }
    });
}

async function start() {
  const map = L.map(element, { zoomSnap: 0.25, minZoom: 2, maxZoom: 12, worldCopyJump: false });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution(element.dataset.attribution);
  map.fitBounds(NORTH_AMERICA);
  indexRegions(drawBase(map, await getJSON(element.dataset.base)));
  drawn.addTo(map);
  document.addEventListener("borderlink:change", reload);
  reload();
}

if (element && L && element.id === "map") start();
