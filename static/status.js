// The status bar (connection, camera, backend, delay, frames per second, devices) and the
// "join from a phone" QR code.

import { fetchJson } from "./connection.js";
import { $, setAttr, setText } from "./dom.js";
import { t } from "./i18n.js";
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
