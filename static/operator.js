// The operator's page (/operator): the PIN first (kept in sessionStorage only), then exhibit
// mode's settings, the preset, downloads, a restart and a live status, all over the REST API
// (server/web/api.py) with the PIN in the `X-Pin` header.

import { $, setAttr, setText } from "./dom.js";
import { download, fetchJson } from "./http.js";
import { errorText, language, noticeText, onLanguageChange, setLanguage, startLanguage, t } from "./i18n.js";
import { confirmAction } from "./ui.js";

const PIN_KEY = "teachable.operator_pin";
const LIVE_EVERY_MS = 2000;
const RESTART_GONE_MS = 4000; // the server ends its worker 0.5 s after answering
const RESTART_SLOW_MS = 30000;

const pinPanel = $("#pin-panel");
const pinForm = $("#pin-form");
const pinInput = $("#op-pin");
const pinMessage = $("#pin-message");
const panels = $("#op-panels");
const lockButton = $("#lock");
const form = $("#settings-form");
const fields = {
  camera: $("#set-camera"),
  method: $("#set-method"),
  unknown_quantile: $("#set-unknown"),
  smoothing: $("#set-smoothing"),
  idle_minutes: $("#set-idle"),
  keep_visitor_data: $("#set-keep"),
};
const NUMBERS = {
  // field → [min, max, may be empty (null: the server's own setting)]
  unknown_quantile: [0, 0.5, false],
  smoothing: [0, 0.95, true],
  idle_minutes: [0.5, 240, false],
};

let pin = null;
let loaded = null; // the settings as the server last told them
let liveTimer = 0;
let live = null; // {health, state} of the newest poll, or null when the kiosk does not answer
let liveAt = null;
let polled = false;
let restarting = false;
let exhibitNow = null; // state.exhibit as last seen

// ----- the PIN ------------------------------------------------------------------------------

function storedPin() {
  try {
    return sessionStorage.getItem(PIN_KEY);
  } catch {
    return null; // storage disabled: the PIN lasts as long as the page
  }
}

function storePin(value) {
  try {
    if (value === null) sessionStorage.removeItem(PIN_KEY);
    else sessionStorage.setItem(PIN_KEY, value);
  } catch {
    // storage disabled: see storedPin
  }
}

/** Back to the PIN prompt, with `message` (see say: a wrong or outdated PIN, say). */
function lock(message = "") {
  pin = null;
  storePin(null);
  clearTimeout(liveTimer);
  liveTimer = 0;
  panels.hidden = true;
  lockButton.hidden = true;
  pinPanel.hidden = false;
  pinInput.value = "";
  for (const node of said.keys()) if (node !== pinMessage) say(node, ""); // not for the next one
  say(pinMessage, message, { error: !!message });
  pinInput.focus();
}

/** The REST API with the PIN; a refused PIN locks the page. Throws `{code, message}`. */
async function api(url, options = {}) {
  try {
    return await fetchJson(url, { ...options, pin });
  } catch (error) {
    if (error.status === 403 && error.code === "pin_required") lock(() => t("pin_wrong"));
    throw error;
  }
}

async function unlock(candidate) {
  say(pinMessage, () => t("checking"));
  let answer;
  try {
    answer = await fetchJson("/api/operator", { pin: candidate });
  } catch (error) {
    const wrong = error.status === 403 && error.code === "pin_required";
    const locked = error.status === 429 && error.code === "pin_locked";
    if (wrong) storePin(null);
    pinPanel.hidden = false;
    const message = wrong ? () => t("pin_wrong") : locked ? () => t("pin_locked") : () => errorText(error);
    say(pinMessage, message, { error: true });
    pinInput.value = "";
    pinInput.focus();
    return;
  }
  pin = candidate;
  storePin(candidate);
  say(pinMessage, "");
  pinPanel.hidden = true;
  panels.hidden = false;
  lockButton.hidden = false;
  fillSettings(answer.settings);
  renderExhibit(answer.exhibit);
  refreshLive();
}

pinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = pinInput.value.trim();
  if (!value) {
    say(pinMessage, () => t("pin_empty"), { error: true });
    pinInput.focus();
    return;
  }
  unlock(value);
});

lockButton.addEventListener("click", () => lock());

// ----- settings -----------------------------------------------------------------------------

function fillSettings(settings) {
  loaded = { ...settings };
  fields.camera.value = settings.camera ?? "";
  fields.method.value = settings.method ?? "";
  for (const name of Object.keys(NUMBERS)) {
    fields[name].value = settings[name] === null || settings[name] === undefined ? "" : String(settings[name]);
    fields[name].removeAttribute("aria-invalid");
  }
  fields.keep_visitor_data.checked = !!settings.keep_visitor_data;
}

