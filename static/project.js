// The Project menu: downloads (model, labels, project zip) and opening a project zip. Downloads
// go through fetch so that a failure shows the server's own message instead of a JSON page.

import { errorOf } from "./connection.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { closeOnBackdrop, confirmAction, toast, toastError } from "./ui.js";

const dialog = $("#project-dialog");
const fileInput = $("#import-file");
const message = $("#project-message");
let pinRequired = false;

function filenameOf(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // a malformed name: use the plain one
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : fallback;
}

// a message inside the dialog (a toast would sit under the modal dialog); errors toast too
function say(text, { error = false } = {}) {
  message.textContent = text;
  message.classList.toggle("is-error", error);
  if (error) toastError({ message: text });
}

async function download(link) {
  const fallback = link.getAttribute("download") || "download";
  say(t("downloading", { name: fallback }));
  let response;
  try {
    response = await fetch(link.href, { cache: "no-store" });
  } catch {
    say(t("error_offline"), { error: true });
    return;
  }
  if (!response.ok) {
    say((await errorOf(response)).message, { error: true });
    return;
  }
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  const name = filenameOf(response, fallback);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(t("downloaded", { name }));
}

async function importProject(file) {
  const ok = await confirmAction({
    title: t("import_project"),
    text: `${file.name}: ${t("import_help")}`,
    ok: t("confirm"),
    needsPin: pinRequired,
  });
  if (!ok) return;
  const headers = {};
  if (pinRequired) headers["X-Pin"] = ok.pin;
  const body = new FormData();
  body.append("file", file, file.name);
  let response;
  try {
    response = await fetch("/api/project", { method: "POST", body, headers });
  } catch {
    say(t("error_offline"), { error: true });
    return;
  }
  if (!response.ok) {
    say((await errorOf(response)).message, { error: true });
    return;
  }
  say("");
  toast(t("import_done"));
  dialog.close();
}

export function initProject() {
  closeOnBackdrop(dialog);
  $("#open-project").addEventListener("click", () => {
    say("");
    dialog.showModal();
  });
  for (const link of dialog.querySelectorAll("a.download")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(link);
    });
  }
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = ""; // the same file may be chosen again
    if (file) importProject(file);
  });
}

export function renderProject(state) {
  pinRequired = !!state.pin_required;
}
