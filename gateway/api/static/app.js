// The operator's page: reads the gateway's admin API with the admin key and redraws
// every couple of seconds. No framework and no build step: the DOM is built with
// createElement and textContent only, so nothing from the config is ever parsed as HTML.
"use strict";

const KEY_STORAGE = "gateway.adminKey";
const POLL_MS = 2000;
const SPEND_MS = 10000; // spend moves slowly and may cost a Redis read: fetched less often
const COLORS = ["#2f6fde", "#e07b24", "#1f9d55", "#8e44ad", "#d13b3b", "#0f9bb3", "#b58900", "#6b7280"];

const $ = (id) => document.getElementById(id);
let timer = null;
let paused = false;
let spendAt = 0;

// --- the admin API ---------------------------------------------------------------------------

class AuthError extends Error {}

async function api(path, method, body) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) throw new AuthError("log in with the admin key");
  const headers = { "Authorization": "Bearer " + key, "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: method || "GET",
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (body !== undefined && (response.status === 400 || response.status === 409 || response.status === 503)) {
    return { refused: (await response.json()).error.message }; // the gateway's own words, shown by the form
  }
  if (response.status === 422) return response.json(); // a refused reload: its errors are the answer
  if (response.status === 401 || response.status === 403) {
    let message = "the admin key was refused";
    try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
    throw new AuthError(message);
  }
  if (response.status === 404) return null; // this gateway does not serve that endpoint
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

// An endpoint that is missing or failing must not blank the whole page.
async function optional(path) {
  try { return await api(path); } catch (error) {
    if (error instanceof AuthError) throw error;
    return { failed: String(error.message || error) };
  }
}

// --- small DOM and format helpers ----------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name === "title") node.title = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))]));
}

const dash = "–";
const fmtInt = (n) => (n === null || n === undefined ? dash : Number(n).toLocaleString("en-US"));
const fmtPct = (r) => (r === null || r === undefined ? dash : (r * 100).toFixed(r > 0 && r < 0.01 ? 2 : 1) + "%");
const fmtRate = (n) => (n === null || n === undefined ? dash : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

function fmtMs(ms) {
  if (ms === null || ms === undefined) return dash;
  if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 2) + " s";
  if (ms >= 100) return ms.toFixed(0) + " ms";
  return ms.toFixed(ms >= 10 ? 1 : 2) + " ms";
}

function fmtUsd(usd) {
  if (usd === null || usd === undefined) return dash;
  if (usd === 0) return "$0";
  return "$" + (usd < 1 ? usd.toFixed(4) : usd.toFixed(2));
}

function fmtWhen(unixSeconds) {
  if (!unixSeconds) return dash;
  const date = new Date(unixSeconds * 1000);
  const ago = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  const relative = ago < 90 ? ago + " s ago" : ago < 5400 ? Math.round(ago / 60) + " min ago" : Math.round(ago / 3600) + " h ago";
  return date.toLocaleString() + " (" + relative + ")";
}

function meter(ratio, text, levels) {
  const fillBar = el("div", { class: "fill" });
  const shown = ratio === null || ratio === undefined ? 0 : Math.max(0, Math.min(1, ratio));
  fillBar.style.width = (shown * 100).toFixed(1) + "%";
  if (levels && ratio >= levels.bad) fillBar.classList.add("bad");
  else if (levels && ratio >= levels.warn) fillBar.classList.add("warn");
  return el("div", { class: "meter" }, el("div", { class: "track" }, fillBar), el("span", { class: "text" }, text));
}

// --- config and routes -----------------------------------------------------------------------

