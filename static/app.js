// The kiosk page: wires the Socket.IO protocol (see server/web/events.py) to the page's parts.

import { initAttract, renderAttract } from "./attract.js";
import {
  forgetStrips,
  initCards,
  relabelCards,
  renderCards,
  showSkipHint,
  stopRecording,
} from "./classes.js";
import { call, socket } from "./connection.js";
import { $ } from "./dom.js";
import { language, onLanguageChange, setLanguage, startLanguage, t } from "./i18n.js";
import {
  forgetPrediction,
  refreshPrediction,
  renderClasses,
  renderPrediction,
} from "./prediction.js";
import { initProject, renderProject } from "./project.js";
import {
  initStatus,
  refreshJoin,
  relabelStatus,
  renderFps,
  renderNotices,
  renderStatus,
  setConnected,
  setLatency,
} from "./status.js";
import {
  forgetTraining,
  initTraining,
  onTraining,
  relabelTraining,
  renderTraining,
} from "./training.js";
import { confirmAction, toast, toastError } from "./ui.js";
import { drawFrame, fps, initView, relabelView, renderCamera, resetFrames, stats } from "./view.js";

const banner = $("#banner");
let state = null;
let version = -1; // the highest state version seen from the server we are connected to

function applyState(next) {
  if (!next || typeof next !== "object" || !Array.isArray(next.classes)) return;
  if (typeof next.version === "number") {
    if (next.version < version) return; // an older state overtaken by a newer one
    version = next.version;
  }
  state = next;
  renderAttract(next);
  renderCards(next);
  renderClasses(next);
  renderTraining(next);
  renderStatus(next);
  renderNotices(next);
  renderProject(next);
  renderCamera(next.camera);
  $("#reset").hidden = !!next.exhibit; // exhibit mode: starting over is the operator's
}

// ----- the protocol -------------------------------------------------------------------------

socket.on("connect", () => {
  banner.hidden = true;
  document.body.classList.remove("is-offline");
  setConnected(true);
  refreshJoin();
});

socket.on("disconnect", () => {
  stopRecording(false); // the server stops a recording when its client goes
  // a restarted server counts versions and frames from the start again
  version = -1;
  resetFrames();
  forgetStrips();
  forgetTraining();
  forgetPrediction();
  banner.hidden = false;
  document.body.classList.add("is-offline");
  setConnected(false);
});

socket.on("connect_error", () => {
  banner.hidden = false;
  document.body.classList.add("is-offline");
  setConnected(false);
});

socket.on("state", applyState);

socket.on("frame", (frame, ack) => {
  const done = () => {
    if (typeof ack === "function") ack(true);
  };
  if (!frame || !frame.jpeg) {
    done();
    return;
  }
  drawFrame(frame).then(done, done);
});

socket.on("prediction", (prediction) => {
  if (!prediction || typeof prediction !== "object") return;
  setLatency(prediction.latency_ms);
  renderPrediction(prediction);
});

socket.on("training", (report) => onTraining(report));
socket.on("record_skipped", (skip) => showSkipHint(skip || {}));
socket.on("error", (error) => toastError(error));

// ----- the page -----------------------------------------------------------------------------

startLanguage();
initCards();
initTraining();
initStatus();
initProject();
initView({ send: (buffer) => socket.emit("frame", buffer), connected: () => socket.connected });
initAttract();

$("#lang").addEventListener("click", () => setLanguage(language() === "en" ? "ja" : "en"));
onLanguageChange(() => {
  relabelCards();
  refreshPrediction();
  relabelTraining();
  relabelStatus();
  relabelView();
  if (state) renderNotices(state);
});

$("#undo").addEventListener("click", async () => {
  const answer = await call("undo", {});
  if (answer.ok) {
    toast(answer.removed ? t("undo_done", { count: answer.removed }) : t("undo_nothing"));
  }
});

$("#reset").addEventListener("click", async () => {
  const needsPin = !!(state && state.pin_required);
  const ok = await confirmAction({
    title: t("confirm_reset_title"),
    text: t("confirm_reset_text"),
    ok: t("confirm_reset_ok"),
    needsPin,
  });
  if (!ok) return;
  await call("reset", needsPin ? { pin: ok.pin } : {});
});

/**
 * The kiosk's own screen: opened on the kiosk itself (loopback) or with ?kiosk=1. Phones that
 * join over the network keep pinch zoom and their long-press menu (WCAG 1.4.4); ?kiosk=0 opts
 * out on a loopback screen.
 */
function isKiosk() {
  const asked = new URLSearchParams(location.search).get("kiosk");
  if (asked === "1" || asked === "0") return asked === "1";
  return ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
}

if (isKiosk()) {
  document.documentElement.classList.add("kiosk");
  $("meta[name=viewport]").setAttribute(
    "content",
    "width=device-width, initial-scale=1, maximum-scale=1, user-scalable=no, viewport-fit=cover",
  );
  // no long-press menu (except in text fields, for paste), no stray drag of images
  document.addEventListener("contextmenu", (event) => {
    if (!event.target.closest("input, textarea")) event.preventDefault();
  });
}
document.addEventListener("dragstart", (event) => event.preventDefault());

setInterval(() => renderFps(fps()), 500);

// for the end-to-end tests and for curious operators (read-only figures)
window.teachable = {
  stats,
  get state() {
    return state;
  },
  get connected() {
    return socket.connected;
  },
};
