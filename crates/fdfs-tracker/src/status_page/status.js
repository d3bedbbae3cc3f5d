// The status page's script: polls status.json, renders groups and
// storages, and charts upload/download rates from the cumulative counters.
// Text from the cluster (group names, ids, hosts, versions) only ever
// enters the DOM through textContent and setAttribute, never as markup.
"use strict";

const POLL_INTERVAL_MS = 3000;
// Samples kept for the chart (at 3 s each: 5 minutes).
const CHART_SAMPLES = 100;
const STATUS_URL = "status.json";

const samples = [];

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    node.setAttribute(k, String(v));
  }
  for (const c of children || []) {
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

// fdfs_monitor's sizes: under 1 KB "<n>  B"; else the largest unit the
// value reaches, one decimal while under 10 ("9.9 GB"), none from there.
function bytesToHuman(bytes) {
  const units = ["KB", "MB", "GB", "TB", "PB", "EB"];
  if (bytes < 1024) {
    return bytes + "  B";
  }
  let i = 0;
  while (i + 1 < units.length && bytes >= Math.pow(1024, i + 2)) {
    i++;
  }
  const scaled = bytes / Math.pow(1024, i + 1);
  const oneDecimal = scaled.toFixed(1);
  if (parseFloat(oneDecimal) < 10) {
    return oneDecimal + " " + units[i];
  }
  return scaled.toFixed(0) + " " + units[i];
}

function mbToHuman(mb) {
  return bytesToHuman(mb * 1024 * 1024);
}

// fdfs_monitor's durations: "1 hour 1 minute 5 seconds"; 0 → "0 second".
function secondsToHuman(secs) {
  if (secs <= 0) {
    return "0 second";
  }
  const parts = [
    [Math.floor(secs / 86400), "day"],
    [Math.floor((secs % 86400) / 3600), "hour"],
    [Math.floor((secs % 3600) / 60), "minute"],
    [secs % 60, "second"],
  ];
  return parts
    .filter(([n]) => n !== 0)
    .map(([n, unit]) => n + " " + unit + (n > 1 ? "s" : ""))
    .join(" ");
}

function rateToHuman(bytesPerSec) {
  return bytesToHuman(Math.round(bytesPerSec)) + "/s";
}

function lagCell(lag) {
  if (lag === null || lag === undefined) {
    return el("td", { class: "lag" }, ["-"]);
  }
  if (lag === "never") {
    return el("td", { class: "lag never", "data-lag": "never" }, ["never synced"]);
  }
  const cls = lag > 0 ? "lag behind" : "lag";
  return el("td", { class: cls, "data-lag": lag }, [secondsToHuman(lag) + " delay"]);
}

function pathBars(s) {
  const box = el("div", { class: "paths" });
  s.paths.forEach((p, i) => {
    const used = p.total_mb > 0 ? (p.total_mb - p.free_mb) / p.total_mb : 0;
    const pct = Math.max(0, Math.min(100, used * 100));
    const level = pct >= 90 ? " full" : pct >= 75 ? " high" : "";
    const label = "M" + String(i).padStart(2, "0");
    const fill = el("div", { class: "used" + level });
    fill.style.width = pct.toFixed(1) + "%";
    const text = el("span", { class: "bar-text" }, [
      mbToHuman(p.free_mb) + " free of " + mbToHuman(p.total_mb),
    ]);
    box.append(
      el("div", {
        class: "path",
        "data-path": label,
        "data-free-mb": p.free_mb,
        "data-total-mb": p.total_mb,
      }, [
        el("span", { class: "path-name" }, [label]),
        el("div", { class: "bar", title: pct.toFixed(1) + "% used" }, [fill, text]),
      ])
    );
  });
  if (s.paths.length === 0) {
    box.append("-");
  }
  return box;
}

function storageRow(s) {
  return el("tr", {
    class: "storage",
    "data-id": s.id,
    "data-ip": s.ip,
    "data-port": s.port,
    "data-status": s.status,
    "data-total-mb": s.total_mb,
    "data-free-mb": s.free_mb,
    "data-upload-count": s.upload_count,
    "data-download-count": s.download_count,
  }, [
    el("td", { class: "id" }, [s.id]),
    el("td", { class: "host" }, [s.ip + ":" + s.port]),
    el("td", {}, [el("span", { class: "status status-" + s.status }, [s.status])]),
    el("td", { class: "version" }, [s.version]),
    el("td", { class: "num total" }, [mbToHuman(s.total_mb)]),
    el("td", { class: "num free" }, [mbToHuman(s.free_mb)]),
    el("td", {}, [pathBars(s)]),
    lagCell(s.sync_lag_secs),
    el("td", { class: "num uploads" }, [s.upload_count]),
    el("td", { class: "num downloads" }, [s.download_count]),
  ]);
}

function groupSection(g) {
  const avail = Math.max(0, g.free_mb - g.reserved_mb);
  const fact = (label, value, cls) =>
    el("span", { class: "fact" }, [label + " ", el("b", { class: cls }, [value])]);
  const head = el("div", { class: "group-head" }, [
    el("span", { class: "group-name" }, [g.name]),
    fact("storages", g.active_count + " / " + g.storage_count + " active", "g-active"),
    fact("total", mbToHuman(g.total_mb), "g-total"),
    fact("free", mbToHuman(g.free_mb), "g-free"),
    fact("available", mbToHuman(avail), "g-avail"),
  ]);
  if (g.trunk_server) {
    head.append(fact("trunk server", g.trunk_server, "g-trunk"));
    head.append(fact("trunk free", mbToHuman(g.trunk_free_mb), "g-trunk-free"));
  }
  const columns = ["id", "host", "status", "version", "total", "free",
    "store paths (free space)", "replication lag", "uploads", "downloads"];
  const table = el("table", {}, [
    el("thead", {}, [el("tr", {}, columns.map((c) => el("th", {}, [c])))]),
    el("tbody", {}, g.storages.map(storageRow)),
  ]);
  return el("section", { class: "group", "data-group": g.name }, [head, table]);
}

function render(snap) {
  const t = snap.tracker;
  setText("tracker-self", t.self || "-");
  setText("tracker-leader", t.leader ? t.leader + (t.is_leader ? " (this tracker)" : "") : "none (election due)");
  setText("tracker-peers", t.peers.length ? t.peers.join(", ") : "none");
  let storages = 0;
  let active = 0;
  for (const g of snap.groups) {
    storages += g.storage_count;
    active += g.active_count;
  }
  setText("group-count", snap.groups.length);
  setText("storage-active", active + " / " + storages);
  setText("upload-count", snap.totals.upload_count);
  setText("download-count", snap.totals.download_count);
  const groups = document.getElementById("groups");
  if (snap.groups.length === 0) {
    groups.replaceChildren(el("p", { class: "empty" }, ["No storage has joined this tracker yet."]));
  } else {
    groups.replaceChildren(...snap.groups.map(groupSection));
  }
}

function addSample(snap) {
  const now = Date.now();
  const last = samples[samples.length - 1];
  let up = 0;
  let down = 0;
  if (last) {
    const secs = (now - last.at) / 1000;
    if (secs > 0) {
      // A storage that restarts may report smaller counters: no negative rate.
      up = Math.max(0, snap.totals.upload_bytes - last.upBytes) / secs;
      down = Math.max(0, snap.totals.download_bytes - last.downBytes) / secs;
    }
  }
  samples.push({ at: now, upBytes: snap.totals.upload_bytes, downBytes: snap.totals.download_bytes, up, down });
  while (samples.length > CHART_SAMPLES) {
    samples.shift();
  }
  setText("upload-rate", last ? rateToHuman(up) : "-");
  setText("download-rate", last ? rateToHuman(down) : "-");
}

function drawChart() {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const left = 80;
  const bottom = h - 20;
  const top = 10;
  ctx.clearRect(0, 0, w, h);
  const rates = samples.slice(1);
  const max = Math.max(1024, ...rates.map((s) => Math.max(s.up, s.down)));
  ctx.font = "12px sans-serif";
  ctx.fillStyle = "#667085";
  ctx.strokeStyle = "#e3e6eb";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ((bottom - top) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(w, y);
    ctx.stroke();
    ctx.fillText(rateToHuman((max * (4 - i)) / 4), 4, y + 4);
  }
  ctx.fillText("last " + Math.round((CHART_SAMPLES * POLL_INTERVAL_MS) / 60000) + " minutes", left, h - 4);
  const step = (w - left) / (CHART_SAMPLES - 1);
  const line = (key, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    rates.forEach((s, i) => {
      const x = w - (rates.length - 1 - i) * step;
      const y = bottom - ((bottom - top) * s[key]) / max;
      if (i === 0) {
        ctx.moveTo(x, y);
      } else {
        ctx.lineTo(x, y);
      }
    });
    ctx.stroke();
  };
  const css = getComputedStyle(document.documentElement);
  line("up", css.getPropertyValue("--up").trim() || "#2f6fdb");
  line("down", css.getPropertyValue("--down").trim() || "#1f9d55");
}

async function poll() {
  try {
    const resp = await fetch(STATUS_URL, { cache: "no-store" });
    if (!resp.ok) {
      throw new Error("HTTP " + resp.status);
    }
    const snap = await resp.json();
    render(snap);
    addSample(snap);
    drawChart();
    const updated = document.getElementById("updated");
    updated.className = "";
    updated.textContent = "updated " + new Date().toLocaleTimeString() + " · FastDFS " + snap.version;
  } catch (e) {
    const updated = document.getElementById("updated");
    updated.className = "error";
    updated.textContent = "cannot read " + STATUS_URL + ": " + e.message;
  } finally {
    setTimeout(poll, POLL_INTERVAL_MS);
  }
}

poll();
