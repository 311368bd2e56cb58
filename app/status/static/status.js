// The status page: sign in with a bearer token (kept in sessionStorage only), read the
// server-sent status stream with fetch (so the token stays in a header), render every
// location, count a pending failover down locally, and send restore/takeover after a
// confirmation. No library, nothing loaded from anywhere but this server.
//
// It never shows stale facts as current: the server sends something at least every
// `keepalive_s`, and a page that hears nothing for 1.5 times that says the server has
// stopped answering, greys what it last heard (with its age), and keeps trying until the
// server answers again. Every time shown as "… ago" counts on by itself.
"use strict";

const TOKEN_KEY = "engine-token";
const RECONNECT_MS = 1000;
//: Silence past this many keep-alive intervals means the server stopped answering.
const SILENCE_FACTOR = 1.5;
//: A witness answer older than this many seconds is shown as stale.
const WITNESS_STALE_S = 15;

const $ = (id) => document.getElementById(id);
let following = null; // {stopped, attempt: AbortController | null, why} of the stream
let latest = null; // the last snapshot
let latestAt = 0; // when it arrived (local clock)
let lastHeard = 0; // when the server last sent anything (local clock)
let live = false;
let deadlines = new Map(); // edge id -> ms timestamp the failover fires (local clock)

// --- small DOM helper: text only, never HTML from the server -----------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// --- time -------------------------------------------------------------------------
function inZone(iso, zone, timeStyle) {
  if (!iso) return "—";
  const options = { dateStyle: "medium", timeStyle: timeStyle || "short", timeZone: zone || "UTC" };
  try {
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  } catch (_) {
    return new Date(iso).toISOString();
  }
}

function secondsSince(iso) {
  return Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
}

function ago(iso) {
  if (!iso) return "";
  const seconds = secondsSince(iso);
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

// "… ago" that counts on by itself (see tick); `staleAfter` seconds greys it.
function age(iso, prefix, staleAfter) {
  if (!iso) return null;
  return h(
    "span",
    { class: "age", "data-age": iso, "data-prefix": prefix || "", "data-stale-after": staleAfter ?? null,
      title: new Date(iso).toLocaleString() },
    `${prefix || ""}${ago(iso)}`
  );
}

// --- authentication -----------------------------------------------------------------
function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  return { Authorization: `Bearer ${token()}` };
}

async function signIn(candidate) {
  const response = await fetch("/api/users/current", {
    headers: { Authorization: `Bearer ${candidate}` },
  });
  if (!response.ok) throw new Error(await problemText(response));
  sessionStorage.setItem(TOKEN_KEY, candidate);
  return response.json();
}

