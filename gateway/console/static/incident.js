// The incident report form: a click on the map places the incident (a marker, and the
// latitude and longitude fields filled to 5 decimals, about a metre); typing the numbers
// moves the marker. The form is posted to its check URL (with its CSRF token) 400 ms after
// the last change, and what each chosen destination would get is shown below it.

import { checkForm } from "./compose.js";
import { NORTH_AMERICA, drawBase } from "./mapbase.js";

const L = window.L;
const form = document.getElementById("incident");
const target = document.getElementById("incident-check");
const element = document.getElementById("pick-map");
let timer = null;

const check = () => checkForm(form.dataset.check, form, target);

function later(delay) {
  clearTimeout(timer);
  timer = setTimeout(check, delay);
}

function field(name) {
  return form.elements.namedItem(name);
}

function pointOfFields() {
  const lat = Number.parseFloat(field("latitude").value);
  const lon = Number.parseFloat(field("longitude").value);
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return [lat, lon];
}

async function startMap() {
  const map = L.map(element, { zoomSnap: 0.25, minZoom: 2, maxZoom: 16 });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution(element.dataset.attribution);
  map.fitBounds(NORTH_AMERICA);
  let marker = null;
  const place = (latlng) => {
    if (marker === null) {
      marker = L.circleMarker(latlng, { radius: 9, className: "incident-marker picked" });
      marker.addTo(map);
    } else {
      marker.setLatLng(latlng);
    }
    element.dataset.picked = `${latlng[0]},${latlng[1]}`;
  };
  map.on("click", (event) => {
    const lat = event.latlng.lat.toFixed(5);
    const lon = L.Util.wrapNum(event.latlng.lng, [-180, 180], true).toFixed(5);
    field("latitude").value = lat;
    field("longitude").value = lon;
    place([Number(lat), Number(lon)]);
    later(50);
  });
  for (const name of ["latitude", "longitude"]) {
    field(name).addEventListener("change", () => {
      const point = pointOfFields();
      if (point !== null) place(point);
    });
  }
  const known = pointOfFields();
  if (known !== null) place(known);
  element.dataset.ready = "1";
  // The base (countries, provinces and states) drawn as vectors, as on the map page.
  const answer = await fetch(element.dataset.base, { credentials: "same-origin" });
  if (answer.ok) drawBase(map, await answer.json());
}

if (form && target) {
  form.addEventListener("input", () => later(400));
  form.addEventListener("change", () => later(50));
  later(0);
}
if (form && element && L) startMap();
