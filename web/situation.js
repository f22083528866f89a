// The situation page: reads /v1/situation, /v1/situation/history and
// /v1/quality from the node that serves it and refreshes every 5 s.
//
// Plain JavaScript, no build step. Every text from the API is set with
// textContent (never innerHTML): provider names and finding details are
// other people's strings. An endpoint that answers 404 (a node that does
// not have it) marks its panel "not available" instead of failing the page.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const HISTORY_MINUTES = 60;
  const FINDINGS_SHOWN = 500;
  const PRECISIONS = ["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8"];

  const byId = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------

  /** An element with attributes and children (strings become text). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** An id fragment safe for any string (region codes, prefixes, reasons). */
  function slug(s) {
    return String(s).replace(/[^A-Za-z0-9_.-]/g, "_");
  }

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : 0;
  }

  /** 12345 → "12,345" (independent of the browser's locale). */
  function fmtInt(v) {
    const n = Math.round(num(v));
    const s = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return n < 0 ? "-" + s : s;
  }

  function fmtTflops(v) {
    const n = num(v);
    const [i, f] = n.toFixed(1).split(".");
    return fmtInt(Number(i)) + "." + f;
  }

  function fmtPercent(ratio) {
    return (num(ratio) * 100).toFixed(0) + " %";
  }

  function total(f) {
    return f ? num(f.fresh) + num(f.stale) + num(f.unknown) : 0;
  }

  function fresh(f) {
    return f ? num(f.fresh) : 0;
  }

  function fmtTime(secs) {
    const d = new Date(num(secs) * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  function fmtAge(secs) {
    const s = Math.round(num(secs));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }

  /** A number cell with its raw value in data-value. */
  function numCell(id, value, text) {
    return el("td", { id, class: "num", "data-value": value }, text);
  }

  function fill(tbodyOf, rows) {
    byId(tbodyOf).tBodies[0].replaceChildren(...rows);
  }

  function emptyRow(columns, text) {
    return el("tr", { class: "empty" }, el("td", { colspan: columns }, text));
  }

  /** Marks a panel: ok, missing (404), error; writes what a reader sees. */
  function panelState(id, state, text) {
    const p = byId(id);
    if (!p) return;
    p.dataset.state = state;
    p.textContent = text || "";
  }

  /**
   * GET a JSON endpoint of this node: {body} on 200, {missing: true} on
   * 404, {error} otherwise.
   */
  async function getJson(path) {
    try {
      const r = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
      if (r.status === 404) return { missing: true };
      if (!r.ok) return { error: `HTTP ${r.status}` };
      return { body: await r.json() };
    } catch (e) {
      return { error: String((e && e.message) || e) };
    }
  }

  // Region names: the 31 provinces from the coverage, plus the rest of
  // GB/T 2260's province level.
  const regionNames = new Map([["71", "Taiwan"], ["81", "Hong Kong"], ["82", "Macao"]]);

  function regionName(code) {
    if (code === "*") return "all regions";
    if (regionNames.has(code)) return regionNames.get(code);
    const link = /^(\d+)-(\d+)$/.exec(code);
    if (link) return `line ${regionName(link[1])} – ${regionName(link[2])}`;
    return "";
  }

  // ---------------------------------------------------------------------
  // Charts (uPlot, vendored in web/vendor/)
  // ---------------------------------------------------------------------

  const charts = { precision: null, trend: null, precisionNames: [] };

  function chartWidth(id) {
    const w = byId(id).clientWidth;
    return Math.max(320, Math.min(w || 800, 1100));
  }

  const COLOURS = { total: "#4c6a92", available: "#2e8540" };

  function precisionChart(names, totals, availables) {
    const xs = names.map((_, i) => i);
    const data = [xs, totals, availables];
    if (charts.precision && charts.precisionNames.join() === names.join()) {
      charts.precision.setData(data);
      return;
    }
    if (charts.precision) charts.precision.destroy();
    charts.precisionNames = names.slice();
    const bars = (align) => uPlot.paths.bars({ size: [0.35, 60], align });
    charts.precision = new uPlot({
      width: chartWidth("precision-chart"),
      height: 260,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: [-0.6, Math.max(names.length - 0.4, 0.4)] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        {
          splits: () => xs,
          values: (u, splits) => splits.map((i) => names[i] || ""),
          grid: { show: false },
        },
        { label: "TFLOPS (int8: TOPS)", size: 70, values: (u, splits) => splits.map(fmtInt) },
      ],
      series: [
        {},
        { label: "total (fresh)", fill: COLOURS.total, stroke: COLOURS.total, paths: bars(-1), points: { show: false } },
        { label: "available (fresh)", fill: COLOURS.available, stroke: COLOURS.available, paths: bars(1), points: { show: false } },
      ],
    }, data, byId("precision-chart"));
  }

  function trendChart(xs, totals, availables) {
    const data = [xs, totals, availables];
    if (charts.trend) {
      charts.trend.setData(data);
      return;
    }
    charts.trend = new uPlot({
      width: chartWidth("trend-chart"),
      height: 260,
      legend: { show: true },
      scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{}, { label: "units", size: 70, values: (u, splits) => splits.map(fmtInt) }],
      series: [
        {},
        { label: "units total", stroke: COLOURS.total, width: 2 },
        { label: "units available", stroke: COLOURS.available, width: 2 },
      ],
    }, data, byId("trend-chart"));
  }

  window.addEventListener("resize", () => {
    if (charts.precision) charts.precision.setSize({ width: chartWidth("precision-chart"), height: 260 });
    if (charts.trend) charts.trend.setSize({ width: chartWidth("trend-chart"), height: 260 });
  });

  // ---------------------------------------------------------------------
  // Panels
  // ---------------------------------------------------------------------

  function setFigure(id, value, text) {
    const e = byId(id);
    e.dataset.value = String(value);
    e.textContent = text === undefined ? fmtInt(value) : text;
  }

  function renderHeadline(s) {
    setFigure("resources-fresh", fresh(s.resources));
    setFigure("resources-stale", num(s.resources && s.resources.stale));
    setFigure("resources-unknown", num(s.resources && s.resources.unknown));
    const c = s.coverage || {};
    const cov = byId("coverage");
    cov.dataset.fresh = String(num(c.regions_fresh));
    cov.dataset.total = String(num(c.regions_total));
    cov.dataset.ratio = String(num(c.ratio));
    cov.textContent = `${num(c.regions_fresh)} / ${num(c.regions_total)} provinces`;
    let available = 0;
    let reporting = 0;
    for (const u of s.units || []) {
      available += fresh(u.units_available);
      reporting += fresh(u.units_total);
    }
    setFigure("units-available", available);
    setFigure("units-reporting", reporting);
  }

  function renderUnits(s) {
    const rows = (s.units || []).map((u) => {
      const id = "units-" + slug(u.region);
      return el("tr", { "data-region": u.region },
        el("th", { scope: "row" }, u.region),
        el("td", {}, regionName(u.region)),
        numCell(id + "-resources-fresh", fresh(u.resources), fmtInt(fresh(u.resources))),
        numCell(id + "-resources-stale", num(u.resources.stale), fmtInt(u.resources.stale)),
        numCell(id + "-resources-unknown", num(u.resources.unknown), fmtInt(u.resources.unknown)),
        numCell(id + "-total", total(u.units_total), fmtInt(total(u.units_total))),
        numCell(id + "-reporting", fresh(u.units_total), fmtInt(fresh(u.units_total))),
        numCell(id + "-available", fresh(u.units_available), fmtInt(fresh(u.units_available))),
        numCell(id + "-in-use", fresh(u.units_in_use), fmtInt(fresh(u.units_in_use))));
    });
    fill("units-table", rows.length ? rows : [emptyRow(9, "No resources registered.")]);
  }

  function renderPeaks(s) {
    const peaks = s.peaks || [];
    // Per precision over all regions and models: the same precision only.
    const per = new Map();
    for (const p of peaks) {
      const a = per.get(p.precision) || { devices: 0, total: 0, totalFresh: 0, available: 0 };
      a.devices += total(p.devices);
      a.total += total(p.total_tflops);
      a.totalFresh += fresh(p.total_tflops);
      a.available += fresh(p.available_tflops);
      per.set(p.precision, a);
    }
    const names = [...per.keys()].sort((a, b) => {
      const ia = PRECISIONS.indexOf(a);
      const ib = PRECISIONS.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    const rows = names.map((name) => {
      const a = per.get(name);
      const id = "precision-" + slug(name);
      return el("tr", { "data-precision": name },
        el("th", { scope: "row" }, name),
        numCell(id + "-devices", a.devices, fmtInt(a.devices)),
        numCell(id + "-total", a.total, fmtTflops(a.total)),
        numCell(id + "-total-fresh", a.totalFresh, fmtTflops(a.totalFresh)),
        numCell(id + "-available", a.available, fmtTflops(a.available)));
    });
    fill("precision-table", rows.length ? rows : [emptyRow(5, "No device peaks stated.")]);
    precisionChart(names, names.map((n) => per.get(n).totalFresh), names.map((n) => per.get(n).available));

    const byRegion = peaks.map((p) => {
      const id = `peak-${slug(p.region)}-${slug(p.precision)}`;
      return el("tr", { "data-region": p.region, "data-precision": p.precision },
        el("th", { scope: "row" }, `${p.region} ${regionName(p.region)}`.trim()),
        el("td", {}, p.precision),
        numCell(id + "-devices", total(p.devices), fmtInt(total(p.devices))),
        numCell(id + "-total", total(p.total_tflops), fmtTflops(total(p.total_tflops))),
        numCell(id + "-available", fresh(p.available_tflops), fmtTflops(fresh(p.available_tflops))));
    });
    fill("peaks-table", byRegion.length ? byRegion : [emptyRow(5, "No device peaks stated.")]);
  }

  function heatClass(p) {
    if (p.state === "none") return "state-none";
    if (p.state !== "fresh") return "state-silent";
    const reporting = fresh(p.units_total);
    const ratio = reporting > 0 ? fresh(p.units_available) / reporting : 0;
    return "heat-" + Math.min(4, Math.floor(ratio * 5));
  }

  function renderProvinces(s) {
    const provinces = (s.coverage && s.coverage.provinces) || [];
    for (const p of provinces) regionNames.set(p.code, p.name);
    const rows = provinces.map((p) => {
      const id = "province-" + slug(p.code);
      const reporting = fresh(p.units_total);
      const ratio = reporting > 0 ? fresh(p.units_available) / reporting : 0;
      return el("tr", { id, class: heatClass(p), "data-region": p.code, "data-state": p.state },
        el("th", { scope: "row" }, p.code),
        el("td", {}, p.name),
        el("td", { id: id + "-state" }, p.state),
        numCell(id + "-resources", total(p.resources), fmtInt(total(p.resources))),
        numCell(id + "-units-total", total(p.units_total), fmtInt(total(p.units_total))),
        numCell(id + "-units-available", fresh(p.units_available), fmtInt(fresh(p.units_available))),
        numCell(id + "-availability", ratio, p.state === "fresh" ? fmtPercent(ratio) : "–"));
    });
    fill("province-table", rows);
  }

  function renderChildren(s) {
    if (!Array.isArray(s.children)) {
      panelState("children-state", "missing", "Not available: this node does not report child summaries.");
      fill("children-table", []);
      return;
    }
    const failed = s.children.filter((c) => !c.verified).length;
    panelState("children-state", failed ? "warn" : "ok",
      failed ? `${failed} of ${s.children.length} child summaries failed verification.` : "");
    const rows = s.children.map((c) => {
      const id = "child-" + slug(c.prefix);
      return el("tr", { id, class: c.verified ? "child-ok" : "child-failed", "data-verified": String(!!c.verified) },
        el("th", { scope: "row" }, c.prefix),
        el("td", {}, c.api || ""),
        numCell(id + "-age", c.age_secs === null || c.age_secs === undefined ? "" : num(c.age_secs),
          c.age_secs === null || c.age_secs === undefined ? "never" : fmtAge(c.age_secs)),
        el("td", { id: id + "-verified" }, c.verified ? "verified" : "FAILED"),
        el("td", { id: id + "-error" }, c.error || ""));
    });
    fill("children-table", rows.length ? rows : [emptyRow(5, "No delegated children.")]);
  }

  function renderSituation(s) {
    renderProvinces(s); // first: it fills the region names
    renderHeadline(s);
    renderUnits(s);
    renderPeaks(s);
    renderChildren(s);
    panelState("capacity-state", "ok", "");
    const at = byId("updated");
    at.dataset.at = String(num(s.at));
    at.setAttribute("datetime", new Date(num(s.at) * 1000).toISOString());
    at.textContent = fmtTime(s.at);
  }

  function renderHistory(h) {
    const points = h.points || [];
    const xs = points.map((p) => num(p.at));
    trendChart(xs,
      points.map((p) => num(p.units_total)),
      points.map((p) => num(p.units_available)));
    const chart = byId("trend-chart");
    chart.dataset.points = String(points.length);
    const last = points[points.length - 1];
    if (last) {
      chart.dataset.lastAvailable = String(num(last.units_available));
      chart.dataset.lastTotal = String(num(last.units_total));
    }
    panelState("trends-state", "ok", points.length ? "" : "No history yet: points appear as the node samples its totals.");
    const anomalies = h.anomalies || [];
    const rows = anomalies.map((a, i) => el("tr", { id: "anomaly-" + i, "data-region": a.region },
      el("th", { scope: "row" }, `${a.region} ${regionName(a.region)}`.trim()),
      el("td", {}, fmtTime(a.at)),
      numCell(null, num(a.units_available), fmtInt(a.units_available)),
      numCell(null, num(a.mean), num(a.mean).toFixed(1)),
      numCell(null, num(a.stddev), num(a.stddev).toFixed(1)),
      el("td", {}, a.reason || "")));
    fill("anomaly-table", rows.length ? rows : [emptyRow(6, "No anomalies.")]);
  }

  function renderQuality(q) {
    const counts = Object.entries(q.counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    fill("quality-counts", counts.length
      ? counts.map(([reason, n]) => el("tr", { "data-reason": reason },
        el("th", { scope: "row" }, reason),
        numCell("quality-count-" + slug(reason), num(n), fmtInt(n))))
      : [emptyRow(2, "No findings.")]);
    const providers = (q.providers || []).slice().sort((a, b) => num(a.score) - num(b.score));
    fill("quality-providers", providers.length
      ? providers.map((p) => {
        const id = "quality-provider-" + slug(p.provider);
        const n = (p.findings || []).length;
        const score = num(p.score);
        return el("tr", { "data-provider": p.provider, class: score < 0.5 ? "score-low" : score < 0.9 ? "score-mid" : "score-ok" },
          el("th", { scope: "row" }, p.provider),
          numCell(id + "-resources", num(p.resources), fmtInt(p.resources)),
          numCell(id + "-score", score, score.toFixed(2)),
          numCell(id + "-findings", n, fmtInt(n)));
      })
      : [emptyRow(4, "No providers.")]);
    const findings = [];
    for (const p of q.providers || []) {
      for (const f of p.findings || []) findings.push([p.provider, f]);
    }
    const shown = findings.slice(0, FINDINGS_SHOWN).map(([provider, f]) => el("tr", { "data-reason": f.reason },
      el("td", {}, provider),
      el("td", {}, f.id || ""),
      el("td", {}, f.reason || ""),
      el("td", {}, el("code", {}, f.pointer || "")),
      el("td", {}, f.detail || "")));
    if (findings.length > FINDINGS_SHOWN) {
      shown.push(emptyRow(5, `… and ${findings.length - FINDINGS_SHOWN} more (GET /v1/quality has them all).`));
    }
    fill("quality-findings", shown.length ? shown : [emptyRow(5, "No findings.")]);
    byId("quality-findings").dataset.count = String(findings.length);
    const events = [];
    for (const p of q.providers || []) {
      for (const e of p.events || []) events.push([p.provider, e]);
    }
    events.sort((a, b) => num(b[1].at) - num(a[1].at));
    fill("quality-events", events.length
      ? events.map(([provider, e]) => el("tr", { "data-reason": e.reason },
        el("td", {}, provider),
        el("td", {}, fmtTime(e.at)),
        el("td", {}, e.id || ""),
        el("td", {}, e.reason || ""),
        el("td", {}, e.detail || "")))
      : [emptyRow(5, "No refused reports.")]);
    byId("quality-events").dataset.count = String(events.length);
    panelState("quality-state", "ok", "");
  }

  // ---------------------------------------------------------------------
  // The loop
  // ---------------------------------------------------------------------

  function optional(stateId, result, render, what) {
    if (result.body) {
      render(result.body);
    } else if (result.missing) {
      panelState(stateId, "missing", `Not available: this node does not serve ${what}.`);
    } else {
      panelState(stateId, "error", `Could not read ${what} (${result.error}); retrying.`);
    }
  }

  let prefixKnown = false;

  async function refresh() {
    const [situation, history, quality, node] = await Promise.all([
      getJson("/v1/situation?group_by=region"),
      getJson(`/v1/situation/history?minutes=${HISTORY_MINUTES}`),
      getJson("/v1/quality"),
      prefixKnown ? Promise.resolve({}) : getJson("/v1/node"),
    ]);
    if (node.body && node.body.prefix) {
      prefixKnown = true;
      const p = byId("node-prefix");
      p.dataset.value = node.body.prefix;
      p.textContent = "· node " + node.body.prefix;
      document.title = `cpid situation · ${node.body.prefix}`;
    }
    const status = byId("status");
    if (situation.body) {
      renderSituation(situation.body);
      status.dataset.state = "ok";
      status.textContent = "Live";
    } else {
      status.dataset.state = "error";
      status.textContent = situation.missing
        ? "This node does not serve /v1/situation."
        : `Could not reach the node (${situation.error}); showing the last figures, retrying.`;
      panelState("capacity-state", "error", "Figures may be out of date.");
    }
    optional("trends-state", history, renderHistory, "history (/v1/situation/history)");
    optional("quality-state", quality, renderQuality, "data-quality findings (/v1/quality)");
  }

  async function loop() {
    try {
      await refresh();
    } catch (e) {
      // A bug in rendering: say so on the page and in the console, and
      // keep refreshing.
      const status = byId("status");
      status.dataset.state = "error";
      status.textContent = "The page failed to render: " + String((e && e.message) || e);
      console.error(e);
    }
    window.setTimeout(loop, REFRESH_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", loop);
  } else {
    loop();
  }
})();