/** The form's values as settings, or throws `{field, message}` for a number out of range. */
function formValues() {
  for (const input of Object.values(fields)) input.removeAttribute("aria-invalid");
  const camera = fields.camera.value.trim();
  const values = {
    camera: camera || null,
    method: fields.method.value || null,
    keep_visitor_data: fields.keep_visitor_data.checked,
  };
  for (const [name, [min, max, optional]] of Object.entries(NUMBERS)) {
    const input = fields[name];
    const text = input.value.trim();
    if (!text && optional && !input.validity.badInput) {
      values[name] = null;
      continue;
    }
    const number = Number(text);
    if (!text || !Number.isFinite(number) || number < min || number > max) {
      const label = document.querySelector(`label[for="${input.id}"]`);
      const message = () => t("invalid_number", { label: label.textContent, min, max });
      throw { field: input, message };
    }
    values[name] = number;
  }
  return values;
}

const said = new Map(); // message node → a function that words its message again

/**
 * Shows a message under the control that caused it. `message` is text, or a function that
 * words it in the current language (and again after a language switch).
 */
function say(node, message, { error = false } = {}) {
  const words = typeof message === "function" ? message : () => message;
  said.set(node, words);
  setText(node, words());
  node.classList.toggle("is-error", error);
}

/** A server error (`{code, message, ...}`) under `node`, in the page's language. */
function sayError(node, error) {
  say(node, () => errorText(error), { error: true });
}

function resay() {
  for (const [node, words] of said) setText(node, words());
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("#settings-message");
  let values;
  try {
    values = formValues();
  } catch (invalid) {
    invalid.field.setAttribute("aria-invalid", "true");
    invalid.field.focus();
    say(message, invalid.message, { error: true });
    return;
  }
  const changes = {};
  for (const [name, value] of Object.entries(values)) {
    if (!loaded || value !== loaded[name]) changes[name] = value;
  }
  if (!Object.keys(changes).length) {
    say(message, () => t("nothing_changed"));
    return;
  }
  const button = $("#save-settings");
  button.disabled = true;
  say(message, () => t("saving"));
  try {
    const answer = await api("/api/operator", { method: "PUT", json: changes });
    fillSettings(answer.settings);
    say(message, () => t(answer.restart_needed ? "saved_restart" : "saved"));
    $("#restart").classList.toggle("needs-attention", !!answer.restart_needed);
    refreshLive();
  } catch (error) {
    const field = error.code === "bad_setting" && fields[error.setting];
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
    }
    if (pin !== null) sayError(message, error);
  } finally {
    button.disabled = false;
  }
});

// ----- preset -------------------------------------------------------------------------------

function renderExhibit(exhibit) {
  exhibitNow = exhibit || null;
  const node = $("#preset-state");
  if (!exhibit) {
    setText(node, "");
    return;
  }
  setText(node, exhibit.preset ? t("preset_some") : t("preset_none"));
  node.dataset.state = exhibit.preset ? "ok" : "none";
}

async function busy(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

$("#save-preset").addEventListener("click", async () => {
  const ok = await confirmAction({
    title: t("confirm_preset_title"),
    text: t("confirm_preset_text"),
    ok: t("confirm"),
  });
  if (!ok) return;
  const message = $("#preset-message");
  await busy($("#save-preset"), async () => {
    try {
      const answer = await api("/api/operator/preset", { method: "POST" });
      say(message, () => t("preset_done", answer));
      refreshLive();
    } catch (error) {
      if (pin !== null) sayError(message, error);
    }
  });
});

$("#restore-preset").addEventListener("click", async () => {
  const message = $("#preset-message");
  await busy($("#restore-preset"), async () => {
    try {
      const answer = await api("/api/operator/preset/restore", { method: "POST" });
      say(message, () => t("restore_done", answer));
      refreshLive();
    } catch (error) {
      if (pin !== null) sayError(message, error);
    }
  });
});

// ----- downloads ----------------------------------------------------------------------------

for (const link of document.querySelectorAll("a.download")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    const message = $("#downloads-message");
    download(link.href, link.getAttribute("download") || "download", (text, options) =>
      say(message, text, options),
    );
  });
}

// ----- restart ------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function healthy() {
  try {
    const health = await fetchJson("/healthz");
    return !!health && health.status === "ok";
  } catch {
    return false;
  }
}

/** Waits until the server has gone (or RESTART_GONE_MS passed) and is back; then reloads. */
async function waitForRestart() {
  const started = performance.now();
  while (performance.now() - started < RESTART_GONE_MS && (await healthy())) await sleep(300);
  let slow = false;
  while (!(await healthy())) {
    if (!slow && performance.now() - started > RESTART_SLOW_MS) {
      slow = true;
      setText($("#banner-text"), t("restart_slow"));
    }
    await sleep(500);
  }
  location.reload();
}

