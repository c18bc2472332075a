// The live board: a snapshot from GET /v1/board, refreshed whenever the
// event stream (GET /v1/events?changes=1) says something changed.
//
// Authentication: when the daemon has users, the page asks for the secret
// once, keeps it in sessionStorage (this tab only) and sends it as
// "Authorization: Bearer".  EventSource cannot send headers, so the stream
// is read with fetch() and parsed here; it sends Last-Event-ID itself and
// reconnects after an error or a daemon restart.  No secret is ever put in
// a URL (they end up in logs, history and Referer headers).
"use strict";

const params = new URLSearchParams(location.search);
const lang = params.get("lang") === "en" ? "en" : "zh";
const T = {
  zh: {
    title: "拣货看板", warehouse: "仓库", login: "登录", queue: "待拣队列",
    pos: "位置", order: "订单", class: "类别", customer: "客户",
    deadline: "截止", left: "剩余", eta: "预计拣货", picking: "拣货中",
    picker: "拣货员", lease_left: "租约剩余", state: "状态",
    jumps: "最近插队", at_risk: "超期风险", trace: "订单轨迹", close: "关闭",
    login_why: "此看板需要登录(查看者及以上角色)。令牌只保存在本标签页,不会出现在网址中。",
    live: "实时", reconnecting: "重连中…", connecting: "连接中…",
    storage_ok: "存储正常", storage_bad: "存储故障(只读)",
    bad_token: "令牌无效", no_perm: "该用户无权查看",
    shown: (n, t) => `显示前${n}单,共${t}单`, none: "无",
    rush: "🔥加急", asn: "ASN直送", risk: "⚠超期风险", up: "↑升级",
    cls: { asn: "ASN直送", rush4h: "4小时加急", rush24h: "24小时加急", normal: "普通" },
    st: { new: "新建", held: "暂扣", queued: "排队中", picking: "拣货中",
          picked: "已拣待出库", shipped: "已出库", delivered: "已签收",
          cancelled: "已取消" },
    other: "English", other_lang: "en", overdue: "已超期",
  },
  en: {
    title: "Pick board", warehouse: "Warehouse", login: "Log in",
    queue: "Pick queue", pos: "Pos", order: "Order", class: "Class",
    customer: "Customer", deadline: "Deadline", left: "Left", eta: "ETA",
    picking: "Being picked", picker: "Picker", lease_left: "Lease left",
    state: "State", jumps: "Recent queue jumps", at_risk: "At risk",
    trace: "Order trail", close: "Close",
    login_why: "This board needs a login (viewer role or above). The secret stays in this tab only and never goes into a URL.",
    live: "live", reconnecting: "reconnecting…", connecting: "connecting…",
    storage_ok: "storage ok", storage_bad: "storage failing (read-only)",
    bad_token: "invalid secret", no_perm: "this user may not read the board",
    shown: (n, t) => `first ${n} of ${t}`, none: "none",
    rush: "🔥RUSH", asn: "ASN", risk: "⚠AT RISK", up: "↑escalated",
    cls: { asn: "ASN direct", rush4h: "rush 4h", rush24h: "rush 24h", normal: "normal" },
    st: { new: "new", held: "held", queued: "queued", picking: "picking",
          picked: "picked", shipped: "shipped", delivered: "delivered",
          cancelled: "cancelled" },
    other: "中文", other_lang: "zh", overdue: "overdue",
  },
}[lang];

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

let wh = params.get("wh") || localStorage.getItem("dispatchd.wh") || "main";
let lastEvent = null;   // the stream's position (Last-Event-ID)
let inflight = false, again = false, timer = null;

