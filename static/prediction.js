// What the model thinks: a confidence bar per class, the verdict on the live view, the nearest
// stored examples ("why it thinks so") and a throttled screen-reader announcement.

import { $, fromTemplate, paintClass, setAttr, setMarker, setText } from "./dom.js";
import { t } from "./i18n.js";

const ANNOUNCE_EVERY_MS = 2000;

const barsList = $("#bars");
const barsEmpty = $("#bars-empty");
const verdict = $("#verdict");
const verdictMarker = $("#verdict-marker");
const topLabel = $("#top-label");
const maybe = $("#verdict-maybe");
const whyThumbs = $("#why-thumbs");
const whyEmpty = $("#why-empty");
const whySection = $("#why");
const announcer = $("#announcer");

const bars = new Map(); // class id → {node, fill, value, name, best}
let classes = [];
let thumbnails = true;
let last = null; // the newest prediction
let whyKey = "";
let announced = { text: "", at: -Infinity };
let announceTimer = 0;
let offline = false; // no connection: the last prediction is stale

/** Rebuilds the bars for the classes of a new state (kept in state order). */
export function renderClasses(state) {
  classes = state.classes;
  thumbnails = state.thumbnails !== false;
  whySection.hidden = !thumbnails;
  const seen = new Set();
  classes.forEach((cls, index) => {
    seen.add(cls.id);
    let bar = bars.get(cls.id);
    if (!bar) {
      const node = fromTemplate("bar-template");
      bar = {
        node,
        marker: node.querySelector(".marker"),
        name: node.querySelector(".bar-name"),
        fill: node.querySelector(".bar-fill"),
        value: node.querySelector(".bar-value"),
        best: node.querySelector(".bar-best"),
        meter: node.querySelector("[role=meter]"),
        percent: -1,
      };
      node.dataset.classId = String(cls.id);
      bar.name.id = `bar-name-${cls.id}`;
      bar.meter.setAttribute("aria-labelledby", bar.name.id);
      bars.set(cls.id, bar);
    }
    paintClass(bar.node, cls.color, index);
    setMarker(bar.marker, index);
    setText(bar.name, cls.name);
    if (barsList.children[index] !== bar.node) barsList.insertBefore(bar.node, barsList.children[index] || null);
  });
  for (const [id, bar] of bars) {
    if (!seen.has(id)) {
      bar.node.remove();
      bars.delete(id);
    }
  }
  barsEmpty.hidden = classes.length > 0;
  if (last) renderPrediction(last);
  else renderVerdict(null);
}

/** Applies one `prediction` event. */
export function renderPrediction(prediction) {
  last = prediction;
  offline = false;
  const scores = prediction.scores || {};
  const top = prediction.class_id;
  for (const [id, bar] of bars) {
    const score = Number(scores[String(id)]) || 0;
    const percent = Math.round(score * 100);
    if (percent !== bar.percent) {
      bar.percent = percent;
      bar.fill.style.setProperty("--v", Math.max(0, Math.min(1, score)).toFixed(3));
      setText(bar.value, `${percent}%`);
      setAttr(bar.meter, "aria-valuenow", percent);
      setAttr(bar.meter, "aria-valuetext", `${percent}%`);
    }
    const isTop = id === top;
    bar.node.classList.toggle("is-top", isTop);
    bar.node.classList.toggle("is-unsure", isTop && !!prediction.unknown);
    setText(bar.best, isTop && !prediction.unknown ? t("best_match") : "");
  }
  renderVerdict(prediction);
  renderWhy(prediction);
}

function topClass(prediction) {
  if (!prediction || prediction.class_id === null || prediction.class_id === undefined) return null;
  const index = classes.findIndex((cls) => cls.id === prediction.class_id);
  return index < 0 ? null : { cls: classes[index], index };
}

function renderVerdict(prediction) {
  const hasExamples = classes.some((cls) => cls.examples > 0);
  const top = topClass(prediction);
  let state;
  let text;
  if (offline) {
    state = "offline";
    text = t("verdict_offline");
  } else if (!classes.length) {
    state = "empty";
    text = t("verdict_empty");
  } else if (!hasExamples) {
    state = "empty";
    text = t("verdict_no_examples");
  } else if (!top || prediction.unknown) {
    state = "unknown";
    text = t("verdict_unknown");
  } else {
    state = "known";
    text = top.cls.name;
  }
  setAttr(verdict, "data-state", state);
  setText(topLabel, text);
  // "not sure", but one class is still ahead: say which, as a guess
  setText(maybe, state === "unknown" && top ? t("verdict_maybe", { name: top.cls.name }) : "");
  if (state === "known") {
    paintClass(verdict, top.cls.color, top.index);
    setMarker(verdictMarker, top.index);
  } else {
    setMarker(verdictMarker, 0);
    setText(verdictMarker.firstElementChild, state === "unknown" ? "?" : "");
  }
  announce(state === "known" ? t("announce_label", { name: text }) : state === "unknown" ? t("announce_unknown") : "");
}

function renderWhy(prediction) {
  const top = topClass(prediction);
  const ids = thumbnails && top && !prediction.unknown ? (prediction.nearest || []).slice(0, 3) : [];
  const key = ids.join(",");
  if (key === whyKey) return;
  whyKey = key;
  const images = ids.map((id) => {
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = "";
    img.width = 72;
    img.height = 72;
    img.decoding = "async";
    img.src = `/api/examples/${Number(id)}/thumbnail`;
    img.setAttribute("role", "listitem");
    img.addEventListener("error", () => img.remove());
    return img;
  });
  whyThumbs.replaceChildren(...images);
  whyEmpty.hidden = images.length > 0;
}

/** Polite, and at most every ANNOUNCE_EVERY_MS, and only when the words change. */
function announce(text) {
  if (text === announced.text) {
    clearTimeout(announceTimer);
    announceTimer = 0;
    return;
  }
  const wait = announced.at + ANNOUNCE_EVERY_MS - performance.now();
  clearTimeout(announceTimer);
  const say = () => {
    announceTimer = 0;
    announced = { text, at: performance.now() };
    announcer.textContent = text;
  };
  if (wait <= 0) say();
  else announceTimer = setTimeout(say, wait);
}

/** After a reconnection or a language switch. */
export function refreshPrediction() {
  whyKey = "";
  for (const bar of bars.values()) bar.percent = -1;
  if (last) renderPrediction(last);
  else renderVerdict(null);
}

/** The connection is gone: the bars empty and the verdict waits. */
export function forgetPrediction() {
  last = null;
  offline = true;
  whyKey = "";
  renderVerdict(null);
  for (const bar of bars.values()) {
    bar.percent = 0;
    bar.fill.style.setProperty("--v", "0");
    setText(bar.value, "0%");
    setAttr(bar.meter, "aria-valuenow", 0);
    bar.node.classList.remove("is-top", "is-unsure");
    setText(bar.best, "");
  }
  whyThumbs.replaceChildren();
  whyEmpty.hidden = false;
}
