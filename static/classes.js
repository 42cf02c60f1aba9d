// One card per class: its name (rename in place), marker, example count, its newest examples
// (`state.classes[i].recent`, tap one to delete it), the hold-to-record button, clear and
// delete; and the "add class" card.

import { call } from "./connection.js";
import { $, fromTemplate, letterFor, paintClass, setAttr, setMarker, setText } from "./dom.js";
import { skipText, t } from "./i18n.js";
import { confirmAction, toast } from "./ui.js";

const HINT_MS = 2500;
const THUMB_PX = 56; // .thumb-button in style.css
const THUMB_GAP_PX = 6; // .strip gap

const list = $("#cards");
const addSlot = list.querySelector(".add-slot");
const addButton = $("#add-class");

const cards = new Map(); // class id → card parts
let state = null;

// ----- recording --------------------------------------------------------------------------

/** The one recording this page may have running: started on press, stopped on release. */
const recorder = {
  active: null, // {classId, card}

  start(classId) {
    if (this.active && this.active.classId === classId) return;
    this.stop();
    const card = cards.get(classId);
    if (!card) return;
    this.active = { classId, card };
    card.node.classList.add("is-recording");
    card.record.setAttribute("aria-pressed", "true");
    setText(card.recordText, t("recording"));
    call("record_start", { class_id: classId }).then((answer) => {
      if (!answer.ok && this.active && this.active.classId === classId) this.stop(false);
    });
  },

  /** Ends the visual state; tells the server unless it is gone (it stops by itself then). */
  stop(tell = true) {
    const active = this.active;
    if (!active) return;
    this.active = null;
    active.card.node.classList.remove("is-recording");
    active.card.record.setAttribute("aria-pressed", "false");
    setText(active.card.recordText, t("hold_to_record"));
    if (tell) call("record_stop", {}, { quiet: true });
  },
};

export function stopRecording(tell = true) {
  recorder.stop(tell);
}

function bindRecordButton(button, classId) {
  button.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault(); // no focus ring flash, no text selection, no emulated mouse events
    // a name being typed is committed (blur) before recording starts
    if (document.activeElement && document.activeElement.matches(".class-name")) {
      document.activeElement.blur();
    }
    try {
      button.setPointerCapture(event.pointerId);
    } catch {
      // the pointer is already gone: pointerup follows
    }
    recorder.start(classId);
  });
  const release = () => {
    if (recorder.active && recorder.active.classId === classId) recorder.stop();
  };
  for (const type of ["pointerup", "pointercancel", "pointerleave", "lostpointercapture"]) {
    button.addEventListener(type, release);
  }
  // keyboard and switch users: hold Space or Enter
  button.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) {
      event.preventDefault();
      recorder.start(classId);
    }
  });
  button.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      release();
    }
  });
  button.addEventListener("blur", release);
  button.addEventListener("contextmenu", (event) => event.preventDefault());
}

// a released finger the page never heard about must not keep recording
window.addEventListener("blur", () => recorder.stop());
document.addEventListener("visibilitychange", () => {
  if (document.hidden) recorder.stop();
});

// ----- cards --------------------------------------------------------------------------------