function token() { return sessionStorage.getItem("dispatchd.token") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

// Times in the warehouse's clock (China Standard Time).
const fmt = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", {
  timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", hour12: false });
const when = (ms) => fmt.format(new Date(ms));
function span(ms) {
  const neg = ms < 0, m = Math.floor(Math.abs(ms) / 60000);
  const s = `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}`;
  return neg ? `-${s} ${T.overdue}` : s;
}

// A lease's time left, m:ss.
function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function tags(o) {
  const out = [];
  if (o.class === "rush4h" || o.class === "rush24h") out.push(el("span", "tag tag-rush", T.rush));
  if (o.class === "asn") out.push(el("span", "tag tag-asn", T.asn));
  if (o.effective_class && o.effective_class !== o.class) out.push(el("span", "tag tag-up", T.up));
  if (o.at_risk) out.push(el("span", "tag tag-risk", T.risk));
  return out;
}

function row(cells, o) {
  const tr = el("tr");
  tr.dataset.id = o.id;
  for (const c of cells) {
    const td = el("td");
    if (Array.isArray(c)) c.forEach((x) => td.append(x)); else td.textContent = c;
    tr.append(td);
  }
  tr.addEventListener("click", () => openTrace(o.id));
  return tr;
}

function render(b) {
  $("login").hidden = true;
  $("board").hidden = false;
  // Warehouse selector.
  const sel = $("wh"), names = b.warehouses.includes(wh) ? b.warehouses : [wh, ...b.warehouses];
  if (sel.dataset.names !== names.join("\n")) {
    sel.replaceChildren(...names.map((n) => { const o = el("option", "", n); o.value = n; return o; }));
    sel.dataset.names = names.join("\n");
  }
  sel.value = wh;
  // Storage.
  const s = $("storage");
  s.dataset.state = b.storage.ok ? "ok" : "failing";
  s.textContent = b.storage.ok ? T.storage_ok : `${T.storage_bad}: ${b.storage.reason}`;
  // Counts per state and class.
  const counts = [];
  for (const [k, v] of Object.entries(b.counts.by_state)) {
    const d = el("div", "count"); d.dataset.state = k;
    d.append(el("b", "", String(v)), T.st[k] || k); counts.push(d);
  }
  for (const [k, v] of Object.entries(b.counts.queued_by_class)) {
    const d = el("div", "count"); d.dataset.class = k;
    d.append(el("b", "", String(v)), `${T.st.queued}·${T.cls[k] || k}`); counts.push(d);
  }
  $("counts").replaceChildren(...counts);
  // Queue in pick order.
  $("shown").textContent = T.shown(b.shown, b.counts.by_state.queued);
  $("queue").tBodies[0].replaceChildren(...b.queue.map((o) => {
    const tr = row([String(o.position + 1), o.id, [...tags(o), T.cls[o.class] || o.class],
                    o.customer, when(o.deadline), span(o.left_ms), when(o.eta)], o);
    if (o.at_risk) tr.classList.add("risk");
    tr.dataset.class = o.class;
    return tr;
  }));
  // At risk, listed apart.
  const risk = b.at_risk.map((o) => {
    const li = el("li");
    li.dataset.id = o.id;
    li.append(el("span", "tag tag-risk", T.risk),
              `#${o.position + 1} ${o.id} · ${o.customer} · ${T.deadline} ${when(o.deadline)} · ${T.eta} ${when(o.eta)}`);
    li.addEventListener("click", () => openTrace(o.id));
    return li;
  });
  $("atrisk").replaceChildren(...(risk.length ? risk : [el("li", "none", T.none)]));
  // Pickers and their leases.
  $("picking").tBodies[0].replaceChildren(...b.picking.map((o) =>
    row([[...tags(o), o.id], o.picker,
         o.lease_left_ms !== undefined ? clock(o.lease_left_ms) : "—", T.st[o.state] || o.state], o)));
  // The last jumps, as the chat cards read.
  $("jumps").replaceChildren(...b.jumps.map((j) => {
    const d = el("div", "card");
    d.dataset.order = j.order;
    d.append(el("time", "", when(j.at)), j.card);
    d.addEventListener("click", () => openTrace(j.order));
    return d;
  }));
  if (lastEvent === null) lastEvent = b.last_event;
}

function needLogin(msg) {
  $("board").hidden = true;
  $("login").hidden = false;
  $("login_err").textContent = msg || "";
  $("token").focus();
}

async function refresh() {
  if (inflight) { again = true; return; }
  inflight = true;
  try {
    const r = await fetch(`/v1/board?wh=${encodeURIComponent(wh)}`, { headers: headers() });
    if (r.status === 401) { needLogin(token() ? T.bad_token : ""); return; }
    if (r.status === 403) { needLogin(T.no_perm); return; }
    if (r.ok) render(await r.json());
  } catch (e) {
    // The daemon is away: the stream reconnects and refreshes then.
  } finally {
    inflight = false;
    if (again) { again = false; refresh(); }
  }
}

// A change: refresh soon, once for a burst.
function changed() {
  if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 50);
}