function stopFollowing() {
  if (following) {
    following.stopped = true;
    if (following.attempt) following.attempt.abort();
  }
  following = null;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopFollowing();
  latest = null;
  $("locations").replaceChildren();
  $("summary").textContent = "";
  document.title = "Engine HA · status";
  $("master").hidden = true;
  $("empty").hidden = true;
  $("stale").hidden = true;
  document.body.classList.remove("stale");
  $("sign-out").hidden = true;
  $("who").textContent = "";
  setLive("off", "not signed in");
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

async function problemText(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

// --- the live stream ----------------------------------------------------------------
function setLive(state, text) {
  const el = $("live");
  el.className = `live ${state}`;
  el.textContent = text;
  live = state === "on";
  const stale = !live && latest !== null;
  document.body.classList.toggle("stale", stale);
  $("stale").hidden = !stale;
  tick();
}

function silenceMs() {
  const keepalive = latest && latest.keepalive_s ? latest.keepalive_s : 15;
  return SILENCE_FACTOR * keepalive * 1000;
}

function heard() {
  lastHeard = Date.now();
}

// Follows the stream until signed out: every attempt that fails, ends or falls silent
// is followed by another a second later, so the page recovers without a reload.
async function follow() {
  stopFollowing();
  const mine = { stopped: false, attempt: null, why: null };
  following = mine;
  while (!mine.stopped && token()) {
    const attempt = new AbortController();
    mine.attempt = attempt;
    mine.why = null;
    heard(); // the watchdog also bounds the wait for an answer
    try {
      const response = await fetch("/api/status/stream", {
        headers: authHeaders(),
        signal: attempt.signal,
        cache: "no-store",
      });
      if (response.status === 401) {
        signOut(`Signed out: ${await problemText(response)}`);
        return;
      }
      if (!response.ok) throw new Error(await problemText(response));
      heard();
      setLive("on", "live");
      await readEvents(response.body, mine);
      mine.why = mine.why || "the server ended the stream";
    } catch (error) {
      if (mine.stopped) return;
      mine.why = mine.why || error.message || String(error);
    }
    if (mine.stopped) return;
    setLive("off", `not live: ${mine.why} · reconnecting`);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

// Aborts an attempt the server has gone silent on (hung, frozen, cut off).
function watchdog() {
  const current = following;
  if (!current || !current.attempt || current.stopped) return;
  const silent = Date.now() - lastHeard;
  if (silent <= silenceMs()) return;
  current.why = `no word from the server for ${Math.round(silent / 1000)} s`;
  if (live) setLive("off", `not live: ${current.why} · reconnecting`);
  current.attempt.abort();
}

async function readEvents(body, mine) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    heard();
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (event === "status") {
        onSnapshot(JSON.parse(data.join("\n")));
        if (!live) setLive("on", "live");
      } else if (event === "error") {
        const problem = JSON.parse(data.join("\n"));
        if (problem.status === 401) {
          mine.stopped = true;
          signOut(`Signed out: ${problem.detail}`);
          return;
        }
        notice(problem.detail);
      }
    }
  }
}

// --- rendering ----------------------------------------------------------------------
function onSnapshot(snapshot) {
  // retry_after counts from when the snapshot was made; the countdown runs locally.
  const now = Date.now();
  latestAt = now;
  deadlines = new Map();
  for (const location of snapshot.locations) {
    const control = location.control;
    if (control && control.retry_after !== null && control.retry_after !== undefined) {
      deadlines.set(location.id, now + control.retry_after * 1000);
    }
  }
  render(snapshot);
}

function render(snapshot) {
  latest = snapshot;
  const node = $("node");
  node.textContent = snapshot.node;
  node.className = `node ${snapshot.role}`;
  $("who").textContent = `${snapshot.user.name}${snapshot.user.admin ? " (admin)" : ""}`;
  const master = $("master");
  if (snapshot.role === "master") {
    master.hidden = false;
    master.replaceChildren(...masterPanel(snapshot).filter(Boolean));
  } else {
    master.hidden = !snapshot.master_link;
    master.replaceChildren(...(snapshot.master_link ? linkPanel(snapshot.master_link) : []).filter(Boolean));
  }
  summarize(snapshot);
  $("locations").replaceChildren(...snapshot.locations.map((l) => card(l, snapshot)));
  $("empty").hidden = snapshot.locations.length > 0;
  tick();
  ages();
}

function masterPanel(snapshot) {
  const store = (snapshot.health || {}).store;
  return [
    h("h2", {}, "Master"),
    h(
      "p",
      {},
      snapshot.master_systems.length
        ? `Runs ${snapshot.master_systems.join(", ")} and takes over an edge's rooms when it fails.`
        : "Runs no room of its own; takes over an edge's rooms when it fails."
    ),
    store && !store.writable
      ? h("p", { class: "error", "data-field": "store" },
        `Its store refuses writes: decisions are carried out but not recorded (${store.error || "no reason given"})`,
        store.since ? [" since ", age(store.since)] : "")
      : null,
  ];
}

//: How an edge's page words its link to the master, by state.
const LINK_WORDS = {
  up: ["linked to the master", "fine"],
  unreachable: ["master unreachable", "bad"],
  refused: ["the master refuses this edge", "bad"],
  tls: ["TLS with the master fails", "bad"],
  closed: ["link to the master closed", "warn"],
};

function linkPanel(link) {
  const [words, tone] = LINK_WORDS[link.state] || [link.state, "warn"];
  const url = link.master_url ? `${link.master_url.replace(/\/$/, "")}/` : null;
  let detail;
  if (link.state === "up") detail = "Decisions about this location come from the master.";
  else if (link.state === "unreachable")
    detail = "Nothing answers at the master's address (stopped, frozen or cut off). This edge runs its location on its own.";
  else if (link.master_alive)
    detail = "The master answers, so it is no outage: it will not take over for this, and this edge keeps its devices until the master decides otherwise.";
  else detail = "Whether the master is alive is not known yet; this edge keeps trying.";
  return [
    h("h2", {}, "Master"),
    h(
      "p",
      { class: "link-line" },
      h("span", { class: `badge link ${tone}`, "data-field": "master-link" }, words),
      url ? [" at ", h("a", { href: url }, url)] : "",
      link.since && link.state !== "up" ? [" · since ", age(link.since)] : ""
    ),
    h("p", { class: "muted" }, detail),
    link.error
      ? h("p", { class: "error" }, `Last error: ${link.error}`, link.error_at ? [" (", age(link.error_at), ")"] : "")
      : null,
  ];
}

// One line for the whole site, also in the tab's title so a background tab shows trouble.
function summarize(snapshot) {
  const locations = snapshot.locations;
  const count = (test) => locations.filter((l) => l.control && test(l.control)).length;
  const offline = count((c) => !c.online);
  const pending = count((c) => c.retry_after !== null && c.retry_after !== undefined);
  const takenOver = count((c) => c.controller === "master");
  const nowhere = count((c) => c.controller === "none");
  const parts = [`${locations.length} location${locations.length === 1 ? "" : "s"}`];
  if (nowhere) parts.push(`${nowhere} run by nobody`);
  if (pending) parts.push(`${pending} failover pending`);
  if (takenOver) parts.push(`${takenOver} run by the master`);
  if (snapshot.role === "master" && offline) parts.push(`${offline} edge${offline === 1 ? "" : "s"} offline`);
  const link = snapshot.master_link;
  if (link && link.state !== "up") parts.push(LINK_WORDS[link.state] ? LINK_WORDS[link.state][0] : link.state);
  const store = (snapshot.health || {}).store;
  if (store && !store.writable) parts.push("store refuses writes");
  const trouble =
    nowhere + pending + (snapshot.role === "master" ? offline : 0) > 0 ||
    (link && link.state !== "up") ||
    (store && !store.writable);
  const summary = $("summary");
  summary.textContent = parts.join(" · ");
  summary.className = `summary ${trouble ? "trouble" : "fine"}`;
  document.title = `${trouble ? "⚠ " : ""}${parts.join(" · ")} · Engine HA`;
}

// What a location's card says in one word: its colour and its headline.
function condition(control, snapshot) {
  const controller = control.controller || "none";
  const pending = control.retry_after !== null && control.retry_after !== undefined;
  if (controller === "none") return ["nowhere", "runs nowhere"];
  if (pending) return ["pending", `${controller}, awaiting failover`];
  if (snapshot.role === "edge") {
    const link = snapshot.master_link;
    if (link && link.state !== "up") return ["warn", controller];
    return [controller === "edge" ? "healthy" : "master", controller];
  }
  if (controller === "edge") return control.online ? ["healthy", "edge"] : ["warn", "edge"];
  return ["master", "master"];
}

function card(location, snapshot) {
  const control = location.control || {};
  const controller = control.controller || "none";
  const [tone, headline] = condition(control, snapshot);
  return h(
    "article",
    { class: `panel location ${controller} tone-${tone}`, "data-location": location.id, "data-condition": tone },
    h(
      "header",
      {},
      h("h2", {}, location.name),
      h("code", { class: "muted" }, location.id),
      h("span", { class: "spacer" }),
      onlineBadge(control, snapshot)
    ),
    h(
      "div",
      { class: "controller-line" },
      h("span", { class: "label" }, "Controlled by"),
      h("strong", { class: `controller ${controller} tone-${tone}`, "data-field": "controller" }, controller),
      tone !== "healthy" && headline !== controller ? h("span", { class: `badge tone-${tone}` }, headline) : null,
      h("span", { class: "muted" }, `epoch ${control.epoch ?? "—"}`),
      control.failover_active ? h("span", { class: "badge warn" }, "failover active") : null
    ),
    h("p", { class: "countdown", "data-countdown": location.id, hidden: true }),
    nowhereLine(location, control),
    staleReplicaLine(snapshot),
    pendingLine(control.pending),
    duplicateLine(control.duplicate),
    h(
      "dl",
      { class: "facts" },
      fact("Why", control.reason, control.since ? [" (", age(control.since), ")"] : ""),
      fact(
        "Failover",
        location.failover ? `after ${location.timeout ?? "?"} s without the edge` : "off (manual)"
      ),
      fact(
        "Next restore window",
        control.next_restore_window
          ? `${inZone(control.next_restore_window.start, location.timezone)} – ` +
              `${inZone(control.next_restore_window.end, location.timezone)} (${location.timezone})`
          : "none: restore is manual"
      ),
      linkErrorFact(control, snapshot),
      control.witness ? fact("Witness", witnessText(control.witness)) : null,
      control.replication_error ? fact("Replication", control.replication_error, "", "error") : null,
      fact("Rooms", location.systems.length ? location.systems.join(", ") : "none"),
      fact("Edge URL", control.edge_url || "—")
    ),
    operations(location, control, snapshot),
    events(location)
  );
}

function onlineBadge(control, snapshot) {
  if (snapshot.role === "edge") {
    // An edge knows its own link; the replica's "online" is the master's last word.
    const link = snapshot.master_link;
    if (!link) return null;
    const [words, tone] = LINK_WORDS[link.state] || [link.state, "warn"];
    return h("span", { class: `badge online ${tone === "fine" ? "yes" : "no"}` }, words);
  }
  return h("span", { class: `badge online ${control.online ? "yes" : "no"}` },
    control.online ? "edge online" : "edge offline");
}

function nowhereLine(location, control) {
  if ((control.controller || "none") !== "none") return null;
  return h(
    "p",
    { class: "nowhere-line" },
    "Nobody runs this location's devices. Start its edge (ENGINE_EDGE_ID=",
    h("code", {}, location.id),
    ") or take it over by the master",
    location.failover ? "; with failover on the master takes over once the timeout passes." : "."
  );
}

function staleReplicaLine(snapshot) {
  const link = snapshot.master_link;
  if (snapshot.role !== "edge" || !link || link.state === "up") return null;
  return h("p", { class: "muted" }, "Controller, epoch and reason are the master's last word, from before the link went down.");
}

function duplicateLine(duplicate) {
  if (!duplicate) return null;
  const text = typeof duplicate === "string" ? duplicate : duplicate.detail || duplicate.reason || JSON.stringify(duplicate);
  return h("p", { class: "pending error" }, `Duplicate edge: ${text}`);
}

function linkErrorFact(control, snapshot) {
  if (!control.link_error) return null;
  // While the link is up, the last link error is history. An edge knows its own link;
  // the replica's "online" is the master's last word.
  const link = snapshot.master_link;
  const current = link ? link.state !== "up" : !control.online;
  return fact(current ? "Link error" : "Last link error", control.link_error,
    control.link_error_at ? [" (", age(control.link_error_at), ")"] : "", current ? "error" : "muted");
}

function fact(term, value, extra, cls) {
  return [h("dt", {}, term), h("dd", { class: cls || null }, value ?? "—", extra || "")];
}

function witnessText(witness) {
  const words = {
    controls: "the other side controls the location",
    does_not_control: "the other side does not control the location",
    unreachable: "the other side cannot be reached",
    refused: "the other side refused the question",
  };
  return [
    `${words[witness.result] || witness.result}, asked `,
    age(witness.checked_at, "", WITNESS_STALE_S),
    witness.detail ? `: ${witness.detail}` : "",
    witness.last_alive_at ? ["; last sign of life ", age(witness.last_alive_at)] : "",
  ];
}

function pendingLine(pending) {
  if (!pending) return null;
  return h(
    "p",
    { class: "pending" },
    `Waiting for the store to record “${pending.decision}”`,
    pending.reason ? `: ${pending.reason}` : "",
    pending.since ? [" (since ", age(pending.since), ")"] : ""
  );
}

function operations(location, control, snapshot) {
  if (!location.can_operate) return null;
  if (!snapshot.operations_here) {
    const url = control.master_url ? `${control.master_url.replace(/\/$/, "")}/` : null;
    return h(
      "p",
      { class: "muted" },
      "Restore and takeover are decided by the master",
      url ? [": ", h("a", { href: url }, url)] : "."
    );
  }
  const restore = h(
    "button",
    {
      type: "button",
      class: "restore",
      disabled: controllerOf(control) === "edge" || !control.online,
      title: control.online ? "hand control back to the edge now" : "the edge is not connected",
      onclick: () =>
        confirmThen(
          `Restore ${location.name}?`,
          "The master stops its copies of the rooms' modules and the edge starts them.",
          () => operate(location, "restore")
        ),
    },
    "Restore to edge"
  );
  const takeover = h(
    "button",
    {
      type: "button",
      class: "takeover danger",
      disabled: controllerOf(control) === "master",
      onclick: () =>
        confirmThen(
          `Take over ${location.name}?`,
          "The edge stops its modules and the master runs the location's rooms.",
          () => operate(location, "takeover")
        ),
    },
    "Take over by master"
  );
  return h("div", { class: "actions" }, restore, takeover);
}

function controllerOf(control) {
  return control.controller || "none";
}

function events(location) {
  if (!location.events.length) return h("p", { class: "muted" }, "No decisions recorded yet.");
  return h(
    "details",
    { class: "events", open: true },
    h("summary", {}, "Last decisions"),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "decision"),
        h("th", {}, "controller"), h("th", {}, "reason"))),
      h(
        "tbody",
        {},
        location.events.map((event) =>
          h(
            "tr",
            {},
            h("td", { title: event.at }, inZone(event.at, location.timezone, "medium")),
            h("td", {}, event.kind, event.by ? ` by ${event.by}` : ""),
            h("td", {}, event.controller ?? ""),
            h("td", {}, event.reason ?? "")
          )
        )
      )
    )
  );
}

