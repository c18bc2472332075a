#!/usr/bin/env node
// surge_shots.js — the README's screenshots: a surge on the board and a
// customer's page at phone size, from a running dispatchd without users
// (tools/run).  By hand, not a test:
//
//   node surge_shots.js --base http://127.0.0.1:7421 --resp-port 7420 --out ../../docs
//
// It pushes 300 orders (about 10 % rush, a few ASN, two due too soon),
// ships three of one customer over 2.5 minutes (its lead times), gives
// two pickers an order each, then saves board.png (1280x800) and
// customer.png (390x844).  Takes about three minutes.
"use strict";

const net = require("net");
const path = require("path");
const { chromium } = require("playwright-core");

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const base = args.base || "http://127.0.0.1:7421";
const out = args.out || ".";

async function api(method, p, body) {
  const r = await fetch(base + p, { method, headers: { "Content-Type": "application/json" },
                                    body: body ? JSON.stringify(body) : undefined });
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

function resp(line) {
  return new Promise((ok, fail) => {
    const s = net.connect(Number(args["resp-port"] || 7420), "127.0.0.1");
    s.on("connect", () => s.write(line + "\r\n"));
    s.on("data", () => { s.end(); ok(); });
    s.on("error", fail);
  });
}

async function main() {
  const now = Date.now();
  // Three earlier rush orders of the customer whose page is shown, shipped
  // about 1, 1.5 and 2.5 minutes after their push: its lead time figures.
  const lead = ["RD20260126-8001", "RD20260126-8002", "RD20260126-8003"];
  for (const id of lead)
    await api("POST", "/v1/orders", { id, class: "rush4h", customer: "苏州博世", approved: true });
  const shipAt = [60e3, 90e3, 150e3];
  const dealers = ["上海申沃", "杭州汽配", "苏州博世", "宁波华翔", "无锡威孚", "南京依维柯"];
  for (let i = 1; i <= 300; i++) {
    const o = { id: `RD20260126-${String(i).padStart(4, "0")}`, class: "normal",
                customer: dealers[i % dealers.length], approved: true };
    if (i % 10 === 0) o.class = "rush4h";
    else if (i % 23 === 0) o.class = "rush24h";
    else if (i % 37 === 0) {
      o.class = "asn"; o.customer = "一汽大众";
      o.deadline = now + 3 * 3600e3;
      o.attrs = { asn_number: `ASN-${i}`, tech_agreement: "TA-2026-01" };
    }
    await api("POST", "/v1/orders", o);
  }
  for (let i = 0; i < lead.length; i++) {
    await new Promise((ok) => setTimeout(ok, Math.max(0, now + shipAt[i] - Date.now())));
    await api("POST", "/v1/wms/outbound", { order_no: lead[i], operator: "王小明", carrier: "德邦" });
  }
  // One picker here (a second NEXT at once would make the measured gap
  // between leases, and so every ETA, a few milliseconds), one in hz1.
  await resp("NEXT main PICKER 王小明 LEASE 300");
  for (let i = 1; i <= 3; i++)
    await api("POST", "/v1/orders", { id: `HZ-${i}`, class: "normal", warehouse: "hz1", customer: "杭州汽配", approved: true });
  await resp("NEXT hz1 PICKER 李娜 LEASE 300");
  // Two due in 3 minutes, when a pick takes 2: the second is at risk.
  for (const id of ["RD20260126-9001", "RD20260126-9002"])
    await api("POST", "/v1/orders", { id, class: "rush24h", customer: "宁波华翔",
                                      deadline: Date.now() + 3 * 60e3, approved: true });

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
    args: process.getuid() === 0 ? ["--no-sandbox"] : [] });
  let page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(base + "/");
  await page.waitForSelector("#conn[data-state=live]");
  await page.waitForSelector("#queue tbody tr");
  await page.screenshot({ path: path.join(out, "board.png") });
  const o = await api("GET", "/v1/orders/RD20260126-0020");
  page = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })).newPage();
  await page.goto(o.customer_url);
  await page.waitForSelector("#state[data-state]");
  await page.screenshot({ path: path.join(out, "customer.png") });
  await browser.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
