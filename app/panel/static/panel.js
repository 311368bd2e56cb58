// The room panel: one room's modules with their live state, and their methods, from
// whichever server runs the room. Plain JavaScript, no library and no build step
// (README, "Room panels", says why); it talks to this site's servers and nothing else.
//
// It signs in with a device key (/panel/?system=ID#x-api-key=KEY, kept on the device),
// asks any server it knows which servers can serve its room (GET /api/systems/ID/servers)
// and uses the first that answers: REST for the room's state and for calls, the client
// websocket for live values. When that server stops answering it asks the others and
// moves there; when a server pushes a `redirect` (control of the room moved) it follows.

const PREFIX = "engine-panel";
const ASK_TIMEOUT_MS = 2500; // a server silent this long counts as not answering
const CALL_TIMEOUT_MS = 15000;
const POLL_MS = 5000; // discovery asked again while all is well…
const WAITING_POLL_MS = 1000; // …and while the room waits for its controller
const RETRY_MS = 1000; // while no server answers
const HOLD_MS = 3000; // after a move, stay unless the server fails: replicas catch up
const PING_MS = 20000;

const $ = (id) => document.getElementById(id);

class KeyRefused extends Error {}

const room = {
  system: null,
  key: null,
  server: null, // {url, node, role}: the server the panel is on
  since: null, // when it moved there
  answer: null, // that server's last discovery answer
  socket: null,
  modules: new Map(), // "Display_1" -> {name, index, state, funcs, bound, card}
  unreachable: new Set(), // servers that did not answer the last time they were asked
  holdUntil: 0,
  refused: false,
  queue: Promise.resolve(), // moves and polls, one at a time
  timer: null,
  requestId: 0,
};

// --- storage: the key, the room and the servers it was last served by ----------------
const stored = {
  get(name) {
    try {
      return JSON.parse(localStorage.getItem(`${PREFIX}:${name}`));
    } catch (_) {
      return null;
    }
  },
  set(name, value) {
    localStorage.setItem(`${PREFIX}:${name}`, JSON.stringify(value));
  },
};

function credentials() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const system = query.get("system") || stored.get("system");
  const key = fragment.get("x-api-key");
  if (system && key) stored.set(`key:${system}`, key);
  if (system) stored.set("system", system);
  if (location.hash || (system && !query.get("system"))) {
    // The key leaves the address bar and the history; the room stays in the address.
    const search = system ? `?system=${encodeURIComponent(system)}` : "";
    history.replaceState(null, "", `${location.pathname}${search}`);
  }
  return { system, key: system ? stored.get(`key:${system}`) : null };
}

// --- asking servers ------------------------------------------------------------------
async function ask(base, path, { method = "GET", body, timeout = ASK_TIMEOUT_MS } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const headers = { "X-API-Key": room.key, Prefer: "routing=proxy" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      cache: "no-store",
      signal: controller.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) throw new KeyRefused(await problem(response));
    return response;
  } finally {
    clearTimeout(timer);
  }
}

