// "Where is my order": what GET /v1/track/{id}?t= says, in words.  The
// token in this page's own link is the customer's capability for this one
// order; the page sends it back only to the daemon that made it.
"use strict";

const params = new URLSearchParams(location.search);
const lang = params.get("lang") === "en" ? "en" : "zh";
const T = {
  zh: {
    title: "订单进度", lead: "同类订单历史履约时间", order: "订单号",
    st: { new: "已接单,等待审核", held: "已接单,暂缓处理",
          queued: "排队等待拣货", picking: "正在拣货", picked: "已拣货,等待出库",
          shipped: "已出库", delivered: "已签收", cancelled: "已取消" },
    position: "当前排队位置", pos: (n) => `第${n}位`,
    expected: "预计拣货时间", carrier: "承运商", shipped_at: "出库时间",
    delivered_at: "签收时间",
    lead_text: (d, m, p, n) => `近${d}天同类订单(共${n}单)从下单到出库:中位数${m},90%在${p}以内`,
    lead_none: (d) => `近${d}天暂无同类订单记录`,
    hours: (h, m) => (h ? `${h}小时` : "") + `${m}分钟`, under_minute: "不到1分钟",
    updated: "更新于", missing: "找不到该订单,请检查链接是否完整。",
    other: "English", other_lang: "en",
  },
  en: {
    title: "Your order", lead: "Historical fulfilment time of similar orders",
    order: "Order",
    st: { new: "received, awaiting approval", held: "received, on hold",
          queued: "waiting to be picked", picking: "being picked",
          picked: "picked, waiting to ship", shipped: "shipped",
          delivered: "delivered", cancelled: "cancelled" },
    position: "Place in the queue", pos: (n) => `#${n}`,
    expected: "Expected pick time", carrier: "Carrier",
    shipped_at: "Shipped at", delivered_at: "Delivered at",
    lead_text: (d, m, p, n) => `Last ${d} days, ${n} similar orders from order to shipping: median ${m}, 90% within ${p}`,
    lead_none: (d) => `No similar orders in the last ${d} days`,
    hours: (h, m) => (h ? `${h} h ` : "") + `${m} min`, under_minute: "under a minute",
    updated: "Updated", missing: "Order not found: please check the link.",
    other: "中文", other_lang: "zh",
  },
}[lang];

const $ = (id) => document.getElementById(id);
const fmt = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", {
  timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
const when = (ms) => fmt.format(new Date(ms));
const dur = (ms) => {
  if (ms < 60000) return T.under_minute;
  const m = Math.round(ms / 60000);
  return T.hours(Math.floor(m / 60), m % 60);
};

function fact(dl, k, v) {
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = k;
  dd.textContent = v;
  dd.dataset.k = k;
  dl.append(dt, dd);
}

async function load() {
  const id = decodeURIComponent(location.pathname.replace(/^\/o\//, ""));
  const t = params.get("t") || "";
  const r = await fetch(`/v1/track/${encodeURIComponent(id)}?t=${encodeURIComponent(t)}`,
                        { cache: "no-store", referrerPolicy: "no-referrer" });
  if (!r.ok) {
    $("state").textContent = T.missing;
    $("state").dataset.state = "missing";
    return;
  }
  const o = await r.json();
  $("id").textContent = `${T.order} ${o.id}`;
  $("state").textContent = T.st[o.state] || o.state;
  $("state").dataset.state = o.state;
  const dl = $("facts");
  dl.replaceChildren();
  if (o.position !== undefined) fact(dl, T.position, T.pos(o.position));
  if (o.expected_pick_at_ms !== undefined) fact(dl, T.expected, when(o.expected_pick_at_ms));
  if (o.carrier) fact(dl, T.carrier, o.carrier);
  if (o.shipped_at_ms !== undefined) fact(dl, T.shipped_at, when(o.shipped_at_ms));
  if (o.delivered_at_ms !== undefined) fact(dl, T.delivered_at, when(o.delivered_at_ms));
  dl.hidden = !dl.children.length;
  const lt = o.lead_time;
  $("lead_text").textContent = lt.orders
    ? T.lead_text(lt.days, dur(lt.median_ms), dur(lt.p90_ms), lt.orders)
    : T.lead_none(lt.days);
  $("updated").textContent = `${T.updated} ${when(Date.now())}`;
}

function init() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.title = T.title;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = T[e.dataset.t];
  const other = new URLSearchParams(location.search);
  other.set("lang", T.other_lang);
  $("lang").textContent = T.other;
  $("lang").href = `?${other}`;
  load().catch(() => {});
  setInterval(() => load().catch(() => {}), 30000);
}

init();