function renderConfig(config, routes) {
  const live = config && !config.failed;
  const source = live ? config : routes;
  $("version").textContent = "config " + source.version;
  $("config-version").textContent = source.version;
  $("config-loaded").textContent = fmtWhen(source.loaded_at);
  $("config-sources").textContent = (source.sources || []).join(", ");
  const refused = live ? config.last_refused : null;
  const history = live ? config.reloads || [] : [];
  const last = history.length ? history[history.length - 1] : null;
  $("config-reload").textContent = last
    ? last.result + " (" + last.trigger + ") " + fmtWhen(last.at)
    : live ? "none since start" : dash;
  $("refused").hidden = !refused;
  if (refused) {
    const errors = refused.errors || [];
    // A refused reload stays on record; once a later one went through it is history, not news.
    const settled = last && last.at > refused.at && last.result !== "refused";
    $("refused").classList.toggle("settled", Boolean(settled));
    $("refused-title").textContent =
      "Refused reload " + fmtWhen(refused.at) + " (" + refused.trigger + "): " + errors.length +
      " error" + (errors.length === 1 ? "" : "s") + "; " +
      (settled ? "a later reload (" + last.result + ") has gone through since" : "still serving " + refused.version);
    $("refused-errors").replaceChildren(...errors.map((e) =>
      el("li", {}, e.file + ":" + e.line + ":" + e.col + ": " + e.message)));
  }
  $("reload-now").hidden = !live; // POST /admin/reload comes with GET /admin/config
  $("config-note").textContent = live ? "" : config && config.failed
    ? "Reload history could not be read: " + config.failed
    : "This gateway does not report reloads (GET /admin/config).";
}

function renderRoutes(routes) {
  $("routes-window").textContent = "· live state, last " + Math.round(routes.window_seconds / 60) + " min";
  const rows = [];
  for (const route of routes.routes) {
    const strategy = route.strategy + (route.equivalent ? " · " + route.equivalent : "");
    rows.push(el("tr", { class: "alias", "data-alias": route.alias },
      el("td", {}, route.alias, el("span", { class: "tag", title: (route.endpoints || []).join("\n") }, route.kind)),
      el("td", {}, strategy), el("td"), el("td"), el("td"), el("td"), el("td"), el("td")));
    route.targets.forEach((t, index) => {
      const tags = [];
      if (route.strategy === "weighted") tags.push("weight " + t.weight);
      if (t.tier) tags.push(t.tier);
      if (t.from_equivalents) tags.push("equivalent");
      const circuit = el("span", { class: "badge " + t.circuit.state }, t.circuit.state.replace("_", "-"));
      const reopens = t.circuit.state !== "closed" && t.circuit.retry_in > 0
        ? el("span", { class: "tag" }, "probe in " + Math.ceil(t.circuit.retry_in) + " s") : null;
      const errorRate = el("span", { class: t.error_rate > 0.05 ? "bad-text" : "" }, fmtPct(t.error_rate));
      const how = route.kind === "chat" ? "/v1/responses: " + (t.responses || "translated") : "";
      rows.push(el("tr", { class: "target", "data-target": t.target, title: how },
        el("td", {}, el("span", { class: "order" }, String(index + 1)), t.target,
          tags.length ? el("span", { class: "tag" }, tags.join(" · ")) : null),
        el("td"),
        el("td", {}, circuit, reopens),
        el("td", { class: "num" }, fmtMs(t.latency_avg_ms)),
        el("td", { class: "num" }, fmtMs(t.latency_ms.p50)),
        el("td", { class: "num" }, fmtInt(t.calls)),
        el("td", { class: "num" }, errorRate),
        el("td", {}, meter(t.share, t.share === null ? "no answers yet" : fmtPct(t.share)))));
    });
  }
  fill($("routes").tBodies[0], rows, 8, "no routes");
}

// --- traffic ---------------------------------------------------------------------------------

// A route's cache hit rate, exact and semantic hits together, and the semantic share apart.
function fmtCache(cache) {
  if (!cache || !cache.lookups) return dash;
  const total = fmtPct(cache.hit_rate);
  return cache.semantic_hits ? total + " (semantic " + fmtPct(cache.semantic_hit_rate) + ")" : total;
}

function cacheTitle(cache) {
  if (!cache || !cache.lookups) return "no cache lookups in the window";
  return cache.lookups + " lookups: " + cache.hits + " exact hits, " + cache.semantic_hits + " semantic hits";
}

function routeName(name) { return name === "" ? "(refused before routing)" : name; }