// Every second (and on each change): countdowns, ages, and how old the page's facts are.
function tick() {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    const deadline = deadlines.get(el.dataset.countdown);
    if (deadline === undefined) {
      el.hidden = true;
      continue;
    }
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    el.hidden = false;
    el.textContent = live
      ? left > 0 ? `Failover in ${left} s unless the edge comes back` : "Failover due now"
      : "A failover was pending when the server stopped answering";
  }
  if (!live && latest) {
    const seconds = Math.round((Date.now() - latestAt) / 1000);
    const silent = Math.round((Date.now() - lastHeard) / 1000);
    $("stale").textContent =
      `Not live: what you see is as of ${new Date(latestAt).toLocaleTimeString()} (${seconds} s ago); ` +
      `the server at ${location.origin} has not answered for ${silent} s.`;
  }
}

// Every second: each "… ago" counts on, and a fact past its freshness looks stale.
function ages() {
  for (const el of document.querySelectorAll("[data-age]")) {
    const text = `${el.dataset.prefix}${ago(el.dataset.age)}`;
    if (el.textContent !== text) el.textContent = text;
    const staleAfter = el.dataset.staleAfter;
    if (staleAfter !== undefined) {
      el.classList.toggle("stale-fact", secondsSince(el.dataset.age) > Number(staleAfter));
    }
  }
}

