// movierec admin: asks before forms marked data-confirm submit; polls a run's progress and draws
// its loss and validation curves as inline SVG (a point's value shows on hover).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2456c7", "#1a7f43", "#b3261e", "#946200"];
  const SAMPLED = [["hr@10", "HR@10"], ["ndcg@10", "NDCG@10"]];
  const FULL = [["recall@10", "HR@10"], ["recall@20", "Recall@20"], ["full_ndcg@10", "NDCG@10"]];
  const METRICS = [["hr@10", "HR@10 (sampled)"], ["ndcg@10", "NDCG@10 (sampled)"], ["recall@10", "HR@10 (full)"],
    ["full_ndcg@10", "NDCG@10 (full)"], ["recall@20", "Recall@20 (full)"]];

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // series: [{label, points: [[x, y], ...]}]; draws axes with min/max labels and one polyline each,
  // and a dashed line at the best epoch when one is given.
  function chart(svg, series, best) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const all = series.flatMap((s) => s.points);
    if (all.length === 0) {
      svg.appendChild(el("text", { x: 200, y: 100, "text-anchor": "middle" }, "no finished epoch yet"));
      return;
    }
    const W = 400, H = 200, L = 44, R = 10, T = 10, B = 24;
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 0.5 * Math.abs(y0 || 1) * 0.1; y1 += 0.5 * Math.abs(y1 || 1) * 0.1; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#aab" }));
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#aab" }));
    svg.appendChild(el("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, y1.toPrecision(3)));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end" }, y0.toPrecision(3)));
    svg.appendChild(el("text", { x: L, y: H - 8 }, "epoch " + x0));
    if (Math.max(...xs) > x0) svg.appendChild(el("text", { x: W - R, y: H - 8, "text-anchor": "end" }, "epoch " + x1));
    if (best !== undefined && best >= x0 && best <= x1) {
      svg.appendChild(el("line", { x1: sx(best), y1: T, x2: sx(best), y2: H - B, stroke: "#5d6675", "stroke-dasharray": "4 3" }));
    }
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const pts = s.points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
      svg.appendChild(el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 }));
      s.points.forEach((p) => {
        const dot = el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 4, fill: color });
        dot.appendChild(el("title", {}, s.label + ", epoch " + p[0] + ": " + Number(p[1]).toFixed(4)));
        svg.appendChild(dot);
      });
    });
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    return s >= 60 ? Math.floor(s / 60) + "m " + (s % 60) + "s" : s + "s";
  }

  function metricsText(m) {
    if (!m) return "–";
    return METRICS.filter(([k]) => k in m).map(([k, label]) => label + " " + Number(m[k]).toFixed(4)).join("   ");
  }

  function legend(id, present) {
    const node = document.getElementById(id);
    node.textContent = "";
    present.forEach(([, label], i) => {
      const span = document.createElement("span");
      span.style.color = COLORS[i % COLORS.length];
      span.textContent = "● " + label;
      node.appendChild(span);
    });
  }

  function metricChart(id, legendId, names, history, best) {
    const present = names.filter(([k]) => history.some((h) => k in h));
    chart(document.getElementById(id), present.map(([k, label]) => ({
      label: label, points: history.filter((h) => k in h).map((h) => [h.epoch, h[k]]),
    })), best);
    legend(legendId, present);
  }

  function show(section, run) {
    const p = run.progress || {};
    const history = p.history || [];
    const live = run.status === "running" || run.status === "queued";
    const outcome = run.outcome || run.status;
    document.getElementById("run-status").textContent = outcome;
    document.getElementById("run-status").className = "status " + outcome;
    document.getElementById("run-bar").style.width = (p.percent || 0) + "%";
    document.getElementById("run-bar").className = live || run.status === "succeeded" ? "" : "stopped";
    document.getElementById("run-progressbar").setAttribute("aria-valuenow", Number(p.percent || 0).toFixed(0));
    const where = "epoch " + (p.epoch || 0) + "/" + (p.epochs || "?") + " · step " + (p.step || 0) + "/" + (p.steps || "?");
    const detail = live
      ? where + " · loss " + (p.loss !== undefined ? Number(p.loss).toFixed(4) : "–") + " · " + Number(p.percent || 0).toFixed(1) +
        "% · elapsed " + fmtSeconds(p.elapsed_s) + " · ETA " + fmtSeconds(p.eta_s)
      : run.status === "succeeded" ? "100%" : "stopped at " + where + " (" + Number(p.percent || 0).toFixed(0) + "%)";
    document.getElementById("run-detail").textContent = detail;
    document.getElementById("run-error").textContent = run.error || "";
    if (run.metrics) document.getElementById("run-metrics").textContent = metricsText(run.metrics);
    const actions = document.getElementById("run-actions");
    if (run.status === "succeeded" && actions.dataset.active !== "1") actions.hidden = false;
    // the epoch training kept: the best of the monitored validation metric
    let best;
    history.forEach((h) => { if (run.monitor in h && (best === undefined || h[run.monitor] > best[run.monitor])) best = h; });
    const bestEpoch = best ? best.epoch : undefined;
    document.getElementById("best-epoch").textContent = best
      ? "Dashed line: epoch " + bestEpoch + ", the best validation " + run.monitor + " (" + Number(best[run.monitor]).toFixed(4) + "); training keeps that epoch's model."
      : "";
    chart(document.getElementById("chart-loss"), [{ label: "loss", points: history.map((h) => [h.epoch, h.loss]) }], bestEpoch);
    metricChart("chart-sampled", "legend-sampled", SAMPLED, history, bestEpoch);
    metricChart("chart-full", "legend-full", FULL, history, bestEpoch);
    section.dataset.status = run.status;
  }

  function watch(section) {
    let run = JSON.parse(section.dataset.run);
    const actions = document.getElementById("run-actions");
    actions.dataset.active = actions.hidden && run.status === "succeeded" ? "1" : "0";
    show(section, run);
    if (run.status !== "queued" && run.status !== "running") return;
    const timer = setInterval(async () => {
      try {
        const response = await fetch(section.dataset.progressUrl, { headers: { accept: "application/json" } });
        if (!response.ok) return;
        run = await response.json();
        show(section, run);
        if (run.status !== "queued" && run.status !== "running") clearInterval(timer);
      } catch (e) { /* the next poll retries */ }
    }, 1000);
  }

  const section = document.getElementById("run");
  if (section) watch(section);
})();