function renderTraffic(traffic) {
  const minutes = Math.round(traffic.window_seconds / 60);
  $("traffic-window").textContent = "· last " + minutes + " min, " + traffic.slot_seconds + " s slots";
  const totals = traffic.totals;
  $("t-rps").textContent = fmtRate(totals.rps);
  $("t-requests").textContent = fmtInt(totals.requests);
  for (const mark of ["p50", "p90", "p99"]) $("t-" + mark).textContent = fmtMs(totals.latency_ms[mark]);
  $("t-errors").textContent = fmtInt(totals.errors) + (totals.error_rate ? " (" + fmtPct(totals.error_rate) + ")" : "");
  $("t-rejected").textContent = fmtInt(totals.rejected);
  $("t-fallbacks").textContent = fmtInt(totals.fallbacks);

  const rows = traffic.routes.map((r) => el("tr", { "data-route": r.route },
    el("td", {}, routeName(r.route)),
    el("td", { class: "num" }, fmtRate(r.rps)),
    el("td", { class: "num" }, fmtInt(r.requests)),
    el("td", { class: "num" }, fmtInt(r.errors)),
    el("td", { class: "num" }, el("span", { class: r.error_rate > 0.05 ? "bad-text" : "" }, fmtPct(r.error_rate))),
    el("td", { class: "num" }, fmtInt(r.rejected)),
    el("td", { class: "num" }, fmtInt(r.fallbacks)),
    el("td", { class: "num" }, fmtMs(r.latency_ms.p50)),
    el("td", { class: "num" }, fmtMs(r.latency_ms.p90)),
    el("td", { class: "num" }, fmtMs(r.latency_ms.p99)),
    el("td", { class: "num", title: cacheTitle(r.cache) }, fmtCache(r.cache))));
  fill($("traffic").tBodies[0], rows, 11, "no requests in the window yet");
  drawChart(traffic);
}

