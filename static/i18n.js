// Every string of the page, one table per language. Elements carry data-i18n="key" (text),
// data-i18n-label="key" (aria-label) or data-i18n-title="key" (title); dynamic text calls t().

const en = {
  title: "Teach the camera",
  page_title: "Teachable camera",
  switch_language: "日本語",
  switch_language_label: "日本語: switch to Japanese",
  toolbar: "Actions",
  undo: "Undo",
  undo_label: "Undo the last recording",
  reset: "Start over",
  reset_label: "Start over: delete every class",
  join: "Phone",
  join_label: "Join from a phone",
  project: "Project",
  project_label: "Export or open a project",
  reconnecting: "Reconnecting to the camera…",
  offline_hint: "Your changes wait until it is back.",

  see_title: "What the camera sees",
  live_view: "Live camera view",
  own_video: "Your camera",
  camera_starting: "The camera is starting…",
  camera_offline: "The camera is off",
  camera_waiting: "Waiting for pictures…",
  use_my_camera: "Use this device's camera",
  stop_my_camera: "Stop sending my camera",
  camera_needs_secure: "This browser only shares its camera on the kiosk itself (or over HTTPS).",
  camera_denied: "The camera could not be opened: {message}",

  verdict_empty: "Teach me something!",
  verdict_unknown: "Not sure…",
  verdict_maybe: "Maybe “{name}”?",
  verdict_no_examples: "Show me examples first",
  verdict_offline: "Waiting for the kiosk…",
  announce_label: "I think it is {name}",
  announce_unknown: "I am not sure",
  why_title: "Why it thinks so",
  why_help: "The examples that look most like this",
  why_empty: "Similar examples show up here.",
  scores_title: "How sure it is",
  scores_empty: "Add a class to start.",
  best_match: "best match",

  learn_title: "How it learns",
  method_legend: "Learning method",
  method_auto: "Auto",
  method_auto_help: "Instant, then fine-tunes itself: best overall, add classes any time.",
  method_imprinting: "Imprinting",
  method_imprinting_help:
    "Instant; works from 1 to ~200 examples a class (5 is already useful); best when a class looks alike; add classes any time.",
  method_backprop: "Backprop",
  method_backprop_help:
    "Most accurate with many, varied examples (angles, sizes); press Train; adding a class means training again.",
  method_knn: "KNN",
  method_knn_help: "Compares with the nearest examples, like Teachable Machine.",
  train: "Train",
  train_label: "Train with the examples",
  train_needed: "New examples: press Train to use them.",
  training_running: "Training… {percent}%",
  training_done: "Trained in {seconds} s: {percent}% of its examples right.",
  training_failed: "Training failed: {message}",
  chart_label: "Training progress: loss and accuracy",
  chart_accuracy: "accuracy",
  chart_loss: "loss",
  per_class_title: "Accuracy per class",

  teach_title: "Your classes",
  teach_help: "Hold a red button while you show the camera an example.",
  add_class: "Add class",
  default_class_name: "Class {n}",
  class_name_label: "Name of class {letter}",
  examples: "examples",
  example_one: "example",
  hold_to_record: "Hold to record",
  recording: "Recording… let go to stop",
  record_label: "Hold to record: {name}",
  someone_recording: "Recording on another device",
  clear: "Clear",
  clear_label: "Clear: remove every example of {name}",
  delete: "Delete",
  delete_label: "Delete the class {name}",
  strip_empty: "Pictures it matches show up here.",
  strip_label: "Recent examples of {name}",
  delete_example_label: "Delete this example",
  example_deleted: "Example deleted.",

  skip_too_dark: "Too dark: add some light.",
  skip_too_blurry: "Too blurry: hold still.",
  skip_full: "This class is full: delete some examples first.",

  confirm: "OK",
  cancel: "Cancel",
  close: "Close",
  pin: "Operator PIN",
  confirm_clear_title: "Clear “{name}”?",
  confirm_clear_text: "Its {count} examples will be removed. The class stays.",
  confirm_clear_ok: "Clear",
  confirm_delete_title: "Delete “{name}”?",
  confirm_delete_text: "The class and its {count} examples will be removed.",
  confirm_delete_ok: "Delete",
  confirm_reset_title: "Start over?",
  confirm_reset_text: "Every class and every example will be removed.",
  confirm_reset_ok: "Start over",
  undo_done: "Removed {count} examples.",
  undo_nothing: "Nothing to undo.",

  status_label: "Status",
  connected: "Connected",
  disconnected: "Offline",
  backend_edgetpu: "Edge TPU",
  backend_cpu: "CPU",
  backend_label: "Runs on",
  latency: "{ms} ms",
  latency_label: "Delay",
  fps: "{fps} fps",
  fps_label: "Pictures per second",
  camera_status_online: "Camera on",
  camera_status_offline: "Camera off",
  camera_status_starting: "Camera starting",
  camera_status_unknown: "Camera –",
  clients_one: "1 device",
  clients_many: "{count} devices",

  join_title: "Join from a phone",
  join_help: "Scan the code with a phone on the same network, or type this address:",
  qr_alt: "QR code of {url}",

  project_title: "Project",
  export_cpu: "Model for a computer (.tflite)",
  export_edgetpu: "Model for the Edge TPU (.tflite)",
  export_labels: "Labels (labels.txt)",
  export_project: "Save the project (.zip)",
  import_project: "Open a project (.zip)…",
  import_help: "Opening a project replaces every class.",
  import_done: "Project opened.",
  downloading: "Preparing {name}…",
  downloaded: "Downloaded {name}.",

  notices_label: "Notices",
  notice_no_edgetpu: "No Edge TPU: the camera runs on the CPU (slower).",
  notice_privacy: "Nothing you show the camera is saved.",

  attract_title: "Teach me!",
  attract_intro: "I am a camera that learns what you show me.",
  attract_start: "Touch to start",
  attract_steps: "How it works",
  attract_step_add: "Add a class",
  attract_step_add_help: "Give it a name: cup, hand, smile…",
  attract_step_hold: "Hold the red button",
  attract_step_hold_help: "while you show an example",
  attract_step_show: "Show the camera",
  attract_step_show_help: "and it guesses what it sees!",

  operator_page_title: "Operator — Teachable camera",
  operator_title: "Operator",
  back_to_kiosk: "Kiosk",
  back_to_kiosk_label: "Back to the kiosk page",
  lock: "Lock",
  lock_label: "Lock: forget the PIN in this tab",
  pin_title: "Enter the operator PIN",
  pin_help: "The PIN the kiosk was started with (--pin). It is kept in this browser tab only.",
  unlock: "Unlock",
  pin_wrong: "That PIN is not right. Try again.",
  pin_locked: "Too many wrong PINs. Wait a minute, then try again.",
  pin_empty: "Type the PIN first.",
  checking: "Checking…",
  live_title: "Live status",
  live_updated: "Updated {time}",
  live_offline: "The kiosk does not answer.",
  st_server: "Server",
  st_server_ok: "Running",
  st_server_stopped: "Stopped",
  st_backend: "Runs on",
  st_camera: "Camera",
  st_fps: "Pictures per second",
  st_clients: "Screens connected",
  st_classes: "Classes",
  st_examples: "Examples",
  st_visitor: "Visitor session",
  st_visitor_attract: "Attract screen showing",
  st_visitor_active: "A visitor is using it",
  st_idle: "Reset after",
  st_idle_value: "{minutes} min without a touch",
  st_preset: "Preset",
  st_preset_yes: "Saved",
  st_preset_no: "None",
  st_privacy: "Visitors' data",
  st_privacy_on: "Not saved (privacy)",
  st_privacy_off: "Kept on disk",
  st_notices: "Notices",
  st_notices_none: "None",
  settings_title: "Settings",
  field_camera: "Camera",
  field_default: "the server's setting",
  field_camera_help:
    "Examples: auto, 0, /dev/video0, synthetic, browser, folder:/path/to/photos. Empty: the server's --camera setting.",
  field_method: "Learning method",
  method_keep: "Keep the current method",
  field_unknown: "“Not sure” threshold",
  field_unknown_help: "0 to 0.5; higher says “not sure” more often. Default 0.05.",
  field_smoothing: "Smoothing",
  field_smoothing_help:
    "0 to 0.95; higher is steadier but slower to change. Empty: the server's setting.",
  field_idle: "Reset after (minutes without a touch)",
  field_idle_help: "0.5 to 240 minutes; then the next visitor starts from the preset.",
  field_keep: "Keep visitors' data on disk",
  field_keep_help: "Off (privacy): nothing visitors show the camera is written to disk.",
  save_settings: "Save settings",
  saving: "Saving…",
  saved: "Saved.",
  saved_restart: "Saved. This applies after a restart.",
  nothing_changed: "Nothing changed.",
  invalid_number: "{label}: a number from {min} to {max}.",
  preset_title: "Preset",
  preset_help:
    "What the kiosk goes back to after each visitor. Teach it on the kiosk, then save it here.",
  preset_none: "No preset yet: each visitor starts from an empty kiosk.",
  preset_some: "A preset is saved.",
  save_preset: "Save the current project as the preset",
  confirm_preset_title: "Save as the preset?",
  confirm_preset_text:
    "The kiosk's classes and examples as they are now become what every visitor starts from.",
  preset_done: "Preset saved. Classes: {classes}, examples: {examples}.",
  restore_preset: "Back to the preset now",
  restore_done: "Back to the preset. Classes: {classes}, examples: {examples}.",
  downloads_title: "Downloads",
  restart_title: "Restart",
  restart_help: "Camera and privacy changes need it. The kiosk is away for a few seconds.",
  restart: "Restart the server",
  confirm_restart_title: "Restart the server?",
  confirm_restart_text: "The kiosk goes blank for a few seconds; the current visitor's work is lost.",
  confirm_restart_ok: "Restart",
  restarting: "Restarting… this page reloads when the kiosk is back.",
  restart_slow: "Still waiting for the kiosk. If this lasts, check the service's log.",

  error_title: "That did not work",
  error_no_answer: "The kiosk did not answer. Try again.",
  error_offline: "Not connected: try again when it is back.",
  error_http: "The kiosk answered with error {status}.",
};

