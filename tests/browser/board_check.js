#!/usr/bin/env node
// board_check.js — the board and the customer page in a real browser:
// Debian's chromium, headless, driven by playwright-core (which downloads
// no browser).  Run by tests/test_e2e_browser.c against a real dispatchd:
//
//   node board_check.js --base http://127.0.0.1:PORT --resp-port PORT
//        --secret ADMIN_SECRET --shots DIR [--within MS]
//
// It pushes orders over HTTP and leases them over RESP, and checks what a
// person would see: a rush order at the top with its 🔥 tag within
// --within ms of the push, its jump card, an order leaving the queue when
// it is picked, the at-risk mark, the trace panel with the WMS callback's
// raw message, the page reconnecting by itself after a daemon restart
// (it prints "RESTART" and waits for "RESTARTED" on stdin: the C test
// restarts the daemon), the English labels, and the customer page at
// phone size.  Screenshots go to --shots.  The last line is
// "board_check: all checks passed"; any failure exits 1.
"use strict";

const net = require("net");
const path = require("path");
const fs = require("fs");
const readline = require("readline");
const { chromium } = require("playwright-core");

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const base = args.base;
const respPort = Number(args["resp-port"]);
const secret = args.secret || "";
const shots = args.shots || ".";
const within = Number(args.within || 1000);
if (!base || !respPort) {
  console.error("usage: board_check.js --base URL --resp-port N [--secret S] [--shots DIR] [--within MS]");
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });

const auth = secret ? { Authorization: `Bearer ${secret}` } : {};
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function api(method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: Object.assign({ "Content-Type": "application/json" }, auth),
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return JSON.parse(text);
}
const push = (o) => api("POST", "/v1/orders", Object.assign({ approved: true }, o));

// Inline RESP commands on a fresh connection (AUTH first when there are
// users); the raw replies once the daemon has been quiet for 150 ms.
function resp(line) {
  return new Promise((ok, fail) => {
    const s = net.connect(respPort, "127.0.0.1");
    let buf = "", quiet = null;
    const cmds = (secret ? [`AUTH admin1 ${secret}`] : []).concat([line]);
    s.on("connect", () => s.write(cmds.map((c) => c + "\r\n").join("")));
    s.on("data", (d) => {
      buf += d;
      clearTimeout(quiet);
      quiet = setTimeout(() => { s.end(); ok(buf); }, 150);
    });
    s.on("error", fail);
  });
}

let stdinLines;
function waitLine(want) {
  return new Promise((ok) => {
    stdinLines.once("line", (l) => {
      if (l.trim() !== want) throw new Error(`got "${l}", not ${want}`);
      ok();
    });
  });
}

async function main() {
  stdinLines = readline.createInterface({ input: process.stdin });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // As root in a container chromium's sandbox cannot start.
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    await board(browser);
    await customer(browser);
  } finally {
    await browser.close();
  }
  console.log("board_check: all checks passed");
  process.exit(0);
}

