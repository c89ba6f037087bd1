// impasto web app: pick a photo and paintings, submit a job, follow it over server-sent events, show the result.
// Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const PREFS_KEY = "impasto.prefs.v1";
const SIZE_CHOICES = [256, 384, 512, 768, 1024, 1536, 2048];
// Options this page shows with widgets of its own; every other option a method declares gets a generated control.
const BESPOKE = new Set(["size", "style_weights", "preserve_color", "seed", "model"]);

const state = {
  info: null, // GET /api/info
  methods: [], // GET /api/methods
  builtins: [], // GET /api/styles: the fast method's built-in styles
  builtin: null, // the chosen built-in style's name
  method: null, // the chosen method's description
  content: null, // {file, url, width, height, name, video, duration}: width and height null for a clip this
  // browser cannot decode (the server may still read it)
  temporals: {}, // the video slider's value per method, once moved there (else the method's default)
  videoUrl: null, // the painted video on screen: its object URL, revoked when the canvas moves on
  styles: [], // [{file, url, weight}]
  size: 512,
  keepColors: false,
  keepMode: "luminance",
  controls: [], // the chosen method's generated controls: [{name, field, input, read}]
  values: {}, // per method, the values last set in its generated controls: {method: {option: value}}
  job: null, // the running job: {id, events, started, timer, method, cancelling, settings}
  view: null, // what the canvas shows: {kind: "result"|"preview"|"placeholder", item}
  gallery: [], // the history, newest first: [{id, url, name, label, method, width, height, seconds, when, ...}]
  down: false, // the server stopped answering
  rerun: false, // a setting changed during a one-pass job: paint again when it ends
  autoTimer: null,
  restoring: false, // a history entry or the example is being set up: no automatic repaint, no second one
  lostAt: 0, // bumped each time the server is found gone: older answers no longer count
};

// ---------------------------------------------------------------------------------------------- small helpers

// One status line tells what is going on; a problem stays in it, marked, until the next action.
function problem(message) {
  const el = $("status-text");
  el.textContent = message;
  el.classList.add("error");
}

