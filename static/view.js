// The live view: frames from the kiosk drawn on a canvas, or (browser camera) this device's
// own camera shown and sent up as JPEG frames.

import { $ } from "./dom.js";
import { t } from "./i18n.js";

const UPLOAD_INTERVAL_MS = 80; // ~12 fps up; the server decodes every one
const UPLOAD_MAX_WIDTH = 640;
const UPLOAD_QUALITY = 0.7;

/** Frames drawn, for the status bar and for tests (window.teachable.stats). */
export const stats = {
  framesDrawn: 0,
  framesReceived: 0,
  firstFrameMs: null, // ms after navigation start when the first frame was on screen
  lastFrameIndex: -1,
  times: [],
};

const canvas = $("#view-canvas");
const ctx = canvas.getContext("2d", { alpha: false });
const video = $("#own-video");
const message = $("#view-message");
const ownButton = $("#own-camera");
let newest = -1;
let cameraState = null;
let ownCamera = null; // {stream, timer, busy, error} while this page uses its camera
let declined = false; // the user stopped sending: do not start again by itself
let mirror = null; // a second canvas that shows the live view too (the attract screen)

const showingOwn = () => !!ownCamera && !!ownCamera.stream && !ownCamera.error;

function counted(now) {
  stats.times.push(now);
  while (stats.times.length && now - stats.times[0] > 2000) stats.times.shift();
  if (stats.firstFrameMs === null) stats.firstFrameMs = now;
  updateMessage();
}

/** Frames per second over the last two seconds. */
export function fps() {
  const now = performance.now();
  const recent = stats.times.filter((time) => now - time <= 2000);
  return recent.length / 2;
}

/** Draws one `frame` event's JPEG; resolves once it is on the canvas (or was skipped). */
export async function drawFrame(frame) {
  stats.framesReceived += 1;
  const index = typeof frame.index === "number" ? frame.index : newest + 1;
  if (index <= newest) return; // an older frame finished decoding after a newer one
  if (showingOwn()) {
    // the page shows its own video; the frame only paces the predictions
    if (mirror && video.videoWidth) paintMirror(video, video.videoWidth, video.videoHeight);
    newest = index;
    stats.lastFrameIndex = index;
    stats.framesDrawn += 1;
    counted(performance.now());
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: "image/jpeg" }));
  } catch {
    return; // a broken JPEG: skip it, keep the stream going
  }
  try {
    if (index <= newest) return;
    newest = index;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    ctx.drawImage(bitmap, 0, 0);
    if (mirror) paintMirror(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
  stats.lastFrameIndex = index;
  stats.framesDrawn += 1;
  counted(performance.now());
}

function paintMirror(source, width, height) {
  if (mirror.width !== width || mirror.height !== height) {
    mirror.width = width;
    mirror.height = height;
  }
  mirror.getContext("2d", { alpha: false }).drawImage(source, 0, 0, width, height);
}

/** Shows the live view on `target` (a canvas) as well, from now on; null stops it. */
export function mirrorView(target) {
  mirror = target || null;
  if (!mirror) return;
  if (showingOwn() && video.videoWidth) paintMirror(video, video.videoWidth, video.videoHeight);
  else if (stats.framesDrawn > 0) paintMirror(canvas, canvas.width, canvas.height);
}

/** After a reconnection the frame numbers may start again from 0. */
export function resetFrames() {
  newest = -1;
}

function updateMessage() {
  let text = "";
  const status = cameraState && cameraState.status;
  if (!cameraState) text = t("camera_waiting");
  else if (status === "offline") {
    text = cameraState.reason
      ? `${t("camera_offline")}: ${cameraState.reason}`
      : t("camera_offline");
  } else if (status === "starting") text = t("camera_starting");
  else if (stats.firstFrameMs === null && !showingOwn()) text = t("camera_waiting");
  if (ownCamera && ownCamera.error) text = ownCamera.error;
  if (message.textContent !== text) message.textContent = text;
  message.hidden = !text;
}

/** Follows `state.camera`; in browser mode starts this device's camera (once). */
export function renderCamera(camera) {
  cameraState = camera || null;
  const browserMode = !!camera && camera.name === "browser";
  ownButton.hidden = !browserMode;
  if (browserMode && !ownCamera && !declined) startOwnCamera();
  if (!browserMode && ownCamera) stopOwnCamera();
  renderOwnButton();
  updateMessage();
}

function renderOwnButton() {
  const sending = showingOwn();
  ownButton.textContent = sending ? t("stop_my_camera") : t("use_my_camera");
  ownButton.setAttribute("aria-pressed", String(sending));
}

let sendFrame = () => {};

/** `send(arrayBuffer)` uploads one JPEG (socket.emit("frame", ...)). */
export function initView({ send, connected }) {
  sendFrame = (buffer) => {
    if (connected()) send(buffer);
  };
  ownButton.addEventListener("click", () => {
    if (showingOwn()) {
      declined = true;
      stopOwnCamera();
    } else {
      declined = false;
      startOwnCamera();
    }
    renderOwnButton();
  });
}

async function startOwnCamera() {
  stopOwnCamera();
  ownCamera = { stream: null, timer: 0, busy: false, error: "" };
  const mine = ownCamera;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    mine.error = t("camera_needs_secure");
    updateMessage();
    renderOwnButton();
    return;
  }
  try {
    mine.stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: { ideal: "environment" } },
    });
  } catch (error) {
    mine.error = t("camera_denied", { message: error.message || error.name });
    updateMessage();
    renderOwnButton();
    return;
  }
  if (ownCamera !== mine) {
    for (const track of mine.stream.getTracks()) track.stop();
    return;
  }
  video.srcObject = mine.stream;
  video.hidden = false;
  canvas.hidden = true;
  video.play().catch(() => {});
  const grab = document.createElement("canvas");
  const grabCtx = grab.getContext("2d", { alpha: false });
  mine.timer = setInterval(() => {
    if (mine.busy || video.readyState < 2 || !video.videoWidth) return;
    const scale = Math.min(1, UPLOAD_MAX_WIDTH / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grabCtx.drawImage(video, 0, 0, grab.width, grab.height);
    mine.busy = true;
    grab.toBlob(
      async (blob) => {
        try {
          if (blob && ownCamera === mine) sendFrame(await blob.arrayBuffer());
        } finally {
          mine.busy = false;
        }
      },
      "image/jpeg",
      UPLOAD_QUALITY,
    );
  }, UPLOAD_INTERVAL_MS);
  updateMessage();
  renderOwnButton();
}

function stopOwnCamera() {
  if (!ownCamera) return;
  clearInterval(ownCamera.timer);
  if (ownCamera.stream) for (const track of ownCamera.stream.getTracks()) track.stop();
  ownCamera = null;
  video.srcObject = null;
  video.hidden = true;
  canvas.hidden = false;
  updateMessage();
}

export function relabelView() {
  renderOwnButton();
  updateMessage();
}
