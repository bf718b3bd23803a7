// usernet dashboard: plain JS, no build step. The token comes from the page's URL
// (?token=...), is kept in sessionStorage, dropped from the address bar, and sent as
// a bearer token with every request. Live state arrives over server-sent events
// (GET /v1/events, read with fetch because EventSource cannot send headers).
// Everything a guest controls (host names, addresses) is put in the page as text.
"use strict";

const params = new URLSearchParams(location.search);
if (params.has("token")) {
  sessionStorage.setItem("usernet-token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("usernet-token") || "";
const auth = { authorization: `Bearer ${token}` };

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const num = (v) => el("td", { class: "num" }, v);

function bytes(n) {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
const rate = (n) => `${bytes(n)}/s`;
const fps = (n) => `${n < 10 ? n.toFixed(1) : Math.round(n)} f/s`;
function age(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

let state;
let prev; // the previous state's port counters and time, for rates
const rates = new Map();

function computeRates(next) {
  const at = next.at;
  const counters = new Map(next.status.ports.map((p) => [p.name, p.stats]));
  if (prev && at > prev.at) {
    const dt = (at - prev.at) / 1000;
    for (const [name, s] of counters) {
      const o = prev.counters.get(name);
      if (!o) continue;
      rates.set(name, {
        rxf: (s.rxFrames - o.rxFrames) / dt,
        rxb: (s.rxBytes - o.rxBytes) / dt,
        txf: (s.txFrames - o.txFrames) / dt,
        txb: (s.txBytes - o.txBytes) / dt,
      });
    }
  }
  prev = { at, counters };
}

function renderHeader() {
  const s = state.status;
  $("version").textContent = `v${s.version}`;
  $("uptime").textContent = `up ${age(s.uptimeSeconds * 1000)}`;
  $("errors").textContent = s.internalErrors > 0 ? `${s.internalErrors} internal error(s)` : "";
}

function guestsOfPort(port) {
  // a transport port: the guests whose frames came in through it; a user network: its live leases
  if (port.guests) return port.guests.map((g) => (g.ip ? `${g.ip} (${g.mac})` : g.mac)).join(", ");
  if (port.kind !== "user") return "";
  const l = state.leases.find((x) => x.netdev === port.name);
  const live = l ? l.leases.filter((x) => x.state === "bound" || x.state === "bootp") : [];
  return live.map((x) => `${x.hostname || x.mac} ${x.ip}`).join(", ");
}

function renderHubs() {
  const root = $("hubs");
  const maxRate = Math.max(1, ...[...rates.values()].map((r) => Math.max(r.rxb, r.txb)));
  root.replaceChildren(
    ...state.status.hubs.map((h) => {
      const ports = state.status.ports.filter((p) => p.hub === h.id);
      const drops = Object.entries(h.stats.drops).filter(([, n]) => n > 0);
      return el(
        "div",
        { class: "hub", "data-hub": h.id },
        el(
          "div",
          { class: "hub-head" },
          el("strong", {}, `hub ${h.id}`),
          el("span", { class: "muted" }, `${ports.length} port(s), ${h.stats.frames} frames, ${bytes(h.stats.bytes)}`),
          drops.length ? el("span", { class: "drops" }, `drops: ${drops.map(([k, n]) => `${k} ${n}`).join(", ")}`) : null,
        ),
        el(
          "div",
          { class: "ports" },
          ...ports.map((p) => {
            const r = rates.get(p.name) || { rxf: 0, rxb: 0, txf: 0, txb: 0 };
            const portDrops = Object.entries(p.stats.drops).filter(([, n]) => n > 0);
            const bar = (v) => {
              const b = el("div", { class: "bar" });
              b.style.width = `${Math.min(100, (100 * v) / maxRate)}%`;
              return b;
            };
            const guests = guestsOfPort(p);
            return el(
              "div",
              { class: `port ${p.kind === "user" ? "user" : ""}`, "data-port": p.name },
              el("div", {}, el("span", { class: "name" }, p.name), " ", el("span", { class: "muted" }, `${p.kind}${p.netdev && p.netdev !== p.name ? ` (${p.netdev})` : ""}`)),
              el("div", { class: "desc", title: p.description }, p.description),
              guests ? el("div", { class: "guests" }, `${p.kind === "user" ? "leases" : "guest"}: ${guests}`) : null,
              el(
                "div",
                { class: "rates" },
                el("span", {}, "in"),
                el("span", { class: "rx-fps" }, fps(r.rxf)),
                el("span", { class: "rx-bps" }, rate(r.rxb), bar(r.rxb)),
                el("span", {}, "out"),
                el("span", { class: "tx-fps" }, fps(r.txf)),
                el("span", { class: "tx-bps" }, rate(r.txb), bar(r.txb)),
              ),
              el("div", { class: "muted totals" }, `in ${p.stats.rxFrames} frames / ${bytes(p.stats.rxBytes)}, out ${p.stats.txFrames} / ${bytes(p.stats.txBytes)}`),
              portDrops.length ? el("div", { class: "drops" }, `drops: ${portDrops.map(([k, n]) => `${k} ${n}`).join(", ")}`) : null,
            );
          }),
        ),
      );
    }),
  );
}

function renderNetworks() {
  const users = state.status.netdevs.filter((n) => n.kind === "user");
  $("networks").replaceChildren(
    ...users.map((n) => {
      const u = n.user || {};
      const c = n.counters || {};
      const l = state.leases.find((x) => x.netdev === n.id);
      const leases = l ? l.leases : [];
      const neighbours = (l && l.neighbours) || [];
      return el(
        "div",
        { class: "network", "data-netdev": n.id },
        el("h3", {}, `${n.id} `, el("span", { class: "muted" }, `hub ${n.hub}: ${u.net}/${u.prefixLength}, gateway ${u.host}, DNS ${u.dns}`)),
        el("div", { class: "muted" }, `flows tcp ${c.flows?.tcp ?? 0}, udp ${c.flows?.udp ?? 0}, icmp ${c.flows?.icmp ?? 0}; drops ${c.drops ?? 0}`),
        el(
          "table",
          { class: "leases" },
          el("thead", {}, el("tr", {}, ...["MAC", "address", "host name", "state", "expires"].map((h) => el("th", {}, h)))),
          el(
            "tbody",
            {},
            ...leases.map((x) =>
              el("tr", { class: "lease" }, el("td", {}, x.mac), el("td", {}, x.ip), el("td", {}, x.hostname || ""), el("td", {}, x.state), el("td", {}, x.expiresAt ? new Date(x.expiresAt).toLocaleTimeString() : "")),
            ),
          ),
        ),
        neighbours.length
          ? el(
              "table",
              { class: "neighbours" },
              el("thead", {}, el("tr", {}, el("th", {}, "neighbour"), el("th", {}, "MAC"))),
              el("tbody", {}, ...neighbours.map((x) => el("tr", {}, el("td", {}, x.ip), el("td", {}, x.mac)))),
            )
          : null,
      );
    }),
  );
}

function flowRows() {
  const f = state.flows;
  const rows = [
    ...f.tcp.map((x) => ({ proto: "tcp", netdev: x.netdev, guest: x.guest, dest: x.remote, state: x.state, up: x.toHostBytes, down: x.toGuestBytes, age: x.ageMs })),
    ...f.udp.map((x) => ({ proto: "udp", netdev: x.netdev, guest: x.guest, dest: x.lastDestination, state: "", up: x.txBytes, down: x.rxBytes, age: x.ageMs })),
    ...f.icmp.map((x) => ({ proto: "icmp", netdev: x.netdev, guest: x.guest, dest: x.lastDestination, state: `${x.echoes} echoes, ${x.replies} replies`, up: 0, down: 0, age: x.ageMs })),
  ];
  const g = $("flow-guest").value.trim();
  const p = $("flow-proto").value;
  const d = $("flow-dest").value.trim();
  const shown = rows.filter((r) => (!g || r.guest.includes(g)) && (!p || r.proto === p) && (!d || String(r.dest).includes(d)));
  if ($("flow-sort").value === "age") shown.sort((a, b) => b.age - a.age);
  else shown.sort((a, b) => b.up + b.down - (a.up + a.down));
  return { rows, shown };
}

function renderFlows() {
  const { rows, shown } = flowRows();
  $("flow-count").textContent = `${shown.length} of ${rows.length}`;
  $("flows").tBodies[0].replaceChildren(
    ...shown.slice(0, 500).map((r) =>
      el("tr", { class: "flow" }, el("td", {}, r.netdev), el("td", {}, r.proto), el("td", {}, r.guest), el("td", {}, r.dest), el("td", {}, r.state), num(bytes(r.up)), num(bytes(r.down)), num(age(r.age))),
    ),
  );
}

function renderForwards() {
  $("forwards").tBodies[0].replaceChildren(
    ...state.forwards.map((f) =>
      el(
        "tr",
        { class: "forward", "data-id": f.id },
        el("td", {}, f.id),
        el("td", {}, f.netdev),
        el("td", {}, f.proto),
        el("td", {}, f.bound ? `${f.bound.address}:${f.bound.port}` : `${f.hostAddr}:${f.hostPort}`),
        el("td", {}, `${f.guestAddr}:${f.guestPort}`),
        el("td", {}, f.error ? f.error : "listening"),
        el("td", {}, el("button", { class: "remove", type: "button", onclick: () => removeForward(f.id) }, "Remove")),
      ),
    ),
  );
  const sel = $("fw-netdev");
  const users = state.status.netdevs.filter((n) => n.kind === "user").map((n) => n.id);
  if ([...sel.options].map((o) => o.value).join() !== users.join()) {
    sel.replaceChildren(...users.map((id) => el("option", { value: id }, id)));
  }
  const hubSel = $("cap-hub");
  const hubs = state.status.hubs.map((h) => String(h.id));
  if ([...hubSel.options].map((o) => o.value).join() !== hubs.join()) {
    hubSel.replaceChildren(...hubs.map((id) => el("option", { value: id }, `hub ${id}`)));
  }
}

function render() {
  renderHeader();
  renderHubs();
  renderNetworks();
  renderFlows();
  renderForwards();
}

const logLines = [];
function addLog(lines) {
  const pre = $("log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  logLines.push(...lines);
  if (logLines.length > 1000) logLines.splice(0, logLines.length - 1000);
  pre.textContent = logLines.join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: body ? { ...auth, "content-type": "application/json" } : auth,
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) {
    let msg = `${r.status}`;
    try {
      msg = (await r.json()).error.message;
    } catch {}
    throw new Error(msg);
  }
  return r.status === 204 ? undefined : r.json();
}

function message(id, text, error) {
  const m = $(id);
  m.textContent = text;
  m.className = error ? "message error" : "message";
}

async function removeForward(id) {
  try {
    await api("DELETE", `/v1/forwards/${id}`);
    message("fw-message", `forward ${id} removed`);
  } catch (e) {
    message("fw-message", `forward ${id}: ${e.message}`, true);
  }
}

$("forward-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {
    netdev: $("fw-netdev").value,
    proto: $("fw-proto").value,
    hostAddr: $("fw-host-addr").value.trim(),
    hostPort: Number($("fw-host-port").value),
    guestPort: Number($("fw-guest-port").value),
  };
  const guestAddr = $("fw-guest-addr").value.trim();
  if (guestAddr) body.guestAddr = guestAddr;
  try {
    const f = await api("POST", "/v1/forwards", body);
    message("fw-message", `forward ${f.id} added: ${f.bound ? `${f.bound.address}:${f.bound.port}` : ""} → ${f.guestAddr}:${f.guestPort}`);
  } catch (e) {
    message("fw-message", e.message, true);
  }
});

$("capture-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const hub = $("cap-hub").value;
  const seconds = Number($("cap-seconds").value);
  const button = $("cap-start");
  button.disabled = true;
  message("cap-message", `capturing hub ${hub} for ${seconds} s…`);
  try {
    const r = await fetch(`/v1/hubs/${hub}/capture?seconds=${seconds}`, { headers: auth });
    if (!r.ok) throw new Error(`${r.status}`);
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const a = el("a", { href: url, download: `usernet-hub${hub}-${stamp}.pcap` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    message("cap-message", `saved ${bytes(blob.size)}`);
  } catch (e) {
    message("cap-message", `capture failed: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
});

for (const id of ["flow-guest", "flow-proto", "flow-dest", "flow-sort"]) {
  $(id).addEventListener("input", () => state && renderFlows());
}

function setLive(on, text) {
  const b = $("live");
  b.className = `badge ${on ? "on" : "off"}`;
  b.textContent = text;
}

function onEvent(type, data) {
  if (type === "state") {
    state = data;
    computeRates(data);
    render();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } else if (type === "log") addLog([data]);
  else if (type === "log-tail") addLog(data);
}

async function stream() {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch("/v1/events", { headers: { ...auth, accept: "text/event-stream" } });
      if (r.status === 401) {
        setLive(false, "token refused: open the URL usernet printed");
        return;
      }
      if (!r.ok || !r.body) throw new Error(`${r.status}`);
      setLive(true, "live");
      attempt = 0;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i = buf.indexOf("\n\n");
        while (i >= 0) {
          const chunk = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let type = "message";
          const data = [];
          for (const line of chunk.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) onEvent(type, JSON.parse(data.join("\n")));
          i = buf.indexOf("\n\n");
        }
      }
    } catch {
      // reconnect below
    }
    setLive(false, "disconnected; reconnecting…");
    await new Promise((res) => setTimeout(res, Math.min(10_000, 500 * 2 ** attempt)));
  }
}

stream();