function clearProblem() {
  if (!state.down && $("status-text").classList.contains("error")) setStatus("Ready when you are.");
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText || "error"}`;
}

function fmtTime(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "–";
  seconds = Math.round(seconds);
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m ? `${m}:${String(s).padStart(2, "0")}` : `${s} s`;
}

function fmtBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
}

function setFill(range) {
  const min = Number(range.min || 0), max = Number(range.max || 100);
  const pct = max > min ? ((Number(range.value) - min) / (max - min)) * 100 : 100;
  range.style.setProperty("--fill", `${pct}%`);
}

function savePrefs() {
  const prefs = {
    method: state.method && state.method.name,
    size: state.size,
    keepColors: state.keepColors,
    keepMode: state.keepMode,
    values: state.values,
    builtin: state.builtin,
  };
  try { localStorage.setItem(PREFS_KEY, JSON.stringify(prefs)); } catch (_) { /* private mode */ }
}

function loadPrefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") || {}; } catch (_) { return {}; }
}

function option(name) {
  return state.method ? state.method.options.find((o) => o.name === name) : undefined;
}

function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

// ---------------------------------------------------------------------------------------------- inputs

// What a file is, in words: "HEIC", "AVIF", "SVG"... from its type, else from its name.
function formatName(file) {
  const sub = (file.type || "").split("/")[1] || (file.name.split(".").pop() || "");
  const name = sub.replace(/^x-/, "").replace(/\+xml$/, "").toUpperCase();
  return name || "this kind of";
}

function limits() {
  return state.info ? state.info.limits : { max_pixels: Infinity, max_size: 4096, max_upload_bytes: Infinity };
}

// A video goes to the server as it is (it decodes any container FFmpeg reads); the browser only reads its size and
// length, where it can, to show them and to check the server's caps before the upload.
const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|avi|ts|mts|m2ts|ogv|3gp)$/i;

function isVideo(file) {
  return (file.type || "").startsWith("video/") || VIDEO_NAME.test(file.name || "");
}

function videoMeta(url) {
  return new Promise((resolve) => {
    const v = document.createElement("video");
    v.muted = true;
    v.preload = "metadata";
    let timer = null;
    const done = (meta) => {
      clearTimeout(timer);
      v.removeAttribute("src");
      v.load();
      resolve(meta);
    };
    timer = setTimeout(() => done(null), 5000);
    v.addEventListener("loadedmetadata", () => done(v.videoWidth
      ? { width: v.videoWidth, height: v.videoHeight, duration: Number.isFinite(v.duration) ? v.duration : null }
      : null));
    v.addEventListener("error", () => done(null));
    v.src = url;
  });
}

async function prepareVideo(file) {
  const lim = limits();
  if (file.size > lim.max_upload_bytes) {
    problem(`${file.name} is ${fmtBytes(file.size)}; this server takes at most ${fmtBytes(lim.max_upload_bytes)} ` +
      "in one upload. Use a shorter or smaller clip (or impasto video on the command line, which takes any length).");
    return null;
  }
  const url = URL.createObjectURL(file);
  const meta = await videoMeta(url);
  if (meta && meta.width * meta.height > lim.max_pixels) {
    URL.revokeObjectURL(url);
    problem(`${file.name} is ${meta.width} × ${meta.height}; this server takes at most ` +
      `${(lim.max_pixels / 1e6).toFixed(0)} megapixels a frame. Use a smaller clip.`);
    return null;
  }
  return {
    file, url, video: true, width: meta ? meta.width : null, height: meta ? meta.height : null,
    duration: meta ? meta.duration : null, note: meta ? "" : "this browser cannot play it; the server will read it",
  };
}

// Check a picture in the browser before it goes anywhere: one the server cannot read, or one above its caps, is
// converted or shrunk here (said in `note`); one this browser cannot open is named plainly. Null when refused.
async function prepare(file, role) {
  if (file.type && !file.type.startsWith("image/")) {
    problem(`${file.name} is not a picture: choose a ${role} in JPEG, PNG, WebP or AVIF.`);
    return null;
  }
  const url = URL.createObjectURL(file);
  const dims = await imageSize(url);
  if (!dims) {
    URL.revokeObjectURL(url);
    problem(`${file.name}: ${formatName(file)} pictures cannot be opened here, so this ${role} cannot be used. ` +
      "Save it as JPEG or PNG and add it again.");
    return null;
  }
  const lim = limits();
  const readable = !file.type || !state.info || state.info.formats.includes(file.type);
  const pixels = dims.width * dims.height;
  const heavy = file.size > 0.45 * lim.max_upload_bytes; // the photo and the paintings share one upload
  if (readable && pixels <= lim.max_pixels && !heavy) return { file, url, ...dims, note: "" };
  // Redraw it here: at most the server's largest output for a photo (twice that for a painting), within its caps.
  const longest = role === "photo" ? lim.max_size : 2 * lim.max_size;
  const scale = Math.min(1, longest / Math.max(dims.width, dims.height), Math.sqrt((0.98 * lim.max_pixels) / pixels));
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch (_) {
    URL.revokeObjectURL(url);
    problem(`${file.name}: this ${role} could not be read here; save it as JPEG or PNG and add it again.`);
    return null;
  }
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(dims.width * scale));
  canvas.height = Math.max(1, Math.round(dims.height * scale));
  canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
  URL.revokeObjectURL(url);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.93));
  if (!blob) {
    problem(`${file.name}: this ${role} is too large for this browser to prepare; make it smaller and add it again.`);
    return null;
  }
  const stem = file.name.replace(/\.[^.]*$/, "") || role;
  const made = new File([blob], `${stem}.jpg`, { type: "image/jpeg" });
  const note = scale < 1
    ? `shrunk here from ${dims.width} × ${dims.height} (the server takes at most ${(lim.max_pixels / 1e6).toFixed(0)} megapixels)`
    : `${formatName(file)} converted to JPEG here (the server reads ${state.info.formats.map((t) => t.split("/")[1].toUpperCase()).join(", ")})`;
  return { file: made, url: URL.createObjectURL(made), width: canvas.width, height: canvas.height, note };
}

let contentToken = 0;

// True once `file` is the thing to repaint; false when it was refused (the reason is said); null when a later choice
// overtook it while it was being read.
async function setContent(file) {
  clearProblem();
  const token = ++contentToken;
  const ready = isVideo(file) ? await prepareVideo(file) : await prepare(file, "photo");
  if (!ready) return false;
  if (token !== contentToken) { // a later photo was chosen while this one was being read
    URL.revokeObjectURL(ready.url);
    return null;
  }
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = { file: ready.file, url: ready.url, width: ready.width, height: ready.height, name: file.name,
    video: !!ready.video, duration: ready.duration };
  const thumb = $("content-thumb"), clip = $("content-video"), box = $("content-clip");
  thumb.hidden = clip.hidden = box.hidden = true;
  thumb.removeAttribute("src");
  clip.removeAttribute("src");
  clip.load(); // let go of the previous clip
  if (ready.video && !ready.width) { // this browser cannot decode it: its name instead of a black frame
    box.querySelector("strong").textContent = file.name;
    box.hidden = false;
  } else if (ready.video) {
    clip.src = ready.url;
    clip.hidden = false;
  } else {
    thumb.src = ready.url;
    thumb.hidden = false;
  }
  $("content-drop").classList.add("filled");
  $("content-clear").hidden = false;
  $("content-meta").hidden = false;
  const parts = [ready.width ? `${ready.width} × ${ready.height}` : "", ready.duration ? fmtTime(ready.duration) : "",
    fmtBytes(ready.file.size), ready.video ? "video" : "", ready.note];
  $("content-meta").textContent = parts.filter(Boolean).join(" · ");
  if (!state.job && (!state.view || state.view.kind === "placeholder")) showPlaceholder();
  refresh();
  return true;
}

function clearContent() {
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = null;
  for (const id of ["content-thumb", "content-video"]) {
    $(id).hidden = true;
    $(id).removeAttribute("src");
  }
  $("content-clip").hidden = true;
  $("content-video").load();
  $("content-drop").classList.remove("filled");
  $("content-clear").hidden = true;
  $("content-meta").hidden = true;
  if (state.view && state.view.kind === "placeholder") showEmpty();
  refresh();
}

async function addStyles(files, weights = []) {
  clearProblem();
  const max = state.info ? state.info.limits.max_styles : 8;
  for (const [i, file] of files.entries()) {
    if (state.styles.length >= max) {
      problem(`At most ${max} paintings per picture.`);
      break;
    }
    const ready = await prepare(file, "painting");
    if (!ready) continue;
    const item = { file: ready.file, url: ready.url, weight: weights[i] != null ? weights[i] : 5, name: file.name };
    state.styles.push(item);
    const card = $("style-card").content.firstElementChild.cloneNode(true);
    card.querySelector("img").src = item.url;
    card.querySelector("img").alt = `Style: ${file.name}`;
    card.title = file.name;
    const row = $("blend-row").content.firstElementChild.cloneNode(true);
    row.querySelector("img").src = item.url;
    row.title = file.name;
    const range = row.querySelector("input");
    range.setAttribute("aria-label", `Blend weight of ${file.name}`);
    const out = row.querySelector("output");
    const badge = card.querySelector("figcaption");
    range.value = String(item.weight);
    range.addEventListener("input", () => {
      item.weight = Number(range.value);
      setFill(range);
      updateWeights();
    });
    range.addEventListener("change", autoRender);
    card.querySelector(".remove").addEventListener("click", () => removeStyle(item, true));
    item.card = card;
    item.row = row;
    item.range = range;
    item.out = out;
    item.badge = badge;
    setFill(range);
    $("styles").insertBefore(card, $("style-drop"));
    $("blend-rows").append(row);
  }
  updateWeights();
}

function removeStyle(item, focus) {
  state.styles = state.styles.filter((s) => s !== item);
  URL.revokeObjectURL(item.url);
  item.card.remove();
  item.row.remove();
  updateWeights();
  if (focus) $("style-drop").focus(); // the removed card had the focus
}

function updateWeights() {
  const total = state.styles.reduce((a, s) => a + s.weight, 0);
  for (const s of state.styles) {
    s.out.textContent = total > 0 ? `${Math.round((100 * s.weight) / total)}%` : "0%";
    s.badge.textContent = s.out.textContent;
  }
  refresh();
}

function wireDrop(zone, input, onFiles) {
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = "";
  });
  let depth = 0;
  zone.addEventListener("dragenter", (e) => { e.preventDefault(); depth++; zone.classList.add("over"); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; zone.classList.remove("over"); } });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    depth = 0;
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files];
    if (files.length) onFiles(files);
  });
}

// Files dropped or pasted anywhere else: the photo first, then paintings.
async function takeLoose(files) {
  const clip = files.find(isVideo); // a video can only be the thing to repaint
  // A refused clip's reason stays on screen: the pictures dropped with it do not take its place.
  if (clip && (await setContent(clip)) === false) return;
  files = files.filter((f) => !isVideo(f) && (!f.type || f.type.startsWith("image/")));
  if (!files.length) return;
  if (!state.content) await setContent(files.shift());
  if (files.length && !usesGallery()) await addStyles(files);
}

// ---------------------------------------------------------------------------------------------- methods and settings

function buildMethods(prefs) {
  const box = $("methods");
  box.textContent = "";
  for (const m of state.methods) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "radio");
    b.dataset.method = m.name;
    b.title = m.title;
    const name = document.createElement("span");
    name.textContent = m.name === "gatys" ? "Gatys" : m.name === "adain" ? "AdaIN" : m.name;
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = m.iterative ? "optimized · finest" : "one pass · instant";
    b.append(name, sub);
    b.addEventListener("click", () => { if (state.method !== m) chooseMethod(m.name); });
    box.append(b);
  }
  const wanted = state.methods.find((m) => m.name === prefs.method) ? prefs.method : firstRunMethod();
  chooseMethod(state.methods.find((m) => m.name === wanted) ? wanted : state.methods[0].name, false);
}

// A first visit starts with something that answers in seconds: the built-in styles when the server has them, else a
// one-pass method; the optimization (minutes on a laptop) is one click away.
function firstRunMethod() {
  const onePass = state.methods.filter((m) => !m.iterative);
  const gallery = onePass.find((m) => m.style_images === false);
  if (gallery && state.builtins.length) return gallery.name;
  const own = onePass.find((m) => m.style_images !== false);
  return own ? own.name : state.info.default_method;
}

// ---- choice groups: one tab stop each; the arrow keys, Home and End move the choice (WAI-ARIA radio group)

function roving(box) {
  box.addEventListener("keydown", (e) => {
    const items = [...box.querySelectorAll('[role="radio"]')].filter((b) => !b.hidden && !b.disabled);
    const i = items.indexOf(document.activeElement);
    if (i < 0) return;
    const moves = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    const next = items[(moves[e.key] + items.length) % items.length];
    next.focus();
    next.click();
  });
}

function syncRoving(box) {
  const items = [...box.querySelectorAll('[role="radio"]')];
  const checked = items.find((b) => b.getAttribute("aria-checked") === "true" && !b.hidden) || items.find((b) => !b.hidden);
  for (const b of items) b.tabIndex = b === checked ? 0 : -1;
}

// Methods that paint trained styles (style_images false) choose from the built-in gallery instead of uploads.
function usesGallery() {
  return !!state.method && state.method.style_images === false;
}

function buildBuiltins() {
  const box = $("builtins");
  box.textContent = "";
  for (const s of state.builtins) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "builtin";
    b.setAttribute("role", "radio");
    b.dataset.name = s.name;
    const label = s.name.replace(/_/g, " ");
    b.title = `${label}: the example photo painted in this style by impasto`;
    const img = document.createElement("img");
    img.src = s.thumbnail_url;
    img.alt = "";
    img.loading = "lazy";
    const cap = document.createElement("span");
    cap.textContent = label;
    b.append(img, cap);
    b.addEventListener("click", () => chooseBuiltin(s.name));
    box.append(b);
  }
  // Beside the gallery: a painting of one's own, painted by the arbitrary-style method.
  const own = state.methods.find((m) => m.style_images !== false && !m.iterative) || state.methods.find((m) => m.style_images !== false);
  if (own) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "builtin builtin-own";
    b.title = `Upload a painting of your own (uses ${own.name})`;
    b.innerHTML = '<span class="plus" aria-hidden="true">+</span><span>your own painting</span>';
    b.addEventListener("click", () => {
      chooseMethod(own.name);
      $("style-drop").focus();
    });
    box.append(b);
  }
  if (!state.builtins.some((s) => s.name === state.builtin)) state.builtin = state.builtins.length ? state.builtins[0].name : null;
  markBuiltin();
}

function chooseBuiltin(name) {
  if (state.builtin === name) return;
  clearProblem();
  state.builtin = name;
  markBuiltin();
  savePrefs();
  refresh();
  autoRender();
}

function markBuiltin() {
  for (const b of $("builtins").children) {
    if (b.dataset.name) b.setAttribute("aria-checked", String(b.dataset.name === state.builtin));
  }
  syncRoving($("builtins"));
}

function chooseMethod(name, save = true) {
  state.method = state.methods.find((m) => m.name === name);
  const gallery = usesGallery();
  $("styles").hidden = gallery;
  $("builtins").hidden = !gallery;
  for (const b of $("methods").children) b.setAttribute("aria-checked", String(b.dataset.method === name));
  syncRoving($("methods"));
  if (save) clearProblem();
  const about = state.method.iterative
    ? "Optimizes the picture step by step; you watch it form. Best quality, takes a while."
    : "Paints the picture in one pass of a trained network: seconds.";
  $("method-about").textContent = ["gatys", "adain"].includes(name) ? about : state.method.title || about;
  $("method-about").title = state.method.description || "";
  for (const el of document.querySelectorAll("[data-option]")) {
    const o = option(el.dataset.option);
    el.hidden = !o;
    if (o) el.title = o.description || "";
  }
  buildControls();
  const size = option("size");
  if (size) buildSizes(size);
  const seed = option("seed");
  if (seed) {
    for (const key of ["min", "max"]) {
      const bound = seed[key === "min" ? "minimum" : "maximum"];
      if (bound != null) $("seed").setAttribute(key, String(bound));
      else $("seed").removeAttribute(key);
    }
    $("seed").title = seed.description || "";
  }
  const weights = option("style_weights");
  if (weights) $("blend-label").textContent = weights.label || "Blend";
  const keep = option("preserve_color");
  if (keep && keep.choices) {
    const modes = keep.choices.filter((c) => c !== "none");
    for (const b of $("keep-mode").children) b.hidden = !modes.includes(b.dataset.value);
    if (modes.length && !modes.includes(state.keepMode)) state.keepMode = modes[0];
    $("keep-colors").disabled = !modes.length;
  }
  if (keep) setKeepColors(state.keepColors);
  showTemporal();
  if (state.view && state.view.kind === "placeholder") showPlaceholder();
  $("keep-mode-field").hidden = !(option("preserve_color") && state.keepColors);
  if (save) savePrefs();
  refresh();
}

// ---- generated controls: one per option of the chosen method that has no widget of its own above

function decimals(x) {
  const text = String(x);
  return text.includes("e-") ? Number(text.split("e-")[1]) : (text.split(".")[1] || "").length;
}

// The slider's grid: `step` apart and through the default (a range input snaps to min + k * step).
function sliderMin(o, step) {
  const anchor = o.default;
  if (typeof anchor !== "number" || anchor < o.minimum || anchor > o.maximum) return o.minimum;
  const k = Math.floor((anchor - o.minimum) / step + 1e-9);
  return Number((anchor - k * step).toFixed(decimals(step) + 3));
}

function remembered(o) {
  const saved = (state.values[state.method.name] || {})[o.name];
  return saved === undefined ? o.default : saved;
}

function remember(name, value) {
  const mine = state.values[state.method.name] || (state.values[state.method.name] = {});
  mine[name] = value;
  savePrefs();
}

function makeControl(o) {
  const id = `opt-${o.name}`;
  const field = document.createElement("div");
  field.className = "field";
  field.dataset.generated = o.name;
  field.title = o.description || "";
  const label = document.createElement("label");
  label.htmlFor = id;
  const text = document.createElement("span");
  text.textContent = o.label || o.name;
  label.append(text);
  const initial = remembered(o);
  const numeric = o.type === "integer" || o.type === "number";
  let input;
  let read;
  let show = () => {};
  if (Array.isArray(o.choices) && o.choices.length) {
    input = document.createElement("select");
    for (const choice of o.choices) {
      const item = document.createElement("option");
      item.value = choice;
      item.textContent = choice;
      input.append(item);
    }
    input.value = o.choices.includes(initial) ? initial : o.choices.includes(o.default) ? o.default : o.choices[0];
    read = () => input.value;
  } else if (o.type === "boolean") {
    field.classList.add("field-row");
    label.classList.add("label");
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = initial === true || initial === "true";
    read = () => input.checked;
  } else if (numeric && o.minimum != null && o.maximum != null) {
    input = document.createElement("input");
    input.type = "range";
    const step = o.step || (o.type === "integer" ? 1 : (o.maximum - o.minimum) / 100);
    input.min = String(sliderMin(o, step));
    input.max = String(o.maximum);
    input.step = String(step);
    input.value = String(initial != null ? initial : o.default != null ? o.default : o.minimum);
    const out = document.createElement("output");
    out.htmlFor = id;
    label.append(out);
    const places = o.type === "integer" ? 0 : decimals(step);
    show = () => {
      out.textContent = Number(input.value).toFixed(places);
      setFill(input);
    };
    read = () => Number(input.value);
  } else {
    input = document.createElement("input");
    if (numeric) {
      input.type = "number";
      if (o.minimum != null) input.min = String(o.minimum);
      if (o.maximum != null) input.max = String(o.maximum);
      input.step = o.step ? String(o.step) : o.type === "integer" ? "1" : "any";
      input.inputMode = o.type === "integer" ? "numeric" : "decimal";
    } else {
      input.type = "text";
      input.spellcheck = false;
    }
    const shown = (v) => (v == null ? "" : Array.isArray(v) ? v.join(",") : String(v));
    input.value = shown(initial);
    input.placeholder = shown(o.default) || "default";
    read = () => input.value.trim();
  }
  input.id = id;
  input.name = o.name;
  input.title = o.description || "";
  input.addEventListener("input", () => { show(); refresh(); });
  input.addEventListener("change", () => {
    remember(o.name, read());
    if (input.type === "range" || input.tagName === "SELECT" || input.type === "checkbox") autoRender();
  });
  field.append(label, input);
  return { name: o.name, field, input, read, show };
}

function buildControls() {
  const box = $("method-options");
  box.textContent = "";
  state.controls = state.method.options.filter((o) => !BESPOKE.has(o.name)).map(makeControl);
  for (const c of state.controls) {
    box.append(c.field);
    c.show();
  }
  box.hidden = !state.controls.length;
}

function buildSizes(opt) {
  const max = opt.maximum || 1024;
  const min = opt.minimum || 1;
  const choices = SIZE_CHOICES.filter((s) => s <= max && s >= min);
  if (!choices.includes(max) && max < SIZE_CHOICES[SIZE_CHOICES.length - 1]) choices.push(max);
  if (opt.default && opt.default <= max && opt.default >= min && !choices.includes(opt.default)) {
    choices.push(opt.default);
    choices.sort((a, b) => a - b);
  }
  if (!choices.includes(state.size)) state.size = choices.includes(opt.default) ? opt.default : choices[0];
  const box = $("sizes");
  box.textContent = "";
  for (const s of choices) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "radio");
    b.dataset.value = String(s);
    b.textContent = String(s);
    b.addEventListener("click", () => {
      if (state.size === s) return;
      state.size = s;
      markSize();
      savePrefs();
      if (state.view && state.view.kind === "placeholder") showPlaceholder();
      refresh();
      autoRender();
    });
    box.append(b);
  }
  markSize();
}

function markSize() {
  for (const b of $("sizes").children) b.setAttribute("aria-checked", String(Number(b.dataset.value) === state.size));
  syncRoving($("sizes"));
  $("size-out").textContent = `${state.size} px`;
  showTemporal(); // (a method may take a lighter blend on larger videos)
}

// The video slider: the method's own default until moved (lighter for large sizes where the method says so).
function temporalValue() {
  if (!state.method) return 0.5;
  const moved = state.temporals[state.method.name];
  if (moved != null) return moved;
  const m = state.method;
  // Paintings uploaded as styles (the fast method's model for any painting) take their own, lighter blend.
  const images = !usesGallery() && m.video_temporal_style_images != null;
  let value = images ? m.video_temporal_style_images : m.video_temporal != null ? m.video_temporal : 0.5;
  for (const [side, strength] of m.video_temporal_above || []) if (state.size > side) value = strength;
  return value;
}

function showTemporal() {
  const input = $("temporal");
  input.value = String(temporalValue());
  $("temporal-out").textContent = Number(input.value).toFixed(2);
  setFill(input);
}

function setKeepColors(on) {
  state.keepColors = on;
  $("keep-colors").setAttribute("aria-checked", String(on));
  $("keep-mode-field").hidden = !(on && option("preserve_color"));
  for (const b of $("keep-mode").children) b.setAttribute("aria-checked", String(b.dataset.value === state.keepMode));
  syncRoving($("keep-mode"));
}

function refresh() {
  const gallery = usesGallery();
  const single = state.styles.length <= 1 || !option("style_weights");
  $("styles").classList.toggle("single", single);
  $("blend").hidden = single || gallery;
  const video = !!(state.content && state.content.video);
  $("video-field").hidden = !video;
  $("styles-count").textContent = gallery
    ? (state.builtin ? state.builtin.replace(/_/g, " ") : "")
    : state.styles.length ? `${state.styles.length} selected` : "";
  const weightsOk = single || state.styles.some((s) => s.weight > 0);
  const ready = state.content && (gallery ? !!state.builtin : state.styles.length > 0 && weightsOk);
  $("go").disabled = !ready || !!state.job || !state.method || !!live.ws || state.down;
  let hint = "";
  if (state.down) hint = "Waiting for the server to come back…";
  else if (!state.method) hint = "Connecting to the server…";
  else if (gallery && !state.builtins.length) hint = "No built-in styles are installed on the server.";
  else if (gallery && !state.content) hint = "Add the photo to repaint, or try the example.";
  else if (ready && video) hint = state.method.iterative
    ? "Paints every frame by optimization: minutes for each second of video."
    : "Paints every frame: progress counts them.";
  else if (gallery) hint = "Takes a second or two.";
  else if (!state.content && !state.styles.length) hint = "Add a photo and a painting, or try the example.";
  else if (!state.content) hint = "Add the photo to repaint.";
  else if (!state.styles.length) hint = "Add at least one painting.";
  else if (!weightsOk) hint = "Give at least one painting some weight.";
  else if (state.method.iterative) hint = "Takes a while: you watch the picture form as it goes.";
  else hint = "Takes a few seconds.";
  $("go-hint").textContent = hint;
}

// ---------------------------------------------------------------------------------------------- the canvas

function showEmpty() {
  state.view = null;
  $("canvas").classList.add("empty");
  $("empty-state").hidden = false;
  $("view").hidden = true;
  hideVideo();
  $("badge").hidden = true;
  $("compare").hidden = true;
  $("download-group").hidden = true;
}

// The output's expected size: the photo scaled so its longest side is the chosen size.
function targetDims() {
  if (!state.content || !state.content.width) return null;
  const { width: w, height: h } = state.content;
  if (!option("size")) return { width: w, height: h };
  const s = state.size / Math.max(w, h);
  return { width: Math.max(1, Math.round(w * s)), height: Math.max(1, Math.round(h * s)) };
}

// Placeholder, previews and result share one box on screen, so the picture forms in place (small ones enlarged).
function fit(dims, img = $("view")) {
  if (!dims) {
    img.style.width = "";
    img.style.height = "";
    return;
  }
  const box = $("canvas").getBoundingClientRect();
  const scale = Math.min((box.width - 48) / dims.width, (box.height - 48) / dims.height, 4);
  img.style.width = `${Math.round(dims.width * scale)}px`;
  img.style.height = `${Math.round(dims.height * scale)}px`;
}

function showImage(url, kind, badge, dims) {
  const view = $("view");
  hideVideo();
  fit(dims);
  $("canvas").classList.remove("empty");
  $("empty-state").hidden = true;
  view.src = url;
  view.hidden = false;
  view.classList.toggle("placeholder", kind === "placeholder");
  view.classList.toggle("preview", kind === "preview");
  view.alt = kind === "result" ? "The stylized picture" : kind === "preview" ? "The picture as it forms" : "Your photo";
  $("badge").hidden = !badge;
  $("badge").textContent = badge || "";
}

// A clip in the canvas: the one to paint, dimmed and still, or a painted one playing (muted at first, as browsers
// require for playing by itself; its controls turn the sound on).
function showVideo(url, kind, badge, dims) {
  const v = $("view-video");
  $("view").hidden = true;
  $("canvas").classList.remove("empty");
  $("empty-state").hidden = true;
  fit(dims, v);
  const result = kind === "result";
  v.classList.toggle("placeholder", !result);
  v.controls = result;
  v.muted = true;
  v.autoplay = result;
  v.setAttribute("aria-label", result ? "The stylized video" : "Your video");
  if (state.videoUrl && state.videoUrl !== url) releaseVideo();
  if (result) state.videoUrl = url;
  if (v.getAttribute("src") !== url) v.src = url;
  v.hidden = false;
  if (result) v.play().catch(() => {});
  else v.pause();
  $("badge").hidden = !badge;
  $("badge").textContent = badge || "";
}

function hideVideo() {
  const v = $("view-video");
  if (!v.hidden) {
    v.pause();
    v.hidden = true;
    v.removeAttribute("src");
    v.load();
  }
  releaseVideo();
}

// A painted video is not in the history: once the canvas shows something else, nothing links to it (the download
// link is hidden or pointed elsewhere at the same time), so its memory goes.
function releaseVideo() {
  if (!state.videoUrl) return;
  URL.revokeObjectURL(state.videoUrl);
  state.videoUrl = null;
}

function showPlaceholder() {
  if (!state.content) return showEmpty();
  state.view = { kind: "placeholder", dims: targetDims() };
  view().style.filter = "";
  if (state.content.video) {
    showVideo(state.content.url, "placeholder", state.content.width ? "" : "This browser cannot show this video",
      state.view.dims);
  } else {
    showImage(state.content.url, "placeholder", "", state.view.dims);
  }
  $("compare").hidden = true;
  $("download-group").hidden = true;
}

function view() { return $("view"); }

function showResult(item) {
  const dims = item.width ? { width: item.width, height: item.height } : null;
  state.view = { kind: "result", item, dims };
  view().style.filter = "";
  const size = item.width ? ` · ${item.width}×${item.height}` : "";
  if (item.video) showVideo(item.url, "result", `${item.method} · video${size} · ${fmtTime(item.seconds)}`, dims);
  else showImage(item.url, "result", `${item.method}${size} · ${fmtTime(item.seconds)}`, dims);
  const dl = $("download");
  dl.href = item.url;
  dl.download = `${item.name}.${item.video ? "mp4" : "png"}`;
  $("download-format").hidden = !!item.video; // the MP4 as it is: no other format to pick
  $("download-group").hidden = false;
  $("compare").hidden = !item.originalUrl;
  for (const b of $("gallery").querySelectorAll("button.entry")) b.setAttribute("aria-current", String(b.dataset.id === item.id));
}

function compare(on) {
  const item = state.view && state.view.kind === "result" ? state.view.item : null;
  if (!item || !item.originalUrl) return;
  const orig = $("view-original");
  if (on) {
    orig.src = item.originalUrl;
    orig.style.width = view().style.width;
    orig.style.height = view().style.height;
    orig.hidden = false;
    view().style.opacity = "0";
  } else {
    orig.hidden = true;
    view().style.opacity = "";
  }
}

// ---------------------------------------------------------------------------------------------- running a job

function setProgress(fraction, indeterminate) {
  const bar = $("progress");
  bar.classList.toggle("indeterminate", !!indeterminate);
  const pct = Math.max(0, Math.min(100, fraction * 100));
  $("progress-fill").style.width = `${pct}%`;
  if (indeterminate) bar.removeAttribute("aria-valuenow"); // a busy bar with no measure (ARIA: no value)
  else bar.setAttribute("aria-valuenow", String(Math.round(pct)));
}

function setStatus(html) {
  const el = $("status-text");
  el.classList.remove("error");
  el.innerHTML = html;
}

function running(on) {
  const hadFocus = [$("go"), $("cancel")].includes(document.activeElement);
  $("go").classList.toggle("running", on);
  $("go").querySelector(".go-label").textContent = on ? "Painting" : "Stylize";
  $("cancel").hidden = !on;
  $("cancel").removeAttribute("aria-disabled");
  refresh();
  // Stylize disables itself while a job runs: the focus moves to Cancel and back, never to the page body.
  if (hadFocus) (on ? $("cancel") : $("go")).focus();
}

// What a result was made with: enough to label it and to set the page up the same way again.
function currentSettings() {
  const values = {};
  for (const c of state.controls) values[c.name] = c.read();
  return {
    method: state.method.name,
    size: option("size") ? state.size : null,
    builtin: usesGallery() ? state.builtin : null,
    weights: usesGallery() ? [] : state.styles.map((s) => s.weight),
    keepColors: state.keepColors,
    keepMode: state.keepMode,
    seed: $("seed").value,
    values,
  };
}

function paintingLabel(settings, names) {
  if (settings.builtin) {
    const name = settings.builtin.replace(/_/g, " ");
    return name.charAt(0).toUpperCase() + name.slice(1);
  }
  if (names.length === 1) return names[0].replace(/\.[^.]*$/, "");
  return `${names.length} paintings`;
}

const METHOD_NAMES = { gatys: "Gatys", adain: "AdaIN", fast: "fast" };

async function stylize() {
  if ($("go").disabled) return;
  clearTimeout(state.autoTimer);
  const m = state.method;
  const form = new FormData();
  form.append("content", state.content.file, "content");
  if (usesGallery()) form.append("model", state.builtin);
  else state.styles.forEach((s, i) => form.append("styles", s.file, `style-${i + 1}`));
  form.append("method", m.name);
  if (option("size")) form.append("size", String(state.size));
  for (const c of state.controls) {
    const value = c.read();
    if (value !== "" && value != null) form.append(c.name, String(value));
  }
  if (option("style_weights") && state.styles.length > 1 && !usesGallery()) {
    form.append("style_weights", state.styles.map((s) => s.weight).join(","));
  }
  if (option("preserve_color")) form.append("preserve_color", state.keepColors ? state.keepMode : "none");
  if (option("seed") && $("seed").value !== "") form.append("seed", $("seed").value);
  const video = state.content.video;
  if (video) form.append("temporal", String(temporalValue()));

  const total = state.content.file.size + (usesGallery() ? 0 : state.styles.reduce((a, s) => a + s.file.size, 0));
  if (state.info && total > state.info.limits.max_upload_bytes) {
    problem(`The ${video ? "video" : "photo"} and paintings come to ${fmtBytes(total)}; this server takes at most ` +
      `${fmtBytes(state.info.limits.max_upload_bytes)} at once. Use fewer or smaller paintings.`);
    return;
  }
  const settings = currentSettings();
  const names = usesGallery() ? [] : state.styles.map((s) => s.name);
  state.job = {
    // The result keeps its own link to the photo: the page's may be revoked when the photo changes.
    id: null, started: performance.now(), method: m.name, video,
    originalUrl: video ? null : URL.createObjectURL(state.content.file),
    lastPreview: null,
    dims: targetDims(), cancelling: false, settings, painting: paintingLabel(settings, names),
    photo: state.content, paintings: usesGallery() ? [] : state.styles.map((s) => ({ file: s.file, name: s.name })),
  };
  const current = state.job;
  running(true);
  if (document.activeElement === document.body) $("cancel").focus(); // the button pressed hid itself (the example's)
  setProgress(0, true);
  setStatus("Uploading…");
  bringIntoView();
  let response;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: form });
  } catch (e) {
    if (state.job !== current) return;
    finish();
    serverLost();
    return;
  }
  if (response.status !== 202) {
    const message = await errorOf(response);
    if (state.job !== current) return;
    finish();
    restoreView();
    problem(response.status === 429 ? `The server is busy: ${message}` : sentence(message));
    return;
  }
  const job = await response.json();
  if (state.job !== current) { // this page moved on (the server was lost meanwhile): leave no job behind
    fetch(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
    return;
  }
  current.id = job.id;
  current.total = job.total;
  if (current.cancelling) { // Cancel was pressed during the upload
    cancel(true);
  }
  if (!state.view || state.view.kind !== "result") showPlaceholder();
  pollStatus();
  follow(job);
}

// On a phone the picture is below the settings: bring it into view when a job starts and when its result comes.
function bringIntoView() {
  if (window.matchMedia("(max-width: 960px)").matches) $("canvas").scrollIntoView({ block: "start", behavior: "smooth" });
}

// The server's errors name the problem ("painting 2: not an image (send ...)"); shown as a sentence.
function sentence(message) {
  const text = String(message || "The job failed.").trim();
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?)]$/.test(text) ? "" : ".");
}

function follow(job) {
  const events = new EventSource(job.events_url);
  const current = state.job;
  current.events = events;
  current.timer = setInterval(tick, 500);
  events.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  events.addEventListener("preview", (e) => onPreview(JSON.parse(e.data)));
  events.addEventListener("done", (e) => {
    events.close(); // a slow result download must not reconnect the stream and hear "done" twice
    current.ending = true; // and Cancel must not delete the result being fetched
    $("cancel").hidden = true;
    onDone(JSON.parse(e.data), current);
  });
  events.addEventListener("failed", (e) => {
    const j = JSON.parse(e.data);
    finish();
    restoreView();
    problem(sentence(j.error));
  });
  events.addEventListener("cancelled", (e) => {
    const j = JSON.parse(e.data);
    finish();
    restoreView();
    if (j.error && /shutting down/.test(j.error)) {
      serverLost("The server stopped, so this picture was not finished.");
    } else {
      setStatus("Cancelled.");
    }
  });
  events.onerror = () => {
    if (state.job !== current) return;
    if (events.readyState === EventSource.CLOSED) { // it gave up: the server no longer knows the job (a restart)
      finish();
      restoreView();
      problem("The server restarted, so this picture was lost. Press Stylize to paint it again.");
      return;
    }
    pollStatus(); // EventSource retries by itself; if the server is gone, end the job now rather than count on
  };
}

function tick() {
  const job = state.job;
  if (!job || $("status-text").classList.contains("error")) return; // a problem stays until the next action
  if (job.cancelling) {
    setStatus("Cancelling…");
    return;
  }
  if (!job.lastState) return;
  const s = job.lastState;
  const now = performance.now();
  const elapsed = (now - job.started) / 1000;
  if (s.status === "queued") {
    setStatus(`Waiting in the queue · <b>#${s.queue_position || 1}</b>`);
    return;
  }
  if (s.total > 1 && s.step > 0) {
    // The time left comes from the steps seen here, not from the start (which includes loading the model).
    const seen = job.firstStep == null ? 0 : s.step - job.firstStep;
    const left = seen >= 3 ? ((now - job.firstStepAt) / 1000 / seen) * (s.total - s.step) : null;
    const perSecond = seen / ((now - job.firstStepAt) / 1000);
    const rate = seen < 3 || !job.video ? ""
      : perSecond >= 1 ? ` · ${perSecond.toFixed(1)} frames/s` : ` · ${fmtTime(1 / perSecond)} a frame`;
    // The server ends a job at its time limit: say so while there is time to cancel and choose a shorter clip.
    const limit = state.info ? state.info.limits.job_timeout : Infinity;
    const over = left != null && elapsed + left > limit
      ? ` · <b>longer than this server's ${fmtTime(limit)} limit: it will stop</b>` : "";
    setStatus(`${job.video ? "Frame" : "Step"} <b>${s.step}</b> of ${s.total}${rate} · ${fmtTime(elapsed)} elapsed · ` +
      (left == null ? "estimating the time left…" : `about ${fmtTime(left)} left`) + over);
  } else {
    setStatus(`Painting… ${fmtTime(elapsed)}`);
  }
}

