// homesec's page: a little plain JavaScript on top of forms that work without it.
"use strict";

document.addEventListener("click", (event) => {
  const asking = event.target.closest("[data-confirm]");
  if (asking && !window.confirm(asking.dataset.confirm)) {
    event.preventDefault();
  }
  const backLink = event.target.closest("[data-back]");
  if (backLink && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});

// Search: drop a photo on the zone, or choose one, and it is searched at once.
for (const form of document.querySelectorAll("form[data-drop]")) {
  const zone = form.querySelector(".zone");
  const input = form.querySelector("input[type=file]");
  const label = zone.querySelector("span");
  const submit = () => {
    if (input.files.length) {
      label.textContent = "Searching for the face in " + input.files[0].name + "…";
      form.requestSubmit();
    }
  };
  input.addEventListener("change", submit);
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      submit();
    }
  });
}

// A button pressed once: it says so, and a second press does not send the form again.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button");
  if (button) {
    setTimeout(() => { button.disabled = true; }, 0);
  }
});

// Back to a page from the browser's cache: its buttons work again.
window.addEventListener("pageshow", () => {
  for (const button of document.querySelectorAll("button:disabled")) {
    button.disabled = false;
  }
});

// The sign-in page, opened from a link on another site: the browser held back the SameSite=Strict
// cookie, so ask again from here (same site: the cookie goes along) and go on if it was signed in.
for (const form of document.querySelectorAll("form[data-signin]")) {
  fetch("/login/session", { credentials: "same-origin" }).then((answer) => {
    if (answer.status === 204) {
      window.location.replace(form.querySelector("input[name=next]").value || "/");
    }
  });
}