function setConn(state) {
  $("conn").dataset.state = state;
  $("conn").textContent = T[state];
}

// Server-sent events over fetch: "id:", "event:", "data:" lines, a blank
// line ends a message.
async function stream() {
  let delay = 500;
  for (;;) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastEvent !== null) h["Last-Event-ID"] = String(lastEvent);
      const r = await fetch("/v1/events?changes=1", { headers: h, cache: "no-store" });
      if (r.status === 401 || r.status === 403) { needLogin(); await waitLogin(); continue; }
      if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
      setConn("live");
      $("conn").dataset.connects = String(Number($("conn").dataset.connects || 0) + 1);
      delay = 500;
      refresh(); // whatever happened while away
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let data = false;
          for (const line of msg.split("\n")) {
            if (line.startsWith("id:")) lastEvent = Number(line.slice(3).trim());
            else if (line.startsWith("data:")) data = true;
          }
          if (data) changed();
        }
      }
    } catch (e) {
      // Connection refused or reset: try again.
    }
    setConn("reconnecting");
    await new Promise((ok) => setTimeout(ok, delay));
    delay = Math.min(delay * 2, 4000);
  }
}

let loggedIn = null;
function waitLogin() { return new Promise((ok) => { loggedIn = ok; }); }

async function openTrace(id) {
  const r = await fetch(`/v1/orders/${encodeURIComponent(id)}`, { headers: headers() });
  if (!r.ok) return;
  const o = await r.json();
  $("trace_id").textContent = o.id;
  $("trace_state").textContent = `${T.st[o.state] || o.state} · ${T.cls[o.class] || o.class} · ${o.customer} · ${T.deadline} ${when(o.deadline)}`;
  $("trace_list").replaceChildren(...o.audit.map((a) => {
    const li = el("li");
    li.dataset.action = a.action;
    li.append(el("b", "", `${when(a.at)} ${a.action}`),
              ` ${a.from || "—"} → ${a.to} · ${a.actor}`);
    if (a.note) li.append(el("div", "note", a.note));
    if (a.raw) li.append(el("pre", "raw", a.raw));
    return li;
  }));
  $("trace").hidden = false;
  $("trace").dataset.order = o.id;
}

function init() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.title = `dispatchd ${T.title}`;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = T[e.dataset.t];
  const other = new URLSearchParams(location.search);
  other.set("lang", T.other_lang);
  $("lang").textContent = T.other;
  $("lang").href = `?${other}`;
  setConn("connecting");
  $("wh").addEventListener("change", () => {
    wh = $("wh").value;
    localStorage.setItem("dispatchd.wh", wh);
    const p = new URLSearchParams(location.search);
    p.set("wh", wh);
    history.replaceState(null, "", `?${p}`);
    refresh();
  });
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("dispatchd.token", $("token").value);
    $("token").value = "";
    refresh();
    if (loggedIn) { loggedIn(); loggedIn = null; }
  });
  $("trace_close").addEventListener("click", () => { $("trace").hidden = true; });
  refresh().then(stream);
}

init();