const ja = {
  title: "カメラに教えよう",
  page_title: "ティーチャブル・カメラ",
  switch_language: "English",
  switch_language_label: "English: 英語に切り替える",
  toolbar: "操作",
  undo: "元に戻す",
  undo_label: "元に戻す: 最後の録画を取り消す",
  reset: "最初から",
  reset_label: "最初からやり直す（全クラスを削除）",
  join: "スマホ",
  join_label: "スマホから参加する",
  project: "プロジェクト",
  project_label: "プロジェクトの書き出し・読み込み",
  reconnecting: "カメラに再接続しています…",
  offline_hint: "つながったら続きができます。",

  see_title: "カメラに見えているもの",
  live_view: "カメラのライブ映像",
  own_video: "この端末のカメラ",
  camera_starting: "カメラを起動しています…",
  camera_offline: "カメラが止まっています",
  camera_waiting: "映像を待っています…",
  use_my_camera: "この端末のカメラを使う",
  stop_my_camera: "カメラの送信を止める",
  camera_needs_secure:
    "このブラウザーでは、キオスク本体（または HTTPS）でのみカメラを使えます。",
  camera_denied: "カメラを開けませんでした: {message}",

  verdict_empty: "何か教えてね！",
  verdict_unknown: "自信がありません…",
  verdict_maybe: "もしかして「{name}」？",
  verdict_no_examples: "まずお手本を見せてね",
  verdict_offline: "キオスクを待っています…",
  announce_label: "これは {name} だと思います",
  announce_unknown: "自信がありません",
  why_title: "そう考えた理由",
  why_help: "いちばん似ているお手本",
  why_empty: "似ているお手本がここに出ます。",
  scores_title: "どのくらい自信があるか",
  scores_empty: "クラスを追加して始めましょう。",
  best_match: "いちばん近い",

  learn_title: "学び方",
  method_legend: "学習方法",
  method_auto: "おまかせ",
  method_auto_help:
    "すぐに使えて、そのあと自分で仕上げます。いちばんのおすすめ。クラスはいつでも追加できます。",
  method_imprinting: "インプリンティング",
  method_imprinting_help:
    "すぐに使えます。1クラスにお手本1〜約200枚（5枚でも十分役立ちます）。見た目がそろったクラスに向いています。クラスはいつでも追加できます。",
  method_backprop: "バックプロパゲーション",
  method_backprop_help:
    "いろいろな角度・大きさのお手本がたくさんあると、いちばん正確です。「学習する」を押してください。クラスを追加したら学習し直しです。",
  method_knn: "KNN（近傍法）",
  method_knn_help: "いちばん近いお手本と比べます（Teachable Machine と同じ方式）。",
  train: "学習する",
  train_label: "お手本で学習する",
  train_needed: "新しいお手本があります。「学習する」を押すと使われます。",
  training_running: "学習中… {percent}%",
  training_done: "{seconds} 秒で学習しました。お手本の {percent}% を正解。",
  training_failed: "学習に失敗しました: {message}",
  chart_label: "学習の進み具合（損失と正解率）",
  chart_accuracy: "正解率",
  chart_loss: "損失",
  per_class_title: "クラスごとの正解率",

  teach_title: "あなたのクラス",
  teach_help: "カメラにお手本を見せながら、赤いボタンを長押ししてください。",
  add_class: "クラスを追加",
  default_class_name: "クラス {n}",
  class_name_label: "クラス {letter} の名前",
  examples: "枚",
  example_one: "枚",
  hold_to_record: "長押しで録画",
  recording: "録画中… 指をはなすと止まります",
  record_label: "長押しで録画: {name}",
  someone_recording: "ほかの端末が録画中",
  clear: "空にする",
  clear_label: "空にする: 「{name}」のお手本をすべて消す",
  delete: "削除",
  delete_label: "削除: クラス「{name}」",
  strip_empty: "見分けた写真がここに出ます。",
  strip_label: "「{name}」の最近のお手本",
  delete_example_label: "このお手本を削除",
  example_deleted: "お手本を削除しました。",

  skip_too_dark: "暗すぎます。明るくしてください。",
  skip_too_blurry: "ぶれています。じっとしてください。",
  skip_full: "このクラスはいっぱいです。お手本を少し消してください。",

  confirm: "OK",
  cancel: "キャンセル",
  close: "閉じる",
  pin: "管理者の暗証番号",
  confirm_clear_title: "「{name}」を空にしますか？",
  confirm_clear_text: "お手本 {count} 枚を消します。クラスは残ります。",
  confirm_clear_ok: "空にする",
  confirm_delete_title: "「{name}」を削除しますか？",
  confirm_delete_text: "クラスとお手本 {count} 枚を削除します。",
  confirm_delete_ok: "削除する",
  confirm_reset_title: "最初からやり直しますか？",
  confirm_reset_text: "すべてのクラスとお手本を削除します。",
  confirm_reset_ok: "最初から",
  undo_done: "お手本を {count} 枚取り消しました。",
  undo_nothing: "取り消すものはありません。",

  status_label: "状態",
  connected: "接続中",
  disconnected: "オフライン",
  backend_edgetpu: "Edge TPU",
  backend_cpu: "CPU",
  backend_label: "処理",
  latency: "{ms} ミリ秒",
  latency_label: "遅れ",
  fps: "{fps} fps",
  fps_label: "1秒あたりのコマ数",
  camera_status_online: "カメラ オン",
  camera_status_offline: "カメラ オフ",
  camera_status_starting: "カメラ起動中",
  camera_status_unknown: "カメラ –",
  clients_one: "1 台接続",
  clients_many: "{count} 台接続",

  join_title: "スマホから参加",
  join_help: "同じネットワークのスマホでコードを読み取るか、このアドレスを開いてください:",
  qr_alt: "{url} の QR コード",

  project_title: "プロジェクト",
  export_cpu: "パソコン用モデル (.tflite)",
  export_edgetpu: "Edge TPU 用モデル (.tflite)",
  export_labels: "ラベル (labels.txt)",
  export_project: "プロジェクトを保存 (.zip)",
  import_project: "プロジェクトを開く (.zip)…",
  import_help: "プロジェクトを開くと、今のクラスはすべて置き換わります。",
  import_done: "プロジェクトを開きました。",
  downloading: "{name} を準備しています…",
  downloaded: "{name} をダウンロードしました。",

  notices_label: "お知らせ",
  notice_no_edgetpu: "Edge TPU がありません。カメラは CPU で動いています（少し遅くなります）。",
  notice_privacy: "カメラに見せたものは保存されません。",

  attract_title: "おしえてね！",
  attract_intro: "見せたものを おぼえる カメラだよ。",
  attract_start: "さわって スタート",
  attract_steps: "あそびかた",
  attract_step_add: "クラスを追加",
  attract_step_add_help: "名前をつけよう: コップ、手、えがお…",
  attract_step_hold: "赤いボタンを長押し",
  attract_step_hold_help: "お手本を見せているあいだ",
  attract_step_show: "カメラに見せる",
  attract_step_show_help: "何が見えるか当てるよ！",

  operator_page_title: "管理者 — ティーチャブル・カメラ",
  operator_title: "管理者ページ",
  back_to_kiosk: "キオスク",
  back_to_kiosk_label: "キオスクの画面にもどる",
  lock: "ロック",
  lock_label: "ロック: このタブの暗証番号を忘れる",
  pin_title: "管理者の暗証番号を入力",
  pin_help: "キオスクの起動時に決めた暗証番号（--pin）です。このタブの中だけに保存されます。",
  unlock: "開く",
  pin_wrong: "暗証番号が違います。もう一度入力してください。",
  pin_locked: "暗証番号の間違いが多すぎます。1分ほど待ってから、もう一度入力してください。",
  pin_empty: "先に暗証番号を入力してください。",
  checking: "確認しています…",
  live_title: "いまの状態",
  live_updated: "{time} 更新",
  live_offline: "キオスクが応答しません。",
  st_server: "サーバー",
  st_server_ok: "動作中",
  st_server_stopped: "停止中",
  st_backend: "処理",
  st_camera: "カメラ",
  st_fps: "1秒あたりのコマ数",
  st_clients: "接続中の画面",
  st_classes: "クラス",
  st_examples: "お手本",
  st_visitor: "来場者セッション",
  st_visitor_attract: "待ち受け画面を表示中",
  st_visitor_active: "来場者が使用中",
  st_idle: "リセットまで",
  st_idle_value: "操作がないまま {minutes} 分",
  st_preset: "プリセット",
  st_preset_yes: "保存済み",
  st_preset_no: "なし",
  st_privacy: "来場者のデータ",
  st_privacy_on: "保存しない（プライバシー）",
  st_privacy_off: "ディスクに保存",
  st_notices: "お知らせ",
  st_notices_none: "なし",
  settings_title: "設定",
  field_camera: "カメラ",
  field_default: "サーバーの設定",
  field_camera_help:
    "例: auto、0、/dev/video0、synthetic、browser、folder:/写真/の/場所。空欄: サーバーの --camera の設定。",
  field_method: "学習方法",
  method_keep: "今の方法のまま",
  field_unknown: "「自信がない」のしきい値",
  field_unknown_help: "0〜0.5。大きいほど「自信がありません」が増えます。標準は 0.05。",
  field_smoothing: "なめらかさ",
  field_smoothing_help: "0〜0.95。大きいほど安定しますが、変化が遅くなります。空欄: サーバーの設定。",
  field_idle: "リセットまでの時間（操作がない分数）",
  field_idle_help: "0.5〜240 分。そのあと次の来場者はプリセットから始めます。",
  field_keep: "来場者のデータをディスクに保存する",
  field_keep_help: "オフ（プライバシー）: 来場者がカメラに見せたものは何も保存されません。",
  save_settings: "設定を保存",
  saving: "保存しています…",
  saved: "保存しました。",
  saved_restart: "保存しました。再起動すると反映されます。",
  nothing_changed: "変更はありません。",
  invalid_number: "{label}: {min}〜{max} の数を入力してください。",
  preset_title: "プリセット",
  preset_help: "来場者ごとにキオスクがもどる状態です。キオスクで教えてから、ここで保存してください。",
  preset_none: "プリセットはまだありません。来場者は空のキオスクから始めます。",
  preset_some: "プリセットが保存されています。",
  save_preset: "今のプロジェクトをプリセットとして保存",
  confirm_preset_title: "プリセットとして保存しますか？",
  confirm_preset_text: "今のクラスとお手本が、すべての来場者のスタート地点になります。",
  preset_done: "プリセットを保存しました。クラス: {classes}、お手本: {examples}。",
  restore_preset: "今すぐプリセットにもどす",
  restore_done: "プリセットにもどしました。クラス: {classes}、お手本: {examples}。",
  downloads_title: "ダウンロード",
  restart_title: "再起動",
  restart_help: "カメラとプライバシーの変更に必要です。キオスクは数秒間止まります。",
  restart: "サーバーを再起動",
  confirm_restart_title: "サーバーを再起動しますか？",
  confirm_restart_text: "キオスクは数秒間止まり、今の来場者の作業は消えます。",
  confirm_restart_ok: "再起動",
  restarting: "再起動しています… キオスクがもどるとこのページを読み込み直します。",
  restart_slow: "まだキオスクを待っています。長く続くときはサービスのログを確認してください。",

  error_title: "うまくいきませんでした",
  error_no_answer: "キオスクから返事がありません。もう一度試してください。",
  error_offline: "接続されていません。つながってから試してください。",
  error_http: "キオスクがエラー {status} を返しました。",
};

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

const NOTICES = new Set(["no_edgetpu", "privacy"]);

/** A server notice (`{code, message}` of `state.notices`) in the current language. */
export function noticeText(notice) {
  if (notice && NOTICES.has(notice.code)) return t(`notice_${notice.code}`);
  return (notice && notice.message) || "";
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
