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
  content: null, // {file, url, width, height}
  styles: [], // [{file, url, weight}]
  size: 512,
  keepColors: false,
  keepMode: "luminance",
  controls: [], // the chosen method's generated controls: [{name, field, input, read}]
  values: {}, // per method, the values last set in its generated controls: {method: {option: value}}
  job: null, // the running job: {id, events, started, timer, method}
  view: null, // what the canvas shows: {kind: "result"|"preview"|"placeholder", item}
  gallery: [], // [{id, url, name, method, width, height, seconds, when}]
};

// ---------------------------------------------------------------------------------------------- small helpers

function toast(message, kind = "error") {
  const el = document.createElement("div");
  el.className = `toast ${kind === "info" ? "info" : ""}`;
  const text = document.createElement("span");
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => el.remove());
  el.append(text, close);
  $("toasts").append(el);
  setTimeout(() => el.remove(), kind === "info" ? 4000 : 9000);
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

function acceptable(file) {
  if (file.type && !file.type.startsWith("image/")) {
    toast(`${file.name}: not an image.`);
    return false;
  }
  const cap = state.info ? state.info.limits.max_upload_bytes : Infinity;
  if (file.size > cap) {
    toast(`${file.name} is ${fmtBytes(file.size)}; this server takes at most ${fmtBytes(cap)} per request.`);
    return false;
  }
  return true;
}

async function setContent(file) {
  if (!acceptable(file)) return;
  const url = URL.createObjectURL(file);
  const dims = await imageSize(url);
  if (!dims) {
    URL.revokeObjectURL(url);
    toast(`${file.name}: this browser cannot read it as an image.`);
    return;
  }
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = { file, url, ...dims };
  $("content-thumb").src = url;
  $("content-thumb").hidden = false;
  $("content-drop").classList.add("filled");
  $("content-clear").hidden = false;
  $("content-meta").hidden = false;
  $("content-meta").textContent = `${dims.width} × ${dims.height} · ${fmtBytes(file.size)}`;
  if (!state.job && (!state.view || state.view.kind === "placeholder")) showPlaceholder();
  refresh();
}

function clearContent() {
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = null;
  $("content-thumb").hidden = true;
  $("content-thumb").removeAttribute("src");
  $("content-drop").classList.remove("filled");
  $("content-clear").hidden = true;
  $("content-meta").hidden = true;
  if (state.view && state.view.kind === "placeholder") showEmpty();
  refresh();
}

function addStyles(files) {
  const max = state.info ? state.info.limits.max_styles : 8;
  for (const file of files) {
    if (state.styles.length >= max) {
      toast(`At most ${max} paintings per picture.`);
      break;
    }
    if (!acceptable(file)) continue;
    const item = { file, url: URL.createObjectURL(file), weight: 5 };
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
    range.addEventListener("input", () => {
      item.weight = Number(range.value);
      setFill(range);
      updateWeights();
    });
    card.querySelector(".remove").addEventListener("click", () => {
      state.styles = state.styles.filter((s) => s !== item);
      URL.revokeObjectURL(item.url);
      card.remove();
      row.remove();
      updateWeights();
    });
    item.card = card;
    item.range = range;
    item.out = out;
    item.badge = badge;
    setFill(range);
    $("styles").insertBefore(card, $("style-drop"));
    $("blend-rows").append(row);
  }
  updateWeights();
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
function takeLoose(files) {
  files = files.filter((f) => !f.type || f.type.startsWith("image/"));
  if (!files.length) return;
  if (!state.content) setContent(files.shift());
  if (files.length) addStyles(files);
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
    b.addEventListener("click", () => chooseMethod(m.name));
    box.append(b);
  }
  const wanted = state.methods.find((m) => m.name === prefs.method) ? prefs.method : state.info.default_method;
  chooseMethod(state.methods.find((m) => m.name === wanted) ? wanted : state.methods[0].name, false);
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
  state.builtin = name;
  markBuiltin();
  savePrefs();
  refresh();
}

function markBuiltin() {
  for (const b of $("builtins").children) {
    if (b.dataset.name) b.setAttribute("aria-checked", String(b.dataset.name === state.builtin));
  }
}

function chooseMethod(name, save = true) {
  state.method = state.methods.find((m) => m.name === name);
  const gallery = usesGallery();
  $("styles").hidden = gallery;
  $("builtins").hidden = !gallery;
  for (const b of $("methods").children) b.setAttribute("aria-checked", String(b.dataset.method === name));
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
  input.addEventListener("change", () => remember(o.name, read()));
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
      state.size = s;
      markSize();
      savePrefs();
      if (state.view && state.view.kind === "placeholder") showPlaceholder();
      refresh();
    });
    box.append(b);
  }
  markSize();
}

function markSize() {
  for (const b of $("sizes").children) b.setAttribute("aria-checked", String(Number(b.dataset.value) === state.size));
  $("size-out").textContent = `${state.size} px`;
}

function setKeepColors(on) {
  state.keepColors = on;
  $("keep-colors").setAttribute("aria-checked", String(on));
  $("keep-mode-field").hidden = !(on && option("preserve_color"));
  for (const b of $("keep-mode").children) b.setAttribute("aria-checked", String(b.dataset.value === state.keepMode));
}

