// The REST API (server/web/api.py) over fetch: JSON answers, and the server's errors (codes).

import { errorText, t } from "./i18n.js";

/**
 * GET/POST/PUT helper: the parsed JSON (null for 204), or throws `{code, message, status}`.
 * `pin` goes in the `X-Pin` header.
 */
export async function fetchJson(url, { pin, json, headers = {}, ...options } = {}) {
  const sent = { ...headers };
  if (pin !== undefined) sent["X-Pin"] = pin;
  let body = options.body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, { cache: "no-store", ...options, body, headers: sent });
  } catch {
    throw { code: "offline", message: t("error_offline"), status: 0 };
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The `{code, message, status}` of a failed response (`{"error": {...}}`), or a generic one. */
export async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return { ...body.error, status: response.status };
  } catch {
    // not JSON: a proxy or an endpoint that does not exist yet
  }
  return {
    code: `http_${response.status}`,
    message: t("error_http", { status: response.status }),
    status: response.status,
  };
}

/**
 * fetch(), but a network failure or an error answer is told through `say(text, {error})`
 * (the server's error in the page's language) and gives null.
 */
export async function fetchOrSay(href, init, say) {
  let response;
  try {
    response = await fetch(href, init);
  } catch {
    say(t("error_offline"), { error: true });
    return null;
  }
  if (!response.ok) {
    say(errorText(await errorOf(response)), { error: true });
    return null;
  }
  return response;
}

/**
 * Downloads `href` through fetch, so that a failure shows the server's error instead of a JSON
 * page; `say(text, {error})` reports progress. Resolves when done (or failed).
 */
export async function download(href, fallbackName, say) {
  say(t("downloading", { name: fallbackName }));
  const response = await fetchOrSay(href, { cache: "no-store" }, say);
  if (!response) return;
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  const name = filenameOf(response, fallbackName);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(t("downloaded", { name }));
}

function filenameOf(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // a malformed name: use the plain one
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : fallback;
}