// A hand-drawn SVG line chart: requests per second per route, one point per slot,
// with red bars for the errors in each slot.
function drawChart(traffic) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  // Drawn at the size it is shown, so its text is never stretched.
  const W = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 800), H = 180;
  const left = 40, right = 8, top = 10, bottom = 22;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const make = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const slot = traffic.slot_seconds;
  const routes = traffic.routes.filter((r) => r.requests > 0 || r.series.some((p) => p.requests > 0));
  const count = traffic.series.length;
  let peak = 0;
  for (const r of routes) for (const p of r.series) peak = Math.max(peak, p.requests / slot);
  const ymax = niceCeil(Math.max(peak, 0.2));
  const x = (i) => left + (count <= 1 ? 0 : (i * (W - left - right)) / (count - 1));
  const y = (v) => top + (H - top - bottom) * (1 - v / ymax);
  const nodes = [
    make("line", { class: "axis", x1: left, y1: y(0), x2: W - right, y2: y(0) }),
    make("line", { class: "axis", x1: left, y1: y(ymax), x2: W - right, y2: y(ymax) }),
    make("text", { class: "tick", x: left - 6, y: y(ymax) + 4, "text-anchor": "end" }, fmtRate(ymax)),
    make("text", { class: "tick", x: left - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
    make("text", { class: "tick", x: left, y: H - 6 }, "−" + Math.round((count * slot) / 60) + " min"),
    make("text", { class: "tick", x: W - right, y: H - 6, "text-anchor": "end" }, "now · req/s"),
  ];
  const barWidth = Math.max(1, (W - left - right) / Math.max(count, 1) - 1);
  traffic.series.forEach((p, i) => {
    if (!p.errors) return;
    const height = Math.max(2, (H - top - bottom) * Math.min(1, p.errors / slot / ymax));
    nodes.push(make("rect", { class: "err", x: x(i) - barWidth / 2, y: y(0) - height, width: barWidth, height: height }));
  });
  const legend = [];
  routes.forEach((r, index) => {
    const color = COLORS[index % COLORS.length];
    const points = r.series.map((p, i) => x(i).toFixed(1) + "," + y(p.requests / slot).toFixed(1)).join(" ");
    const line = make("polyline", { class: "line", points: points });
    line.style.stroke = color;
    nodes.push(line);
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = color;
    legend.push(el("span", {}, swatch, routeName(r.route)));
  });
  if (traffic.series.some((p) => p.errors)) {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = "#d13b3b";
    legend.push(el("span", {}, swatch, "errors"));
  }
  svg.replaceChildren(...nodes);
  $("chart-legend").replaceChildren(...(legend.length ? legend : [el("span", {}, "no requests in the window yet")]));
}

function niceCeil(value) {
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

// --- spend -------------------------------------------------------------------------------------

function byName(list, field) {
  const out = new Map();
  for (const entry of list || []) out.set(entry[field], entry);
  return out;
}

function renderSpend(day, month) {
  const missing = !day || !month || day.failed || month.failed;
  $("spend-note").textContent = missing
    ? (day && day.failed) || (month && month.failed)
      ? "Usage could not be read: " + ((day && day.failed) || month.failed)
      : "This gateway does not report usage (GET /admin/usage)."
    : "UTC day " + day.window + " and month " + month.window + (month.store ? " · store: " + month.store : "");
  if (missing) {
    fill($("spend-keys").tBodies[0], [], 6, "no usage data");
    fill($("spend-routes").tBodies[0], [], 6, "no usage data");
    return;
  }
  const dayKeys = byName(day.keys, "key");
  const keyRows = (month.keys || []).map((m) => {
    const d = dayKeys.get(m.key) || {};
    const budget = d.budget || m.budget;
    let bar;
    if (budget) {
      const ratio = budget.usd > 0 ? budget.spent_usd / budget.usd : 1;
      bar = meter(ratio, fmtUsd(budget.spent_usd) + " of " + fmtUsd(budget.usd) + " per " + budget.per + " (" + fmtPct(ratio) + ")",
        { warn: 0.8, bad: 1 });
    } else {
      bar = el("span", { class: "muted" }, "no budget");
    }
    return el("tr", { "data-key": m.key },
      el("td", {}, m.key),
      el("td", { class: "num" }, fmtInt(d.total_tokens || 0)),
      el("td", { class: "num" }, fmtUsd(d.cost_usd || 0)),
      el("td", { class: "num" }, fmtInt(m.total_tokens)),
      el("td", { class: "num" }, fmtUsd(m.cost_usd)),
      el("td", {}, bar));
  });
  fill($("spend-keys").tBodies[0], keyRows, 6, "no keys configured: the gateway is open");

  const dayRoutes = byName(day.routes, "route");
  const monthTotal = (month.routes || []).reduce((sum, r) => sum + (r.cost_usd || 0), 0);
  const routeRows = (month.routes || []).map((m) => {
    const d = dayRoutes.get(m.route) || {};
    const share = monthTotal > 0 ? m.cost_usd / monthTotal : null;
    return el("tr", { "data-route": m.route },
      el("td", {}, routeName(m.route)),
      el("td", { class: "num" }, fmtInt(d.total_tokens || 0)),
      el("td", { class: "num" }, fmtUsd(d.cost_usd || 0)),
      el("td", { class: "num" }, fmtInt(m.total_tokens)),
      el("td", { class: "num" }, fmtUsd(m.cost_usd)),
      el("td", {}, meter(share, share === null ? "no spend yet" : fmtPct(share))));
  });
  fill($("spend-routes").tBodies[0], routeRows, 6, "no routes");
}

// --- tenants and keys --------------------------------------------------------------------------

function renderTenants(tenants, keys) {
  const missing = !tenants || !keys || tenants.failed || keys.failed;
  $("tenants-note").textContent = missing
    ? "Tenants and keys could not be read: " + ((tenants && tenants.failed) || (keys && keys.failed) || "not served")
    : "Keys of routes.yaml change in the file; keys and tenants made here live in the database.";
  if (missing) return;
  const monthByTenant = new Map();
  for (const k of keys.data) {
    if (k.tenant) monthByTenant.set(k.tenant, (monthByTenant.get(k.tenant) || 0) + k.spend_usd.month);
  }
  const tenantRows = tenants.data.map((t) => {
    const spent = monthByTenant.get(t.id) || 0;
    const budget = t.budget
      ? meter(t.budget.usd > 0 ? spent / t.budget.usd : 1, fmtUsd(t.budget.usd) + " per " + t.budget.per, { warn: 0.8, bad: 1 })
      : el("span", { class: "muted" }, "no budget");
    return el("tr", { "data-tenant": t.name },
      el("td", {}, t.name, el("span", { class: "tag mono" }, t.id)),
      el("td", {}, t.source === "api" ? "admin API" : "routes.yaml"),
      el("td", { class: "num" }, fmtInt(t.keys)),
      el("td", { class: "mono" }, t.routes ? t.routes.join(", ") : "all"),
      el("td", { class: "num" }, fmtUsd(spent)),
      el("td", {}, budget),
      el("td", {}, t.source === "api" ? confirmButton("Delete", () => removeTenant(t), "tenant:" + t.id) : null));
  });
  fill($("tenants").tBodies[0], tenantRows, 7, "no tenants yet");
  const keyRows = keys.data.map((k) => el("tr", { "data-key": k.name, "data-status": k.status },
    el("td", {}, k.name),
    el("td", {}, k.tenant_name || dash),
    el("td", { class: "mono" }, k.display || "(in routes.yaml)"),
    el("td", {}, el("span", { class: "badge " + (k.status === "active" ? "closed" : "open") }, k.status)),
    el("td", {}, k.expires_at || "never"),
    el("td", {}, k.last_used_at || "never"),
    el("td", { class: "num" }, fmtUsd(k.spend_usd.day)),
    el("td", { class: "num" }, fmtUsd(k.spend_usd.month)),
    el("td", {}, k.source === "api" && k.status !== "revoked" ? confirmButton("Revoke", () => revokeKey(k), "key:" + k.id) : null)));
  fill($("keys").tBodies[0], keyRows, 9, "no keys: the gateway is open");
  const select = $("key-tenant");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "no tenant"),
    ...tenants.data.map((t) => el("option", { value: t.id }, t.name)));
  select.value = chosen;
}