function onProgress(s) {
  const job = state.job;
  if (!job) return;
  if (job.lastState && job.lastState.status === "queued" && s.status === "running") {
    job.started = performance.now(); // time the work, not the wait
  }
  if (s.step > 0 && job.firstStep == null) {
    job.firstStep = s.step;
    job.firstStepAt = performance.now();
  }
  job.lastState = s;
  job.total = s.total;
  if (s.status === "running" && s.total > 1) setProgress(s.progress, s.step === 0);
  else setProgress(0, true);
  tick();
}

function onPreview(p) {
  if (!state.job) return;
  state.job.lastPreview = p.image;
  const s = state.job.lastState;
  const fraction = s && s.total ? p.step / s.total : 0;
  state.view = { kind: "preview", dims: state.job.dims };
  // The preview sharpens as the optimization goes: a soft blur that lifts with progress. A video's previews are
  // its frames as painted, each finished.
  view().style.filter = state.job.video ? ""
    : `blur(${(4 * (1 - fraction)).toFixed(2)}px) saturate(${(0.85 + 0.15 * fraction).toFixed(2)})`;
  showImage(p.image, "preview", state.job.video ? `Frame ${p.step}` : `Preview · step ${p.step}`, state.view.dims);
  $("download-group").hidden = true;
  $("compare").hidden = true;
}