async function problem(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

function roomPath(suffix) {
  return `/api/systems/${encodeURIComponent(room.system)}/${suffix}`;
}

async function discover(url) {
  const response = await ask(url, roomPath("servers"));
  if (response.status === 403) throw new KeyRefused(await problem(response));
  if (!response.ok) throw new Error(await problem(response));
  const answer = await response.json();
  remember(answer);
  return answer;
}

// The servers that can serve the room, for the next visit (maybe without the master).
function remember(answer) {
  const known = answer.servers.map(({ url, node, role }) => ({ url, node, role }));
  for (const server of stored.get(`servers:${room.system}`) || []) {
    if (!known.some((k) => k.url === server.url)) known.push(server);
  }
  stored.set(`servers:${room.system}`, known);
}

// Every server known, the one that failed (`avoid`) last; the master this page came from too.
function candidates(avoid) {
  const urls = (stored.get(`servers:${room.system}`) || []).map((s) => s.url);
  urls.push(location.origin);
  const unique = [...new Set(urls)];
  return avoid ? [...unique.filter((u) => u !== avoid), avoid] : unique;
}

// The server to use: the first that answers and names itself first, else the first that
// answered at all (it serves the room by proxy, or says the room waits for a failover).
async function findServer(avoid) {
  const asked = new Set();
  const queue = candidates(avoid);
  let fallback = null;
  while (queue.length) {
    const url = queue.shift();
    if (asked.has(url)) continue;
    asked.add(url);
    let answer;
    try {
      answer = await discover(url);
    } catch (error) {
      if (error instanceof KeyRefused) throw error;
      room.unreachable.add(url);
      continue;
    }
    room.unreachable.delete(url);
    const first = answer.servers.length ? answer.servers[0].url : url;
    if (first === url) return { url, answer };
    fallback = fallback || { url, answer };
    queue.unshift(first);
  }
  return fallback;
}

// --- moving between servers --------------------------------------------------------
function exclusive(task) {
  room.queue = room.queue.then(task).catch(failed);
  return room.queue;
}

function failed(error) {
  if (error instanceof KeyRefused) refuse(error.message);
  else console.warn("room panel:", error);
}

async function settle(reason, avoid) {
  if (room.refused) return;
  if (reason) showServer(`${reason}; looking for another server…`, "none");
  const found = await findServer(avoid);
  if (found) await moveTo(found.url, found.answer);
  else showServer("No server of this site answers; trying again…", "none");
}

async function moveTo(url, answer) {
  if (!room.server || room.server.url !== url) {
    closeSocket();
    const node = answer.answered_by;
    room.server = { url, node, role: node.startsWith("edge:") ? "edge" : "master" };
    room.since = new Date();
    room.holdUntil = Date.now() + HOLD_MS;
  }
  show(answer);
  if (!room.socket) {
    await refreshState();
    openSocket();
  }
}

// A pushed `redirect`: control of the room moved, and `url` names its server now.
async function follow(url) {
  if (room.refused) return;
  if (room.server && url === room.server.url) {
    show(await discover(url));
    await refreshState();
    return;
  }
  try {
    await moveTo(url, await discover(url));
  } catch (error) {
    if (error instanceof KeyRefused) throw error;
    room.unreachable.add(url);
  }
}

async function poll() {
  room.timer = null;
  if (room.refused) return;
  await exclusive(async () => {
    if (!room.server || !room.socket) return settle("", room.server && room.server.url);
    const here = room.server.url;
    try {
      const answer = await discover(here);
      show(answer);
      await refreshState();
      await preferController(answer);
    } catch (error) {
      if (error instanceof KeyRefused) throw error;
      closeSocket();
      await settle(`${describe(room.server)} does not answer`, here);
    }
  });
  schedule();
}

// The answer names another server first (the room is run there): go there once it
// answers for itself, unless the panel has just moved (replicas may still catch up).
async function preferController(answer) {
  const first = answer.servers.length ? answer.servers[0].url : null;
  if (!first || first === room.server.url || answer.controller === "none") return;
  if (Date.now() < room.holdUntil) return;
  try {
    const there = await discover(first);
    room.unreachable.delete(first);
    if (there.servers.length && there.servers[0].url === first) await moveTo(first, there);
  } catch (error) {
    if (error instanceof KeyRefused) throw error;
    room.unreachable.add(first);
    show(answer);
  }
}

function schedule() {
  clearTimeout(room.timer);
  if (room.refused) return;
  const wait = !room.socket ? RETRY_MS : waiting(room.answer) ? WAITING_POLL_MS : POLL_MS;
  room.timer = setTimeout(poll, wait);
}

// --- the websocket: live values, and where control went -------------------------------
function openSocket() {
  const base = room.server.url;
  const url = `${base.replace(/^http/, "ws")}/api/ws?api-key=${encodeURIComponent(room.key)}`;
  const socket = new WebSocket(url);
  room.socket = socket;
  for (const module of room.modules.values()) module.bound = new Set();
  socket.addEventListener("open", () => room.socket === socket && bindAll());
  socket.addEventListener("message", (event) => room.socket === socket && onMessage(event.data));
  socket.addEventListener("close", (event) => {
    if (room.socket !== socket) return;
    room.socket = null;
    if (event.code === 4401) {
      refuse(event.reason || "the key is not valid");
      return;
    }
    exclusive(() => settle(`${describe(room.server)} closed the connection`, base)).then(schedule);
  });
}

function closeSocket() {
  const socket = room.socket;
  room.socket = null;
  if (socket) socket.close();
}

function onMessage(text) {
  if (text === "pong") return;
  let message;
  try {
    message = JSON.parse(text);
  } catch (_) {
    return;
  }
  if (message.type === "notify" && message.meta) setValue(message.meta, message.value);
  else if (message.type === "redirect" && message.url) {
    const url = message.url.replace(/^ws/, "http").replace(/\/api\/ws(\?.*)?$/, "");
    exclusive(() => follow(url)).then(schedule);
  }
}

function bind(module, name) {
  const socket = room.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || module.bound.has(name)) return;
  module.bound.add(name);
  const request = { cmd: "bind", sys: room.system, mod: module.name, index: module.index, name };
  socket.send(JSON.stringify({ id: ++room.requestId, ...request }));
}

function bindAll() {
  for (const module of room.modules.values()) {
    for (const name of Object.keys(module.state)) bind(module, name);
  }
}