function makeCard(cls) {
  const node = fromTemplate("card-template");
  const card = {
    id: cls.id,
    node,
    marker: node.querySelector(".marker"),
    name: node.querySelector(".class-name"),
    count: node.querySelector(".count-number"),
    countWord: node.querySelector(".count-word"),
    fill: node.querySelector(".fill-bar"),
    strip: node.querySelector(".strip"),
    stripEmpty: node.querySelector(".strip-empty"),
    record: node.querySelector(".record"),
    recordText: node.querySelector(".record-text"),
    hint: node.querySelector(".skip-hint"),
    remote: node.querySelector(".remote-recording"),
    clear: node.querySelector(".clear"),
    clearText: node.querySelector(".clear-text"),
    del: node.querySelector(".delete"),
    delText: node.querySelector(".delete-text"),
    hintTimer: 0,
    stripKey: null,
    fits: Infinity, // how many thumbnails fit on one row of the strip
    deleted: new Set(), // example ids deleted here, until a state without them arrives
    cls,
  };
  node.dataset.classId = String(cls.id);
  card.record.setAttribute("aria-pressed", "false");
  setText(card.recordText, t("hold_to_record"));
  card.name.value = cls.name;

  const commit = async () => {
    const name = card.name.value.trim();
    if (!name || name === card.cls.name) {
      card.name.value = card.cls.name;
      return;
    }
    const answer = await call("rename_class", { class_id: card.id, name });
    if (!answer.ok && document.activeElement !== card.name) card.name.value = card.cls.name;
  };
  card.name.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      card.name.blur(); // blur commits
    } else if (event.key === "Escape") {
      card.name.value = card.cls.name;
      card.name.blur();
    }
  });
  card.name.addEventListener("blur", commit);

  bindRecordButton(card.record, cls.id);
  stripSizes.observe(card.strip);

  card.clear.addEventListener("click", async () => {
    const { name, examples } = card.cls;
    const ok = await confirmAction({
      title: t("confirm_clear_title", { name }),
      text: t("confirm_clear_text", { count: examples }),
      ok: t("confirm_clear_ok"),
    });
    if (!ok) return;
    await call("clear_class", { class_id: card.id });
  });
  card.del.addEventListener("click", async () => {
    const { name, examples } = card.cls;
    const needsPin = !!(state && state.pin_required);
    const ok = await confirmAction({
      title: t("confirm_delete_title", { name }),
      text: t("confirm_delete_text", { count: examples }),
      ok: t("confirm_delete_ok"),
      needsPin,
    });
    if (!ok) return;
    const payload = { class_id: card.id };
    if (needsPin) payload.pin = ok.pin;
    await call("delete_class", payload);
  });
  return card;
}

function updateCard(card, cls, index) {
  card.cls = cls;
  paintClass(card.node, cls.color, index);
  setMarker(card.marker, index);
  if (document.activeElement !== card.name && card.name.value !== cls.name) card.name.value = cls.name;
  setText(card.count, cls.examples);
  setText(card.countWord, cls.examples === 1 ? t("example_one") : t("examples"));
  const max = (state.limits && state.limits.max_examples) || 200;
  card.fill.style.setProperty("--v", Math.min(1, cls.examples / max).toFixed(3));
  card.node.classList.toggle("is-full", cls.examples >= max);
  const letter = letterFor(index);
  setAttr(card.name, "aria-label", t("class_name_label", { letter }));
  setAttr(card.record, "aria-label", t("record_label", { name: cls.name }));
  setAttr(card.clear, "aria-label", t("clear_label", { name: cls.name }));
  setAttr(card.del, "aria-label", t("delete_label", { name: cls.name }));
  setAttr(card.strip, "aria-label", t("strip_label", { name: cls.name }));
  setText(card.clearText, t("clear"));
  setText(card.delText, t("delete"));
  if (!card.node.classList.contains("is-recording")) setText(card.recordText, t("hold_to_record"));
  card.clear.disabled = cls.examples === 0;
  const remote = (state.recording || []).includes(cls.id) && !(recorder.active && recorder.active.classId === cls.id);
  card.remote.hidden = !remote;
  setText(card.remote, remote ? t("someone_recording") : "");
  renderStrip(card);
}

/** Applies a new `state` to the cards. */
export function renderCards(newState) {
  state = newState;
  const seen = new Set();
  newState.classes.forEach((cls, index) => {
    seen.add(cls.id);
    let card = cards.get(cls.id);
    if (!card) {
      card = makeCard(cls);
      cards.set(cls.id, card);
    }
    updateCard(card, cls, index);
    if (list.children[index] !== card.node) list.insertBefore(card.node, list.children[index]);
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      if (recorder.active && recorder.active.classId === id) recorder.stop(false);
      stripSizes.unobserve(card.strip);
      card.node.remove();
      cards.delete(id);
    }
  }
  list.append(addSlot); // the "add class" card stays last
}

/** Drops a class name being typed (its visitor left): nothing is sent to the server. */
export function abandonEditing() {
  for (const card of cards.values()) {
    if (document.activeElement === card.name) {
      card.name.value = card.cls.name;
      card.name.blur(); // commits nothing: the name is unchanged
    }
  }
}

/** Re-labels every card after a language switch. */
export function relabelCards() {
  if (state) renderCards(state);
}