function stamp(date) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}_${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`;
}

function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "picture";
}

async function onDone(s, job) {
  if (state.job !== job) return;
  setProgress(1, false);
  const seconds = s.elapsed != null ? s.elapsed : (performance.now() - job.started) / 1000;
  let blob;
  try {
    const r = await fetch(s.result_url);
    if (!r.ok) throw new Error(await errorOf(r));
    blob = await r.blob();
  } catch (e) {
    if (state.job !== job) return;
    finish();
    restoreView();
    problem(`Could not fetch the result: ${e.message}`);
    return;
  }
  if (state.job !== job) return;
  finish(true);
  const when = new Date();
  const item = {
    id: s.id,
    url: URL.createObjectURL(blob),
    blob,
    video: job.video,
    originalUrl: job.originalUrl,
    photo: job.photo,
    paintings: job.paintings,
    settings: job.settings,
    painting: job.painting,
    name: `impasto-${slug(job.painting)}-${s.method}-${stamp(when)}`,
    method: s.method,
    width: s.width,
    height: s.height,
    seconds,
    when,
  };
  // A video is not kept in the history: clips are large, and the history lives in this browser's storage.
  if (!job.video) {
    state.gallery.unshift(item);
    addToGallery(item);
  }
  showResult(item);
  const frames = s.total ? `${s.total} frames · ` : "";
  setStatus(job.video
    ? `Done in <b>${fmtTime(seconds)}</b> · ${frames}${fmtBytes(blob.size)} MP4 · download it: videos are not kept ` +
      "in the history"
    : `Done in <b>${fmtTime(seconds)}</b> · ${s.width} × ${s.height}`);
  bringIntoView();
  if (!job.video) keepInHistory(item);
  if (state.rerun) {
    state.rerun = false;
    autoRender();
  }
}

function finish(keepBar = false) {
  const job = state.job;
  if (job) {
    if (job.events) job.events.close();
    if (job.timer) clearInterval(job.timer);
  }
  state.job = null;
  if (!keepBar) state.rerun = false; // a job that failed or was cancelled: no repaint queued behind it
  running(false);
  if (!keepBar) setProgress(0, false);
  if (!state.down) pollStatus();
}

function restoreView() {
  view().style.filter = "";
  if (!state.view || state.view.kind !== "result") showPlaceholder();
}

// Esc or Cancel: "Cancelling…" stays until the server says the job has ended.
async function cancel(again = false) {
  const job = state.job;
  if (!job || job.ending || (job.cancelling && !again)) return;
  job.cancelling = true;
  $("cancel").setAttribute("aria-disabled", "true"); // not `disabled`: that would drop the focus to the page body
  state.rerun = false;
  tick();
  if (!job.id) return; // still uploading: cancelled as soon as the server answers with its id
  const failed = () => {
    job.cancelling = false;
    $("cancel").removeAttribute("aria-disabled");
  };
  try {
    const r = await fetch(`/api/jobs/${job.id}`, { method: "DELETE" });
    if (r.status === 404 && state.job === job) { // the server no longer knows it: nothing left to wait for
      finish();
      restoreView();
      setStatus("Cancelled.");
    } else if (!r.ok) {
      failed();
      problem(sentence(await errorOf(r)));
    }
  } catch (_) {
    failed();
    pollStatus();
  }
}

// A one-pass method paints again by itself when a setting is released (once a result is on screen).
function autoRender() {
  if (!state.method || state.method.iterative || !state.content || live.ws || state.restoring) return;
  if (state.content.video) return; // a whole clip is not repainted at every touch of a setting
  if (!state.view || state.view.kind !== "result") return;
  clearTimeout(state.autoTimer);
  state.autoTimer = setTimeout(() => {
    if (state.job) state.rerun = true;
    else if (!$("go").disabled) stylize();
  }, 200);
}

// ---------------------------------------------------------------------------------------------- history
// Results, with their photo, paintings and settings, kept in this browser's IndexedDB (never sent anywhere).

const HISTORY_MAX = 24;

function historyDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("impasto", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("history", { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function historyDo(mode, work) {
  const db = await historyDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction("history", mode);
      const result = work(tx.objectStore("history"));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

async function keepInHistory(item) {
  const record = {
    id: item.id, when: item.when.getTime(), result: item.blob, photo: item.photo.file, photoName: item.photo.name,
    paintings: item.paintings.map((p) => p.file), paintingNames: item.paintings.map((p) => p.name),
    settings: item.settings, painting: item.painting, method: item.method, width: item.width, height: item.height,
    seconds: item.seconds, name: item.name,
  };
  const extra = state.gallery.slice(HISTORY_MAX);
  if (extra.length) { // the oldest go, here and in storage, with their pictures' memory
    state.gallery = state.gallery.slice(0, HISTORY_MAX);
    for (const old of extra) {
      const li = $("gallery").querySelector(`button[data-id="${old.id}"]`);
      if (li) li.closest("li").remove();
      forget(old);
    }
    updateHistoryCount();
  }
  try {
    if (extra.length) await historyDo("readwrite", (store) => { for (const old of extra) store.delete(old.id); });
    await historyDo("readwrite", (store) => store.put(record));
  } catch (_) { /* a private window may refuse storage: the history then lasts as long as the tab */ }
}

async function loadHistory() {
  let records = [];
  try {
    records = (await historyDo("readonly", (store) => store.getAll())) || [];
  } catch (_) {
    return;
  }
  records.sort((a, b) => a.when - b.when);
  for (const r of records) {
    const photoUrl = URL.createObjectURL(r.photo);
    const item = {
      id: r.id, url: URL.createObjectURL(r.result), blob: r.result, originalUrl: photoUrl,
      photo: { file: r.photo, url: photoUrl, name: r.photoName },
      paintings: r.paintings.map((file, i) => ({ file, name: r.paintingNames[i] })),
      settings: r.settings, painting: r.painting, name: r.name, method: r.method, width: r.width, height: r.height,
      seconds: r.seconds, when: new Date(r.when),
    };
    state.gallery.unshift(item);
    addToGallery(item);
  }
}

function describe(item) {
  const s = item.settings;
  const size = s.size ? ` · ${s.size} px` : "";
  return `${item.painting} · ${METHOD_NAMES[item.method] || item.method}${size}`;
}

function addToGallery(item) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "entry";
  b.dataset.id = item.id;
  const when = item.when.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  b.title = `${describe(item)}, ${item.width} × ${item.height}, ${when}: show it and set the page up the same way`;
  const img = document.createElement("img");
  img.src = item.url;
  img.alt = "";
  const cap = document.createElement("span");
  cap.className = "cap";
  const what = document.createElement("b");
  what.textContent = describe(item);
  const time = document.createElement("span");
  time.textContent = when;
  cap.append(what, time);
  b.append(img, cap);
  b.addEventListener("click", () => { if (!state.job) restoreEntry(item); });
  li.append(b);
  $("gallery").prepend(li);
  updateHistoryCount();
}

function updateHistoryCount() {
  const n = state.gallery.length;
  $("gallery-count").textContent = n
    ? `${n} result${n === 1 ? "" : "s"} · kept in this browser only`
    : "Your results appear here, kept in this browser only.";
  $("history-clear").hidden = !n;
}

function forget(item) {
  const shown = state.view && state.view.item === item;
  if (!shown) {
    URL.revokeObjectURL(item.url);
    URL.revokeObjectURL(item.originalUrl);
  }
}

async function clearHistory() {
  try { await historyDo("readwrite", (store) => store.clear()); } catch (_) { /* nothing stored */ }
  for (const item of state.gallery) forget(item);
  state.gallery = [];
  $("gallery").textContent = "";
  updateHistoryCount();
  $("gallery-count").focus(); // the Clear button hid itself
}

// A click on a history entry shows it and sets the page up as it was made: photo, paintings, method, settings.
async function restoreEntry(item) {
  if (state.restoring) return;
  state.restoring = true;
  clearTimeout(state.autoTimer);
  state.rerun = false;
  try {
    await setUpAs(item);
  } finally {
    state.restoring = false;
  }
}

async function setUpAs(item) {
  const s = item.settings;
  clearProblem();
  if (live.ws) stopLive(false);
  const file = (f, name) => (f instanceof File ? f : new File([f], name || "picture", { type: f.type }));
  if (!state.content || state.content.file !== item.photo.file) await setContent(file(item.photo.file, item.photo.name));
  if (state.methods.some((m) => m.name === s.method) && (!state.method || state.method.name !== s.method)) chooseMethod(s.method);
  if (s.builtin && state.builtins.some((b) => b.name === s.builtin)) {
    state.builtin = s.builtin;
    markBuiltin();
  }
  if (item.paintings.length) {
    const same = state.styles.length === item.paintings.length && state.styles.every((st, i) => st.file === item.paintings[i].file);
    if (!same) {
      for (const st of [...state.styles]) removeStyle(st, false);
      await addStyles(item.paintings.map((p) => file(p.file, p.name)), s.weights);
    } else {
      state.styles.forEach((st, i) => {
        st.weight = s.weights[i] != null ? s.weights[i] : st.weight;
        st.range.value = String(st.weight);
        setFill(st.range);
      });
      updateWeights();
    }
  }
  if (s.size && option("size")) {
    state.size = s.size;
    const size = option("size");
    if (size) buildSizes(size);
  }
  state.values[s.method] = { ...(state.values[s.method] || {}), ...s.values };
  buildControls();
  state.keepMode = s.keepMode || state.keepMode;
  setKeepColors(!!s.keepColors);
  $("seed").value = s.seed || "";
  savePrefs();
  refresh();
  showResult(item);
  setStatus(`Shown again with its settings: <b>${describe(item).replace(/</g, "&lt;")}</b>`);
}

// Downloads in PNG (as made), or converted here to JPEG or WebP.
async function download(e) {
  const item = state.view && state.view.kind === "result" ? state.view.item : null;
  const format = $("download-format").value;
  if (!item || item.video || format === "png") return; // the link itself serves the PNG (or the MP4)
  e.preventDefault();
  const img = new Image();
  img.src = item.url;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, `image/${format}`, 0.92));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${item.name}.${format === "jpeg" ? "jpg" : format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

// ---------------------------------------------------------------------------------------------- live camera
// Frames go over a WebSocket (/api/live) to the server, which paints them with a one-pass method and sends them back.
// The server keeps only the newest frame waiting (a late frame is dropped, never queued); here at most two frames are
// in flight, so the picture on screen is never more than a frame or two behind the camera.

const live = { ws: null, stream: null, seq: 0, sent: new Map(), inFlight: 0, times: [], latency: 0, dropped: 0,
  pending: null, timer: null, url: null, frames: 0 };

async function startLive() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser gives no camera to this page (it needs https or localhost).");
    return;
  }
  const fast = state.methods.find((m) => m.style_images === false && !m.iterative);
  if (!fast) {
    setStatus("The server offers no one-pass method with built-in styles for the camera.");
    return;
  }
  if (!usesGallery()) chooseMethod(fast.name);
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  } catch (e) {
    setStatus(`No camera: ${e.message || e.name}.`);
    return;
  }
  const video = $("camera-video");
  video.srcObject = live.stream;
  await video.play();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/live`);
  ws.binaryType = "blob";
  live.ws = ws;
  Object.assign(live, { seq: 0, inFlight: 0, times: [], dropped: 0, pending: null, frames: 0 });
  live.sent.clear();
  $("camera").setAttribute("aria-pressed", "true");
  $("camera").querySelector(".camera-label").textContent = "Stop camera";
  $("go").disabled = true;
  setStatus("Live: connecting…");
  ws.onopen = () => {
    // No "temporal": the server's default applies.
    const config = { method: state.method.name, model: state.builtin, size: String(Math.min(state.size, 512)) };
    for (const c of state.controls) {
      const value = c.read();
      if (value !== "" && value != null) config[c.name] = String(value);
    }
    ws.send(JSON.stringify(config));
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const msg = JSON.parse(ev.data);
      if (msg.error) {
        setStatus(`Live: ${msg.error}`);
        if (msg.seq != null) live.inFlight = Math.max(0, live.inFlight - 1);
        else if (msg.fatal !== false) stopLive(false); // (a notice about one message: the stream goes on)
        return;
      }
      if (msg.ready) {
        live.timer = setInterval(sendFrame, 1000 / 15);
        return;
      }
      live.pending = msg;
      return;
    }
    const msg = live.pending || {};
    live.pending = null;
    const sentAt = live.sent.get(msg.seq);
    // Every frame sent up to this one is answered or dropped.
    for (const k of [...live.sent.keys()]) if (k <= msg.seq) live.sent.delete(k);
    live.inFlight = live.sent.size;
    const now = performance.now();
    if (sentAt != null) live.latency = now - sentAt;
    live.times.push(now);
    while (live.times.length > 12) live.times.shift();
    live.dropped = msg.dropped || 0;
    live.frames += 1;
    if (live.url) URL.revokeObjectURL(live.url);
    live.url = URL.createObjectURL(ev.data);
    const img = new Image();
    img.onload = () => {
      state.view = { kind: "live" };
      showImage(live.url, "result", "", { width: img.naturalWidth, height: img.naturalHeight });
      $("compare").hidden = true;
      $("download-group").hidden = true;
    };
    img.src = live.url;
    const span = live.times.length > 1 ? (live.times[live.times.length - 1] - live.times[0]) / 1000 : 0;
    const fps = span > 0 ? (live.times.length - 1) / span : 0;
    $("canvas").dataset.liveFrames = String(live.frames);
    setStatus(`Live · ${fps.toFixed(1)} frames/s · ${Math.round(live.latency)} ms behind the camera · ` +
      `${live.dropped} dropped`);
  };
  ws.onclose = () => { if (live.ws === ws) stopLive(true); };
}

