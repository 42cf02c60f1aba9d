// The status bar (connection, camera, backend, delay, frames per second, devices) and the
// "join from a phone" QR code.

import { $, setAttr, setText } from "./dom.js";
import { fetchJson } from "./http.js";
import { noticeText, t } from "./i18n.js";
import { closeOnBackdrop } from "./ui.js";

const chips = {
  conn: $("#st-conn"),
  camera: $("#st-camera"),
  backend: $("#st-backend"),
  latency: $("#st-latency"),
  fps: $("#st-fps"),
  clients: $("#st-clients"),
  notice: $("#st-notice"),
};
const notices = $("#notices");
const joinButton = $("#open-join");
const joinDialog = $("#join-dialog");

let state = null;
let connected = false;
let latency = null;
let joinUrls = [];

function chipText(chip, text) {
  setText(chip.querySelector(".chip-text"), text);
}

export function renderStatus(newState) {
  state = newState;
  render();
}

export function setConnected(value) {
  connected = value;
  if (!value) latency = null;
  render();
}

export function setLatency(ms) {
  latency = typeof ms === "number" ? ms : null;
}

/** Called twice a second with the page's own count of frames drawn per second. */
export function renderFps(fps) {
  chipText(chips.fps, connected ? t("fps", { fps: Math.round(fps) }) : "–");
  chipText(chips.latency, connected && latency !== null ? t("latency", { ms: Math.round(latency) }) : "–");
}

function render() {
  setAttr(chips.conn, "data-state", connected ? "ok" : "bad");
  chipText(chips.conn, connected ? t("connected") : t("disconnected"));
  if (!state) return;
  const camera = connected ? state.camera || {} : { status: "unknown" };
  const status = camera.status || "starting";
  setAttr(chips.camera, "data-state", status === "online" ? "ok" : status === "offline" ? "bad" : "wait");
  let cameraText = t(`camera_status_${status}`);
  if (status !== "online" && camera.reason) cameraText += `: ${camera.reason}`;
  chipText(chips.camera, cameraText);
  chips.camera.title = cameraText;
  chipText(chips.backend, state.backend === "edgetpu" ? t("backend_edgetpu") : t("backend_cpu"));
  const count = state.clients || 0;
  chipText(chips.clients, count === 1 ? t("clients_one") : t("clients_many", { count }));
  chips.notice.hidden = !camera.notice;
  chipText(chips.notice, camera.notice || "");
}

const NOTICE_ICONS = {
  // a padlock for privacy, an "i" for anything else
  privacy: ["M7 11V8a5 5 0 0 1 10 0v3", "M5 11h14v10H5z"],
  other: ["M12 8h.01", "M11 12h1v5h1", "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z"],
};

function noticeIcon(code) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  for (const d of NOTICE_ICONS[code] || NOTICE_ICONS.other) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/** `state.notices`: one quiet line each, under the title bar, for as long as they last. */
export function renderNotices(newState) {
  const list = Array.isArray(newState.notices) ? newState.notices : [];
  const key = `${list.map((n) => `${n.code}:${n.message}`).join("|")}|${document.documentElement.lang}`;
  if (notices.dataset.key === key) return;
  notices.dataset.key = key;
  notices.replaceChildren(
    ...list.map((notice) => {
      const line = document.createElement("p");
      line.className = "notice";
      line.dataset.code = String(notice.code || "");
      const text = document.createElement("span");
      text.textContent = noticeText(notice);
      line.append(noticeIcon(notice.code), text);
      return line;
    }),
  );
  notices.hidden = list.length === 0;
}

/** Fetches the addresses a phone can open; shows the "Phone" button only when there are any. */
export async function refreshJoin() {
  try {
    const body = await fetchJson("/api/join");
    joinUrls = Array.isArray(body && body.urls) ? body.urls : [];
  } catch {
    joinUrls = [];
  }
  joinButton.hidden = joinUrls.length === 0;
  if (!joinUrls.length && joinDialog.open) joinDialog.close();
}

export function initStatus() {
  closeOnBackdrop(joinDialog);
  joinButton.addEventListener("click", () => {
    if (!joinUrls.length) return;
    const url = joinUrls[0];
    const qr = $("#join-qr");
    qr.src = `/api/join.svg?ts=${Date.now()}`; // no-store on the server; the address may change
    qr.alt = t("qr_alt", { url });
    $("#join-url").textContent = url;
    joinDialog.showModal();
  });
}

export function relabelStatus() {
  render();
}
