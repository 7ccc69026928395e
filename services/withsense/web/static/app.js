// The With Sense search page: plain JavaScript over the HTTP/JSON API (/openapi.json).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "withsense-api-key";

function apiKey() {
  return $("apikey").value.trim();
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

// Calls the API; resolves to the JSON body, rejects with the API's error message.
async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw apiError(response.status, data);
  return data;
}

function apiError(status, data) {
  const error = new Error((data.error && data.error.message) || "HTTP " + status);
  error.status = status;
  if (status === 401) {
    $("keybox").open = true;
    $("apikey").focus();
  }
  return error;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// --- stats -------------------------------------------------------------------------------------

let restricted = [];

async function loadStats() {
  try {
    const stats = await api("GET", "/v1/stats");
    restricted = stats.restrictedRegions || [];
    $("stats").textContent = `${Number(stats.images)} photos · ${Number(stats.flagged)} flagged ` +
      `· model ${stats.modelVersion || "unknown"}`;
    markRestrictedRegions();
  } catch (error) {
    $("stats").textContent = "stats unavailable: " + error.message;
  }
}

function isRestricted(code) {
  return code === "" || restricted.includes("*") || restricted.includes(code);
}

function markRestrictedRegions() {
  for (const option of $("region").options) {
    const code = option.value;
    const name = code || "Unknown";
    option.textContent = isRestricted(code) ? `${name} (restricted)` : name;
  }
}

// --- search ------------------------------------------------------------------------------------

function ensureRegionOption(code) {
  const select = $("region");
  if (![...select.options].some((option) => option.value === code)) {
    select.append(el("option", { value: code }, code));
    markRestrictedRegions();
  }
}

async function search(updateUrl = true) {
  const query = $("q").value.trim();
  if (!query) return;
  const region = $("region").value;
  const topK = Math.min(100, Math.max(1, Number($("k").value) || 12));
  if (updateUrl) {
    const params = new URLSearchParams({ q: query, region, k: String(topK) });
    history.replaceState(null, "", "?" + params.toString());
  }
  $("status").textContent = "Searching…";
  $("results").setAttribute("aria-busy", "true");
  try {
    const reply = await api("POST", "/v1/search", { query, topK, region });
    render(reply, query, region);
  } catch (error) {
    $("blocked").hidden = true;
    $("results").replaceChildren();
    $("status").textContent = "Error: " + error.message;
  } finally {
    $("results").removeAttribute("aria-busy");
  }
}

function render(reply, query, region) {
  const results = $("results");
  results.replaceChildren();
  $("blocked").hidden = !reply.blocked;
  if (reply.blocked) {
    $("blocked-disclaimer").textContent = reply.disclaimer;
    $("blocked-reason").textContent = "Why: " + reply.reason;
    $("status").textContent = "This search is blocked in " + (region || "an unknown region") + ".";
    return;
  }
  const withheld = reply.hits.filter((hit) => hit.withheld).length;
  $("status").textContent = `${reply.hits.length} photos for “${query}”` +
    (withheld ? `, ${withheld} withheld in ${region || "an unknown region"}` : "") + ".";
  reply.hits.forEach((hit, rank) => results.append(tile(hit, rank + 1)));
}

function probability(score) {
  const bar = el("span", { class: "bar", role: "img", "aria-label": `match probability ${score.toFixed(2)}` });
  const fill = el("span", { class: "fill" });
  fill.style.width = `${Math.round(score * 100)}%`;
  bar.append(fill);
  return el("div", { class: "prob" }, bar, el("span", { class: "num" }, score.toFixed(2)));
}

function tile(hit, rank) {
  const score = Number(hit.score) || 0;
  if (hit.withheld) {
    return el("li", { class: "tile withheld", tabindex: "0", "aria-label": `result ${rank}: withheld` },
      el("div", { class: "veil" }, el("p", { class: "disclaimer" }, hit.disclaimer)),
      el("div", { class: "meta" }, probability(score), el("p", { class: "reason" }, hit.reason)));
  }
  const image = el("img", { alt: hit.uri, width: "256", height: "256", loading: "lazy", decoding: "async" });
  showThumbnail(image, hit.thumbnailUrl);
  return el("li", { class: "tile", tabindex: "0", "aria-label": `result ${rank}: ${hit.uri}` },
    el("div", { class: "photo" }, image),
    el("div", { class: "meta" },
      el("p", { class: "uri", title: hit.uri }, hit.uri), probability(score), evidence(hit.evidence)));
}

// With an API key an <img> cannot send the header, so the thumbnail is fetched and shown from memory.
async function showThumbnail(image, url) {
  if (!url) return;
  if (!apiKey()) {
    image.src = url;
    return;
  }
  try {
    const response = await fetch(url, { headers: authHeaders() });
    if (response.ok) image.src = URL.createObjectURL(await response.blob());
  } catch (error) {
    image.alt += " (thumbnail unavailable)";
  }
}

// What a hit's probability rests on, in whatever shape the API gives it.
function evidence(value) {
  if (value === undefined || value === null || value === "" ||
      (Array.isArray(value) && !value.length)) return null;
  const box = el("div", { class: "evidence" }, el("span", { class: "label" }, "Evidence"));
  box.append(describe(value));
  return box;
}

function describe(value) {
  if (Array.isArray(value)) {
    return el("ul", {}, ...value.map((item) => el("li", {}, describe(item))));
  }
  if (value && typeof value === "object") {
    return el("dl", {}, ...Object.entries(value).flatMap(([key, item]) => [
      el("dt", {}, key), el("dd", {}, typeof item === "number" ? item.toFixed(2) : describe(item)),
    ]));
  }
  return document.createTextNode(typeof value === "number" ? value.toFixed(2) : String(value));
}

// --- upload ------------------------------------------------------------------------------------

function upload(event) {
  event.preventDefault();
  const form = $("upload");
  const files = $("photos").files;
  if (!files.length) return;
  const progress = $("upload-progress");
  const status = $("upload-status");
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/images");
  for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
  progress.hidden = false;
  progress.value = 0;
  status.textContent = `Uploading ${files.length} photo(s)…`;
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) progress.value = e.loaded / e.total;
  };
  request.upload.onload = () => {
    progress.removeAttribute("value");  // indeterminate while the gateway embeds the photos
    status.textContent = "Indexing…";
  };
  request.onload = () => {
    let data = {};
    try { data = JSON.parse(request.responseText); } catch (e) { /* reported below */ }
    progress.hidden = true;
    if (request.status !== 200) {
      status.textContent = "Upload failed: " + apiError(request.status, data).message;
      return;
    }
    const failures = (data.failures || []).map((f) => `${f.uri}: ${f.reason}`).join("; ");
    status.textContent = `Indexed ${data.indexed}, unchanged ${data.unchanged}, failed ${data.failed}` +
      (data.flagged ? `, flagged ${data.flagged}` : "") + (failures ? ` (${failures})` : "") + ".";
    form.reset();
    loadStats();
  };
  request.onerror = () => {
    progress.hidden = true;
    status.textContent = "Upload failed: the gateway cannot be reached.";
  };
  request.send(new FormData(form));
}

// --- start -------------------------------------------------------------------------------------

function start() {
  $("apikey").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("apikey").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, apiKey());
    loadStats();
  });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("region").addEventListener("change", () => $("q").value.trim() && search());
  $("upload").addEventListener("submit", upload);

  const params = new URLSearchParams(location.search);
  if (params.has("region")) {
    const region = params.get("region").trim().toUpperCase();
    ensureRegionOption(region);
    $("region").value = region;
  }
  if (params.has("k")) $("k").value = params.get("k");
  loadStats().then(() => {
    if (params.get("q")) {
      $("q").value = params.get("q");
      search(false);
    }
  });
}

start();
