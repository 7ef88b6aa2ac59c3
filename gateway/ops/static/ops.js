// Minsheng Gateway status page: reads /v1/status and draws it; refreshes by itself.
// No library and no external request: charts are inline SVG drawn here. Data is only
// ever put in the page as text (textContent), never as markup.
"use strict";

const CHANNELS = {
  phone: ["电话", "phone"],
  web: ["网上信箱", "web mailbox"],
  email: ["电子邮件", "e-mail"],
  opinion: ["网络舆情", "online opinion"],
};
const STATES = {
  up: ["正常", "up"],
  degraded: ["降级", "degraded"],
  down: ["中断", "down"],
  standby: ["待命", "standby"],
  disabled: ["已停用", "disabled"],
  starting: ["启动中", "starting"],
};
const OVERALL = {
  ok: ["全部正常", "all normal"],
  warning: ["需要关注", "attention"],
  critical: ["严重故障", "critical"],
};
const OUTCOMES = {
  new: "新 new", repeat: "重复 repeat", related: "相关 related", replay: "重放 replay",
  rejected: "拒收 rejected", quarantined: "隔离 quarantined", filtered: "过滤 filtered",
};
const SVG_NS = "http://www.w3.org/2000/svg";

let refreshMs = 15000;
let timeZone = undefined;
let timer = null;

// -- small helpers -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function bilingual(zh, en) {
  return [document.createTextNode(zh + " "), el("span", { class: "en" }, en)];
}

function channelLabel(channel) {
  const known = CHANNELS[channel];
  return known ? known : [channel, channel];
}

function channelClass(channel) {
  return CHANNELS[channel] ? "ch-" + channel : "ch-other";
}

function fmtNumber(n) {
  return Number(n || 0).toLocaleString("zh-CN");
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return [s + " 秒", s + " s"];
  if (s < 3600) return [Math.round(s / 60) + " 分钟", Math.round(s / 60) + " min"];
  if (s < 86400) return [(s / 3600).toFixed(1) + " 小时", (s / 3600).toFixed(1) + " h"];
  return [(s / 86400).toFixed(1) + " 天", (s / 86400).toFixed(1) + " d"];
}

function fmtAgo(ts, now) {
  if (!ts) return "—";
  const [zh, en] = fmtDuration(now - ts);
  return zh + "前 (" + en + " ago)";
}

