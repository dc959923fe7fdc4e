// Baldur dashboard: a live view of the fleet over server-sent events
// (/api/events) and operator controls over the admin API. Plain JavaScript,
// no build step, no external resources.
"use strict";

const TOKEN_KEY = "baldur-admin-token";
const state = { breakers: new Map(), dlq: null, governance: null };
const $ = (id) => document.getElementById(id);

// ---- helpers -------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function duration(ms) {
  if (!(ms >= 0)) return "—";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + (s % 60) + "s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + (m % 60) + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function showToast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(showToast.timer);
  showToast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// api calls the admin API; a write carries the token. It throws an Error
// with the server's message on a non-2xx answer.
async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (token()) headers["Authorization"] = "Bearer " + token();
  }
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    const msg = (data && data.error) || res.status + " " + res.statusText;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- breakers -----------------------------------------------------------

const STATE_LABEL = { closed: "CLOSED", open: "OPEN", half_open: "HALF-OPEN" };

function breakerRow(b) {
  const tr = el("tr", { id: "breaker-" + b.service, "data-service": b.service });
  tr.append(
    el("th", { scope: "row", class: "svc" }, b.service,
      ...(b.override ? [el("span", { class: "tag override-tag", title: "threshold override active" }, "override")] : [])),
    el("td", { class: "state" }, el("span", { class: "badge st-" + b.state }, STATE_LABEL[b.state] || b.state)),
    el("td", { class: "mode" }, b.mode.replace("_", " ")),
    el("td", { class: "num rate" }, (b.failure_rate || 0).toFixed(1) + " %"),
    el("td", { class: "num calls" }, String(b.calls || 0)),
    el("td", { class: "num since", "data-since": b.since || "" }, b.since ? duration(Date.now() - Date.parse(b.since)) : "—"),
    el("td", { class: "num gen" }, String(b.generation)),
  );
  const actions = el("td", { class: "actions wrap" });
  const mk = (label, action, cls) => {
    const btn = el("button", { type: "button", class: cls || "", "data-action": action }, label);
    btn.setAttribute("aria-label", label + " " + b.service);
    btn.addEventListener("click", () => breakerDialog(b.service, action, label));
    return btn;
  };
  actions.append(mk("Force open", "open", "danger"), mk("Force close", "close"), mk("Auto", "auto", "secondary"),
    mk("Disable", "disable", "secondary"), mk("Metrics only", "metrics-only", "secondary"), mk("Override…", "override", "secondary"));
  if (b.override) actions.append(mk("Clear override", "clear-override", "secondary"));
  tr.append(actions);
  if (b.manual) tr.title = "set by " + b.manual.actor + ": " + b.manual.reason;
  return tr;
}

function upsertBreaker(b) {
  const prev = state.breakers.get(b.service);
  state.breakers.set(b.service, b);
  const rows = $("breaker-rows");
  const row = breakerRow(b);
  const old = document.getElementById("breaker-" + b.service);
  if (old) {
    if (prev && (prev.state !== b.state || prev.mode !== b.mode)) row.classList.add("changed");
    old.replaceWith(row);
  } else {
    const after = [...rows.children].find((r) => r.dataset.service > b.service);
    rows.insertBefore(row, after || null);
  }
  breakerCount();
}

function removeBreaker(svc) {
  state.breakers.delete(svc);
  const old = document.getElementById("breaker-" + svc);
  if (old) old.remove();
  breakerCount();
}

function breakerCount() {
  const n = state.breakers.size;
  let open = 0;
  for (const b of state.breakers.values()) if (b.state !== "closed") open++;
  $("breaker-count").textContent = n ? "(" + n + ", " + open + " not closed)" : "";
  $("breakers-empty").hidden = n > 0;
}

function tickSince() {
  for (const td of document.querySelectorAll("td.since[data-since]")) {
    const s = td.getAttribute("data-since");
    if (s) td.textContent = duration(Date.now() - Date.parse(s));
  }
}

// ---- governance ---------------------------------------------------------

