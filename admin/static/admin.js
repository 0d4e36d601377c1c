// movierec admin: asks before forms marked data-confirm submit; polls a run's progress and draws
// its loss and validation curves; overlays the compared runs' curves (charts.js draws them).
(function () {
  "use strict";
  const plot = window.movierecCharts.plot;
  const SAMPLED = [["hr@10", "HR@10"], ["ndcg@10", "NDCG@10"]];
  const FULL = [["recall@10", "HR@10"], ["recall@20", "Recall@20"], ["full_ndcg@10", "NDCG@10"]];
  const METRICS = [["hr@10", "HR@10 (sampled)"], ["ndcg@10", "NDCG@10 (sampled)"], ["recall@10", "HR@10 (full)"],
    ["full_ndcg@10", "NDCG@10 (full)"], ["recall@20", "Recall@20 (full)"]];

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    return s >= 60 ? Math.floor(s / 60) + "m " + (s % 60) + "s" : s + "s";
  }

  function metricsText(m) {
    if (!m) return "–";
    return METRICS.filter(([k]) => k in m).map(([k, label]) => label + " " + Number(m[k]).toFixed(4)).join("   ");
  }

  function metricChart(id, names, history, best, planned) {
    const present = names.filter(([k]) => history.some((h) => k in h));
    plot(document.getElementById(id), present.map(([k, label]) => ({
      label: label, points: history.filter((h) => k in h).map((h) => [h.epoch, h[k]]),
    })), { yTitle: "metric value", best: best, xMax: planned });
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
    document.getElementById("run-detail").textContent = run.waiting || detail;
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
    const planned = live ? p.epochs : undefined; // a live run's axis runs to its last planned epoch
    plot(document.getElementById("chart-loss"), [{ label: "Training loss", points: history.map((h) => [h.epoch, h.loss]) }],
      { yTitle: "loss", best: bestEpoch, xMax: planned });
    metricChart("chart-sampled", SAMPLED, history, bestEpoch, planned);
    metricChart("chart-full", FULL, history, bestEpoch, planned);
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

  // The compared runs' histories on one chart, one series a run, the metric the select names.
  function compareCurves(section) {
    const runs = JSON.parse(section.dataset.curves);
    const figure = document.getElementById("chart-curves");
    const select = document.getElementById("curves-metric");
    const present = [["loss", "Training loss"], ...METRICS].filter(([k]) => runs.some((r) => r.history.some((h) => k in h)));
    present.forEach(([k, label]) => select.appendChild(new Option(label, k)));
    const monitor = runs.length ? runs[0].monitor : undefined;
    if (present.some(([k]) => k === monitor)) select.value = monitor;
    const draw = () => {
      const key = select.value;
      const label = (present.find(([k]) => k === key) || [key, ""])[1];
      plot(figure, runs.map((r) => ({ label: r.label, points: r.history.filter((h) => key in h).map((h) => [h.epoch, h[key]]) })),
        { title: label + " of the compared runs", yTitle: label, empty: "no epoch recorded" });
    };
    select.addEventListener("change", draw);
    draw();
  }

  const section = document.getElementById("run");
  if (section) watch(section);
  const curves = document.getElementById("curves");
  if (curves) compareCurves(curves);
})();