function sendFrame() {
  const ws = live.ws;
  const video = $("camera-video");
  if (!ws || ws.readyState !== WebSocket.OPEN || live.inFlight >= 2 || !video.videoWidth) return;
  const scale = Math.min(1, Math.min(state.size, 512) / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const seq = live.seq++;
  live.inFlight += 1;
  live.sent.set(seq, performance.now());
  canvas.toBlob(async (blob) => {
    if (!blob || ws.readyState !== WebSocket.OPEN) return;
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, seq);
    ws.send(new Blob([head, blob]));
  }, "image/jpeg", 0.85);
}

function stopLive(lost) {
  if (live.timer) clearInterval(live.timer);
  live.timer = null;
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
  if (live.stream) for (const t of live.stream.getTracks()) t.stop();
  live.stream = null;
  $("camera-video").srcObject = null;
  $("camera").setAttribute("aria-pressed", "false");
  $("camera").querySelector(".camera-label").textContent = "Live camera";
  if (lost) setStatus(live.frames ? "Live camera stopped: the server closed the connection." : $("status-text").textContent);
  else if (live.frames) setStatus(`Live camera stopped after ${live.frames} frames.`);
  refresh();
}

// ---------------------------------------------------------------------------------------------- start-up

// "Try an example": the photo (and painting) bundled with impasto, then a first picture at once.
async function trySample() {
  if (state.job || state.restoring) return;
  state.restoring = true;
  clearTimeout(state.autoTimer);
  try {
    await loadSample();
  } finally {
    state.restoring = false;
  }
  if (!$("go").disabled) stylize();
}