$("#restart").addEventListener("click", async () => {
  const ok = await confirmAction({
    title: t("confirm_restart_title"),
    text: t("confirm_restart_text"),
    ok: t("confirm_restart_ok"),
  });
  if (!ok) return;
  const message = $("#restart-message");
  try {
    await api("/api/operator/restart", { method: "POST" });
  } catch (error) {
    if (pin !== null) sayError(message, error);
    return;
  }
  restarting = true;
  clearTimeout(liveTimer);
  say(message, () => t("restarting"));
  setText($("#banner-text"), t("restarting"));
  $("#banner").hidden = false;
  for (const button of document.querySelectorAll("main button")) button.disabled = true;
  waitForRestart();
});

// ----- live status --------------------------------------------------------------------------

function fact(id, text, state) {
  const node = $(`#${id}`);
  setText(node.querySelector(".fact-text"), text);
  if (state) setAttr(node, "data-state", state);
}

function renderLive() {
  if (!polled) return;
  if (!live) {
    fact("live-server", t("live_offline"), "bad");
    for (const id of ["camera", "backend", "fps", "clients", "classes", "examples", "visitor", "idle", "privacy", "preset"]) {
      fact(`live-${id}`, "–", id === "camera" ? "wait" : null);
    }
    setText($("#live-updated"), "");
    return;
  }
  const { health, state } = live;
  const running = health.status === "ok";
  fact("live-server", running ? t("st_server_ok") : t("st_server_stopped"), running ? "ok" : "bad");
  const camera = (state && state.camera) || {};
  const status = health.camera || camera.status || "starting";
  let cameraText = t(`camera_status_${["online", "offline", "starting"].includes(status) ? status : "unknown"}`);
  if (camera.name) cameraText += ` (${camera.name})`;
  if (status !== "online" && camera.reason) cameraText += `: ${camera.reason}`;
  fact("live-camera", cameraText, status === "online" ? "ok" : status === "offline" ? "bad" : "wait");
  fact("live-backend", health.backend === "edgetpu" ? t("backend_edgetpu") : t("backend_cpu"));
  fact("live-fps", String(health.fps ?? "–"));
  fact("live-clients", String(health.clients ?? "–"));
  fact("live-classes", String(health.classes ?? "–"));
  fact("live-examples", String(health.examples ?? "–"));
  const exhibit = state && state.exhibit;
  fact("live-visitor", exhibit ? (exhibit.attract ? t("st_visitor_attract") : t("st_visitor_active")) : "–");
  fact("live-idle", exhibit ? t("st_idle_value", { minutes: exhibit.idle_minutes }) : "–");
  fact("live-privacy", exhibit ? (exhibit.privacy ? t("st_privacy_on") : t("st_privacy_off")) : "–");
  fact("live-preset", exhibit ? (exhibit.preset ? t("st_preset_yes") : t("st_preset_no")) : "–");
  renderExhibit(exhibit);
  const list = $("#live-notices ul");
  const notices = (state && Array.isArray(state.notices) && state.notices) || [];
  list.replaceChildren(
    ...(notices.length ? notices.map(noticeText) : [t("st_notices_none")]).map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
  const time = liveAt ? liveAt.toLocaleTimeString(language() === "ja" ? "ja-JP" : "en-GB") : "";
  setText($("#live-updated"), time ? t("live_updated", { time }) : "");
}

async function refreshLive() {
  clearTimeout(liveTimer);
  if (pin === null || restarting) return;
  try {
    const [health, state] = await Promise.all([fetchJson("/healthz"), fetchJson("/api/state")]);
    live = { health, state };
    liveAt = new Date();
  } catch {
    live = null;
  }
  polled = true;
  if (pin === null || restarting) return;
  renderLive();
  liveTimer = setTimeout(refreshLive, document.hidden ? LIVE_EVERY_MS * 5 : LIVE_EVERY_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && pin !== null) refreshLive();
});

// ----- the page -----------------------------------------------------------------------------

function relabel() {
  // empty means "as the server was started": say so in the field itself
  fields.camera.placeholder = t("field_default");
  fields.smoothing.placeholder = t("field_default");
}

startLanguage();
relabel();
$("#lang").addEventListener("click", () => setLanguage(language() === "en" ? "ja" : "en"));
onLanguageChange(() => {
  relabel();
  resay();
  if (pin === null) return;
  renderLive();
  renderExhibit(exhibitNow);
});

const saved = storedPin();
if (saved) unlock(saved);
else pinInput.focus();

// for the end-to-end tests (read-only)
window.teachableOperator = {
  get unlocked() {
    return pin !== null;
  },
};
