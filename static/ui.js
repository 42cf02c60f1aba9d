// Toasts (non-blocking messages) and the confirmation dialog.

import { $ } from "./dom.js";
import { errorText, t } from "./i18n.js";

const TOAST_MS = 5000;
const recent = new Map(); // text → its toast, so an error sent twice shows once

/** Shows a short message that goes away by itself; `kind` is "error" or "info". */
export function toast(message, { kind = "info", title = "" } = {}) {
  const key = `${kind}|${title}|${message}`;
  const existing = recent.get(key);
  if (existing) {
    existing.restart();
    return;
  }
  const box = document.createElement("div");
  box.className = `toast toast-${kind}`;
  if (kind === "error") {
    const icon = document.createElement("span");
    icon.className = "toast-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = "!";
    box.append(icon);
  }
  const body = document.createElement("div");
  body.className = "toast-body";
  if (title) {
    const strong = document.createElement("strong");
    strong.textContent = title;
    body.append(strong);
  }
  const text = document.createElement("span");
  text.textContent = message;
  body.append(text);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", t("close"));
  close.textContent = "×";
  box.append(body, close);

  let timer = 0;
  const remove = () => {
    clearTimeout(timer);
    recent.delete(key);
    box.remove();
  };
  const entry = {
    restart() {
      clearTimeout(timer);
      timer = setTimeout(remove, TOAST_MS);
    },
  };
  close.addEventListener("click", remove);
  recent.set(key, entry);
  const list = $("#toasts");
  list.append(box);
  while (list.children.length > 4) list.firstElementChild.querySelector(".toast-close").click();
  entry.restart();
}

/** A server error object (`{code, message, ...}`) as an error toast, in the page's language. */
export function toastError(error) {
  toast(errorText(error), { kind: "error", title: t("error_title") });
}

/**
 * Asks before something destructive. Resolves to `{pin}` when confirmed (pin is undefined
 * unless asked for), or null when cancelled.
 */
export function confirmAction({ title, text, ok, needsPin = false }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok || t("confirm");
  const pinRow = $("#pin-row");
  const pinInput = $("#pin-input");
  pinRow.hidden = !needsPin;
  pinInput.value = "";
  pinInput.required = needsPin;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue !== "ok") resolve(null);
        else resolve({ pin: needsPin ? pinInput.value : undefined });
      },
      { once: true },
    );
    dialog.showModal();
    if (needsPin) pinInput.focus();
  });
}

/** Closes a dialog when its backdrop (outside the box) is tapped. */
export function closeOnBackdrop(dialog) {
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close("cancel");
  });
}