async function board(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource|ERR_CONNECTION/.test(m.text())) errors.push(m.text()); });

  for (let i = 1; i <= 6; i++)
    await push({ id: `N-${i}`, class: "normal", customer: `dealer-${i}` });
  await page.goto(base + "/");
  if (secret) {
    // The page asks for the secret; it never goes into the URL.
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#token", secret);
    await page.click("#login button");
  }
  await page.waitForSelector("#conn[data-state=live]", { timeout: 10000 });
  check(!page.url().includes(secret || "\u0000"), "no secret in the URL");
  await page.waitForFunction(() => document.querySelectorAll("#queue tbody tr").length === 6);
  check(true, "six queued orders listed");
  check(await page.textContent("h1") === "拣货看板", "Chinese labels by default");

  // A rush order: at the top, tagged, within the budget of the push.
  const t0 = Date.now();
  await push({ id: "R-1", class: "rush4h", customer: "acme" });
  await page.waitForFunction(() => {
    const tr = document.querySelector("#queue tbody tr");
    return tr && tr.dataset.id === "R-1" && /🔥加急/.test(tr.querySelector(".tag-rush")?.textContent || "");
  }, null, { timeout: 10000, polling: 20 });
  const took = Date.now() - t0;
  console.log(`rush order on top ${took} ms after the push (budget ${within} ms)`);
  check(took <= within, `rush order at the top with 🔥加急 within ${within} ms (${took} ms)`);

  // Its jump card, in the chat's words.
  const card = await page.waitForSelector('#jumps .card[data-order="R-1"]');
  const ct = await card.textContent();
  check(/【加急插队】订单#R-1\(客户:acme\)已置顶,原队列第1位起6单订单顺延\d+分钟/.test(ct), `jump card: ${ct}`);

  // Picked (NEXT over RESP): it leaves the queue for the pickers' list.
  const r = await resp("NEXT main PICKER 王小明 LEASE 600");
  check(r.includes("R-1"), "NEXT leased R-1");
  await page.waitForFunction(() =>
    !document.querySelector('#queue tbody tr[data-id="R-1"]') &&
    /王小明/.test(document.querySelector('#picking tbody tr[data-id="R-1"]')?.textContent || ""));
  check(true, "R-1 left the queue and is listed with its picker");
  const lease = await page.textContent('#picking tbody tr[data-id="R-1"] td:nth-child(3)');
  check(/^(9:[0-5]\d|10:00)$/.test(lease.trim()), `lease time left shown (${lease.trim()})`);

  // At risk: two orders due in 15 minutes when a pick takes 10.
  const soon = Date.now() + 15 * 60000;
  await push({ id: "L-1", class: "rush24h", customer: "late", deadline: soon });
  await push({ id: "L-2", class: "rush24h", customer: "late", deadline: soon });
  await page.waitForSelector('#atrisk li[data-id="L-2"]');
  await page.waitForSelector('#queue tbody tr.risk[data-id="L-2"] .tag-risk');
  check(await page.$('#atrisk li[data-id="L-1"]') === null, "L-1 (in time) is not at risk");
  check(true, "L-2 marked at risk in the queue and listed apart");

  // The WMS confirms R-1; its trail shows the raw callback, who and when.
  const raw = { order_no: "R-1", operator: "王小明", carrier: "德邦", outbound_at: new Date().toISOString(), note: "browser-raw-7" };
  await api("POST", "/v1/wms/outbound", raw);
  await page.waitForFunction(() => !document.querySelector('#picking tbody tr[data-id="R-1"]'));
  await page.click('#jumps .card[data-order="R-1"]');
  await page.waitForSelector("#trace:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#trace_id").textContent === "R-1");
  const entry = await page.waitForSelector('#trace_list li[data-action="outbound"]');
  const et = await entry.textContent();
  check(et.includes("browser-raw-7") && et.includes('"carrier":"德邦"'), "the WMS callback's raw message in the trail");
  check(/picking → shipped/.test(et), `who and what: ${et.slice(0, 80)}`);
  await page.screenshot({ path: path.join(shots, "board-trace.png") });
  await page.click("#trace_close");

  // The daemon restarts; the page reconnects by itself and is live again.
  const connects = Number(await page.getAttribute("#conn", "data-connects"));
  console.log("RESTART");
  await waitLine("RESTARTED");
  await page.waitForFunction((n) => {
    const c = document.querySelector("#conn");
    return c.dataset.state === "live" && Number(c.dataset.connects) > n;
  }, connects, { timeout: 15000 });
  check(true, "the page reconnected by itself after the restart");
  // Live again: a rush order shows (behind L-1 and L-2, escalated to rush4h
  // and due sooner).
  const t1 = Date.now();
  await push({ id: "R-2", class: "rush4h", customer: "acme" });
  await page.waitForSelector('#queue tbody tr[data-id="R-2"] .tag-rush', { timeout: 10000 });
  const pos = await page.textContent('#queue tbody tr[data-id="R-2"] td');
  check(pos === "3", `R-2 shown at position ${pos}, ${Date.now() - t1} ms after its push`);
  check(await page.$$eval('#jumps .card[data-order="R-2"]', (c) => c.length) === 1, "one card for R-2 (no replay twice)");
  await page.screenshot({ path: path.join(shots, "board.png") });

  // English on request.
  await page.goto(base + "/?lang=en");
  await page.waitForSelector("#conn[data-state=live]");
  check(await page.textContent("h1") === "Pick board", "English labels with ?lang=en");
  await page.waitForSelector('#queue tbody tr[data-id="R-2"] .tag-rush');
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
  await ctx.close();
}

async function customer(browser) {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await ctx.newPage();
  const o = await api("GET", "/v1/orders/N-3");
  check(typeof o.customer_url === "string", "customer_url for the ERP");
  await page.goto(o.customer_url);
  await page.waitForSelector("#state[data-state=queued]");
  const st = await page.textContent("#state");
  check(st === "排队等待拣货", `state in words: ${st}`);
  const facts = await page.textContent("#facts");
  check(/当前排队位置第\d+位/.test(facts) && /预计拣货时间/.test(facts), `position and expected pick time: ${facts}`);
  const wide = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(wide[0] <= wide[1], `no horizontal scroll at 390 px (${wide[0]} <= ${wide[1]})`);
  await page.screenshot({ path: path.join(shots, "customer.png") });

  // Shipped: carrier and time.
  const s = await api("GET", "/v1/orders/R-1");
  await page.goto(s.customer_url);
  await page.waitForSelector("#state[data-state=shipped]");
  check((await page.textContent("#facts")).includes("德邦"), "carrier shown once shipped");
  // A wrong token shows nothing.
  await page.goto(s.customer_url.replace(/t=[0-9a-f]+/, "t=00000000000000000000000000000000"));
  const body = await page.textContent("body");
  check(!body.includes("德邦") && !body.includes("R-1"), "a wrong token shows nothing of the order");
  await ctx.close();
}

main().catch((e) => {
  console.error(`board_check: ${e.stack || e}`);
  process.exit(1);
});