// A destructive button asks twice: the first click arms it, the second acts. The lists are
// drawn again on every refresh, so an armed button is remembered by what it acts on (for
// ARMED_MS) and drawn armed again, rather than silently going back to its first state.
const ARMED_MS = 10000;
const armedAt = new Map();

function confirmButton(label, action, id) {
  const armed = () => Date.now() - (armedAt.get(id) || 0) < ARMED_MS;
  const button = el("button", { type: "button", class: "small danger" }, armed() ? "Confirm " + label.toLowerCase() : label);
  button.addEventListener("click", () => {
    if (armed()) { armedAt.delete(id); button.disabled = true; action(); return; }
    armedAt.set(id, Date.now());
    button.textContent = "Confirm " + label.toLowerCase();
  });
  return button;
}

function showSecret(title, secret) {
  $("secret-title").textContent = title;
  $("secret-value").textContent = secret;
  $("secret-box").hidden = false;
}

async function change(path, method, body, errorId) {
  if (errorId) $(errorId).textContent = "";
  try {
    const answer = await api(path, method, body);
    if (answer && answer.refused) { if (errorId) $(errorId).textContent = answer.refused; return null; }
    return answer;
  } catch (error) {
    if (error instanceof AuthError) { logout(error.message); return null; }
    if (errorId) $(errorId).textContent = String(error.message || error);
    return null;
  } finally {
    spendAt = 0; // show the change at once
  }
}

async function createTenant(event) {
  event.preventDefault();
  const body = { name: $("tenant-name").value.trim() };
  const usd = parseFloat($("tenant-budget").value);
  if (usd > 0) body.budget = { usd: usd, per: "month" };
  const made = await change("/admin/tenants", "POST", body, "tenant-error");
  if (made) {
    $("tenant-form").reset();
    showSecret("Tenant " + made.name + ": first key " + made.key.name, made.key.secret);
  }
  refresh();
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("key-name").value.trim() };
  if ($("key-tenant").value) body.tenant = $("key-tenant").value;
  const made = await change("/admin/keys", "POST", body, "key-error");
  if (made) {
    $("key-form").reset();
    showSecret("Key " + made.name, made.secret);
  }
  refresh();
}