const LEVELS = ["normal", "elevated", "high", "critical"];

function renderGovernance(g) {
  state.governance = g;
  const ks = g.kill_switch || {};
  const em = g.emergency_level || {};
  const eb = g.error_budget || {};
  $("gov-kill").textContent = ks.active ? "ON" : "off";
  $("gov-kill-who").textContent = ks.actor ? "(" + ks.actor + ": " + (ks.reason || "") + ")" : "";
  $("kill-toggle").textContent = ks.active ? "Turn kill switch off" : "Turn kill switch on";
  $("kill-toggle").className = ks.active ? "" : "danger";
  const lvl = em.level || 0;
  $("gov-level").textContent = lvl + " · " + (LEVELS[lvl] || "?");
  $("level-select").value = String(lvl);
  $("gov-budget").textContent = eb.enabled
    ? (100 * (eb.remaining || 0)).toFixed(1) + " % left (" + (eb.level || "ok") + ", SLO " + eb.slo_target + ")"
    : "gate off";
  const banner = $("governance");
  banner.classList.remove("gov-ok", "gov-warn", "gov-crit");
  if (ks.active || lvl >= 3 || eb.level === "critical") banner.classList.add("gov-crit");
  else if (lvl > 0 || eb.level === "warning") banner.classList.add("gov-warn");
  else banner.classList.add("gov-ok");
}

// ---- dead letters -------------------------------------------------------

function renderDLQ(d) {
  state.dlq = d;
  $("dlq-error").hidden = !d.error;
  $("dlq-error").textContent = d.error ? "DLQ depth unavailable: " + d.error : "";
  const rows = $("dlq-rows");
  rows.replaceChildren();
  const services = Object.keys(d.counts || {}).sort();
  for (const svc of services) {
    const c = d.counts[svc];
    const known = ["pending", "replaying", "requires_review", "reviewing", "resolved"];
    let other = 0;
    for (const [k, v] of Object.entries(c)) if (!known.includes(k)) other += v;
    const replayBtn = el("button", { type: "button", "data-action": "replay-batch" }, "Replay backlog");
    replayBtn.setAttribute("aria-label", "Replay the pending dead letters of " + svc);
    replayBtn.disabled = !(c.pending > 0);
    replayBtn.addEventListener("click", () => openDialog({
      title: "Replay the backlog of " + svc,
      desc: "Replays " + svc + "'s pending dead letters now, within governance.",
      ttl: false,
      run: (reason) => api("POST", "/api/dlq/replay-batch", { service: svc, reason }),
      done: (r) => "replay of " + svc + ": " + r.count + " of " + r.matched + " entries",
    }));
    rows.append(el("tr", { "data-service": svc },
      el("th", { scope: "row" }, svc),
      el("td", { class: "num" }, String(c.pending || 0)),
      el("td", { class: "num" }, String(c.replaying || 0)),
      el("td", { class: "num" }, String((c.requires_review || 0) + (c.reviewing || 0))),
      el("td", { class: "num" }, String(c.resolved || 0)),
      el("td", { class: "num" }, String(other)),
      el("td", { class: "actions" }, replayBtn)));
  }
  $("dlq-empty").hidden = services.length > 0 || !!d.error;
  loadReview();
}

// loadReview lists the entries that need an operator (requires_review),
// newest first as the endpoint orders them; a call already running makes
// the next one run once it ends.
async function loadReview() {
  if (loadReview.running) { loadReview.again = true; return; }
  loadReview.running = true;
  try {
    const r = await api("GET", "/api/dlq?status=requires_review&limit=" + REVIEW_LIMIT);
    renderReview(r.entries || [], !!r.next_cursor);
    $("review-error").hidden = true;
  } catch (err) {
    $("review-error").textContent = "Entries unavailable: " + err.message;
    $("review-error").hidden = false;
  } finally {
    loadReview.running = false;
    if (loadReview.again) { loadReview.again = false; loadReview(); }
  }
}

