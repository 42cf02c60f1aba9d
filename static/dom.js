// Small DOM helpers. Text from users and from the server only ever goes in via textContent.

export const $ = (selector, root = document) => root.querySelector(selector);

/** A clone of the first element of `<template id=...>`. */
export function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

/** Sets textContent only when it changed (keeps the DOM quiet at 30 updates a second). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function setAttr(node, name, value) {
  const text = String(value);
  if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}

/** "A", "B", … "Z", "AA", …: the marker letter of the class at `index`. */
export function letterFor(index) {
  let n = index;
  let out = "";
  do {
    out = String.fromCharCode(65 + (n % 26)) + out;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return out;
}

/** How many fill patterns style.css defines (`data-pattern="0"` … ). */
export const PATTERNS = 6;

const HEX = /^#[0-9a-f]{6}$/i;

/** Gives `node` the class colour (CSS custom property; CSSOM, so no inline style attribute). */
export function paintClass(node, color, index) {
  const safe = HEX.test(color || "") ? color : "#777777";
  if (node.style.getPropertyValue("--c") !== safe) node.style.setProperty("--c", safe);
  setAttr(node, "data-pattern", index % PATTERNS);
}

/** Fills a `.marker` element with the class letter. */
export function setMarker(marker, index) {
  let letter = marker.firstElementChild;
  if (!letter) {
    letter = document.createElement("span");
    letter.className = "marker-letter";
    marker.append(letter);
  }
  setText(letter, letterFor(index));
}
