// borderlink console: live fragments. Every element with data-live="URL" is fetched again
// when the server's event stream (/events) reports a change, or every 5 s when the stream
// is down. A fragment the operator is typing in waits until they leave it.

// (body[data-live] is the stream's state, not a fragment)
const live = () => Array.from(document.querySelectorAll("[data-live]:not(body)"));
let timer = null;
let polling = null;

function busy(element) {
  const focused = document.activeElement;
  return focused && element.contains(focused) && ["INPUT", "TEXTAREA", "SELECT"].includes(focused.tagName);
}

async function refresh(element) {
  if (busy(element)) {
    element.dataset.stale = "1";
    return;
  }
  try {
    const answer = await fetch(element.dataset.live, {
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (answer.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      return;
    }
    if (answer.ok) {
      element.innerHTML = await answer.text();
      delete element.dataset.stale;
      if (element.id === "attention") ring();
      document.body.dataset.refreshed = String(Date.now());
    }
  } catch (error) {
    // the next change or poll tries again
  }
}

function refreshAll() {
  if (timer !== null) return;
  // Several journal lines usually come together (an admission and its deliveries).
  timer = setTimeout(() => {
    timer = null;
    live().forEach(refresh);
    document.dispatchEvent(new CustomEvent("borderlink:change")); // for scripts that draw (map.js)
  }, 50);
}

function poll(on) {
  if (on && polling === null) polling = setInterval(refreshAll, 5000);
  if (!on && polling !== null) {
    clearInterval(polling);
    polling = null;
  }
}

function connect() {
  if (!window.EventSource || live().length === 0) {
    poll(true);
    return;
  }
  const stream = new EventSource("/events");
  stream.addEventListener("open", () => {
    document.body.dataset.live = "stream";
    poll(false);
  });
  stream.addEventListener("change", refreshAll);
  stream.addEventListener("reload", refreshAll);
  stream.addEventListener("error", () => {
    document.body.dataset.live = "polling";
    poll(true);
  });
}

// Alarms: a banner that is new to this tab rings (when sound is on) and, with the
// browser's permission, raises a notification. Sound needs a click first (browsers refuse
// to play before one), so the header's button turns it on and remembers it.
const heard = new Set(JSON.parse(sessionStorage.getItem("heard") || "[]"));

function ring() {
  const banners = Array.from(document.querySelectorAll("[data-testid=banner]"));
  for (const banner of banners) {
    const key = banner.dataset.key;
    if (heard.has(key)) continue;
    heard.add(key);
    document.body.dataset.rang = key;
    if (localStorage.getItem("sound") === "on") {
      new Audio(`/sounds/${banner.dataset.sound}.wav`).play().catch(() => {});
    }
    if (window.Notification && Notification.permission === "granted") {
      new Notification(banner.querySelector("strong").textContent, { body: banner.textContent.trim().slice(0, 200) });
    }
  }
  sessionStorage.setItem("heard", JSON.stringify(Array.from(heard)));
}

function showSound() {
  const button = document.getElementById("sound");
  if (!button) return;
  const on = localStorage.getItem("sound") === "on";
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? button.dataset.on : button.dataset.off;
}

document.addEventListener("click", (event) => {
  if (event.target && event.target.id === "sound") {
    localStorage.setItem("sound", localStorage.getItem("sound") === "on" ? "off" : "on");
    showSound();
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.classList && form.classList.contains("ack")) {
    form.querySelector("input[name=back]").value = location.pathname + location.search;
  }
});

document.addEventListener("focusout", () => {
  setTimeout(() => live().filter((e) => e.dataset.stale).forEach(refresh), 0);
});

// Ages and countdowns are drawn by the server; a quiet board is still refreshed each minute.
setInterval(refreshAll, 60000);
showSound();
live().forEach(refresh);
connect();
