/* The console's own script: draws the charts from the JSON the server renders into each page, refreshes
   the page's content on a timer (HTMX swaps #content, keeping the scroll position), and keeps an
   analyst's lease on an open case while the page is open. No inline script anywhere: the CSP forbids it. */
(function () {
  "use strict";

  const COLORS = { APPROVED: "#2e7d32", REVIEW: "#c77700", DECLINED: "#c62828", fraud: "#8e24aa" };
  const charts = new Map();

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  // 24-hour UTC tick labels: the day only where it changes.
  const pad = (n) => String(n).padStart(2, "0");
  function timeTicks(u, splits) {
    let lastDay = null;
    return splits.map((ts) => {
      const d = new Date(ts * 1e3);
      const day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
      const time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
      const label = day !== lastDay && lastDay !== null ? day.slice(5) + " " + time : time;
      lastDay = day;
      return label;
    });
  }
  const timeAxis = { values: timeTicks, space: 60 };

  function thresholdLines(values, horizontal) {
    // Dashed lines at the model's review and decline thresholds.
    return function (u) {
      const ctx = u.ctx;
      ctx.save();
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5 * devicePixelRatio;
      for (const [value, color] of values) {
        if (value === null || value === undefined) continue;
        ctx.strokeStyle = color;
        ctx.beginPath();
        if (horizontal) {
          const y = u.valToPos(value, "y", true);
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
        } else {
          const x = u.valToPos(value, "x", true);
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
        }
        ctx.stroke();
      }
      ctx.restore();
    };
  }

  const builders = {
    decisions(spec) {
      return {
        opts: {
          tzDate: utc,
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
                    flagged: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [timeAxis, { label: "APPROVED / min", size: 60 },
                 { scale: "flagged", side: 1, label: "REVIEW, DECLINED / min", grid: { show: false }, size: 60 }],
          series: [
            { label: "UTC" },
            { label: "APPROVED", stroke: COLORS.APPROVED, width: 1.5, value: (u, v) => v == null ? "—" : v.toFixed(1) },
            { label: "REVIEW", stroke: COLORS.REVIEW, width: 1.5, scale: "flagged", value: (u, v) => v == null ? "—" : v.toFixed(2) },
            { label: "DECLINED", stroke: COLORS.DECLINED, width: 1.5, scale: "flagged", value: (u, v) => v == null ? "—" : v.toFixed(2) },
          ],
        },
        data: [spec.x, spec.series.APPROVED, spec.series.REVIEW, spec.series.DECLINED],
      };
    },
    latency(spec) {
      const ms = (u, v) => v == null ? "—" : v.toFixed(0) + " ms";
      return {
        opts: {
          tzDate: utc,
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.1)] } },
          axes: [timeAxis, { label: "ms (written − event time)", size: 60 }],
          series: [
            { label: "UTC" },
            { label: "p50", stroke: "#2350a8", width: 1.5, value: ms, spanGaps: false },
            { label: "p95", stroke: "#c77700", width: 1.5, value: ms },
            { label: "p99", stroke: "#c62828", width: 1.5, value: ms },
          ],
        },
        data: [spec.x, spec.p50, spec.p95, spec.p99],
      };
    },
    scores(spec) {
      const width = spec.edges.length > 1 ? spec.edges[1] - spec.edges[0] : 0.02;
      const centres = spec.edges.map((e) => e + width / 2);
      const counts = spec.counts.map((n) => (n > 0 ? n : null));
      return {
        opts: {
          scales: { x: { time: false, range: [0, 1] },
                    y: { distr: 3, range: (u, min, max) => [0.5, Math.max(10, (max || 1) * 2)] } },
          axes: [{ label: "fraud score" }, { label: "payments (log)", size: 60 }],
          series: [
            { label: "score", value: (u, v) => v == null ? "—" : (v - width / 2).toFixed(2) + "–" + (v + width / 2).toFixed(2) },
            { label: "payments", fill: "#9db4e0", stroke: "#2350a8", paths: uPlot.paths.bars({ size: [0.92, 40] }),
              points: { show: false } },
          ],
          hooks: { draw: [thresholdLines([[spec.review, COLORS.REVIEW], [spec.decline, COLORS.DECLINED]], false)] },
        },
        data: [centres, counts],
      };
    },
    timeline(spec) {
      const dots = (color, size) => ({ show: true, size: size, fill: color, stroke: color });
      // A little room around the payments, and an hour either side of a lone one (uPlot would span years).
      const first = spec.x.length ? Math.min(...spec.x) : 0;
      const last = spec.x.length ? Math.max(...spec.x) : 3600;
      const pad = last > first ? (last - first) * 0.03 : 3600;
      return {
        opts: {
          tzDate: utc,
          scales: { x: { time: true, range: [first - pad, last + pad] }, y: { range: [0, 1] } },
          axes: [timeAxis, { label: "fraud score", size: 50 }],
          series: [
            { label: "event time (UTC)" },
            { label: "APPROVED", stroke: COLORS.APPROVED, paths: () => null, points: dots(COLORS.APPROVED, 6) },
            { label: "REVIEW", stroke: COLORS.REVIEW, paths: () => null, points: dots(COLORS.REVIEW, 7) },
            { label: "DECLINED", stroke: COLORS.DECLINED, paths: () => null, points: dots(COLORS.DECLINED, 7) },
            { label: "labelled fraud", stroke: COLORS.fraud, paths: () => null,
              points: { show: true, size: 13, width: 2, stroke: COLORS.fraud, fill: "transparent" } },
          ],
          hooks: { draw: [thresholdLines([[spec.review, COLORS.REVIEW], [spec.decline, COLORS.DECLINED]], true)] },
        },
        data: [spec.x, spec.series.APPROVED, spec.series.REVIEW, spec.series.DECLINED, spec.fraud],
      };
    },
  };

  function renderCharts(root) {
    for (const [element, chart] of charts) {
      if (!document.body.contains(element)) {
        chart.destroy();
        charts.delete(element);
      }
    }
    root.querySelectorAll("script[data-chart]").forEach((source) => {
      const target = document.getElementById(source.dataset.chart);
      if (!target || charts.has(target)) return;
      const spec = JSON.parse(source.textContent);
      const built = builders[spec.kind](spec);
      const options = Object.assign({ width: Math.max(target.clientWidth, 300), height: Number(target.dataset.height || 210) },
                                    built.opts);
      charts.set(target, new uPlot(options, built.data, target));
    });
  }

  function resizeCharts() {
    for (const [element, chart] of charts) {
      chart.setSize({ width: Math.max(element.clientWidth, 300), height: chart.height });
    }
  }

  // Auto refresh: the choice is remembered in the browser; pages with forms being filled opt out.
  let lastRefresh = Date.now();
  function refreshSettings() {
    const box = document.getElementById("auto-refresh");
    const every = document.getElementById("refresh-every");
    return { on: box && box.checked, seconds: every ? Number(every.value) : 10 };
  }
  function restoreRefreshSettings() {
    const box = document.getElementById("auto-refresh");
    const every = document.getElementById("refresh-every");
    if (box && localStorage.getItem("console.autoRefresh") !== null) box.checked = localStorage.getItem("console.autoRefresh") === "1";
    if (every && localStorage.getItem("console.refreshEvery")) every.value = localStorage.getItem("console.refreshEvery");
    if (box && !box.dataset.bound) {
      box.dataset.bound = "1";
      box.addEventListener("change", () => localStorage.setItem("console.autoRefresh", box.checked ? "1" : "0"));
    }
    if (every && !every.dataset.bound) {
      every.dataset.bound = "1";
      every.addEventListener("change", () => localStorage.setItem("console.refreshEvery", every.value));
    }
  }
  function tick() {
    const content = document.getElementById("content");
    const settings = refreshSettings();
    if (!content || !settings.on || content.dataset.noRefresh !== undefined || document.hidden) return;
    if (Date.now() - lastRefresh < settings.seconds * 1000) return;
    lastRefresh = Date.now();
    htmx.ajax("GET", window.location.pathname + window.location.search,
              { target: "#content", select: "#content", swap: "outerHTML" });
  }

  // An open case stays leased to its analyst while the page is open.
  function renewLease() {
    const caseElement = document.querySelector("[data-renew-url]");
    if (!caseElement) return;
    const body = new URLSearchParams({ card: caseElement.dataset.card, csrf: caseElement.dataset.csrf });
    fetch(caseElement.dataset.renewUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": caseElement.dataset.csrf },
    }).then((r) => r.text().then((text) => {
      const status = document.getElementById("lease-status");
      if (status) status.textContent = r.ok ? "Open for you: " + text : "Lost: " + text;
    })).catch(() => {});
  }

  document.addEventListener("DOMContentLoaded", () => {
    restoreRefreshSettings();
    renderCharts(document);
    setInterval(tick, 1000);
    setInterval(renewLease, 60_000);
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    lastRefresh = Date.now();
    renderCharts(event.target.ownerDocument || document);
    restoreRefreshSettings();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeCharts, 150);
  });
})();
