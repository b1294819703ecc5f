// The compose form checked as the operator types: the form is posted to /compose/check
// (with its CSRF token) 400 ms after the last change, and the findings and previews shown.
const form = document.getElementById("compose");
const target = document.getElementById("compose-check");
let timer = null;

async function check() {
  const answer = await fetch("/compose/check", {
    method: "POST",
    body: new FormData(form),
    headers: { "X-Requested-With": "fetch" },
    credentials: "same-origin",
  });
  if (answer.ok) {
    target.innerHTML = await answer.text();
    document.body.dataset.checked = String(Date.now());
  }
}

if (form && target) {
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 50);
  });
}