const REVIEW_LIMIT = 20;

function renderReview(entries, more) {
  const rows = $("review-rows");
  rows.replaceChildren();
  for (const e of entries) {
    const mk = (label, action, cls) => {
      const btn = el("button", { type: "button", class: cls || "", "data-action": action }, label);
      btn.setAttribute("aria-label", label + " entry " + e.id);
      btn.addEventListener("click", () => entryDialog(e, action, label));
      return btn;
    };
    rows.append(el("tr", { id: "entry-" + e.id, "data-id": e.id },
      el("th", { scope: "row" }, el("code", { title: e.id }, e.id.slice(0, 8))),
      el("td", {}, e.service),
      el("td", {}, e.failure_type || e.domain || ""),
      el("td", { class: "num" }, (e.retry_count || 0) + "/" + (e.max_retries || 0)),
      el("td", { class: "err", title: e.last_error || "" }, e.last_error || ""),
      el("td", { class: "actions wrap" }, mk("Replay", "replay"), mk("Requeue", "requeue", "secondary"),
        mk("Resolve…", "resolve", "secondary"), mk("Discard…", "discard", "danger"))));
  }
  $("review-count").textContent = entries.length ? "(" + entries.length + (more ? "+" : "") + ")" : "";
  $("review-empty").hidden = entries.length > 0;
  $("review").hidden = entries.length === 0;
}

const ENTRY_DESC = {
  replay: "Replays the entry now, within governance.",
  requeue: "Puts the entry back in the queue with a fresh retry budget.",
  resolve: "Marks the entry resolved by hand.",
  discard: "Gives the entry up; it is not replayed again.",
};

function entryDialog(e, action, label) {
  const note = action === "resolve" || action === "discard";
  openDialog({
    title: label.replace("…", "") + " entry " + e.id.slice(0, 8) + " (" + e.service + ")",
    desc: ENTRY_DESC[action],
    note,
    run: (reason, f) => {
      const body = { reason };
      if (note && f.note) body.note = f.note;
      return api("POST", "/api/dlq/" + encodeURIComponent(e.id) + "/" + action, body);
    },
    done: (r) => {
      loadReview();
      const entry = r.entry || r;
      return "entry " + e.id.slice(0, 8) + ": " + entry.status + (r.result ? " (" + r.result.stop + ")" : "");
    },
  });
}

// ---- events -------------------------------------------------------------

function describe(ev) {
  const d = ev.data || {};
  const parts = ev.subject.split(".");
  if (parts[2] === "breaker") {
    let s = d.service + ": " + (d.from || "?") + " → " + (d.to || "?");
    if (d.mode) s += " (" + d.mode + ")";
    if (d.trigger) s += ", " + d.trigger;
    if (d.actor) s += " by " + d.actor;
    if (d.reason) s += ": " + d.reason;
    return ["breaker", s];
  }
  if (parts[2] === "governance") return ["governance", parts.slice(3).join(".") + (d.actor ? " by " + d.actor : "") + (d.reason ? ": " + d.reason : "")];
  if (parts[2] === "replay") return ["replay", parts.slice(3).join(".")];
  if (parts[2] === "rejected") return ["rejected", parts.slice(3).join(".") + (d.reason ? ": " + d.reason : "")];
  if (parts[2] === "dlq") return ["dlq", parts.slice(3).join(".")];
  return [parts[2] || "event", ev.subject];
}

function addEvent(ev, prepend) {
  const [kind, text] = describe(ev);
  const at = ev.time ? new Date(ev.time) : null;
  const li = el("li", { class: "ev-" + kind },
    el("time", { dateTime: ev.time || "" }, at ? at.toLocaleTimeString() : ""),
    el("span", { class: "kind" }, kind),
    text);
  const list = $("events");
  if (prepend) list.prepend(li); else list.append(li);
  while (list.children.length > 100) list.lastChild.remove();
  $("events-empty").hidden = list.children.length > 0;
}

// ---- live feed ----------------------------------------------------------

