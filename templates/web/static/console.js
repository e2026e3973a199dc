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

document.addEventListener("DOMContentLoaded", () => {
  // "Broadcast created" and the like are said once: a reload does not repeat them.
  if (new URLSearchParams(window.location.search).has("done")) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  document.querySelectorAll("[data-area-search]").forEach(setupAreaSearch);
  document.querySelectorAll("[data-template-select]").forEach(setupTemplateSelect);
  document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  document.querySelectorAll("[data-events]").forEach(setupProgress);
});
