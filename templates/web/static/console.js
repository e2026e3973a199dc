// Crisis-cell console: small enhancements only; every page works without them.
"use strict";

function fold(text) {
  return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
    .replace(/[-']/g, " ").split(/\s+/).filter(Boolean);
}

// Area search: filter the lists as the user types (the Search button does it without script).
function setupAreaSearch(input) {
  const lists = document.querySelectorAll("[data-area-list]");
  const none = document.querySelector("[data-no-match]");
  const filter = () => {
    const words = fold(input.value);
    let shown = 0;
    lists.forEach((list) => list.querySelectorAll("li").forEach((item) => {
      const hay = fold(item.dataset.search || "").join(" ");
      const box = item.querySelector("input");
      const keep = (box && box.checked) || words.every((w) => hay.includes(w));
      item.hidden = !keep;
      if (keep) shown += 1;
    }));
    if (none) none.hidden = shown > 0;
  };
  input.addEventListener("input", filter);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); filter(); }
  });
  // Text typed (or restored by the browser) before this script ran is filtered too.
  if (input.value) filter();
}

// Show only the variables the chosen template reads.
function setupTemplateSelect(select) {
  const prefix = select.dataset.templateSelect || "";
  const update = () => {
    document.querySelectorAll(`[data-templates][data-for="${prefix}"]`).forEach((field) => {
      field.hidden = !field.dataset.templates.split(" ").includes(select.value);
    });
  };
  select.addEventListener("change", update);
  update();
}

// Ask once before a form that says so (cancel).
function setupConfirm(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

// Live progress from server-sent events; the page is fetched again (GET, never a resent
// form) when the actions change (approved by someone else, finished), so buttons always
// match the state.
function stage(state) {
  if (["completed", "cancelled", "expired", "failed"].includes(state)) return "final";
  if (state === "approved" || state === "running") return "sending";
  return state;
}

function setupProgress(panel) {
  const initial = stage(panel.dataset.state);
  const page = panel.dataset.page;
  // A page shown after a refused action has the action's URL: a reload must not post again.
  if (window.location.pathname !== page) window.history.replaceState(null, "", page);
  const source = new EventSource(panel.dataset.events);
  source.addEventListener("progress", (message) => {
    const data = JSON.parse(message.data);
    // The map (map.js) colours the areas from the same reading: no stream or poll of its own.
    document.dispatchEvent(new CustomEvent("broadcast-progress", { detail: data }));
    panel.querySelectorAll("[data-field]").forEach((el) => {
      const name = el.dataset.field;
      if (name === "percent") { el.value = data.percent; el.textContent = `${data.percent} %`; }
      else if (name === "waiting") { el.textContent = data.waiting; el.hidden = !data.waiting; }
      else if (name === "state_label") {
        el.textContent = data.state_label;
        el.dataset.stateValue = data.state;
        el.className = `state state-${data.state}`;
      } else if (name in data.text) el.textContent = data.text[name];
    });
    // A broadcast that sends nothing shows no rate, no time left, no SMSC figures (another's).
    panel.querySelectorAll("[data-when-sending]").forEach((el) => { el.hidden = !data.sending; });
    const notSending = panel.querySelector("[data-not-sending]");
    if (notSending) notSending.hidden = data.sending;
    const settling = panel.querySelector("[data-settling]");
    if (settling) settling.hidden = !data.final || data.settled;
    const table = panel.querySelector("[data-health]");
    const noPool = panel.querySelector("[data-no-pool]");
    if (table) {
      table.hidden = !data.pool;
      if (noPool) noPool.hidden = data.pool || !data.sending;
      const body = table.querySelector("tbody");
      body.replaceChildren(...data.smscs.map((s) => {
        const row = document.createElement("tr");
        row.className = `smsc-${s.state}`;
        const state = s.problems && s.problems.length ? `${s.state}: ${s.problems.join("; ")}` : s.state;
        [s.name, state, `${s.binds_up}/${s.binds}`, s.accepted_per_s, String(s.inflight)]
          .forEach((value, i) => {
            const cell = document.createElement("td");
            cell.textContent = value;
            if (i > 1) cell.className = "n";
            row.appendChild(cell);
          });
        return row;
      }));
    }
    // After its end the page stays live while receipts arrive; settled, nothing more changes.
    if (data.settled) source.close();
    if (stage(data.state) !== initial) { source.close(); window.location.assign(page); }
  });
  // The session's token was revoked: the reload lands on the sign-in page.
  source.addEventListener("ended", () => { source.close(); window.location.assign(page); });
}

// Times are shown in the areas' zone (UTC on hover); the browser's own time is added when its
// zone differs (a cell in Paris following a broadcast to Réunion).
function setupTime(el) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || zone === el.dataset.zone || !el.dataset.utc) return;
  const at = new Date(el.dataset.utc);
  if (Number.isNaN(at.getTime())) return;
  const text = at.toLocaleTimeString(document.documentElement.lang || undefined, { timeZone: zone });
  const mine = document.createElement("span");
  mine.className = "browser-time";
  mine.textContent = ` · ${document.body.dataset.yourTime || ""} ${text} (${zone})`;
  el.after(mine);
}

// The approval badge: how many broadcasts await this holder's approval, without a reload; on
// the home page the queue itself is fetched again when it changes.
function setupQueueBadge(badge) {
  const url = badge.dataset.queue;
  let known = badge.dataset.count;
  const refresh = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const count = String(data.count);
      badge.textContent = count;
      badge.hidden = data.count === 0;
      badge.dataset.count = count;
      const queue = document.querySelector("[data-queue-list]");
      if (queue && count !== known) {
        const page = await fetch(window.location.pathname, { credentials: "same-origin" });
        const fresh = new DOMParser().parseFromString(await page.text(), "text/html")
          .querySelector("[data-queue-list]");
        if (fresh) { queue.replaceWith(fresh); fresh.querySelectorAll("time[data-utc]").forEach(setupTime); }
      }
      known = count;
    } catch (error) { /* offline for a moment: the next round retries */ }
  };
  window.setInterval(refresh, Number(badge.dataset.every || 5000));
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  // "Broadcast created" and the like are said once: a reload does not repeat them.
  if (new URLSearchParams(window.location.search).has("done")) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  document.querySelectorAll("[data-area-search]").forEach(setupAreaSearch);
  document.querySelectorAll("[data-template-select]").forEach(setupTemplateSelect);
  document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  document.querySelectorAll("[data-events]").forEach(setupProgress);
  document.querySelectorAll("time[data-utc]").forEach(setupTime);
  document.querySelectorAll("[data-queue]").forEach(setupQueueBadge);
});
