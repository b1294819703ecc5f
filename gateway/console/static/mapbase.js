// borderlink console: what the map page and the compose form's map share -- fetching the
// console's JSON (a 401 sends the browser to sign in again) and drawing the shipped
// boundaries as the base (no tile server: the console loads nothing from elsewhere).

const L = window.L;

export async function getJSON(url) {
  const answer = await fetch(url, {
    headers: { "X-Requested-With": "fetch" },
    credentials: "same-origin",
  });
  if (answer.status === 401) {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname));
  }
  if (!answer.ok) throw new Error(`${url}: HTTP ${answer.status}`);
  return answer.json();
}

const BASE_ORDER = ["neighbour", "country", "lake", "region", "border"];

// Both countries, from the Gulf of Mexico to the Arctic coast and Alaska to Newfoundland.
export const NORTH_AMERICA = [[24, -168], [72, -52]];

// Draws the base layers (never interactive) and returns its features.
export function drawBase(map, base) {
  for (const kind of BASE_ORDER) {
    const features = base.features.filter((f) => f.properties.kind === kind);
    L.geoJSON(features, { interactive: false, style: { className: `base-${kind}` } }).addTo(map);
  }
  return base.features;
}
