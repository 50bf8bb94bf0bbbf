// The tickbus dashboard: renders the server's snapshots (server-sent events) and sends actions.
// Plain JavaScript, no build step; every text from the bus goes in with textContent.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("tickbus-token", params.get("token"));
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar
}
const token = sessionStorage.getItem("tickbus-token") || "";
let canAct = false;
const charts = {};
const ROWS = 50;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== "") node.textContent = text;
  return node;
}

function money(value) {
  return typeof value === "number"
    ? value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : "-";
}

function fillTable(id, rows, cells) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.slice(0, ROWS).map((row) => {
    const tr = el("tr");
    for (const value of cells(row)) tr.appendChild(el("td", {}, value == null ? "" : String(value)));
    return tr;
  }));
}

function renderComponents(state) {
  const body = document.querySelector("#components tbody");
  body.replaceChildren(...state.components.map((c) => {
    const tr = el("tr", { "data-component": c.component, "data-name": c.name });
    tr.appendChild(el("td", {}, c.component));
    tr.appendChild(el("td", {}, c.name));
    tr.appendChild(el("td", { class: c.health }, c.health + (c.reason ? ` (${c.reason})` : "")));
    tr.appendChild(el("td", {}, c.age_s == null ? "-" : `${c.age_s.toFixed(1)} s`));
    tr.appendChild(el("td", {}, Object.entries(c.counters).map(([k, v]) => `${k}=${v}`).join(" ")));
    return tr;
  }));
  document.getElementById("hidden").textContent = state.hidden.length
    ? `${state.hidden.length} stopped long ago, not shown: ${state.hidden.join(", ")}` : "";
  document.getElementById("quote-rate").textContent = state.quotes_per_s.toFixed(1);
}

function bridgeCard(name) {
  let card = document.querySelector(`.bridge[data-name="${CSS.escape(name)}"]`);
  if (card) return card;
  card = el("div", { class: "bridge", "data-name": name });
  card.innerHTML = `
    <h3><span class="name"></span> <span class="health"></span> <span class="algorithm"></span></h3>
    <p class="rpc note"></p>
    <p class="killed" hidden></p>
    <p class="figures">
      <span>equity <b class="equity">-</b></span><span>cash <b class="cash">-</b></span>
      <span>realised <b class="realised">-</b></span><span>unrealised <b class="unrealised">-</b></span>
      <span>orders <b class="orders">0</b></span><span>fills <b class="fills">0</b></span>
      <span>refused <b class="refused">0</b></span></p>
    <p class="positions note"></p>
    <div class="chart"></div>
    <p class="controls">
      <button class="kill">Kill switch</button> <button class="lift">Lift</button>
      <form class="swap"><input class="rpc-address" placeholder="tcp://host:port" size="28">
        <label><input type="checkbox" class="carry"> carry the portfolio</label>
        <button class="swap-button">Swap</button></form>
      <span class="outcome note"></span></p>`;
  card.querySelector(".name").textContent = name;
  card.querySelector(".kill").addEventListener("click", () => act(name, "kill", { reason: "killed from the dashboard" }, card));
  card.querySelector(".lift").addEventListener("click", () => act(name, "lift", {}, card));
  card.querySelector("form.swap").addEventListener("submit", (event) => {
    event.preventDefault();
    act(name, "swap", {
      rpc: card.querySelector(".rpc-address").value,
      carry_portfolio: card.querySelector(".carry").checked,
    }, card);
  });
  document.getElementById("bridges").appendChild(card);
  charts[name] = new uPlot({
    width: 640, height: 180, scales: { x: { time: true } },
    axes: [{}, { size: 90 }],
    series: [{}, { label: "equity", stroke: "#1f77b4", width: 1 }],
  }, [[], []], card.querySelector(".chart"));
  return card;
}

function renderBridges(state) {
  for (const [name, b] of Object.entries(state.bridges)) {
    const card = bridgeCard(name);
    const set = (selector, text) => { card.querySelector(selector).textContent = text; };
    set(".health", b.health);
    card.querySelector(".health").className = `health ${b.health}`;
    set(".algorithm", b.algorithm || "");
    set(".rpc", b.rpc ? `rpc ${b.rpc}` : "");
    set(".equity", money(b.equity));
    set(".cash", money(b.cash));
    set(".realised", money(b.realised_pnl));
    set(".unrealised", money(b.unrealised_pnl));
    set(".orders", b.orders);
    set(".fills", b.fills);
    set(".refused", b.orders_rejected);
    set(".positions", Object.entries(b.positions)
      .map(([sid, p]) => `${sid} ${p.qty} @ ${money(p.avg_cost)}`).join(", "));
    const killed = card.querySelector(".killed");
    killed.hidden = !b.killed;
    killed.textContent = b.killed ? `kill switch on: ${b.killed}` : "";
    const curve = b.equity_curve;
    charts[name].setData([curve.map((p) => p[0]), curve.map((p) => p[1])]);
    for (const control of card.querySelectorAll("button, input")) control.disabled = !canAct;
  }
  for (const card of document.querySelectorAll(".bridge")) {
    if (!(card.dataset.name in state.bridges)) {
      delete charts[card.dataset.name];
      card.remove();
    }
  }
}

function render(state) {
  renderComponents(state);
  renderBridges(state);
  fillTable("orders", state.orders, (o) => [o.source, o.side, o.qty, o.sid, o.type, o.limit_price, o.id]);
  fillTable("fills", state.fills, (f) => [f.source, f.side, f.qty, f.sid, f.price, f.fee]);
  fillTable("rejections", state.rejections, (r) => [r.source, r.by, r.reason || r.text]);
  fillTable("dead-letters", state.dead_letters, (d) => [d.source, d.by, d.reason || d.text]);
  fillTable("actions", state.actions, (a) => [
    new Date(a.at * 1000).toLocaleTimeString(), a.who, a.action, a.bridge, a.detail, a.outcome]);
}

async function act(name, action, body, card) {
  const outcome = card.querySelector(".outcome");
  outcome.textContent = `${action}: sending...`;
  const response = await fetch(`/api/bridges/${encodeURIComponent(name)}/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Tickbus-Action": "1", "X-Tickbus-Token": token },
    body: JSON.stringify(body),
  });
  const entry = await response.json();
  outcome.textContent = `${action}: ${entry.outcome}`;
  outcome.className = `outcome ${entry.ok ? "ok" : "bad"}`;
}

async function loadAccess() {
  const answer = await (await fetch("/api/access", { headers: { "X-Tickbus-Token": token } })).json();
  canAct = answer.can_act;
  document.getElementById("access").textContent = canAct
    ? "operator" : "read-only" + (answer.token_needed ? " (open the link with ?token= to act)" : "");
}

async function loadReports() {
  const list = (await (await fetch("/api/reports")).json()).reports;
  document.getElementById("reports").replaceChildren(...list.map((r) => {
    const item = el("li");
    const link = el("a", { href: `/reports/${r.path}/report.html` }, r.path);
    link.addEventListener("click", (event) => {  // opens here; a middle click opens a tab
      event.preventDefault();
      const view = document.getElementById("report-view");
      view.src = link.href;
      view.hidden = false;
    });
    item.appendChild(link);
    item.appendChild(document.createTextNode(` (${r.kind})`));
    return item;
  }));
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("/api/events");
  source.onopen = () => { status.textContent = "live"; status.className = "ok"; };
  source.onerror = () => { status.textContent = "reconnecting"; status.className = "bad"; };
  source.onmessage = (event) => render(JSON.parse(event.data));
}

loadAccess().then(connect);
loadReports();
setInterval(loadReports, 10000);
