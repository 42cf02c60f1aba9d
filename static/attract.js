// Exhibit mode's attract screen: while `state.exhibit.attract` is true, a full-screen invitation
// over the live camera; any touch on it sends `wake`, and the server's next state takes it away.
// It comes back by itself when the server resets the visitor session.

import { abandonEditing } from "./classes.js";
import { call } from "./connection.js";
import { $ } from "./dom.js";
import { language, setLanguage } from "./i18n.js";
import { mirrorView } from "./view.js";

const dialog = $("#attract");
const camera = $("#attract-canvas");
const start = $("#attract-start");
const lang = $("#attract-lang");

const STATE_WAIT_MS = 3000;

let waking = false;

/** Shows or hides the attract screen for a new `state`. */
export function renderAttract(state) {
  const on = !!(state.exhibit && state.exhibit.attract);
  if (on && !dialog.open) open();
  else if (!on && dialog.open) close();
}

function open() {
  // the previous visitor's half-finished things go: open dialogs, a name being typed
  for (const other of document.querySelectorAll("dialog[open]")) other.close("cancel");
  abandonEditing();
  waking = false;
  dialog.classList.remove("is-leaving");
  mirrorView(camera);
  document.documentElement.classList.add("attract-open"); // the page behind does not scroll
  dialog.showModal();
  start.focus();
}

function close() {
  mirrorView(null);
  document.documentElement.classList.remove("attract-open");
  dialog.close();
  dialog.classList.remove("is-leaving");
  waking = false;
}

async function wake() {
  if (waking || !dialog.open) return;
  waking = true;
  dialog.classList.add("is-leaving"); // fades at once; the server's state closes it
  const answer = await call("wake", {});
  // the server's state normally closes it at once; if none comes (or the answer is an error),
  // it shows again rather than stay invisible over the page
  setTimeout(() => {
    if (!dialog.open) return;
    dialog.classList.remove("is-leaving");
    waking = false;
  }, answer.ok ? STATE_WAIT_MS : 0);
}

export function initAttract() {
  dialog.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault(); // no focus flash, no emulated mouse events on what lies beneath
    wake();
  });
  // keyboard and switch users: the start button (Enter, Space) or Escape
  start.addEventListener("click", () => wake());
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape must not just hide it: the server decides
    wake();
  });
  // a visitor may pick the language first: that is not yet a start
  lang.addEventListener("pointerdown", (event) => event.stopPropagation());
  lang.addEventListener("click", () => setLanguage(language() === "en" ? "ja" : "en"));
}