function fmtTime(ts, options) {
  return new Intl.DateTimeFormat("zh-CN", { timeZone, hour12: false, ...options })
    .format(new Date(ts * 1000));
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

// -- sections ------------------------------------------------------------------------

function renderOverall(summary, generatedAt) {
  const box = document.getElementById("overall");
  const [zh, en] = OVERALL[summary.state] || OVERALL.warning;
  box.className = "overall state-" + summary.state;
  box.replaceChildren(el("span", { class: "zh" }, zh), el("span", { class: "en" }, en));
  setText("updated", "更新于 " + fmtTime(generatedAt, { timeStyle: "medium" }) + " · updated");
  const list = document.getElementById("problems");
  list.replaceChildren(...summary.problems.map(
    (p) => el("li", { class: p.level }, p.zh + " · " + p.en)));
}

function tile(id, value, sub, level) {
  const box = document.getElementById(id);
  box.className = "tile" + (level ? " " + level : "");
  box.querySelector(".value").textContent = value;
  box.querySelector(".sub").textContent = sub;
}

function sumOver(totals, key) {
  return Object.values(totals || {}).reduce((s, t) => s + (t[key] || 0), 0);
}

// Dead letters and quarantine are never purged: their oldest entry's age is shown.
function heldAge(seconds) {
  const [zh, en] = fmtDuration(seconds);
  return "最久 " + zh + " · oldest " + en;
}

function renderTiles(doc) {
  const day = (doc.volumes || {}).last_24h || {};
  const cases = sumOver(day, "cases");
  const received = sumOver(day, "received");
  const rejected = sumOver(day, "rejected");
  tile("tile-cases", fmtNumber(cases), "收到 received " + fmtNumber(received), "good");
  const share = received ? rejected / received : 0;
  tile("tile-rejected", fmtNumber(rejected),
    received ? "占 share " + (share * 100).toFixed(1) + "%" : "", share > 0.2 ? "warn" : "good");
  const backlog = doc.backlog || { pending: 0, oldest_pending_age_s: 0 };
  const age = backlog.oldest_pending_age_s;
  const [ageZh, ageEn] = fmtDuration(age);
  tile("tile-backlog", fmtNumber(backlog.pending),
    backlog.pending ? "最久 " + ageZh + " · oldest " + ageEn : "无积压 · none waiting",
    age > doc.gateway.backlog_warn_s ? "bad" : backlog.pending ? "warn" : "good");
  const heldS = (doc.gateway.held_warn_days || 7) * 86400;
  const deadAge = doc.dead_letters_oldest_age_s || 0;
  tile("tile-dead", fmtNumber(doc.dead_letters),
    doc.dead_letters ? "需重放 · replay needed · " + heldAge(deadAge) : "",
    doc.dead_letters ? "bad" : "good");
  const quarantine = doc.quarantine || { open: 0, oldest_age_s: 0 };
  const open = quarantine.open || 0;
  tile("tile-quarantine", fmtNumber(open),
    open ? "待处理 · to review · " + heldAge(quarantine.oldest_age_s || 0) : "",
    open ? (quarantine.oldest_age_s > heldS ? "bad" : "warn") : "good");
  const calls = doc.calls;
  const ratio = calls ? calls.answered_within_15s_ratio : null;
  if (ratio === null || ratio === undefined) {
    tile("tile-calls", "—", "暂无电话数据 · no call data", "");
  } else {
    tile("tile-calls", (ratio * 100).toFixed(1) + "%",
      "放弃 abandoned " + fmtNumber(calls.abandoned_total), ratio < 0.85 ? "warn" : "good");
  }
}

function sourceCard(s, now) {
  const [stateZh, stateEn] = STATES[s.state] || [s.state, s.state];
  const [chZh, chEn] = channelLabel(s.channel);
  const kind = s.kind === "pull" ? "拉取 pull" : "推送 push";
  const counts = Object.entries(s.counts || {})
    .map(([outcome, n]) => (OUTCOMES[outcome] || outcome) + " " + fmtNumber(n)).join(" · ");
  const lines = [
    el("div", { class: "head" }, el("span", { class: "name" }, s.name),
      el("span", { class: "state" }, stateZh + " ", el("span", { class: "en" }, stateEn))),
    el("div", { class: "meta" }, chZh + " " + chEn + " · " + kind + (s.critical ? " · 关键 critical" : "")),
    el("div", { class: "meta" }, "状态持续 since " + fmtAgo(s.since, now)),
  ];
  if (s.last_success) lines.push(el("div", { class: "meta" }, "上次成功 last ok " + fmtAgo(s.last_success, now)));
  if (s.consecutive_failures) {
    lines.push(el("div", { class: "meta" }, "连续失败 failures " + s.consecutive_failures));
  }
  if (s.reason && s.state !== "up") lines.push(el("div", { class: "reason" }, s.reason));
  if (counts) lines.push(el("div", { class: "meta" }, "本次运行 since start: " + counts));
  return el("div", { class: "source state-" + s.state, "data-source": s.name, "data-state": s.state },
    ...lines);
}

function renderSources(doc) {
  const box = document.getElementById("sources");
  const cards = doc.sources.map((s) => sourceCard(s, doc.generated_at));
  box.replaceChildren(...(cards.length ? cards : [el("div", { class: "none" }, "未配置来源 · no sources")]));
}

function niceMax(value) {
  // The top of the axis: four whole, round steps (1, 2, 5 × 10^k each) that reach value.
  const raw = Math.max(1, value / 4);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 3, 4, 5, 6, 8, 10].map((m) => m * power)
    .find((s) => s >= raw && Number.isInteger(s));
  return 4 * (step || Math.ceil(raw));
}