function ping() {
  if (room.socket && room.socket.readyState === WebSocket.OPEN) room.socket.send("ping");
}

// --- the room: modules, their state and their methods ----------------------------------
async function refreshState() {
  if (!room.server || room.refused) return;
  let response;
  try {
    response = await ask(room.server.url, roomPath("state"));
  } catch (error) {
    if (error instanceof KeyRefused) throw error;
    return; // the values shown stay until a server tells newer ones
  }
  if (!response.ok) return;
  const state = await response.json();
  for (const [key, values] of Object.entries(state)) {
    const module = room.modules.get(key) || addModule(key);
    for (const [name, value] of Object.entries(values || {})) {
      module.state[name] = value;
      bind(module, name);
    }
    renderValues(module);
    if (!module.funcs) await loadFuncs(module);
  }
  for (const key of [...room.modules.keys()]) {
    if (!(key in state)) {
      room.modules.get(key).card.remove();
      room.modules.delete(key);
    }
  }
  $("module-names").replaceChildren(...[...room.modules.values()].map((m) => h("option", { value: m.name })));
}

function addModule(key) {
  const cut = key.lastIndexOf("_");
  const name = cut > 0 ? key.slice(0, cut) : key;
  const index = cut > 0 ? Number(key.slice(cut + 1)) || 1 : 1;
  const module = { key, name, index, state: {}, funcs: null, bound: new Set() };
  module.values = h("dl", {});
  module.methods = h("div", { class: "methods" });
  module.card = h(
    "article",
    { class: "module", "data-module": key },
    h("h2", {}, `${name} ${index}`),
    module.values,
    module.methods
  );
  room.modules.set(key, module);
  $("modules").append(module.card);
  return module;
}

async function loadFuncs(module) {
  const query = `funcs?module=${encodeURIComponent(module.name)}&index=${module.index}`;
  try {
    const response = await ask(room.server.url, roomPath(query));
    if (!response.ok) return;
    module.funcs = await response.json();
  } catch (error) {
    if (error instanceof KeyRefused) throw error;
    return;
  }
  module.methods.replaceChildren(
    ...Object.entries(module.funcs).map(([method, func]) =>
      h(
        "button",
        { type: "button", "data-method": method, title: func.doc || "", onclick: () => pick(module, method) },
        `${method}(${(func.params || []).map((p) => p.name).join(", ")})`
      )
    )
  );
}

function setValue(meta, value) {
  const module = room.modules.get(`${meta.mod}_${meta.index}`);
  if (!module) return;
  module.state[meta.name] = value;
  renderValues(module);
}

function renderValues(module) {
  const rows = Object.entries(module.state).flatMap(([name, value]) => [
    h("dt", {}, name),
    h("dd", { "data-var": name }, typeof value === "string" ? value : JSON.stringify(value)),
  ]);
  module.values.replaceChildren(...rows);
}

// A method button fills the form; a method without parameters runs at once.
function pick(module, method) {
  const form = $("call");
  const params = ((module.funcs || {})[method] || {}).params || [];
  form.elements.module.value = module.name;
  form.elements.index.value = String(module.index);
  form.elements.method.value = method;
  methodChoices();
  const required = params.filter((p) => !("default" in p) && !p.kind.startsWith("var_"));
  form.elements.args.value = JSON.stringify(required.map(placeholder));
  if (required.length === 0) form.requestSubmit();
  else form.elements.args.select();
}

function placeholder(param) {
  const type = (param.annotation || "").toLowerCase();
  if (type.includes("bool")) return false;
  if (type.includes("int") || type.includes("float")) return 0;
  return "";
}

function methodChoices() {
  const form = $("call");
  const module = [...room.modules.values()].find(
    (m) => m.name === form.elements.module.value && String(m.index) === form.elements.index.value
  );
  const names = module && module.funcs ? Object.keys(module.funcs) : [];
  $("method-names").replaceChildren(...names.map((name) => h("option", { value: name })));
}