async function revokeKey(key) {
  await change("/admin/keys/" + encodeURIComponent(key.id), "DELETE", {}, "key-error");
  refresh();
}

async function removeTenant(tenant) {
  await change("/admin/tenants/" + encodeURIComponent(tenant.id), "DELETE", {}, "tenant-error");
  refresh();
}

async function reloadNow() {
  const button = $("reload-now");
  button.disabled = true;
  $("reload-result").textContent = "reloading…";
  try {
    const answer = await api("/admin/reload", "POST");
    if (answer === null) $("reload-result").textContent = "this gateway has no POST /admin/reload";
    else if (answer.error) $("reload-result").textContent = "refused: " + answer.error.message;
    else $("reload-result").textContent = answer.result + ": serving " + answer.version;
  } catch (error) {
    if (error instanceof AuthError) { logout(error.message); return; }
    $("reload-result").textContent = "reload failed: " + (error.message || error);
  } finally {
    button.disabled = false;
  }
  refresh();
}

// --- the loop --------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(timer);
  try {
    const spendDue = Date.now() - spendAt >= SPEND_MS;
    const [routes, traffic, config, day, month, tenants, keys] = await Promise.all([
      api("/admin/routes"), api("/admin/traffic"), optional("/admin/config"),
      spendDue ? optional("/admin/usage?period=day") : null,
      spendDue ? optional("/admin/usage?period=month") : null,
      spendDue ? optional("/admin/tenants") : null,
      spendDue ? optional("/admin/keys") : null,
    ]);
    renderConfig(config, routes);
    renderRoutes(routes);
    renderTraffic(traffic);
    if (spendDue) { renderSpend(day, month); renderTenants(tenants, keys); spendAt = Date.now(); }
    setStatus("live", "updated " + new Date().toLocaleTimeString() + " · process " + traffic.pid);
  } catch (error) {
    if (error instanceof AuthError) { logout(error.message); return; }
    setStatus("stale", "cannot reach the gateway: " + (error.message || error));
  }
  schedule();
}

function schedule() {
  clearTimeout(timer);
  if (!paused && sessionStorage.getItem(KEY_STORAGE)) timer = setTimeout(refresh, POLL_MS);
}

function setStatus(kind, text) {
  const status = $("status");
  status.className = "status " + kind;
  status.textContent = text;
}

function showDashboard(on) {
  $("login").hidden = on;
  $("dashboard").hidden = !on;
  $("logout").hidden = !on;
  $("pause").hidden = !on;
}

function logout(message) {
  clearTimeout(timer);
  spendAt = 0;
  sessionStorage.removeItem(KEY_STORAGE);
  showDashboard(false);
  // Drop everything that was shown: nothing stays on screen without the key.
  for (const id of ["routes", "traffic", "spend-keys", "spend-routes", "tenants", "keys"]) $(id).tBodies[0].replaceChildren();
  $("secret-box").hidden = true;
  $("secret-value").textContent = "";
  $("version").textContent = "";
  $("status").textContent = "";
  $("login-error").textContent = message || "";
  $("reload-result").textContent = "";
  $("admin-key").value = "";
  $("admin-key").focus();
}

function start() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("admin-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("admin-key").value = "";
    $("login-error").textContent = "";
    showDashboard(true);
    refresh();
  });
  $("logout").addEventListener("click", () => logout(""));
  $("reload-now").addEventListener("click", reloadNow);
  $("tenant-form").addEventListener("submit", createTenant);
  $("key-form").addEventListener("submit", createKey);
  $("secret-dismiss").addEventListener("click", () => { $("secret-box").hidden = true; $("secret-value").textContent = ""; });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (paused) { clearTimeout(timer); setStatus("stale", "paused"); } else refresh();
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !paused) refresh(); });
  if (sessionStorage.getItem(KEY_STORAGE)) { showDashboard(true); refresh(); } else showDashboard(false);
}

start();