async function loadSample() {
  clearProblem();
  let samples;
  try {
    samples = await fetch("/api/samples").then((r) => (r.ok ? r.json() : Promise.reject(r)));
  } catch (_) {
    pollStatus();
    return;
  }
  const fetchFile = async (s) => {
    const blob = await fetch(s.url).then((r) => r.blob());
    return new File([blob], s.url.split("/").pop(), { type: blob.type || "image/png" });
  };
  const photo = samples.find((s) => s.kind === "photo");
  if (photo) await setContent(await fetchFile(photo));
  if (!usesGallery() && !state.styles.length) {
    await addStyles(await Promise.all(samples.filter((s) => s.kind === "painting").map(fetchFile)));
  }
}

async function connect() {
  try {
    const [info, methods] = await Promise.all([
      fetch("/api/info").then((r) => (r.ok ? r.json() : Promise.reject(r))),
      fetch("/api/methods").then((r) => (r.ok ? r.json() : Promise.reject(r))),
    ]);
    state.info = info;
    state.methods = methods;
    // The gallery is optional: a server without built-in styles (or an older one) lists none.
    state.builtins = await fetch("/api/styles").then((r) => (r.ok ? r.json() : []), () => []);
  } catch (_) {
    serverLost();
    return;
  }
  const prefs = loadPrefs();
  if (prefs.size) state.size = Number(prefs.size);
  if (prefs.values && typeof prefs.values === "object" && !Array.isArray(prefs.values)) state.values = prefs.values;
  state.keepMode = prefs.keepMode === "histogram" ? "histogram" : "luminance";
  setKeepColors(!!prefs.keepColors);
  if (typeof prefs.builtin === "string") state.builtin = prefs.builtin;
  buildBuiltins();
  buildMethods(prefs);
  $("camera").hidden = !state.methods.some((m) => m.style_images === false && !m.iterative) || !state.builtins.length;
  for (const r of document.querySelectorAll('input[type="range"]')) setFill(r);
  await loadHistory();
  pollStatus();
}