function connect() {
  const es = new EventSource("/api/events");
  const conn = $("conn");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "conn conn-live"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "conn conn-wait"; });
  const showStale = (st) => {
    const since = st.since ? new Date(st.since).toLocaleTimeString() : "";
    conn.textContent = "stale since " + since + ": " + st.reason;
    conn.className = "conn conn-wait";
  };
  es.addEventListener("stale", (e) => showStale(JSON.parse(e.data)));
  es.addEventListener("snapshot", (e) => {
    const s = JSON.parse(e.data);
    if (s.stale) showStale(s.stale); else { conn.textContent = "live"; conn.className = "conn conn-live"; }
    state.breakers.clear();
    $("breaker-rows").replaceChildren();
    for (const b of s.breakers) upsertBreaker(b);
    breakerCount();
    renderGovernance(s.governance);
    if (s.dlq) renderDLQ(s.dlq); else loadReview();
    $("events").replaceChildren();
    for (const ev of s.events) addEvent(ev, true);
    $("events-empty").hidden = s.events.length > 0;
    document.body.dataset.ready = "true";
  });
  es.addEventListener("breaker", (e) => upsertBreaker(JSON.parse(e.data)));
  es.addEventListener("breaker_removed", (e) => removeBreaker(JSON.parse(e.data).service));
  es.addEventListener("governance", (e) => renderGovernance(JSON.parse(e.data)));
  es.addEventListener("dlq", (e) => renderDLQ(JSON.parse(e.data)));
  es.addEventListener("event", (e) => addEvent(JSON.parse(e.data), true));
}

// ---- actions ------------------------------------------------------------

let pending = null;

// openDialog asks for the reason (and the token when none is saved), runs
// the action and shows its result or error.
function openDialog(spec) {
  pending = spec;
  $("dlg-title").textContent = spec.title;
  $("dlg-desc").textContent = spec.desc || "";
  $("dlg-token").value = token();
  $("dlg-token-row").hidden = !!token();
  $("dlg-reason").value = "";
  $("dlg-ttl").value = "";
  $("dlg-ttl-row").hidden = !spec.ttl;
  for (const id of ["dlg-ov-threshold", "dlg-ov-rate", "dlg-ov-recovery", "dlg-note"]) $(id).value = "";
  $("dlg-replay").checked = false;
  $("dlg-override-row").hidden = !spec.override;
  $("dlg-replay-row").hidden = !spec.replay;
  $("dlg-note-row").hidden = !spec.note;
  $("dlg-error").hidden = true;
  $("dlg-confirm").disabled = false;
  $("action-dialog").showModal();
  (token() ? $("dlg-reason") : $("dlg-token")).focus();
}

const BREAKER_DESC = {
  auto: (svc) => "Hands " + svc + " back to the rules.",
  disable: (svc) => "Stops guarding " + svc + ": every call passes, outcomes are not counted, until it is set back to auto.",
  "metrics-only": (svc) => "Keeps counting " + svc + "'s outcomes but never opens, until it is set back to auto.",
  override: (svc) => "Replaces " + svc + "'s thresholds until the override expires or is cleared.",
  "clear-override": (svc) => "Goes back to " + svc + "'s configured thresholds.",
};

function breakerDialog(svc, action, label) {
  const ttl = action === "open" || action === "close" || action === "override";
  const desc = BREAKER_DESC[action];
  openDialog({
    title: label.replace("…", "") + ": " + svc,
    desc: desc ? desc(svc) : "Overrides the rules for " + svc + " until it expires or is set back to auto.",
    ttl,
    override: action === "override",
    replay: action === "close",
    run: (reason, f) => {
      const body = { reason };
      if (ttl && f.ttl) body.ttl = f.ttl;
      if (action === "close" && f.replay) body.trigger_replay = true;
      if (action === "override") body.override = f.override;
      return api("POST", "/api/breakers/" + encodeURIComponent(svc) + "/" + action, body);
    },
    done: (r) => r.no_change ? svc + " already was as asked"
      : svc + ": " + r.breaker.state + " (" + r.breaker.mode + ")" + (r.breaker.override ? ", override active" : ""),
  });
}