// --- calls through the form ---------------------------------------------------------
async function run(event) {
  event.preventDefault();
  const form = event.target;
  const fields = form.elements;
  let args;
  try {
    args = JSON.parse(fields.args.value.trim() || "[]");
    if (!Array.isArray(args)) throw new Error("not an array");
  } catch (_) {
    result("error", "Arguments: write a JSON array, such as [] or [\"POWER ON\"]");
    return;
  }
  const call = { module: fields.module.value.trim(), index: Number(fields.index.value) || 1 };
  const method = fields.method.value.trim();
  if (!room.server) {
    result("error", "No server of this site answers yet: try again in a moment");
    return;
  }
  const server = room.server;
  result("pending", `${method}…`);
  let response;
  try {
    response = await ask(server.url, roomPath("exec"), {
      method: "POST",
      body: { ...call, method, args },
      timeout: CALL_TIMEOUT_MS,
    });
  } catch (error) {
    if (error instanceof KeyRefused) {
      result("error", `Refused: ${error.message}`);
      refuse(error.message);
      return;
    }
    result("error", `${describe(server)} did not answer: the panel looks for another server; press Run again`);
    if (room.server === server) {
      closeSocket();
      exclusive(() => settle(`${describe(server)} does not answer`, server.url)).then(schedule);
    }
    return;
  }
  if (response.ok) {
    const body = await response.json();
    result("ok", `${method}: ${JSON.stringify(body.result)}`);
    exclusive(refreshState); // a status variable the call set for the first time shows too
    return;
  }
  const detail = await problem(response);
  if (response.status === 503) {
    const retry = response.headers.get("Retry-After");
    result("error", `Not now: ${detail}${retry ? ` (try again in ${retry} s)` : ""}`);
    clearTimeout(room.timer);
    poll();
    return;
  }
  result("error", `${response.status}: ${detail}`);
}

function result(state, text) {
  const output = $("result");
  output.dataset.state = state;
  output.textContent = text;
}

// --- what the panel shows about itself ---------------------------------------------------
function describe(server) {
  if (!server) return "the server";
  const host = new URL(server.url).host;
  return server.role === "edge" ? `the edge ${server.node.slice(5)} (${host})` : `the master (${host})`;
}

function show(answer) {
  room.answer = answer;
  const name = answer.name || answer.system_id;
  $("room").textContent = name;
  document.title = `${name} · room panel`;
  const since = room.since ? room.since.toLocaleTimeString() : "";
  showServer(`On ${describe(room.server)} since ${since}`, room.server.role, room.server.node);
  const wait = waiting(answer);
  $("modules").dataset.stale = String(Boolean(wait)); // the values shown are the last known
  if (!room.refused) notice(wait, "waiting");
}

function showServer(text, role, node) {
  const line = $("server");
  line.textContent = text;
  line.dataset.role = role;
  line.dataset.node = node || "";
  line.title = room.server ? room.server.url : "";
}

// Why the room cannot be served by its controller now, or "".
function waiting(answer) {
  if (!answer || !room.server) return "";
  if (answer.controller === "none") return "Control of this room is changing hands…";
  const first = answer.servers[0];
  if (!first || first.url === room.server.url) return "";
  if (answer.online !== false && !room.unreachable.has(first.url)) return "";
  if (answer.controller !== "edge") return `${describe(first)} runs this room and does not answer.`;
  if (answer.failover === false) {
    return "The edge that runs this room does not answer and failover is off: calls wait until it is back.";
  }
  if (answer.failover_in !== null && answer.failover_in !== undefined) {
    const seconds = Math.max(0, Math.ceil(answer.failover_in));
    return `Waiting for the failover: the master takes over in ${seconds} s unless the edge comes back.`;
  }
  return "Waiting for the failover: the edge that runs this room does not answer.";
}

function notice(text, kind) {
  const element = $("notice");
  element.textContent = text;
  element.dataset.kind = kind;
  element.hidden = !text;
}

function refuse(detail) {
  if (room.refused) return;
  room.refused = true;
  clearTimeout(room.timer);
  closeSocket();
  notice(
    `This panel's key is no longer accepted (${detail}). Ask an administrator for a new panel link.`,
    "refused"
  );
  showServer("Signed out: the key was refused", "none");
  $("call").elements.run.disabled = true;
}

// --- small DOM helper: text only, never HTML from a server -----------------------------
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, String(value));
  }
  for (const child of children) element.append(child instanceof Node ? child : String(child));
  return element;
}

// --- start -----------------------------------------------------------------------------
function setUp() {
  const form = $("sign-in");
  form.hidden = false;
  form.elements.system.value = new URLSearchParams(location.search).get("system") || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const system = form.elements.system.value.trim();
    stored.set("system", system);
    stored.set(`key:${system}`, form.elements.key.value.trim());
    location.replace(`${location.pathname}?system=${encodeURIComponent(system)}`);
  });
}

function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker
      .register("/panel/sw.js", { scope: "/panel/", updateViaCache: "none" })
      .catch((error) => console.warn("room panel: no offline copy:", error));
  }
  const { system, key } = credentials();
  if (!system || !key) {
    setUp();
    showServer("Not set up", "none");
    return;
  }
  room.system = system;
  room.key = key;
  const form = $("call");
  form.hidden = false;
  form.addEventListener("submit", run);
  form.elements.module.addEventListener("change", methodChoices);
  form.elements.index.addEventListener("change", methodChoices);
  setInterval(ping, PING_MS);
  poll();
}

start();