function drawLegend(id, channels) {
  document.getElementById(id).replaceChildren(...channels.map((c) => {
    const [zh, en] = channelLabel(c);
    return el("span", { class: "key" }, el("span", { class: "swatch " + channelClass(c) }), zh + " ",
      el("span", { class: "en" }, en));
  }));
}

function drawBars(svgNode, buckets, channels, labelOf, showEvery) {
  const [, , W, H] = svgNode.getAttribute("viewBox").split(" ").map(Number);
  const left = 56, right = 8, top = 28, bottom = 40;
  const totals = buckets.map((b) => channels.reduce((s, c) => s + (b.cases[c] || 0), 0));
  const max = niceMax(Math.max(1, ...totals));
  const plotH = H - top - bottom;
  const slot = (W - left - right) / buckets.length;
  const barW = Math.max(2, slot * 0.72);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    parts.push(svg("line", { class: "grid-line", x1: left, x2: W - right, y1: y, y2: y }));
    parts.push(svg("text", { class: "axis-label", x: left - 8, y: y + 7, "text-anchor": "end" },
      fmtNumber((max * i) / 4)));
  }
  buckets.forEach((bucket, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = top + plotH;
    for (const channel of channels) {
      const n = bucket.cases[channel] || 0;
      if (!n) continue;
      const h = (plotH * n) / max;
      y -= h;
      parts.push(svg("rect", { class: "bar " + channelClass(channel), x, y, width: barW,
        height: Math.max(h, 1), rx: 2, "data-channel": channel, "data-count": n }));
    }
    if (totals[i] && (buckets.length <= 12 || totals[i] === Math.max(...totals))) {
      parts.push(svg("text", { class: "total-label", x: x + barW / 2, y: y - 7,
        "text-anchor": "middle" }, fmtNumber(totals[i])));
    }
    if (i % showEvery === 0 || i === buckets.length - 1) {
      parts.push(svg("text", { class: "axis-label", x: x + barW / 2, y: H - 12,
        "text-anchor": "middle" }, labelOf(bucket)));
    }
  });
  if (!totals.some(Boolean)) {
    parts.push(svg("text", { class: "empty", x: W / 2, y: top + plotH / 2, "text-anchor": "middle" },
      "暂无数据 (no data)"));
  }
  svgNode.replaceChildren(...parts);
}

function renderCharts(doc) {
  const volumes = doc.volumes;
  if (!volumes) return;
  const channels = volumes.channels;
  drawLegend("legend-hours", channels);
  drawLegend("legend-days", channels);
  drawBars(document.getElementById("chart-hours"), volumes.hours, channels,
    (b) => fmtTime(b.start, { hour: "2-digit" }).replace(/\D/g, "") + "时", 3);
  const weekday = (d) => new Intl.DateTimeFormat("zh-CN", { weekday: "short", timeZone: "UTC" })
    .format(new Date(d + "T12:00:00Z"));
  drawBars(document.getElementById("chart-days"), volumes.days, channels,
    (b) => b.date.slice(5) + " " + weekday(b.date), volumes.days.length > 10 ? 3 : 1);
  const title = document.getElementById("days-title");
  title.replaceChildren(...bilingual("近" + volumes.window_days + "日受理量",
    "cases per day, last " + volumes.window_days + " days"));
}

