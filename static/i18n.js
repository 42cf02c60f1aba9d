// The page's language: t(key, params) in the current one, the data-i18n* attributes, the
// language switch. The strings are in ./i18n/<language>.js, one table per language. Elements
// carry data-i18n="key" (text), data-i18n-label="key" (aria-label) or data-i18n-title="key"
// (title); dynamic text calls t(). Server errors and notices come as codes (server/errors.py):
// errorText() and noticeText() say them in the current language.

import en from "./i18n/en.js";
import ja from "./i18n/ja.js";

export const TABLES = { en, ja };
export const LANGUAGES = Object.keys(TABLES);
const STORAGE_KEY = "teachable.lang";

let current = "en";
const listeners = new Set();

/** The language to start with: the saved choice, else the browser's, else English. */
export function initialLanguage(stored, browserLanguages) {
  if (stored && TABLES[stored]) return stored;
  for (const tag of browserLanguages || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (TABLES[base]) return base;
  }
  return "en";
}

export function language() {
  return current;
}

/** The string `key` in the current language, with `{name}` placeholders filled in. */
export function t(key, params) {
  const table = TABLES[current];
  let text = key in table ? table[key] : en[key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  }
  return text;
}

/** Fills every data-i18n* element under `root` (the document by default). */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function setLanguage(lang) {
  if (!TABLES[lang]) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // private mode: the choice lasts until the page reloads
  }
  document.documentElement.lang = lang;
  document.title = t(document.documentElement.dataset.titleKey || "page_title");
  translate();
  for (const fn of listeners) fn(lang);
}

/** The string `prefix + code` filled in with the server's fields, or its own message for a
 * code this page does not know (a newer server). */
function coded(prefix, item, fallback) {
  const key = item && item.code ? `${prefix}${item.code}` : "";
  if (key && key in en) return t(key, item);
  return (item && item.message) || fallback;
}

/** A server notice (`{code, message}` of `state.notices`) in the current language. */
export function noticeText(notice) {
  return coded("notice_", notice, "");
}

/**
 * A server error (`{code, message, ...fields}` of an `error` event, an acknowledgement or a
 * REST answer) in the current language: `error_<code>` with the fields filled in.
 */
export function errorText(error) {
  return coded("error_", error, t("error_no_answer"));
}

/** A `record_skipped` event (`{reason, message}`) in the current language. */
export function skipText(skip) {
  return coded("skip_", skip && { ...skip, code: skip.reason }, "");
}

export function onLanguageChange(fn) {
  listeners.add(fn);
}

export function startLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  const browser = navigator.languages && navigator.languages.length
    ? navigator.languages
    : [navigator.language];
  setLanguage(initialLanguage(stored, browser));
}