// --- operations ---------------------------------------------------------------------
function confirmThen(title, text, action) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "yes") action();
    },
    { once: true }
  );
  dialog.showModal();
}

async function operate(location, action) {
  notice(`${action} of ${location.name}…`, "info");
  try {
    const response = await fetch(`/api/edges/${encodeURIComponent(location.id)}/${action}`, {
      method: "POST",
      headers: authHeaders(),
    });
    if (!response.ok) throw new Error(await problemText(response));
    const control = await response.json();
    notice(`${location.name}: ${control.controller} controls it now (epoch ${control.epoch})`, "info");
  } catch (error) {
    notice(`${action} of ${location.name} failed: ${error.message}`);
  }
}

function notice(text, kind) {
  const el = $("notice");
  el.textContent = text;
  el.className = `notice ${kind || "error"}`;
  el.hidden = !text;
}

// --- start --------------------------------------------------------------------------
function start(user) {
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("who").textContent = user ? user.name : "";
  setLive("off", "connecting…");
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    try {
      start(await signIn($("token").value.trim()));
    } catch (error) {
      $("sign-in-error").textContent = `Sign-in failed: ${error.message}`;
    }
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  setInterval(watchdog, 100);
  setInterval(tick, 200);
  setInterval(ages, 1000);
  if (token()) start(null);
  else signOut("");
});
