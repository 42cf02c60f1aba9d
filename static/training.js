// The learning method switch, the Train button, a live chart of loss and accuracy, and the
// per-class accuracy after training.

import { call } from "./connection.js";
import { $, letterFor, paintClass, setMarker, setText } from "./dom.js";
import { t } from "./i18n.js";

const fieldset = $("#method");
const trainButton = $("#train");
const trainStatus = $("#train-status");
const chartBox = $("#chart-box");
const chart = $("#chart");
const perClass = $("#per-class");
const perClassList = $("#per-class-list");

const ACCURACY_COLOR = "#0b6e4f";
const LOSS_COLOR = "#b3261e";

let state = null;
let training = null; // the newest training report (event or state)
let points = []; // [{x: 0..1, loss, accuracy}] of the training being shown
let pending = null; // the method asked for, until the server's state agrees

export function initTraining() {
  fieldset.addEventListener("change", async (event) => {
    const method = event.target.value;
    pending = method;
    const answer = await call("set_method", { method });
    pending = null;
    if (!answer.ok && state) renderMethod(state.method);
  });
  trainButton.addEventListener("click", async () => {
    trainButton.disabled = true;
    const answer = await call("train", {});
    if (!answer.ok) renderTrainButton(); // else the training events take over
  });
  new ResizeObserver(() => drawChart()).observe(chart);
}

function renderMethod(method) {
  for (const input of fieldset.querySelectorAll("input[name=method]")) {
    input.checked = input.value === method;
    input.closest(".method").classList.toggle("is-selected", input.checked);
  }
}

export function renderTraining(newState) {
  state = newState;
  if (!pending) renderMethod(newState.method);
  // the state carries the running or the last training; the training events are fresher
  const fromState = newState.training;
  if (!fromState) {
    if (training && training.state !== "failed") {
      training = null; // started over, or a fresh server
      points = [];
      chartBox.hidden = true;
    }
  } else if (
    !training ||
    (fromState.state !== training.state && training.state !== "failed") ||
    (fromState.state === "done" && training.state === "done" && fromState.ms !== training.ms)
  ) {
    onTraining(fromState, { fromState: true });
  }
  renderTrainButton();
  renderPerClass();
}

/** One `training` event (or the training in a state, or the answer of `train`). */
export function onTraining(report, { fromState = false } = {}) {
  if (!report) return;
  const restarted =
    report.state === "running" &&
    (!training || training.state !== "running" || (!fromState && !report.iteration));
  if (restarted) points = [];
  training = report;
  if (report.iterations && typeof report.loss === "number" && typeof report.accuracy === "number") {
    const x = Math.min(1, (report.iteration || 0) / report.iterations);
    const lastPoint = points[points.length - 1];
    if (!lastPoint || x > lastPoint.x) points.push({ x, loss: report.loss, accuracy: report.accuracy });
  }
  if (fromState && report.state === "done" && points.length < 2) {
    // a page that arrived after the training saw no progress: show its end point only
    points = [{ x: 1, loss: report.loss, accuracy: report.accuracy }];
  }
  chartBox.hidden = points.length === 0;
  drawChart();
  renderTrainButton();
  renderPerClass();
}

function renderTrainButton() {
  const running = !!training && training.state === "running";
  const hasExamples = !!state && state.classes.some((cls) => cls.examples > 0);
  trainButton.disabled = running || !hasExamples;
  // "auto" fine-tunes by itself; the other methods wait for the Train button
  const waiting = !!state && state.needs_training && state.method !== "auto" && !running;
  trainButton.classList.toggle("needs-attention", waiting);
  let text = "";
  if (running) {
    const percent = training.iterations
      ? Math.round((100 * (training.iteration || 0)) / training.iterations)
      : 0;
    text = t("training_running", { percent });
  } else if (training && training.state === "failed") {
    text = t("training_failed", { message: training.message || "" });
  } else if (waiting) {
    text = t("train_needed");
  } else if (training && training.state === "done") {
    text = t("training_done", {
      seconds: ((training.ms || 0) / 1000).toFixed(1),
      percent: Math.round((training.accuracy || 0) * 100),
    });
  }
  setText(trainStatus, text);
}

function renderPerClass() {
  const perClassScores = training && training.state === "done" ? training.per_class : null;
  if (!perClassScores || !state) {
    perClass.hidden = true;
    return;
  }
  const items = [];
  state.classes.forEach((cls, index) => {
    const score = perClassScores[String(cls.id)];
    if (typeof score !== "number") return;
    const li = document.createElement("li");
    li.className = "per-class-item";
    paintClass(li, cls.color, index);
    const marker = document.createElement("span");
    marker.className = "marker marker-small";
    marker.setAttribute("aria-hidden", "true");
    setMarker(marker, index);
    const name = document.createElement("span");
    name.className = "per-class-name";
    name.textContent = cls.name;
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.setProperty("--v", Math.max(0, Math.min(1, score)).toFixed(3));
    track.append(fill);
    const value = document.createElement("span");
    value.className = "per-class-value";
    value.textContent = `${Math.round(score * 100)}%`;
    li.append(marker, name, track, value);
    li.dataset.letter = letterFor(index);
    items.push(li);
  });
  perClassList.replaceChildren(...items);
  perClass.hidden = items.length === 0;
}

function drawChart() {
  if (chartBox.hidden) return;
  const ratio = window.devicePixelRatio || 1;
  const width = chart.clientWidth;
  const height = chart.clientHeight;
  if (!width || !height) return;
  if (chart.width !== Math.round(width * ratio) || chart.height !== Math.round(height * ratio)) {
    chart.width = Math.round(width * ratio);
    chart.height = Math.round(height * ratio);
  }
  const ctx = chart.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 36;
  const right = 8;
  const top = 8;
  const bottom = 20;
  const w = width - left - right;
  const h = height - top - bottom;

  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#444";
  ctx.strokeStyle = "#d0d0d0";
  ctx.lineWidth = 1;
  for (const level of [0, 0.5, 1]) {
    const y = top + h * (1 - level);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + w, y);
    ctx.stroke();
    ctx.fillText(`${Math.round(level * 100)}%`, 0, y + 4);
  }
  const maxLoss = Math.max(1e-6, ...points.map((p) => p.loss));
  const line = (value, color, dash) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.setLineDash(dash);
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = left + w * p.x;
      const y = top + h * (1 - value(p));
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    if (points.length === 1) {
      const p = points[0];
      ctx.arc(left + w * p.x, top + h * (1 - value(p)), 3, 0, 2 * Math.PI);
    }
    ctx.stroke();
    ctx.setLineDash([]);
  };
  line((p) => p.accuracy, ACCURACY_COLOR, []);
  line((p) => p.loss / maxLoss, LOSS_COLOR, [8, 5]);
}

/** After a reconnection: the server may have restarted and trained nothing yet. */
export function forgetTraining() {
  training = null;
  points = [];
  chartBox.hidden = true;
}

export function relabelTraining() {
  renderTrainButton();
  renderPerClass();
}