// The server's state, every few seconds (every 2 s while it is away, and at once when an event stream falters).
let pollTimer = null;

async function pollStatus() {
  clearTimeout(pollTimer);
  const pill = $("server-status");
  const generation = state.lostAt;
  let info = null;
  try {
    const r = await fetch("/api/info", { signal: AbortSignal.timeout(4000), cache: "no-store" });
    if (r.ok) info = await r.json();
  } catch (e) {
    // A slow answer is a busy server, not a lost one (a refused connection is): lost after three in a row.
    if (e.name === "TimeoutError" && !state.down && (state.slow = (state.slow || 0) + 1) < 3) {
      pollTimer = setTimeout(pollStatus, 1000);
      return;
    }
  }
  state.slow = 0;
  if (generation !== state.lostAt) return; // the server was found gone while this poll was out: it is stale
  if (info) {
    const q = info.queue;
    pill.className = `pill ${q.running ? "busy" : "ok"}`;
    pill.textContent = q.running ? `busy · ${q.waiting} waiting` : `ready · v${info.version}`;
    serverBack();
  } else {
    serverLost();
  }
  pollTimer = setTimeout(pollStatus, state.down ? 2000 : 5000);
}

// The server went away: a running job ends at once, with a message, and the page waits for the server's return.
function serverLost(why = "") {
  const pill = $("server-status");
  pill.className = "pill down";
  pill.textContent = "server unreachable";
  const job = state.job;
  if (job) {
    finish();
    restoreView();
    why = why || "Lost the server in the middle of this picture, so it was not finished.";
  }
  if (live.ws) stopLive(true);
  if (!state.down || why) {
    problem(`${why ? why + " " : ""}The server is not answering: start \`impasto serve\` again and this page ` +
      "reconnects by itself.");
  }
  state.down = true;
  state.lostAt += 1;
  refresh();
  // Stylize, where the focus was, is disabled now: the message takes the focus, so it is read out and kept.
  if (document.activeElement === $("go") || document.activeElement === document.body) $("status-text").focus();
  clearTimeout(pollTimer);
  pollTimer = setTimeout(pollStatus, 2000);
}

