// The status page: sign in with a bearer token (kept in sessionStorage only), read the
// server-sent status stream with fetch (so the token stays in a header), render every
// location, count a pending failover down locally, and send restore/takeover after a
// confirmation. No library, nothing loaded from anywhere but this server.
"use strict";

const TOKEN_KEY = "engine-token";
const RECONNECT_MS = 1000;

const $ = (id) => document.getElementById(id);
let stream = null; // the AbortController of the open stream
let latest = null; // the last snapshot
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

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
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

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (stream) stream.abort();
  stream = null;
  latest = null;
  $("locations").replaceChildren();
  $("summary").textContent = "";
  document.title = "Engine HA · status";
  $("master").hidden = true;
  $("empty").hidden = true;
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
}

async function follow() {
  if (stream) stream.abort();
  const controller = new AbortController();
  stream = controller;
  while (stream === controller && token()) {
    try {
      const response = await fetch("/api/status/stream", {
        headers: authHeaders(),
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401) {
        signOut(`Signed out: ${await problemText(response)}`);
        return;
      }
      if (!response.ok) throw new Error(await problemText(response));
      setLive("on", "live");
      await readEvents(response.body, controller);
    } catch (error) {
      if (controller.signal.aborted) return;
      setLive("off", `reconnecting: ${error.message || error}`);
    }
    if (stream !== controller) return;
    setLive("off", "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

async function readEvents(body, controller) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
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
      if (event === "status") onSnapshot(JSON.parse(data.join("\n")));
      else if (event === "error") {
        const problem = JSON.parse(data.join("\n"));
        if (problem.status === 401) {
          controller.abort();
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
  master.hidden = snapshot.role !== "master";
  master.replaceChildren(
    h("h2", {}, "Master"),
    h(
      "p",
      {},
      snapshot.master_systems.length
        ? `Runs ${snapshot.master_systems.join(", ")} and takes over an edge's rooms when it fails.`
        : "Runs no room of its own; takes over an edge's rooms when it fails."
    )
  );
  summarize(snapshot.locations);
  $("locations").replaceChildren(...snapshot.locations.map((l) => card(l, snapshot)));
  $("empty").hidden = snapshot.locations.length > 0;
  tick();
}

// One line for the whole site, also in the tab's title so a background tab shows trouble.
function summarize(locations) {
  const count = (test) => locations.filter((l) => l.control && test(l.control)).length;
  const offline = count((c) => !c.online);
  const pending = count((c) => c.retry_after !== null && c.retry_after !== undefined);
  const takenOver = count((c) => c.controller === "master");
  const parts = [`${locations.length} location${locations.length === 1 ? "" : "s"}`];
  if (pending) parts.push(`${pending} failover pending`);
  if (takenOver) parts.push(`${takenOver} run by the master`);
  if (offline) parts.push(`${offline} edge${offline === 1 ? "" : "s"} offline`);
  const trouble = pending + offline > 0;
  const summary = $("summary");
  summary.textContent = parts.join(" · ");
  summary.className = `summary ${trouble ? "trouble" : "fine"}`;
  document.title = `${trouble ? "⚠ " : ""}${parts.join(" · ")} · Engine HA`;
}

function card(location, snapshot) {
  const control = location.control || {};
  const controller = control.controller || "none";
  return h(
    "article",
    { class: `panel location ${controller}`, "data-location": location.id },
    h(
      "header",
      {},
      h("h2", {}, location.name),
      h("code", { class: "muted" }, location.id),
      h("span", { class: "spacer" }),
      h("span", { class: `badge online ${control.online ? "yes" : "no"}` },
        control.online ? "edge online" : "edge offline")
    ),
    h(
      "div",
      { class: "controller-line" },
      h("span", { class: "label" }, "Controlled by"),
      h("strong", { class: `controller ${controller}`, "data-field": "controller" }, controller),
      h("span", { class: "muted" }, `epoch ${control.epoch ?? "—"}`),
      control.failover_active ? h("span", { class: "badge warn" }, "failover active") : null
    ),
    h("p", { class: "countdown", "data-countdown": location.id, hidden: true }),
    pendingLine(control.pending),
    h(
      "dl",
      { class: "facts" },
      fact("Why", control.reason, control.since ? ` (${ago(control.since)})` : ""),
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
      control.link_error
        ? fact("Link refused", control.link_error,
          control.link_error_at ? ` (${ago(control.link_error_at)})` : "", "error")
        : null,
      control.witness ? fact("Witness", witnessText(control.witness)) : null,
      fact("Rooms", location.systems.length ? location.systems.join(", ") : "none"),
      fact("Edge URL", control.edge_url || "—")
    ),
    operations(location, control, snapshot),
    events(location)
  );
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
  let text = `${words[witness.result] || witness.result}, asked ${ago(witness.checked_at)}`;
  if (witness.detail) text += `: ${witness.detail}`;
  if (witness.last_alive_at) text += `; last sign of life ${ago(witness.last_alive_at)}`;
  return text;
}

function pendingLine(pending) {
  if (!pending) return null;
  return h(
    "p",
    { class: "pending" },
    `Waiting for the store to record “${pending.decision}”`,
    pending.reason ? `: ${pending.reason}` : "",
    pending.since ? ` (since ${ago(pending.since)})` : ""
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

function tick() {
  for (const el of document.querySelectorAll("[data-countdown]")) {
    const deadline = deadlines.get(el.dataset.countdown);
    if (deadline === undefined) {
      el.hidden = true;
      continue;
    }
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    el.hidden = false;
    el.textContent =
      left > 0 ? `Failover in ${left} s unless the edge comes back` : "Failover due now";
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
  setInterval(tick, 200);
  setInterval(() => latest && render(latest), 15000); // keep "… ago" fresh
  if (token()) start(null);
  else signOut("");
});
