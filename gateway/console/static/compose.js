// The compose form checked as the operator types: the form is posted to /compose/check
// (with its CSRF token) 400 ms after the last change, and the findings and previews shown;
// a form that opens filled in (an Update or a Cancel) is checked when the page loads.
const form = document.getElementById("compose");
const target = document.getElementById("compose-check");
let timer = null;

// Post a form to its check URL and show the answer in target (the incident form's too).
export async function checkForm(url, form, target) {
  const answer = await fetch(url, {
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

const check = () => checkForm("/compose/check", form, target);

if (form && target) {
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 50);
  });
  // An Update or Cancel comes filled in: its checks and previews at once.
  if (form.elements.namedItem("event")?.value) check();
}
