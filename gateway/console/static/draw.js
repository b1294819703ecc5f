// borderlink console: the compose form's area, drawn on a map.
//
// "Draw a polygon": each click on the map is a corner; a click on the first corner (or
// "Finish", or Enter) closes the ring. "Draw a circle": a click on the centre, then one on its
// edge. The shape is written into the form's polygon ("lat,lon lat,lon ...", latitude first,
// the ring closed: the first point again at the end) or circle ("lat,lon radius_km") field,
// as CAP writes them, and the form is checked again (compose.js): the CAP rules apply to what
// was drawn, and the previews show it. What is typed into those fields is drawn too, so an
// Update starts from the shape it had. Escape abandons a drawing. Our own code on Leaflet's
// public API (no drawing plugin).

import { NORTH_AMERICA, drawBase, getJSON } from "./mapbase.js";

const L = window.L;
const element = document.getElementById("area-map");
const form = document.getElementById("compose");
const CLOSE_PX = 12; // a click this near the first corner closes the ring
const DIGITS = 4; // decimal places of a degree written (about 11 m)

const round = (value, digits = DIGITS) => Number(value.toFixed(digits));
const pairText = (latlng) => `${round(latlng.lat)},${round(latlng.lng)}`;

function parsePolygon(text) {
  const ring = [];
  for (const pair of text.trim().split(/\s+/)) {
    const [lat, lon] = pair.split(",").map(Number);
    if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
    ring.push([lat, lon]);
  }
  return ring.length >= 3 ? ring : null;
}

function parseCircle(text) {
  const [centre, radius] = text.trim().split(/\s+/);
  if (!centre || !radius) return null;
  const [lat, lon] = centre.split(",").map(Number);
  const km = Number(radius);
  return [lat, lon, km].every(Number.isFinite) && km >= 0 ? { lat, lon, km } : null;
}

function start() {
  const polygonField = form.elements.namedItem("polygon");
  const circleField = form.elements.namedItem("circle");
  const buttons = document.querySelectorAll("[data-draw]");
  const map = L.map(element, { zoomSnap: 0.25, minZoom: 2, maxZoom: 14, doubleClickZoom: false });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution(element.dataset.attribution);
  const shapes = L.featureGroup().addTo(map); // what the form holds
  const sketch = L.layerGroup().addTo(map); // the drawing under way
  let mode = "";
  let corners = [];
  let centre = null;

  function setMode(next) {
    mode = next;
    corners = [];
    centre = null;
    sketch.clearLayers();
    element.dataset.mode = mode;
    element.dataset.corners = "0";
    element.classList.toggle("drawing", mode !== "");
    for (const button of buttons) {
      const kind = button.dataset.draw;
      if (kind === "polygon" || kind === "circle") {
        button.setAttribute("aria-pressed", String(kind === mode));
      }
      if (kind === "finish") button.disabled = mode !== "polygon";
    }
  }

  function write(field, value) {
    field.value = value;
    field.dispatchEvent(new Event("input", { bubbles: true })); // compose.js checks again
  }

  function showShapes() {
    shapes.clearLayers();
    const ring = parsePolygon(polygonField.value);
    if (ring) L.polygon(ring, { interactive: false, className: "drawn-area" }).addTo(shapes);
    const circle = parseCircle(circleField.value);
    if (circle) {
      const options = { radius: circle.km * 1000, interactive: false, className: "drawn-area" };
      L.circle([circle.lat, circle.lon], options).addTo(shapes);
    }
    element.dataset.shapes = String(shapes.getLayers().length);
  }

  function showSketch(cursor) {
    sketch.clearLayers();
    const line = { interactive: false, className: "sketch" };
    if (mode === "polygon" && corners.length > 0) {
      L.polyline(cursor ? [...corners, cursor] : corners, line).addTo(sketch);
      corners.forEach((corner, i) => {
        const className = i === 0 ? "sketch first" : "sketch";
        L.circleMarker(corner, { radius: i === 0 ? 7 : 4, interactive: false, className })
          .addTo(sketch);
      });
    }
    if (mode === "circle" && centre) {
      L.circleMarker(centre, { radius: 4, ...line }).addTo(sketch);
      if (cursor) L.circle(centre, { radius: map.distance(centre, cursor), ...line }).addTo(sketch);
    }
    element.dataset.corners = String(corners.length);
  }

  function finishPolygon() {
    if (corners.length < 3) return;
    write(polygonField, [...corners, corners[0]].map(pairText).join(" "));
    setMode("");
    showShapes();
  }

  map.on("click", (event) => {
    if (mode === "polygon") {
      const first = corners.length >= 3 ? map.latLngToContainerPoint(corners[0]) : null;
      if (first && first.distanceTo(event.containerPoint) <= CLOSE_PX) {
        finishPolygon();
        return;
      }
      corners.push(event.latlng);
      showSketch();
    } else if (mode === "circle") {
      if (!centre) {
        centre = event.latlng;
        showSketch();
        return;
      }
      const km = Math.max(map.distance(centre, event.latlng) / 1000, 0.1);
      write(circleField, `${pairText(centre)} ${round(km, 1)}`);
      setMode("");
      showShapes();
    }
  });
  map.on("mousemove", (event) => {
    if (mode) showSketch(event.latlng);
  });

  for (const button of buttons) {
    button.addEventListener("click", () => {
      const kind = button.dataset.draw;
      if (kind === "polygon" || kind === "circle") setMode(mode === kind ? "" : kind);
      else if (kind === "finish") finishPolygon();
      else if (kind === "clear") {
        setMode("");
        write(polygonField, "");
        write(circleField, "");
        showShapes();
      }
    });
  }
  element.addEventListener("keydown", (event) => {
    if (event.key === "Escape") setMode("");
    if (event.key === "Enter" && mode === "polygon") {
      event.preventDefault(); // not the form's submit
      finishPolygon();
    }
  });
  polygonField.addEventListener("input", showShapes);
  circleField.addEventListener("input", showShapes);

  map.fitBounds(NORTH_AMERICA);
  setMode("");
  showShapes();
  if (shapes.getLayers().length > 0) map.fitBounds(shapes.getBounds(), { maxZoom: 10 });
  getJSON(element.dataset.base)
    .then((base) => {
      drawBase(map, base);
      shapes.bringToFront();
      element.dataset.ready = "yes";
    })
    .catch(() => {
      element.dataset.ready = "no base";
    });
}

if (element && form && L) start();
