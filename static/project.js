// The Project menu: downloads (model, labels, project zip) and opening a project zip. Downloads
// go through fetch so that a failure shows the server's error instead of a JSON page.

import { $ } from "./dom.js";
import { download, fetchOrSay } from "./http.js";
import { t } from "./i18n.js";
import { closeOnBackdrop, confirmAction, toast, toastError } from "./ui.js";

const dialog = $("#project-dialog");
const fileInput = $("#import-file");
const message = $("#project-message");
let pinRequired = false;

// a message inside the dialog (a toast would sit under the modal dialog); errors toast too
function say(text, { error = false } = {}) {
  message.textContent = text;
  message.classList.toggle("is-error", error);
  if (error) toastError({ message: text });
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
  const response = await fetchOrSay("/api/project", { method: "POST", body, headers }, say);
  if (!response) return;
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
      download(link.href, link.getAttribute("download") || "download", say);
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
  // exhibit mode: exports and opening a project are the operator's (on /operator)
  const exhibit = !!state.exhibit;
  $("#open-project").hidden = exhibit;
  if (exhibit && dialog.open) dialog.close();
}