function refresh() {
  const gallery = usesGallery();
  const single = state.styles.length <= 1 || !option("style_weights");
  $("styles").classList.toggle("single", single);
  $("blend").hidden = single || gallery;
  $("styles-count").textContent = gallery
    ? (state.builtin ? state.builtin.replace(/_/g, " ") : "")
    : state.styles.length ? `${state.styles.length} selected` : "";
  const weightsOk = single || state.styles.some((s) => s.weight > 0);
  const ready = state.content && (gallery ? !!state.builtin : state.styles.length > 0 && weightsOk);
  $("go").disabled = !ready || !!state.job || !state.method || !!live.ws;
  let hint = "";
  if (!state.method) hint = "Connecting to the server…";
  else if (gallery && !state.builtins.length) hint = "No built-in styles are installed on the server.";
  else if (gallery && !state.content) hint = "Add the photo to repaint.";
  else if (gallery) hint = "Takes a second or two.";
  else if (!state.content && !state.styles.length) hint = "Add a photo and a painting to begin.";
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
  $("badge").hidden = true;
  $("compare").hidden = true;
  $("download").hidden = true;
}

// The output's expected size: the photo scaled so its longest side is the chosen size.
function targetDims() {
  if (!state.content) return null;
  const { width: w, height: h } = state.content;
  if (!option("size")) return { width: w, height: h };
  const s = state.size / Math.max(w, h);
  return { width: Math.max(1, Math.round(w * s)), height: Math.max(1, Math.round(h * s)) };
}

// Placeholder, previews and result share one box on screen, so the picture forms in place (small ones enlarged).
function fit(dims) {
  const img = $("view");
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

function showPlaceholder() {
  if (!state.content) return showEmpty();
  state.view = { kind: "placeholder", dims: targetDims() };
  view().style.filter = "";
  showImage(state.content.url, "placeholder", "", state.view.dims);
  $("compare").hidden = true;
  $("download").hidden = true;
}

function view() { return $("view"); }

function showResult(item) {
  state.view = { kind: "result", item, dims: { width: item.width, height: item.height } };
  view().style.filter = "";
  showImage(item.url, "result", `${item.method} · ${item.width}×${item.height} · ${fmtTime(item.seconds)}`,
    state.view.dims);
  const dl = $("download");
  dl.href = item.url;
  dl.download = item.name;
  dl.hidden = false;
  $("compare").hidden = !item.originalUrl;
  for (const b of $("gallery").querySelectorAll("button")) b.setAttribute("aria-current", String(b.dataset.id === item.id));
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
  bar.setAttribute("aria-valuenow", String(Math.round(pct)));
}

function setStatus(html) {
  $("status-text").innerHTML = html;
}

function running(on) {
  $("go").classList.toggle("running", on);
  $("go").querySelector(".go-label").textContent = on ? "Painting" : "Stylize";
  $("cancel").hidden = !on;
  refresh();
}

async function stylize() {
  if ($("go").disabled) return;
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

  const originalUrl = state.content.url;
  state.job = { id: null, started: performance.now(), method: m.name, originalUrl, lastPreview: null, dims: targetDims() };
  running(true);
  setProgress(0, true);
  setStatus("Uploading…");
  let response;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: form });
  } catch (e) {
    finish();
    toast("Cannot reach the server. Is `impasto serve` still running?");
    return;
  }
  if (response.status !== 202) {
    const message = await errorOf(response);
    finish();
    toast(response.status === 429 ? `The server is busy: ${message}` : message);
    return;
  }
  const job = await response.json();
  state.job.id = job.id;
  state.job.total = job.total;
  if (!state.view || state.view.kind !== "result") showPlaceholder();
  pollStatus();
  follow(job);
}

function follow(job) {
  const events = new EventSource(job.events_url);
  state.job.events = events;
  state.job.timer = setInterval(tick, 500);
  const current = state.job;
  events.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  events.addEventListener("preview", (e) => onPreview(JSON.parse(e.data)));
  events.addEventListener("done", (e) => onDone(JSON.parse(e.data), current));
  events.addEventListener("failed", (e) => {
    const j = JSON.parse(e.data);
    finish();
    toast(j.error || "The job failed.");
    setStatus("The job failed.");
    restoreView();
  });
  events.addEventListener("cancelled", () => {
    finish();
    setStatus("Cancelled.");
    restoreView();
  });
  events.onerror = () => {
    // EventSource reconnects by itself; say so if the server went away for good.
    if (events.readyState === EventSource.CLOSED && state.job === current) {
      finish();
      toast("Lost the connection to the server.");
    }
  };
}

function tick() {
  const job = state.job;
  if (!job || !job.lastState) return;
  const s = job.lastState;
  const elapsed = (performance.now() - job.started) / 1000;
  if (s.status === "queued") {
    setStatus(`Waiting in the queue · <b>#${s.queue_position || 1}</b>`);
    return;
  }
  if (s.total > 1 && s.step > 0) {
    const rate = elapsed / s.step;
    const left = rate * (s.total - s.step);
    setStatus(`Step <b>${s.step}</b> of ${s.total} · ${fmtTime(elapsed)} elapsed · about ${fmtTime(left)} left`);
  } else {
    setStatus(`Painting… ${fmtTime(elapsed)}`);
  }
}