// overrideFields reads the override form; it throws when no field is set
// or a field is out of range.
function overrideFields() {
  const o = {};
  const th = $("dlg-ov-threshold").value.trim();
  const rate = $("dlg-ov-rate").value.trim();
  const rec = $("dlg-ov-recovery").value.trim();
  if (th) {
    const n = Number(th);
    if (!Number.isInteger(n) || n < 1) throw new Error("The failure threshold is a whole number of calls, 1 or more.");
    o.failure_threshold = n;
  }
  if (rate) {
    const n = Number(rate);
    if (!(n > 0 && n <= 100)) throw new Error("The failure rate threshold is a percentage over 0 and at most 100.");
    o.failure_rate_threshold = n;
  }
  if (rec) o.recovery_timeout = rec;
  if (Object.keys(o).length === 0) throw new Error("Set at least one threshold.");
  return o;
}

async function submitDialog(ev) {
  ev.preventDefault();
  if (!pending) return;
  const tok = $("dlg-token").value.trim();
  if (!tok) { showDialogError("Enter the admin token (the server's --admin-token)."); return; }
  sessionStorage.setItem(TOKEN_KEY, tok);
  tokenState();
  const reason = $("dlg-reason").value.trim();
  if (!reason) { showDialogError("A reason is required; it goes to the audit log."); return; }
  const fields = { ttl: $("dlg-ttl").value.trim(), replay: $("dlg-replay").checked, note: $("dlg-note").value.trim() };
  if (pending.override) {
    try { fields.override = overrideFields(); } catch (err) { showDialogError(err.message); return; }
  }
  $("dlg-confirm").disabled = true;
  $("dlg-error").hidden = true;
  try {
    const res = await pending.run(reason, fields);
    $("action-dialog").close();
    showToast(pending.done(res));
    pending = null;
  } catch (err) {
    if (err.status === 401) { sessionStorage.removeItem(TOKEN_KEY); tokenState(); $("dlg-token-row").hidden = false; }
    showDialogError(err.message);
  } finally {
    $("dlg-confirm").disabled = false;
  }
}

function showDialogError(msg) {
  $("dlg-error").textContent = msg;
  $("dlg-error").hidden = false;
}

function tokenState() {
  $("token-state").textContent = token() ? "token saved for this tab" : "";
  $("token").value = "";
}

function init() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    tokenState();
  });
  $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); tokenState(); });
  $("action-form").addEventListener("submit", submitDialog);
  $("dlg-cancel").addEventListener("click", () => { pending = null; $("action-dialog").close(); });
  $("kill-toggle").addEventListener("click", () => {
    const on = !(state.governance && state.governance.kill_switch && state.governance.kill_switch.active);
    openDialog({
      title: on ? "Turn the kill switch on" : "Turn the kill switch off",
      desc: on ? "Stops all automated replay and refuses manual breaker actions fleet-wide." : "Lets automation run again.",
      run: (reason) => api("POST", "/api/governance/kill-switch", { on, reason }),
      done: () => "kill switch " + (on ? "on" : "off"),
    });
  });
  $("level-apply").addEventListener("click", () => {
    const level = Number($("level-select").value);
    openDialog({
      title: "Set the emergency level to " + level + " · " + LEVELS[level],
      run: (reason) => api("POST", "/api/governance/emergency", { level, reason }),
      done: () => "emergency level " + level,
    });
  });
  $("replay-one").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("replay-id").value.trim();
    openDialog({
      title: "Replay entry " + id,
      run: (reason) => api("POST", "/api/dlq/" + encodeURIComponent(id) + "/replay", { reason }),
      done: (r) => "entry " + id + ": " + r.entry.status + " (" + r.result.stop + ")",
    });
  });
  tokenState();
  connect();
  setInterval(tickSince, 1000);
}

document.addEventListener("DOMContentLoaded", init);