// ----- thumbnails ---------------------------------------------------------------------------

// only whole thumbnails show: the strip is one row, and those that do not fit are left out
// (hidden, so that no keyboard focus lands on a clipped one)
const stripSizes = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const card = cards.get(Number(entry.target.closest(".card").dataset.classId));
    if (!card) continue;
    const width = entry.contentRect.width;
    const fits = Math.max(1, Math.floor((width + THUMB_GAP_PX) / (THUMB_PX + THUMB_GAP_PX)));
    if (fits !== card.fits) {
      card.fits = fits;
      fitStrip(card);
    }
  }
});

function fitStrip(card) {
  [...card.strip.children].forEach((button, index) => {
    button.hidden = index >= card.fits;
  });
}

/** The card's newest examples, from the state: newest first, tap one to delete it. */
function renderStrip(card) {
  const show = !state || state.thumbnails !== false;
  const recent = Array.isArray(card.cls.recent) ? card.cls.recent : [];
  for (const id of card.deleted) if (!recent.includes(id)) card.deleted.delete(id); // caught up
  const ids = show ? recent.filter((id) => !card.deleted.has(id)) : [];
  card.strip.hidden = !show;
  card.stripEmpty.hidden = !show || ids.length > 0;
  setText(card.stripEmpty, t("strip_empty"));
  const key = `${ids.join(",")}|${document.documentElement.lang}`;
  if (key === card.stripKey) return;
  card.stripKey = key;
  const have = new Map([...card.strip.children].map((button) => [button.dataset.exampleId, button]));
  card.strip.replaceChildren(
    ...ids.map((id) => {
      const kept = have.get(String(id)); // keep loaded images: no flicker while recording
      if (kept) {
        kept.setAttribute("aria-label", t("delete_example_label"));
        return kept;
      }
      return thumbButton(card, id);
    }),
  );
  fitStrip(card);
}

/** After losing the server: a restarted kiosk may reuse example ids for other pictures. */
export function forgetStrips() {
  for (const card of cards.values()) {
    card.stripKey = null;
    card.strip.replaceChildren();
  }
}

function thumbButton(card, id) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "thumb-button";
  button.dataset.exampleId = String(id);
  button.setAttribute("role", "listitem");
  button.setAttribute("aria-label", t("delete_example_label"));
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = "";
  img.width = THUMB_PX;
  img.height = THUMB_PX;
  img.decoding = "async";
  img.src = `/api/examples/${Number(id)}/thumbnail`;
  img.addEventListener("error", () => {
    button.remove(); // gone since (deleted elsewhere, or a restarted kiosk)
    fitStrip(card);
  });
  const badge = document.createElement("span");
  badge.className = "thumb-x";
  badge.setAttribute("aria-hidden", "true");
  badge.textContent = "×";
  button.append(img, badge);
  button.addEventListener("click", async () => {
    button.disabled = true;
    const answer = await call("delete_example", { example_id: id });
    if (answer.ok) {
      card.deleted.add(id);
      card.stripKey = null;
      renderStrip(card);
      toast(t("example_deleted"));
    } else button.disabled = false;
  });
  return button;
}

// ----- hints and the "add class" card -----------------------------------------------------

/** A `record_skipped` event: a short hint under the button being held. */
export function showSkipHint(skip) {
  const card = recorder.active ? recorder.active.card : null;
  if (!card) return;
  setText(card.hint, skipText(skip));
  card.hint.classList.add("is-shown");
  clearTimeout(card.hintTimer);
  card.hintTimer = setTimeout(() => {
    card.hint.classList.remove("is-shown");
    setText(card.hint, "");
  }, HINT_MS);
}

function defaultName() {
  const taken = new Set((state ? state.classes : []).map((cls) => cls.name.toLowerCase()));
  for (let n = (state ? state.classes.length : 0) + 1; ; n += 1) {
    const name = t("default_class_name", { n });
    if (!taken.has(name.toLowerCase())) return name;
  }
}

export function initCards() {
  addButton.addEventListener("click", async () => {
    addButton.disabled = true;
    try {
      await call("add_class", { name: defaultName() });
    } finally {
      addButton.disabled = false;
    }
  });
}