function onProgress(s) {
  if (!state.job) return;
  if (state.job.lastState && state.job.lastState.status === "queued" && s.status === "running") {
    state.job.started = performance.now(); // time the work, not the wait
  }
  state.job.lastState = s;
  state.job.total = s.total;
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
  // The preview sharpens as the optimization goes: a soft blur that lifts with progress.
  view().style.filter = `blur(${(4 * (1 - fraction)).toFixed(2)}px) saturate(${(0.85 + 0.15 * fraction).toFixed(2)})`;
  showImage(p.image, "preview", `Preview · step ${p.step}`, state.view.dims);
  $("download").hidden = true;
  $("compare").hidden = true;
}

async function onDone(s, job) {
  setProgress(1, false);
  const seconds = s.elapsed != null ? s.elapsed : (performance.now() - job.started) / 1000;
  let blob;
  try {
    const r = await fetch(s.result_url);
    if (!r.ok) throw new Error(await errorOf(r));
    blob = await r.blob();
  } catch (e) {
    finish();
    toast(`Could not fetch the result: ${e.message}`);
    return;
  }
  finish(true);
  const url = URL.createObjectURL(blob);
  const stamp = new Date();
  const item = {
    id: s.id,
    url,
    originalUrl: job.originalUrl,
    name: `impasto-${s.method}-${stamp.toISOString().slice(0, 19).replace(/[:T]/g, "")}.png`,
    method: s.method,
    width: s.width,
    height: s.height,
    seconds,
    when: stamp,
  };
  state.gallery.unshift(item);
  addToGallery(item);
  showResult(item);
  setStatus(`Done in <b>${fmtTime(seconds)}</b> · ${s.width} × ${s.height}`);
}

function finish(keepBar = false) {
  const job = state.job;
  if (job) {
    if (job.events) job.events.close();
    if (job.timer) clearInterval(job.timer);
  }
  state.job = null;
  running(false);
  if (!keepBar) setProgress(0, false);
  pollStatus();
}

function restoreView() {
  view().style.filter = "";
  if (state.gallery.length) showResult(state.gallery[0]);
  else showPlaceholder();
}

async function cancel() {
  const job = state.job;
  if (!job || !job.id) return;
  setStatus("Cancelling…");
  try {
    const r = await fetch(`/api/jobs/${job.id}`, { method: "DELETE" });
    if (!r.ok && r.status !== 404) toast(await errorOf(r));
  } catch (_) {
    toast("Cannot reach the server.");
  }
}

function addToGallery(item) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.id = item.id;
  b.title = `${item.method}, ${item.width}×${item.height}, ${item.when.toLocaleTimeString()}`;
  const img = document.createElement("img");
  img.src = item.url;
  img.alt = `Result ${state.gallery.length}`;
  const cap = document.createElement("span");
  cap.className = "cap";
  cap.textContent = `${item.method} · ${item.when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  b.append(img, cap);
  b.addEventListener("click", () => { if (!state.job) showResult(item); });
  li.append(b);
  $("gallery").prepend(li);
  $("gallery-count").textContent = `${state.gallery.length} result${state.gallery.length === 1 ? "" : "s"} · kept while this tab is open`;
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
    const config = { method: state.method.name, model: state.builtin, size: String(Math.min(state.size, 512)),
      temporal: 0.3 };
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
        if (msg.seq == null) stopLive(false);
        else live.inFlight = Math.max(0, live.inFlight - 1);
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
      $("download").hidden = true;
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
    $("server-status").textContent = "server unreachable";
    $("server-status").className = "pill down";
    toast("Cannot reach the server. Is `impasto serve` running?");
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
  $("camera").addEventListener("click", () => (live.ws ? stopLive(false) : startLive()));
  for (const r of document.querySelectorAll('input[type="range"]')) setFill(r);
  pollStatus();
  setInterval(pollStatus, 5000);
}

async function pollStatus() {
  const pill = $("server-status");
  try {
    const info = await fetch("/api/info").then((r) => r.json());
    const q = info.queue;
    pill.className = `pill ${q.running ? "busy" : "ok"}`;
    pill.textContent = q.running ? `busy · ${q.waiting} waiting` : `ready · v${info.version}`;
  } catch (_) {
    pill.className = "pill down";
    pill.textContent = "server unreachable";
  }
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
  $("keep-colors").addEventListener("click", () => { setKeepColors(!state.keepColors); savePrefs(); });
  for (const b of $("keep-mode").children) {
    b.addEventListener("click", () => { state.keepMode = b.dataset.value; setKeepColors(true); savePrefs(); });
  }
  $("seed-dice").addEventListener("click", () => { $("seed").value = String(Math.floor(Math.random() * 1e6)); });
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
  window.addEventListener("resize", () => { if (state.view && state.view.dims) fit(state.view.dims); });
  refresh();
  connect();
}

document.addEventListener("DOMContentLoaded", init);
