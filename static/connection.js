// The one Socket.IO connection, and requests that resolve with the server's answer.

import { io } from "./vendor/socket.io-client/socket.io.esm.min.js";
import { t } from "./i18n.js";
import { toastError } from "./ui.js";

const ANSWER_TIMEOUT_MS = 15000;

export const socket = io({
  // WebSocket first (lowest delay to the first frame); long-polling if a proxy blocks it
  transports: ["websocket", "polling"],
  tryAllTransports: true,
  reconnection: true,
  reconnectionDelay: 500,
  reconnectionDelayMax: 3000,
  randomizationFactor: 0.3,
});

/**
 * Sends `event` and resolves with the server's answer, `{ok: true, ...}` or
 * `{ok: false, error}`. A failure is shown as a toast unless `quiet`.
 */
export function call(event, payload = {}, { quiet = false } = {}) {
  return new Promise((resolve) => {
    if (!socket.connected) {
      const error = { code: "offline", message: t("error_offline") };
      if (!quiet) toastError(error);
      resolve({ ok: false, error });
      return;
    }
    socket.timeout(ANSWER_TIMEOUT_MS).emit(event, payload, (err, answer) => {
      if (err || !answer || typeof answer !== "object") {
        const error = { code: "no_answer", message: t("error_no_answer") };
        if (!quiet) toastError(error);
        resolve({ ok: false, error });
        return;
      }
      if (!answer.ok && !quiet) toastError(answer.error);
      resolve(answer);
    });
  });
}
