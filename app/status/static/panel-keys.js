// The status page's "Room panels" section: a system admin creates a room's device key
// and gets the panel link to open on the device; the room's keys are listed and can be
// revoked. It shows itself once the page is signed in (status.js then shows "Sign out")
// as a system admin, on a master: device keys are the master's to issue.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem("engine-token");
  const headers = () => ({ Authorization: `Bearer ${token()}`, "Content-Type": "application/json" });

  async function call(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: headers(),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      let detail = `HTTP ${response.status}`;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) {}
      throw new Error(detail);
    }
    return response.status === 204 ? null : response.json();
  }

  function item(term, ...definition) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(...definition);
    return [dt, dd];
  }

  async function show() {
    const section = $("room-panels");
    section.hidden = true;
    if (!token()) return;
    const response = await fetch("/api/users/current", { headers: headers() });
    if (!response.ok || response.headers.get("X-Engine-Node") !== "master") return;
    if (!(await response.json()).admin) return;
    const systems = await call("GET", "/api/systems?limit=1000");
    const select = $("panel-key-room");
    const chosen = select.value;
    select.replaceChildren(
      ...systems.items.map((system) => {
        const option = document.createElement("option");
        option.value = system.id;
        option.textContent = `${system.name} (${system.id})`;
        return option;
      })
    );
    if (chosen) select.value = chosen;
    section.hidden = systems.items.length === 0;
    await list();
  }

  async function list() {
    const room = $("panel-key-room").value;
    const keys = room ? await call("GET", `/api/systems/${encodeURIComponent(room)}/keys`) : [];
    const rows = keys.map((key) => {
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "danger";
      revoke.textContent = "Revoke";
      revoke.dataset.key = key.id;
      revoke.addEventListener("click", async () => {
        if (!confirm(`Revoke ${key.name} (${key.id})? The panel using it stops at its next call.`)) return;
        await call("DELETE", `/api/systems/${encodeURIComponent(room)}/keys/${encodeURIComponent(key.id)}`);
        await list();
      });
      return item(`${key.name} · ${key.id}`, `created ${new Date(key.created_at).toLocaleString()} `, revoke);
    });
    $("panel-key-list").replaceChildren(...rows.flat());
  }

  async function create(event) {
    event.preventDefault();
    const room = $("panel-key-room").value;
    const issued = $("panel-key-issued");
    try {
      const key = await call("POST", `/api/systems/${encodeURIComponent(room)}/keys`, {
        name: $("panel-key-name").value.trim() || "panel",
      });
      const link = document.createElement("a");
      link.href = key.panel_url;
      link.id = "panel-key-link";
      link.textContent = key.panel_url;
      issued.replaceChildren(`Open this link on the room's device (shown once): `, link);
      issued.className = "notice info";
    } catch (error) {
      issued.replaceChildren(`The key was not created: ${error.message}`);
      issued.className = "notice";
    }
    issued.hidden = false;
    await list();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("panel-key-form").addEventListener("submit", create);
    $("panel-key-room").addEventListener("change", () => {
      $("panel-key-issued").hidden = true;
      list();
    });
    // Signed in or out: status.js shows or hides its "Sign out" button.
    const signOut = $("sign-out");
    new MutationObserver(() => show().catch(() => undefined)).observe(signOut, {
      attributes: true,
      attributeFilter: ["hidden"],
    });
    show().catch(() => undefined);
  });
})();