function renderSinks(doc) {
  const rows = (doc.sinks || []).map((s) => {
    const [ageZh] = fmtDuration(s.oldest_pending_age_s);
    const [deadZh] = fmtDuration(s.oldest_dead_age_s || 0);
    return el("tr", { "data-sink": s.name },
      el("td", {}, s.name + " ", el("span", { class: "en" }, s.kind)),
      el("td", { class: "num" + (s.pending ? " warn" : "") }, fmtNumber(s.pending)),
      el("td", { class: "num" }, s.pending ? ageZh : "—"),
      el("td", { class: "num" }, fmtNumber(s.delivered)),
      el("td", { class: "num" + (s.dead ? " bad" : "") }, fmtNumber(s.dead)),
      el("td", { class: "num" }, s.dead ? deadZh : "—"));
  });
  document.querySelector("#sinks tbody").replaceChildren(...rows);
  const day = (doc.volumes || {}).last_24h || {};
  const channels = ((doc.volumes || {}).channels || []).filter((c) => day[c]);
  document.querySelector("#channels tbody").replaceChildren(...channels.map((c) => {
    const [zh, en] = channelLabel(c);
    return el("tr", {},
      el("td", {}, zh + " ", el("span", { class: "en" }, en)),
      el("td", { class: "num" }, fmtNumber(day[c].received)),
      el("td", { class: "num" }, fmtNumber(day[c].cases)),
      el("td", { class: "num" + (day[c].rejected ? " warn" : "") }, fmtNumber(day[c].rejected)));
  }));
}

function renderRejections(doc) {
  const items = (doc.rejections || []).map((r) => {
    const [chZh] = channelLabel(r.channel);
    const reasons = r.reasons.map((x) => el("div", {},
      el("span", { class: "reason-field" }, x.field), (x.zh || "") + " ",
      el("span", { class: "en" }, x.en || "")));
    return el("li", { "data-raw": r.raw_id },
      el("div", { class: "line1" },
        el("span", {}, r.source + " · " + chZh),
        el("span", {}, fmtTime(r.at, { month: "2-digit", day: "2-digit", hour: "2-digit",
          minute: "2-digit" }))),
      el("div", { class: "line2" }, ...reasons));
  });
  document.getElementById("rejections").replaceChildren(
    ...(items.length ? items : [el("li", { class: "none" }, "暂无拒收 (none)")]));
}

function renderClusters(doc) {
  // Rows of gateway.store.dedup_index.top_clusters: the clusters that grew most in 24 h.
  const clusters = doc.clusters || [];
  const items = clusters.map((c) => el("li", { "data-cluster": c.cluster_id },
    el("div", { class: "line2" },
      el("span", { class: "size" }, fmtNumber(c.recent || c.size)),
      c.hot_at ? el("span", { class: "hot" }, "热点 hot") : null,
      c.snippet || ""),
    el("div", { class: "line1" },
      el("span", {}, "24小时新增 · new in 24 h · 累计 total " + fmtNumber(c.size)),
      el("span", {}, c.latest_at ? "最新 " + fmtAgo(c.latest_at, doc.generated_at) : ""))));
  document.getElementById("clusters").replaceChildren(
    ...(items.length ? items : [el("li", { class: "none" }, "暂无 (none yet)")]));
}

// -- the loop ------------------------------------------------------------------------

function render(doc) {
  timeZone = doc.gateway.timezone;
  refreshMs = Math.max(2, doc.gateway.refresh_s) * 1000;
  renderOverall(doc.summary, doc.generated_at);
  renderTiles(doc);
  renderSources(doc);
  renderCharts(doc);
  renderSinks(doc);
  renderRejections(doc);
  renderClusters(doc);
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function refresh() {
  try {
    const response = await fetch("/v1/status", { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) {
      window.location.assign("/ops");
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    document.getElementById("banner").classList.add("hidden");
  } catch (error) {
    document.getElementById("banner").classList.remove("hidden");
    console.warn("status refresh failed", error);
  } finally {
    clearTimeout(timer);
    timer = setTimeout(refresh, refreshMs);
  }
}

function tick() {
  document.getElementById("clock").textContent =
    new Intl.DateTimeFormat("zh-CN", { timeZone, hour12: false, timeStyle: "medium" }).format(new Date());
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  refresh();
});