function serverBack() {
  if (!state.down) return;
  state.down = false;
  setStatus("The server is back. Ready when you are.");
  if (!state.methods.length) connect();
  refresh();
}

function init() {
  wireDrop($("content-drop"), $("content-input"), (files) => setContent(files[0]));
  wireDrop($("style-drop"), $("style-input"), addStyles);
  $("content-clear").addEventListener("click", clearContent);
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    takeLoose([...e.dataTransfer.files]);
  });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) takeLoose(files);
  });
  $("keep-colors").addEventListener("click", () => { setKeepColors(!state.keepColors); savePrefs(); autoRender(); });
  for (const b of $("keep-mode").children) {
    b.addEventListener("click", () => {
      if (state.keepMode === b.dataset.value) return;
      state.keepMode = b.dataset.value;
      setKeepColors(true);
      savePrefs();
      autoRender();
    });
  }
  for (const id of ["methods", "sizes", "keep-mode", "builtins"]) roving($(id));
  $("try-sample").addEventListener("click", trySample);
  $("try-sample-big").addEventListener("click", trySample);
  $("history-clear").addEventListener("click", clearHistory);
  $("download").addEventListener("click", download);
  $("camera").addEventListener("click", () => (live.ws ? stopLive(false) : startLive()));
  // A problem stays in the status line until the next action.
  // (Not for the file inputs: what they load clears the line itself, and may put a problem there at once.)
  document.querySelector(".panel").addEventListener("change", (e) => { if (e.target.type !== "file") clearProblem(); });
  $("seed-dice").addEventListener("click", () => { $("seed").value = String(Math.floor(Math.random() * 1e6)); });
  $("temporal").addEventListener("input", () => {
    if (state.method) state.temporals[state.method.name] = Number($("temporal").value);
    showTemporal();
  });
  $("go").addEventListener("click", stylize);
  $("cancel").addEventListener("click", cancel);
  const cmp = $("compare");
  for (const [ev, on] of [["pointerdown", true], ["pointerup", false], ["pointerleave", false]]) {
    cmp.addEventListener(ev, () => compare(on));
  }
  cmp.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") compare(true); });
  cmp.addEventListener("keyup", () => compare(false));
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); stylize(); }
    if (e.key === "Escape" && state.job) cancel();
  });
  window.addEventListener("resize", () => {
    if (!state.view || !state.view.dims) return;
    fit(state.view.dims, $("view-video").hidden ? $("view") : $("view-video"));
  });
  refresh();
  connect();
}

document.addEventListener("DOMContentLoaded", init);
